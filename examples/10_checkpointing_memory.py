"""Lesson 10: checkpointing (rematerialisation), with its memory saving measured.

Reverse mode keeps the forward pass's intermediates until the backward pass
reads them, so peak memory grows with depth. A checkpointed block keeps only
its inputs and recomputes its intermediates when the backward pass reaches
it: less memory for one more forward computation of the block. We measure
both sides: eager mode's peak allocation with tracemalloc (NumPy reports its
buffers to it), with and without tg.eager.checkpoint; and the compiled
program's memory plan (memory_stats()) with and without tg.checkpoint under jit.

Run: .venv/bin/python examples/10_checkpointing_memory.py
"""

import os
import time
import tracemalloc

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # steadier eager timings on a busy machine (before NumPy loads)

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp

N, D, DEPTH = 128, 256, 8
rng = np.random.default_rng(0)
weights = [(rng.standard_normal((D, D)) / np.sqrt(D)).astype(np.float32) for _ in range(DEPTH)]
x = rng.standard_normal((N, D)).astype(np.float32)
print(f"a stack of {DEPTH} blocks on a {N}x{D} float32 batch: one activation is {N * D * 4 / 1e6:.2f} MB")


def block(h, w):   # four intermediates of the batch's size, each needed by the backward pass
    a = h @ w
    b = tnp.tanh(a)
    c = b * 1.5 + 0.1
    return tnp.tanh(c)


def largest_difference(grads_a, grads_b):
    """The largest difference between two lists of gradients, relative to the largest gradient."""
    scale = max(np.max(np.abs(a)) for a in grads_a)
    return max(np.max(np.abs(a - b)) for a, b in zip(grads_a, grads_b)) / scale


print("\n## 1. Eager: peak memory of forward + backward, measured with tracemalloc")


def eager_run(use_checkpoint):
    """forward + backward through the stack: (peak bytes allocated, seconds, gradients)."""
    ws = [tg.tensor(w, requires_grad=True) for w in weights]
    h = tg.tensor(x)
    for w in ws:
        h = tg.eager.checkpoint(block, h, w) if use_checkpoint else block(h, w)
    tnp.sum(h * h).backward()
    return [w.grad.numpy() for w in ws]


def peak_and_time(use_checkpoint):
    tracemalloc.start()
    grads = eager_run(use_checkpoint)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    seconds = []
    for _ in range(3):                       # timed apart: tracemalloc slows every allocation down
        start = time.perf_counter()
        eager_run(use_checkpoint)
        seconds.append(time.perf_counter() - start)
    return peak, min(seconds), grads


eager_run(False)  # warm up: the first run also fills caches
(plain_peak, plain_s, plain_g), (ckpt_peak, ckpt_s, ckpt_g) = peak_and_time(False), peak_and_time(True)
print(f"without checkpoint: peak {plain_peak / 1e6:6.2f} MB, {plain_s * 1e3:6.1f} ms")
print(f"with checkpoint:    peak {ckpt_peak / 1e6:6.2f} MB, {ckpt_s * 1e3:6.1f} ms")
print(f"saving: {(plain_peak - ckpt_peak) / 1e6:.2f} MB, {(1 - ckpt_peak / plain_peak) * 100:.0f}% of peak memory "
      f"(both include the {DEPTH * D * D * 4 / 1e6:.2f} MB of weight gradients), for {ckpt_s / plain_s:.2f}x the time")
print(f"largest gradient difference, relative to the largest gradient: {largest_difference(plain_g, ckpt_g):.0e}")

print("\n## 2. Compiled: the native program's memory plan, with and without tg.checkpoint")


def make_loss(step):
    def loss(ws, x):
        h = x
        for w in ws:
            h = step(h, w)
        return tnp.sum(h * h)
    return loss


results = {}
for name, step in (("without checkpoint", block), ("with checkpoint", tg.checkpoint(block))):
    compiled = tg.jit(tg.grad(make_loss(step))).lower(weights, x).compile()
    stats = compiled.memory_stats()
    results[name] = (stats, compiled(weights, x))
    print(f"{name + ':':<20} peak {stats.peak_bytes / 1e6:5.2f} MB = arena of intermediates "
          f"{stats.arena_bytes / 1e6:5.2f} MB + outputs {stats.output_bytes / 1e6:4.2f} MB")
(plain, g1), (ckpt, g2) = results.values()
print(f"saving: {(1 - ckpt.arena_bytes / plain.arena_bytes) * 100:.0f}% of the intermediates' arena")
print(f"largest gradient difference, relative to the largest gradient: {largest_difference(g1, g2):.0e} "
      f"(float32 rounding: the compiled programs sum in different orders)")

print("\n## 3. Where the recomputation shows: the backward program runs the block's forward equations again")
for name, step in (("without checkpoint", block), ("with checkpoint", tg.checkpoint(block))):
    text = tg.jit(tg.grad(make_loss(step))).lower(weights[:1], x).as_text("traced")
    print(f"{name + ':':<20} {text.count(' tanh ')} tanh equations in the gradient program of one block")
print("the two extra are the block's forward tanh, run again in the backward pass instead of being kept.")
