"""Lesson 8: gradient checking with central differences.

(f(x + h e_i) - f(x - h e_i)) / 2h approximates df/dx_i with an error of
order h^2 (the h terms cancel), plus a rounding error of order eps/h: in
float64, h around 1e-6 balances the two. Comparing it against the analytic
gradient catches a wrong derivative rule. We write the check by hand, then
use tg.check_grads (traced: forward and reverse mode, to second order, along
random directions) and tg.eager.gradcheck (the eager tape, PyTorch's API),
and watch both catch a rule with a mistake in it.

Run: .venv/bin/python examples/08_gradient_checking.py
"""

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp


def f(x):
    return tnp.sum(tnp.tanh(x) ** 2 * x)


x = np.array([0.3, -1.2, 0.8])

print("## 1. The check by hand")


def numeric_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


analytic, numeric = tg.grad(f)(x), numeric_grad(f, x)
print(f"tg.grad:             {analytic}")
print(f"central differences: {numeric}")
print(f"largest |difference| {np.max(np.abs(analytic - numeric)):.1e}: they agree to ~10 digits")
for h in (1e-2, 1e-4, 1e-6, 1e-8, 1e-10):
    err = np.max(np.abs(numeric_grad(f, x, h) - analytic))
    print(f"    h = {h:.0e}: error {err:.1e}")
print("too large an h: truncation error (h^2); too small: rounding error (eps / h).")

print("\n## 2. tg.check_grads: forward and reverse mode, first and second order")
tg.check_grads(f, (x,), order=2)
print("tg.check_grads(f, (x,), order=2) returned without error: jvp, vjp and their derivatives agree.")

print("\n## 3. A wrong rule, caught")


@tg.custom_vjp
def my_tanh(x):
    return tnp.tanh(x)


my_tanh.defvjp(lambda x: (tnp.tanh(x), (x,)),
               lambda res, g: (g * (1 - tnp.tanh(res[0])),))   # bug: 1 - tanh(x), should be 1 - tanh(x)**2


def wrong(x):
    return tnp.sum(my_tanh(x))


print(f"the wrong rule's gradient {tg.grad(wrong)(x)} against differences {numeric_grad(wrong, x)}")
try:
    tg.check_grads(wrong, (x,), order=1, modes=("rev",))
except AssertionError as error:
    print(f"tg.check_grads raises AssertionError:\n    {error}")
    print("(reverse mode is checked as u @ J for a random cotangent u, so both numbers are scaled by u's element)")

print("\n## 4. The eager tape: tg.eager.gradcheck, and a wrong tg.Function caught")


class Exp(tg.Function):
    @staticmethod
    def forward(ctx, x):
        y = tnp.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class WrongExp(Exp):
    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * 1.01          # 1% off: a test on a few values by eye would miss it


xt = tg.tensor(x, requires_grad=True)      # float64: central differences need it
print(f"gradcheck(Exp.apply, x) = {tg.eager.gradcheck(Exp.apply, (xt,))}")
try:
    tg.eager.gradcheck(WrongExp.apply, (xt,))
except RuntimeError as error:
    message = str(error).strip().replace("\n", "\n    ")
    print(f"gradcheck(WrongExp.apply, x) raises {type(error).__name__}:\n    {message}")
