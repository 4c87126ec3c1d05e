"""The first call of the jitted MLP training step in this process, imports
excluded: ``python benchmarks/first_call.py CACHE_DIR``. With an empty
CACHE_DIR it compiles everything; with one that holds only the machine's
matmul library (``--library-only`` fills a directory with just that), it
measures what compiling one new program costs on a machine that has compiled
before."""

import os
import sys
import time

os.environ["TRACEGRAD_CACHE_DIR"] = sys.argv[1]

import tracegrad as tg  # noqa: E402
import tracegrad.numpy as tnp  # noqa: E402
from codegen import library  # noqa: E402
from tracegrad.bench import _mlp_inputs, _mlp_loss  # noqa: E402

if "--library-only" in sys.argv:
    library.load({"tg_gemm_float32"})
    sys.exit(0)

loss = _mlp_loss(tnp)


def step(w1, b1, w2, b2, w3, b3, x, y):
    value, grads = tg.value_and_grad(loss, argnums=tuple(range(6)))(w1, b1, w2, b2, w3, b3, x, y)
    return value, [p - 0.01 * g for p, g in zip((w1, b1, w2, b2, w3, b3), grads)]


args = _mlp_inputs()
start = time.perf_counter()
tg.jit(step)(*args)
print(f"first call: {(time.perf_counter() - start) * 1e3:.0f} ms")
