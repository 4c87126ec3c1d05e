"""The main job, as far as tracegrad goes today.

A small classifier's loss is written once with tracegrad.numpy, traced into
the IR, printed, compiled to native code under ``jit``, and checked against
the same loss written in plain NumPy. The demo exits non-zero if the
two disagree."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp


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
        params[f"w{i}"] = (rng.normal(0.0, 1.0, (m, n)) * np.sqrt(2.0 / m)).astype(np.float32)
        params[f"b{i}"] = np.zeros(n, np.float32)
    return params


def mlp_loss(params, x, onehot):
    """Softmax cross-entropy of a two-layer ReLU network (a stable log-sum-exp)."""
    h = tnp.maximum(x @ params["w1"] + params["b1"], 0.0)
    logits = h @ params["w2"] + params["b2"]
    top = tnp.max(logits, axis=1, keepdims=True)
    log_z = tnp.log(tnp.sum(tnp.exp(logits - top), axis=1, keepdims=True)) + top
    return -tnp.mean(tnp.sum(onehot * (logits - log_z), axis=1))


def numpy_loss(params, x, onehot):
    """The same loss in plain NumPy, written independently, as the reference."""
    h = np.maximum(x @ params["w1"] + params["b1"], 0)
    logits = h @ params["w2"] + params["b2"]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -(onehot * log_probs).sum(axis=1).mean()


def _time(fn, repeat: int = 50) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> int:
    x, y = spirals(128)
    onehot = np.eye(2, dtype=np.float32)[y]
    params = init_params([2, 32, 2])

    print("tracegrad demo: a two-layer classifier on two spirals "
          f"({x.shape[0]} points), traced, printed and run\n")
    graph = tg.make_ir(mlp_loss)(params, x, onehot)
    print(f"1. The traced program ({len(graph.eqns)} equations; '# file:line' is the source line of each):\n")
    print(graph.format(source=True))

    loss = tg.jit(mlp_loss)
    ours = loss(params, x, onehot)
    reference = numpy_loss(params, x, onehot)
    diff = abs(float(ours) - float(reference))
    agree = np.allclose(ours, reference, rtol=1e-5, atol=1e-6)
    print("\n2. jit(mlp_loss), compiled to native code, against plain NumPy:")
    print(f"   tracegrad {float(ours):.7f}   numpy {float(reference):.7f}   |difference| {diff:.2e}   "
          f"dtype {ours.dtype}   {'AGREE' if agree else 'DISAGREE'}")

    t_jit = _time(lambda: loss(params, x, onehot))
    t_np = _time(lambda: numpy_loss(params, x, onehot))
    info = loss.cache_info()
    print(f"\n3. Per call: compiled {t_jit * 1e6:.0f} us, NumPy {t_np * 1e6:.0f} us "
          f"(one native call running fused kernels, against one NumPy call per operation).")
    print(f"   cache: {info.misses} trace, {info.hits} hits, {info.compile_seconds * 1e3:.1f} ms tracing and compiling")

    loss(params, x[:64], onehot[:64])
    print(f"\n4. A new batch size traces again, and says why:\n   {loss.cache_info().miss_reasons[-1]}")

    grads_agree = show_gradients(params, x, onehot)
    train(params, x, y, onehot)
    return 0 if agree and grads_agree else 1


def show_gradients(params, x, onehot) -> bool:
    """The backward program, and its gradients checked two independent ways."""
    step = tg.jit(tg.value_and_grad(mlp_loss))
    joint = step.lower(params, x, onehot).compile().graph
    forward = len(tg.make_ir(mlp_loss)(params, x, onehot).eqns)
    print(f"\n5. jit(value_and_grad(mlp_loss)): {len(joint.eqns)} equations, {forward} forward and "
          f"{len(joint.eqns) - forward} backward; the last ones compute the gradient of w1:\n")
    print("\n".join(joint.format(source=True).splitlines()[-6:]))
    passes = step.lower(params, x, onehot).compile().passes
    kinds = Counter(e.params.get("kind", e.prim.name) for e in passes.fused.eqns)
    print(f"\n   The passes fold, simplify, deduplicate and fuse it into {len(passes.fused.eqns)} kernels ("
          + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + "); the first:\n")
    print("\n".join(passes.fused.format().splitlines()[1:8]))
    _, compiled = step(params, x, onehot)
    _, eager = tg.value_and_grad(mlp_loss)(params, x, onehot)  # traced with values, no jit
    gap = max(float(np.max(np.abs(compiled[k] - eager[k]))) for k in params)
    # Central differences in float64 on one weight, as an independent check.
    w64 = {k: v.astype(np.float64) for k, v in params.items()}
    eps, (i, j) = 1e-6, (0, 3)
    bump = lambda d: numpy_loss({**w64, "w1": w64["w1"] + d}, x.astype(np.float64), onehot.astype(np.float64))
    delta = np.zeros_like(w64["w1"])
    delta[i, j] = eps
    numeric = (bump(delta) - bump(-delta)) / (2 * eps)
    ok = gap < 1e-6 and abs(numeric - compiled["w1"][i, j]) < 1e-4
    print(f"\n   jit against no-jit: max |difference| {gap:.1e}; d loss / d w1[{i},{j}]: "
          f"{compiled['w1'][i, j]:.6f} analytic, {numeric:.6f} by central differences   "
          f"{'AGREE' if ok else 'DISAGREE'}")
    return ok


def train(params, x, y, onehot, steps: int = 300, lr: float = 0.5) -> None:
    """Plain gradient descent with the compiled step."""
    step = tg.jit(tg.value_and_grad(mlp_loss))
    print(f"\n6. {steps} steps of gradient descent (learning rate {lr}) with that program:")
    start = time.perf_counter()
    for k in range(1, steps + 1):
        value, grads = step(params, x, onehot)
        params = {name: p - lr * grads[name] for name, p in params.items()}
        if k % 100 == 0 or k == 1:
            h = np.maximum(x @ params["w1"] + params["b1"], 0)
            accuracy = float(np.mean(np.argmax(h @ params["w2"] + params["b2"], axis=1) == y))
            print(f"   step {k:4d}   loss {float(value):.4f}   accuracy {accuracy:.2f}")
    print(f"   {steps / (time.perf_counter() - start):.0f} steps/s, compiled")
