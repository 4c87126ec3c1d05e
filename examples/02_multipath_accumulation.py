"""Lesson 2: multi-path accumulation. Why gradients add up where a value is used twice.

In g(x) = x*x + x the input x reaches the output along three paths: as each
factor of the product and as the second term. The multivariable chain rule
says the derivative is the sum over paths: x + x + 1 = 2x + 1. Reverse mode
implements that sum by *accumulating* (+=) the gradient arriving at a value
from each of its uses; overwriting instead of adding is the classic bug of a
hand-written autodiff, and this script shows what it would give.

Run: .venv/bin/python examples/02_multipath_accumulation.py
"""

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp


def g(x):
    return x * x + x


x = 3.0

print("## 1. Three paths from x to g(x) = x*x + x")
print(tg.make_ir(g)(x))
print("b = a * a uses a twice; c = b + a uses it once more.")

print("\n## 2. Sum over paths, by hand")
paths = {"left factor of x*x": x, "right factor of x*x": x, "'+ x' term": 1.0}
for name, value in paths.items():
    print(f"through the {name:<20} dg/dx += {value}")
print(f"total: {sum(paths.values())}   (2x + 1 = {2 * x + 1})")
print(f"if each use overwrote the gradient instead of adding to it, the last path would win: {1.0}")

print("\n## 3. tg.grad adds the paths in the backward program")
print(f"tg.grad(g)({x}) = {tg.grad(g)(x)}")
print(tg.make_ir(tg.grad(g))(x))
print("the two cotangents of `mul a a` and the one of `add b a` meet in `add` equations: that is the accumulation.")

print("\n## 4. The eager tape: two edges from MulBackward to the same leaf, one from AddBackward")
xt = tg.tensor(x, requires_grad=True)
y = g(xt)
mul = y.grad_fn.next_functions[0][0]
print(f"y.grad_fn = {y.grad_fn.name}, its inputs: {[n.name for n, _ in y.grad_fn.next_functions]}")
print(f"{mul.name}'s inputs: {[n.name for n, _ in mul.next_functions]}")
y.backward()
print(f"x.grad = {xt.grad.item()}: the engine summed the three gradients that reached x's AccumulateGrad")

print("\n## 5. The same with a vector: a value used by many outputs")
v = np.array([1.0, 2.0, 3.0])
h = lambda v: tnp.sum(v * v) + tnp.sum(v) * v[0]     # v[0] is used by every term of the sum
print(f"h(v) = sum(v*v) + sum(v) * v[0] at v = {v}")
print(f"tg.grad(h)(v) = {tg.grad(h)(v)}   by hand: 2v + v[0] + [sum(v), 0, 0] = {2 * v + v[0] + [v.sum(), 0, 0]}")
