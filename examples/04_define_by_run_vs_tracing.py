"""Lesson 4: define-by-run against tracing.

Define-by-run (PyTorch, tracegrad's eager mode) executes each operation at
once on real numbers and records it on a tape: Python `if` and `while` on
values just work, because the values exist. Tracing (JAX, tg.jit) runs the
Python function once on *abstract* arguments (a shape and a dtype, no values)
to record a program it can optimise and compile. A Python `if` on a traced
value cannot be decided then: tracegrad raises tg.ConcretizationError naming
the line. The fix is to put the branch into the program: tg.lax.cond.

Run: .venv/bin/python examples/04_define_by_run_vs_tracing.py
"""

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad import lax


def smooth(x):
    return tnp.sum(tnp.tanh(x) * x)


x = np.array([0.5, -1.0, 2.0], np.float32)

print("## 1. One function, run two ways")
xt = tg.tensor(x, requires_grad=True)
value = smooth(xt)
value.backward()
print(f"eager:  value {value.item():.6f}, grad {xt.grad.numpy()}   "
      f"(computed as it ran; the tape ends in {value.grad_fn.name})")
jitted = tg.jit(tg.value_and_grad(smooth))
v, g = jitted(x)
print(f"jit:    value {float(v):.6f}, grad {g}   (traced once, compiled to native code)")

print("\n## 2. What the tracer saw: a program, with no numbers in it")
print(jitted.lower(x).as_text("traced"))
print("the arguments are typed f32[3]: any call with that shape and dtype reuses the compiled program.")


def relu_or_square(x):
    if tnp.sum(x) > 0:
        return tnp.maximum(x, 0.0)
    return x * x


print("\n## 3. A value-dependent Python `if`")
print(f"eager (NumPy arrays or Tensors) decides it with the values: {relu_or_square(x)}, {relu_or_square(-x)}")
print(f"tg.grad outside jit traces with values too, so it works: {tg.grad(lambda x: tnp.sum(relu_or_square(x)))(x)}")
try:
    tg.jit(relu_or_square)(x)
except tg.ConcretizationError as error:
    print("under tg.jit the value is unknown while tracing:")
    print(f"    {type(error).__name__}: {error}".replace("\n", "\n    "))


def relu_or_square_cond(x):
    return lax.cond(tnp.sum(x) > 0, lambda x: tnp.maximum(x, 0.0), lambda x: x * x, x)


print("\n## 4. The fix: lax.cond puts both branches in the program and picks one at run time")
fixed = tg.jit(relu_or_square_cond)
print(f"jit + lax.cond: {fixed(x)}, {fixed(-x)}   (the same as eager: "
      f"{np.allclose(fixed(x), relu_or_square(x)) and np.allclose(fixed(-x), relu_or_square(-x))})")
print(fixed.lower(x).as_text("traced"))
grad_fixed = tg.jit(tg.grad(lambda x: tnp.sum(relu_or_square_cond(x))))
print(f"and it differentiates: grad at x {grad_fixed(x)}, at -x {grad_fixed(-x)}")
info = fixed.cache_info()
print(f"{info.hits + info.misses} calls with one shape and dtype: "
      f"{info.misses} trace and compile, {info.hits} cache hits")
