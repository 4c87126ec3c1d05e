"""Lesson 0: a function written with tracegrad.numpy, traced into the IR, and
its value and gradient compiled with jit, giving NumPy's answer. (The README shows this script and what it prints.)"""

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp


def loss(w, x, y):
    pred = tnp.tanh(x @ w)
    return tnp.mean((pred - y) ** 2)


w = np.full((3, 1), 0.5, np.float32)
x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
y = np.ones((4, 1), np.float32)

print(tg.make_ir(loss)(w, x, y))        # the traced program
step = tg.jit(tg.value_and_grad(loss))  # differentiated, optimised, compiled to native code
value, dw = step(w, x, y)
print(value, loss(w, x, y))             # the same loss as on NumPy arrays
print(dw.ravel())                       # d loss / d w, from the backward program
step(2 * w, x, y)                       # new values, same shapes and dtypes: no new trace
info = step.cache_info()
print(f"traces: {info.misses}, cache hits: {info.hits}")
