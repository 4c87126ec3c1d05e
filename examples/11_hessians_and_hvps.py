"""Lesson 11: Hessians and Hessian-vector products.

The Hessian H of f: R^n -> R is the Jacobian of its gradient, so it is built
by composing transformations: tg.hessian(f) = jacfwd(jacrev(f)), n forward
passes over the gradient program. Newton-type methods and curvature analyses
mostly need H @ v, not H: that is one JVP of the gradient, jvp(grad(f), x, v)
(forward-over-reverse), costing a few gradient evaluations whatever n is, and
never storing the n x n matrix. We check the two against each other, against
reverse-over-reverse and eager double backward, and time them as n grows.

Run: .venv/bin/python examples/11_hessians_and_hvps.py
"""

import time

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp


def rosenbrock(x):
    return tnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def hvp(f, x, v):
    """H(x) @ v as the directional derivative of the gradient along v (forward over reverse)."""
    return tg.jvp(tg.grad(f), (x,), (v,))[1]


x = np.array([1.2, 0.8, -0.5])
v = np.array([1.0, -2.0, 0.5])

print("## 1. The Hessian: tg.hessian(f) = jacfwd(jacrev(f))")
H = tg.hessian(rosenbrock)(x)
print(f"Rosenbrock at x = {x}:\n{H}")
print(f"symmetric, as a Hessian of a smooth function must be: {np.allclose(H, H.T)}")
d2 = 1200 * x[0] ** 2 - 400 * x[1] + 2
print(f"on paper, d2f/dx0^2 = 1200 x0^2 - 400 x1 + 2 = {d2:.2f}; tg.hessian gives {H[0, 0]:.2f}")

print("\n## 2. Hessian-vector products, three ways, checked against H @ v")
print(f"H @ v                                    = {H @ v}")
print(f"jvp of grad (forward over reverse)       = {hvp(rosenbrock, x, v)}")
reverse_over_reverse = tg.grad(lambda x: tnp.sum(tg.grad(rosenbrock)(x) * v))(x)
print(f"grad of <grad, v> (reverse over reverse) = {reverse_over_reverse}")
xt = tg.tensor(x, requires_grad=True)
(g,) = tg.eager.grad(rosenbrock(xt), xt, create_graph=True)   # the gradient, itself on the tape
(eager_hv,) = tg.eager.grad(tnp.sum(g * tg.tensor(v)), xt)
print(f"eager double backward (create_graph)     = {eager_hv.numpy()}")
products = (hvp(rosenbrock, x, v), reverse_over_reverse, eager_hv.numpy())
print(f"all equal: {all(np.allclose(H @ v, h) for h in products)}")

print("\n## 3. The HVP program: a forward pass, a backward pass, and their tangents; no n x n matrix")
print(tg.jit(lambda x, v: hvp(rosenbrock, x, v)).lower(x, v).as_text("optimized"))

print("\n## 4. Cost as n grows (outside jit: each call traces the program and runs it)")
print("     n   Hessian (n JVPs of grad)        HVP (1 JVP of grad)")
rng = np.random.default_rng(0)
for n in (10, 100, 300):
    xn, vn = rng.standard_normal(n), rng.standard_normal(n)
    hess = tg.hessian(rosenbrock)
    assert np.allclose(hess(xn) @ vn, hvp(rosenbrock, xn, vn))
    times = []
    for fn, args in ((hess, (xn,)), (lambda x, v: hvp(rosenbrock, x, v), (xn, vn))):
        start = time.perf_counter()
        for _ in range(3):
            fn(*args)
        times.append((time.perf_counter() - start) / 3)
    print(f"{n:6d}   {times[0] * 1e3:7.1f} ms, result {n * n * 8 / 1e3:6.1f} kB   "
          f"{times[1] * 1e3:7.1f} ms, result {n * 8 / 1e3:.1f} kB")
print("the Hessian costs n JVPs of the gradient and holds n^2 numbers; the HVP costs one JVP and holds n.")
