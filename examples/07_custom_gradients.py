"""Lesson 7: custom gradients: ReLU, straight-through rounding, a clamped sigmoid, a stable log-sum-exp.

Sometimes the derivative autodiff would compute is not the one you want:
it does not exist (round), it vanishes where you need a signal (a clamp),
or computing it the obvious way overflows (log-sum-exp). A custom rule
replaces it:

- tg.custom_vjp(f) + f.defvjp(fwd, bwd): fwd returns (output, residuals),
  bwd(residuals, g) returns one cotangent per argument; reverse mode only.
- tg.custom_jvp(f) + @f.defjvp: a rule (primals, tangents) -> (out, tangent);
  serves forward mode, and reverse mode by transposing it.
- tg.Function (eager, PyTorch's torch.autograd.Function): forward(ctx, ...)
  and backward(ctx, grad), with ctx.save_for_backward.

Run: .venv/bin/python examples/07_custom_gradients.py
"""

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad import nn

np.set_printoptions(precision=4)
x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
print(f"x = {x}")

print("\n## 1. ReLU with a hand-written VJP (tg.custom_vjp)")


@tg.custom_vjp
def relu(x):
    return tnp.maximum(x, 0.0)


def relu_fwd(x):
    return relu(x), (x,)                            # keep x for the backward pass


def relu_bwd(residuals, g):
    (x,) = residuals
    return (tnp.where(x > 0, g, 0.0),)              # pass the gradient where x > 0; 0 at the kink


relu.defvjp(relu_fwd, relu_bwd)
print(f"relu(x)          = {relu(x)}")
print(f"grad sum relu(x) = {tg.grad(lambda x: tnp.sum(relu(x)))(x)}   "
      f"(autodiff of maximum would give 0.5 at the tie 0)")
print(f"under jit, too   = {tg.jit(tg.grad(lambda x: tnp.sum(relu(x))))(x)}")

print("\n## 2. The same ReLU on the eager tape (tg.Function)")


class ReLU(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return tnp.maximum(x, 0.0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return tnp.where(x > 0, g, 0.0)


xt = tg.tensor(x, requires_grad=True)
out = ReLU.apply(xt)
tnp.sum(out).backward()
print(f"ReLU.apply(x) = {out.data}, grad_fn {out.grad_fn.name}; x.grad = {xt.grad.numpy()}")

print("\n## 3. Straight-through rounding (tg.custom_jvp): round forward, identity backward")


@tg.custom_jvp
def round_ste(x):
    return tnp.round(x)


@round_ste.defjvp
def round_ste_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return round_ste(x), t                        # pretend d round(x)/dx = 1


v = np.array([0.2, 0.7, 1.4])
print(f"round(v) = {round_ste(v)} for v = {v}")
plain_grad = tg.grad(lambda v: tnp.sum(tnp.round(v) * v))(v)
ste_grad = tg.grad(lambda v: tnp.sum(round_ste(v) * v))(v)
print("d/dv sum(round(v) * v):")
print(f"    plain tnp.round:  {plain_grad}   (round's derivative is 0: round(v) is left)")
print(f"    straight-through: {ste_grad}   (round(v) + v: quantised weights learn)")
print(f"forward mode uses the rule directly: jvp tangent = {tg.jvp(round_ste, (v,), (np.ones(3),))[1]}")

print("\n## 4. A clamped sigmoid that still learns when saturated (tg.custom_vjp)")
EPS = 1e-3


@tg.custom_vjp
def clamped_sigmoid(x):
    return tnp.clip(nn.sigmoid(x), EPS, 1 - EPS)    # keeps log(p) and log(1 - p) finite


clamped_sigmoid.defvjp(lambda x: (clamped_sigmoid(x), (nn.sigmoid(x),)),
                       lambda res, g: (g * res[0] * (1 - res[0]),))   # the unclamped sigmoid's derivative
z = np.array([-12.0, 0.0, 12.0])
plain = lambda z: tnp.sum(tnp.log(tnp.clip(nn.sigmoid(z), EPS, 1 - EPS)))
custom = lambda z: tnp.sum(tnp.log(clamped_sigmoid(z)))
print(f"log p at z = {z}: {np.log(clamped_sigmoid(z))}   (never below log {EPS} = {np.log(EPS):.3f})")
print(f"grad through clip:   {tg.grad(plain)(z)}   (clip stops the gradient in the saturated unit: it cannot recover)")
print(f"grad, custom rule:   {tg.grad(custom)(z)}   (sigmoid's own slope at -12 still pushes it up)")

print("\n## 5. A stable log-sum-exp with its rule, softmax (tg.custom_jvp)")


@tg.custom_jvp
def logsumexp(x):
    m = tg.stop_gradient(tnp.max(x))
    return m + tnp.log(tnp.sum(tnp.exp(x - m)))    # exp of non-positive numbers only: no overflow


@logsumexp.defjvp
def logsumexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = logsumexp(x)
    return y, tnp.sum(tnp.exp(x - y) * t)             # d lse = softmax(x) . dx, with exp(x - y) <= 1


big = np.array([1000.0, 1000.0, 990.0])
naive = lambda x: tnp.log(tnp.sum(tnp.exp(x)))
with np.errstate(over="ignore", invalid="ignore"):
    print(f"naive log(sum(exp(x))) at {big}: value {naive(big)}, grad {tg.grad(naive)(big)}   (exp(1000) overflows)")
print(f"stable: value {logsumexp(big):.6f}, grad {tg.grad(logsumexp)(big)}   (= softmax(x))")
tg.check_grads(logsumexp, (np.array([0.1, 0.5, -0.3]),), order=2)   # raises if the rule were wrong
print(f"nn.softmax agrees: {np.allclose(tg.grad(logsumexp)(big), nn.softmax(big))}; "
      f"tg.check_grads(logsumexp, ..., order=2) passes: the rule is right to second order")
