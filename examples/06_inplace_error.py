"""Lesson 6: the in-place error. A value saved for backward, then modified in place.

A backward rule often reads values from the forward pass: the derivative of
exp(x) is exp(x) itself, so ExpBackward keeps the output. If that tensor is
changed in place before backward runs, the rule would compute with the wrong
numbers and the gradient would be silently wrong. Every tensor carries a
version counter that each in-place operation increments; the tape remembers
the version it saved, and backward refuses a mismatch, with the error PyTorch
gives. The fix: the out-of-place operation, or a clone() before changing it.

Run: .venv/bin/python examples/06_inplace_error.py
"""

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp

x = tg.tensor([0.0, 1.0, 2.0], requires_grad=True)

print("## 1. A saved tensor changed in place")
y = tnp.exp(x)                   # ExpBackward saves y: d exp(x)/dx = exp(x)
print(f"y = exp(x) = {y.data}, saved by {y.grad_fn.name}")
y += 1                           # in place: y's version goes from 0 to 1
print(f"y += 1 -> y = {y.data}; the saved exp(x) is gone: ExpBackward would multiply by exp(x) + 1")
try:
    tnp.sum(y * y).backward()
except RuntimeError as error:
    print(f"backward raises RuntimeError:\n    {error}")

print("\n## 2. Which line? tg.detect_anomaly() records where each forward operation ran")
with tg.detect_anomaly():
    y = tnp.exp(x)
    y += 1
    try:
        tnp.sum(y * y).backward()
    except RuntimeError as error:
        print("the same error, now ending with the forward line:\n    " + str(error).splitlines()[-1])

print("\n## 3. Fix 1: the out-of-place operation (a new tensor; the saved one is untouched)")
y = tnp.exp(x)
z = y + 1
tnp.sum(z * z).backward()
print(f"x.grad = {x.grad.numpy()}   by hand 2(e^x + 1) e^x = {2 * (np.exp(x.data) + 1) * np.exp(x.data)}")

print("\n## 4. Fix 2: clone() before changing it")
x.grad = None
y = tnp.exp(x)
z = y.clone()
z += 1                            # changes the clone; y, which backward needs, keeps version 0
tnp.sum(z * z).backward()
print(f"x.grad = {x.grad.numpy()}   (the same)")

print("\n## 5. An in-place change that nothing saved is fine")
x.grad = None
y = x * 2                        # MulBackward by a constant saves no tensor, only the 2
y += 1
tnp.sum(y).backward()
print(f"y = 2x, then y += 1: backward works, x.grad = {x.grad.numpy()}")
print("the check is exact: the error appears only when a rule reads a value saved at an older version.")
