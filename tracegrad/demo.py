"""The main job: one model, trained define-by-run and trace-and-compiled.

A small ReLU network learns to tell two interleaved spirals apart (the data
is generated here; nothing is downloaded). The loss is written once with
``tracegrad.numpy`` and ``tg.nn``. It is trained twice from the same
initial weights on the same mini-batches: in eager mode, where every
operation runs at once and is recorded on a tape that ``backward()`` replays
(as in PyTorch), and with ``jit(value_and_grad(loss))``, where the loss is
traced once into a graph, differentiated, optimised and compiled to native
code (as in JAX). The demo shows the training step's program before and
after the passes, both runs' progress, how far apart they end, and the
speed-up; it exits non-zero if the two runs disagree.
"""

from __future__ import annotations

import time

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp

EPOCHS, BATCH, LR = 30, 64, 0.3
SIZES = [2, 64, 64, 2]
TOLERANCE = 1e-3  # float32 runs whose kernels round differently drift apart by much less over 30 epochs


def spirals(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane: points (n, 2) float32 and labels (n,)."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, n_per_class)) * 3 * np.pi
    arms = [np.stack([t * np.cos(t + k * np.pi), t * np.sin(t + k * np.pi)], axis=1) for k in (0, 1)]
    x = np.concatenate(arms) / (3 * np.pi) + rng.normal(0.0, 0.02, (2 * n_per_class, 2))
    y = np.repeat(np.arange(2), n_per_class)
    return x.astype(np.float32), y


def init_params(sizes: list[int], seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = {}
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"w{i}"] = tg.nn.he_normal(rng, (m, n))
        params[f"b{i}"] = np.zeros(n, np.float32)
    return params


def logits(params, x):
    h = x
    for i in range(1, len(SIZES) - 1):
        h = tg.nn.relu(h @ params[f"w{i}"] + params[f"b{i}"])
    n = len(SIZES) - 1
    return h @ params[f"w{n}"] + params[f"b{n}"]


def loss(params, x, y):
    """Mean softmax cross-entropy: the same code runs on eager Tensors and under jit."""
    return tg.nn.cross_entropy(logits(params, x), y)


def batches(n: int, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng(100 + epoch).permutation(n)
    return [order[i:i + BATCH] for i in range(0, n, BATCH)]


def accuracy(params, x, y) -> float:
    return float(np.mean(np.argmax(logits(params, x), axis=1) == y))


def train_eager(params, x, y) -> tuple[dict, list[float], float]:
    """PyTorch's loop: forward on Tensors, backward(), update the leaves under no_grad."""
    weights = {k: tg.tensor(v, requires_grad=True) for k, v in params.items()}
    losses, seconds = [], 0.0
    for epoch in range(EPOCHS):
        start = time.perf_counter()
        total = 0.0
        for idx in batches(len(x), epoch):
            value = loss(weights, x[idx], y[idx])
            value.backward()
            with tg.no_grad():
                for w in weights.values():
                    w -= LR * w.grad
                    w.grad = None
            total += value.item()
        seconds += time.perf_counter() - start
        losses.append(total / len(batches(len(x), epoch)))
        _progress("eager", epoch, losses[-1], {k: w.data for k, w in weights.items()}, x, y, seconds)
    return {k: w.detach().numpy() for k, w in weights.items()}, losses, seconds


def train_jit(params, x, y, step) -> tuple[dict, list[float], float]:
    """JAX's loop: a compiled function returns the loss and the gradients; the update is plain NumPy."""
    losses, seconds = [], 0.0
    for epoch in range(EPOCHS):
        start = time.perf_counter()
        total = 0.0
        for idx in batches(len(x), epoch):
            value, grads = step(params, x[idx], y[idx])
            params = {k: p - LR * grads[k] for k, p in params.items()}
            total += float(value)
        seconds += time.perf_counter() - start
        losses.append(total / len(batches(len(x), epoch)))
        _progress("jit  ", epoch, losses[-1], params, x, y, seconds)
    return params, losses, seconds


def _progress(mode: str, epoch: int, value: float, params, x, y, seconds: float) -> None:
    if epoch % 5 == 4 or epoch == 0:
        steps = (epoch + 1) * -(-len(x) // BATCH)
        print(f"   {mode} epoch {epoch + 1:3d}   loss {value:.4f}   accuracy {accuracy(params, x, y):.3f}   "
              f"{steps / seconds:8.0f} steps/s")


def _abridged(text: str, head: int = 8) -> str:
    lines = text.splitlines()
    shown = lines[:head + 1]
    if len(lines) > head + 2:
        shown.append(f"        ... {len(lines) - head - 2} more lines ...")
    shown.append(lines[-1])
    return "\n".join(shown)


def show_program(step, params, x, y) -> None:
    lowered = step.lower(params, x, y)
    passes = lowered.compile().passes
    traced, optimized, fused = passes.traced, passes.optimized, passes.fused
    print(f"1. The training step, jit(value_and_grad(loss)), traced once: {len(traced.eqns)} equations "
          f"(the forward pass, then the backward pass the autodiff rules wrote):\n")
    print(_abridged(lowered.as_text("traced")))
    fired = sum(sum(r.fired.values()) for r in passes.records if r.name != "fusion")
    print(f"\n   After folding, simplification, CSE and DCE ({fired} rewrites): {len(optimized.eqns)} equations; "
          f"after fusion: {len(fused.eqns)} kernels, each one native loop nest:\n")
    print(_abridged(fused.format(), head=10))


def main() -> int:
    x, y = spirals(256)
    params = init_params(SIZES)
    print(f"tracegrad demo: a {'-'.join(map(str, SIZES))} ReLU network learns two spirals ({len(x)} points), "
          f"{EPOCHS} epochs of SGD on batches of {BATCH}, twice from the same start\n")
    step = tg.jit(tg.value_and_grad(loss))
    start = time.perf_counter()
    step(params, x[:BATCH], y[:BATCH])  # traced and compiled here (or loaded from the disk cache), once
    compile_seconds = time.perf_counter() - start
    show_program(step, params, x[:BATCH], y[:BATCH])

    print("\n2. Define-by-run: each operation runs at once and is taped; backward() replays the tape.")
    eager_params, eager_losses, eager_seconds = train_eager(params, x, y)
    print("\n3. Trace and compile: the same loss, jit(value_and_grad(loss)), native code.")
    jit_params, jit_losses, jit_seconds = train_jit(params, x, y, step)

    loss_gap = max(abs(a - b) for a, b in zip(eager_losses, jit_losses))
    param_gap = max(float(np.max(np.abs(eager_params[k] - jit_params[k]))) for k in params)
    agree = loss_gap < TOLERANCE and param_gap < TOLERANCE
    print(f"\n4. The two runs: largest difference of the epoch losses {loss_gap:.1e}, of the final parameters "
          f"{param_gap:.1e}   {'AGREE' if agree else 'DISAGREE'}")
    print(f"   final accuracy: eager {accuracy(eager_params, x, y):.3f}, jit {accuracy(jit_params, x, y):.3f}")
    print(f"\n5. Training time: eager {eager_seconds:.2f} s, jit {jit_seconds:.2f} s (+ {compile_seconds:.2f} s to "
          f"trace and compile, once): {eager_seconds / jit_seconds:.1f}x faster compiled")
    return 0 if agree else 1
