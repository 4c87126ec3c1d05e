"""Lesson 0: a function written with tracegrad.numpy, traced into the IR and
run under jit, giving NumPy's answer. (The README shows this script and what it prints.)"""

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
fast = tg.jit(loss)                     # traced once per signature, then cached
print(fast(w, x, y), loss(w, x, y))     # the same value as on NumPy arrays
fast(2 * w, x, y)                       # new values, same shapes and dtypes: no new trace
info = fast.cache_info()
print(f"traces: {info.misses}, cache hits: {info.hits}")
