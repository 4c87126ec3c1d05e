"""Lesson 9: finding the first NaN, with tg.debug_nans (traced and compiled) and tg.detect_anomaly (eager).

A NaN spreads: once one operation makes it, everything downstream is NaN, and
the loss at the end says nothing about where it started. The useful question
is which operation produced the *first* one. Inside `with tg.debug_nans():`
every equation's result is checked, in the reference interpreter and in
native code, and the first NaN or Inf raises FloatingPointError naming the
primitive, its IR variable and your source line. Eager mode's
tg.detect_anomaly() checks every backward function and names the forward
operation (and line) whose derivative went wrong.

Run: .venv/bin/python examples/09_finding_the_first_nan.py
"""

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp


def model(w, x):
    h = tnp.tanh(x @ w)
    scale = tnp.log(tnp.sum(h, axis=1))          # log of a sum that can be negative
    return tnp.mean(tnp.exp(-scale) * tnp.sum(h * h, axis=1))


rng = np.random.default_rng(1)
w = rng.standard_normal((4, 3)).astype(np.float32)
x = rng.standard_normal((5, 4)).astype(np.float32)

print("## 1. The symptom: a NaN at the end, no hint where it came from")
print(f"model(w, x) = {tg.jit(model)(w, x)}")
print(f"its gradient in w has {np.isnan(tg.jit(tg.grad(model))(w, x)).sum()} NaNs out of {w.size}")

print("\n## 2. tg.debug_nans, traced with values (tg.grad outside jit)")
try:
    with tg.debug_nans():
        tg.grad(model)(w, x)
except FloatingPointError as error:
    print(f"FloatingPointError: {error}")

print("\n## 3. tg.debug_nans in compiled code (tg.jit): the same first NaN, found by the native program")
try:
    with tg.debug_nans():
        tg.jit(tg.grad(model))(w, x)
except FloatingPointError as error:
    print(f"FloatingPointError: {error}")


def safe_sqrt_sum(x):
    return tnp.sum(tnp.where(x > 0, tnp.sqrt(x), 0.0))


v = np.array([4.0, 0.0, 1.0])
print("\n## 4. A NaN that only the derivative makes: where(x > 0, sqrt(x), 0) at x = 0")
print(f"value {safe_sqrt_sum(v)} is finite, gradient {tg.grad(safe_sqrt_sum)(v)} is not")
try:
    with tg.debug_nans():
        tg.jit(tg.grad(safe_sqrt_sum))(v)
except FloatingPointError as error:
    print(f"FloatingPointError: {error}")

print("\n## 5. Eager mode: tg.detect_anomaly() names the forward operation behind a bad backward")
vt = tg.tensor(v, requires_grad=True)
safe_sqrt_sum(vt).backward()
print(f"without it: x.grad = {vt.grad.numpy()}, silently")
vt.grad = None
with tg.detect_anomaly():
    try:
        safe_sqrt_sum(vt).backward()
    except RuntimeError as error:
        print(f"with it, RuntimeError: {error}")


def fixed(x):
    return tnp.sum(tnp.where(x > 0, tnp.sqrt(tnp.where(x > 0, x, 1.0)), 0.0))


print("\n## 6. The fix: guard the input too, so the discarded branch stays finite")
with tg.debug_nans():
    print(f"gradient {tg.jit(tg.grad(fixed))(v)}: no NaN, debug_nans stays quiet")
