"""Lesson 3: forward mode (dual numbers, tg.jvp) against reverse mode (tg.vjp), and when each is cheaper.

Forward mode carries a tangent beside every value: a dual number a + b*eps
with eps**2 = 0, so f(a + b*eps) = f(a) + f'(a)*b*eps. One forward pass gives
J @ v, one *column* of the Jacobian per input direction (a JVP). Reverse mode
runs the program forward, then backward from a cotangent u, giving u @ J, one
*row* per output direction (a VJP). A Jacobian of f: R^n -> R^m therefore
costs n JVPs or m VJPs: reverse mode wins for wide-to-narrow functions (a loss:
m = 1), forward mode for narrow-to-wide ones.

Run: .venv/bin/python examples/03_forward_vs_reverse.py
"""

import math
import time

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp


class Dual:
    """a + b*eps with eps**2 = 0: the value and its derivative travel together."""

    def __init__(self, value, tangent=0.0):
        self.value, self.tangent = value, tangent

    def __add__(self, other):
        return Dual(self.value + other.value, self.tangent + other.tangent)

    def __mul__(self, other):   # (a + b eps)(c + d eps) = ac + (ad + bc) eps
        return Dual(self.value * other.value, self.value * other.tangent + self.tangent * other.value)

    def sin(self):
        return Dual(math.sin(self.value), math.cos(self.value) * self.tangent)


def f(x, y):
    return (x + y) * x


print("## 1. Forward mode is arithmetic on dual numbers")
d = f(Dual(2.0, 1.0), Dual(3.0, 0.0))   # seed: dx = 1, dy = 0
print(f"f(2 + 1eps, 3 + 0eps) = {d.value} + {d.tangent} eps   -> df/dx = {d.tangent}")
d = f(Dual(2.0, 0.0), Dual(3.0, 1.0))
print(f"f(2 + 0eps, 3 + 1eps) = {d.value} + {d.tangent} eps   -> df/dy = {d.tangent}")
print("one pass per input direction: two passes for the two partial derivatives.")

print("\n## 2. tg.jvp pushes a tangent forward, tg.vjp pulls a cotangent back")
out, tangent = tg.jvp(f, (2.0, 3.0), (1.0, 0.0))
print(f"tg.jvp(f, (2, 3), (1, 0))    = value {out}, tangent {tangent}   (the dual numbers' df/dx)")
out, pullback = tg.vjp(f, 2.0, 3.0)
print(f"tg.vjp(f, 2, 3) then pullback(1.0) = {tuple(float(g) for g in pullback(1.0))}   "
      f"(both partials in one backward pass)")
print("the JVP program: each equation is followed by its tangent equations (c, d are the tangents dx, dy):")
print(tg.make_ir(lambda x, y, dx, dy: tg.jvp(f, (x, y), (dx, dy)))(2.0, 3.0, 1.0, 0.0))
print("g = c + d is the tangent of e = a + b; h + i = g*a + e*c is the product rule for f = e * a.")

print("\n## 3. Building Jacobians: count the passes, time them")
n = 400
t = np.linspace(0.0, 1.0, n)


def wide_to_narrow(x):   # R^400 -> R^2
    return tnp.stack([tnp.sum(tnp.sin(x) * x), tnp.sum(x * x * t)])


def narrow_to_wide(z):   # R^2 -> R^400
    return tnp.sin(z[0] * t) + z[1] * t * t


def jacobian_by_jvps(fun, x):
    jvp_one = tg.jit(lambda x, v: tg.jvp(fun, (x,), (v,))[1])
    jvp_one(x, np.zeros_like(x))                 # compile once, outside the timing
    start = time.perf_counter()
    columns = [jvp_one(x, e) for e in np.eye(x.size)]
    return np.stack(columns, axis=1), len(columns), time.perf_counter() - start


def jacobian_by_vjps(fun, x):
    m = fun(x).size
    vjp_one = tg.jit(lambda x, u: tg.vjp(fun, x)[1](u)[0])
    vjp_one(x, np.zeros(m))
    start = time.perf_counter()
    rows = [vjp_one(x, e) for e in np.eye(m)]
    return np.stack(rows, axis=0), len(rows), time.perf_counter() - start


rng = np.random.default_rng(0)
for fun, x in ((wide_to_narrow, rng.standard_normal(n)), (narrow_to_wide, np.array([1.5, -0.5]))):
    jf, n_jvp, t_jvp = jacobian_by_jvps(fun, x)
    jr, n_vjp, t_vjp = jacobian_by_vjps(fun, x)
    assert np.allclose(jf, jr)
    print(f"{fun.__name__}: R^{x.size} -> R^{fun(x).size}, Jacobian {jf.shape}")
    print(f"    forward mode: {n_jvp:>3} JVPs (one per input)   {t_jvp * 1e3:7.2f} ms")
    print(f"    reverse mode: {n_vjp:>3} VJPs (one per output)  {t_vjp * 1e3:7.2f} ms")
    print(f"    same Jacobian: {np.allclose(jf, jr)}; cheaper here: {'forward' if t_jvp < t_vjp else 'reverse'} mode")
print("tg.jacfwd builds a Jacobian from one JVP per input, tg.jacrev from one VJP per output: pick by the shape.")
x = rng.standard_normal(n)
print(f"tg.jacrev(wide_to_narrow) equals the VJP-built Jacobian: "
      f"{np.allclose(tg.jacrev(wide_to_narrow)(x), jacobian_by_vjps(wide_to_narrow, x)[0])}")
