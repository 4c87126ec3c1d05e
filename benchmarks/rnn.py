"""value_and_grad of a tanh RNN written with ``lax.scan``: tracegrad's jit (the scan
compiled to a native loop) against JAX's jit of ``jax.lax.scan`` (issue 7's benchmark).

    PYTHONPATH=. python3 benchmarks/rnn.py [--steps 50] [--batch 32] [--rounds 200] [--pin CPU]

The RNN: ``h = tanh(h @ W + x_t @ U + b)``, hidden 128, input 64, float32; the
gradient is taken with respect to W, U and b, for two losses: the sum of the
final h, and the mean of the squares of every h (then every step's h feeds the
loss, so the backward loop adds a cotangent per step). Both libraries see the
same arrays, placed on the device (JAX) once, outside the timed call; their
results are checked against each other first. Calls are timed in interleaved
rounds (one call of each per round), so load from other processes falls on
both alike; the table gives the median time per call. Both run with their
default threads (``--pin`` puts the process on one CPU: then both run on one).
"""

from __future__ import annotations

import argparse
import os
import time


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--pin", type=int, default=None, help="run on this CPU only")
    return parser.parse_args()


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.pin is not None:
    os.sched_setaffinity(0, {ARGS.pin})  # before JAX starts its thread pool

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp

HIDDEN, INPUT = 128, 64


def rnn_loss(xp, scan, final_only: bool):
    """The loss written once for a NumPy-like namespace ``xp`` and its ``scan``."""

    def loss(w, u, b, h0, xs):
        def step(h, x):
            h = xp.tanh(h @ w + x @ u + b)
            return h, h

        h, hs = scan(step, h0, xs)
        return xp.sum(h) if final_only else xp.mean(hs * hs)

    return loss


def arrays(steps: int, batch: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = [(HIDDEN, HIDDEN), (INPUT, HIDDEN), (HIDDEN,), (batch, HIDDEN), (steps, batch, INPUT)]
    scales = [HIDDEN ** -0.5, INPUT ** -0.5, 0.1, 1.0, 1.0]
    return [(rng.standard_normal(s) * k).astype(np.float32) for s, k in zip(shapes, scales)]


def implementations(final_only: bool, args: list[np.ndarray]) -> dict:
    """name -> a call with no arguments returning (loss, grads) as NumPy arrays."""
    f = tg.jit(tg.value_and_grad(rnn_loss(tnp, tg.lax.scan, final_only), argnums=(0, 1, 2)))
    impls = {"tracegrad jit": lambda: f(*args)}
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return impls
    g = jax.jit(jax.value_and_grad(rnn_loss(jnp, jax.lax.scan, final_only), argnums=(0, 1, 2)))
    dev = [jax.device_put(a) for a in args]
    impls["jax jit"] = lambda: jax.block_until_ready(g(*dev))
    return impls


def check(impls: dict) -> None:
    results = {name: call() for name, call in impls.items()}
    (ref_name, (ref_loss, ref_grads)), *others = results.items()
    for name, (loss, grads) in others:
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-4, err_msg=f"{name} against {ref_name}")
        for a, b in zip(grads, ref_grads):
            np.testing.assert_allclose(np.asarray(a), b, rtol=2e-3, atol=2e-4 * np.abs(b).max(),
                                       err_msg=f"{name} against {ref_name}")


def timed(impls: dict, rounds: int) -> dict[str, float]:
    """Median seconds per call, calls interleaved round by round."""
    times = {name: [] for name in impls}
    for _ in range(rounds):
        for name, call in impls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def main() -> None:
    args = arrays(ARGS.steps, ARGS.batch)
    print(f"tanh RNN value_and_grad: hidden {HIDDEN}, input {INPUT}, {ARGS.steps} steps, batch {ARGS.batch}, "
          f"float32, {len(os.sched_getaffinity(0))} CPU(s); median of {ARGS.rounds} interleaved calls")
    for final_only, label in ((True, "loss = sum(final h)"), (False, "loss = mean(hs * hs)")):
        impls = implementations(final_only, args)
        check(impls)
        for call in impls.values():  # warm-up
            call()
        median = timed(impls, ARGS.rounds)
        ours = median["tracegrad jit"]
        cells = "  ".join(f"{name} {t * 1e6:8.1f} us ({t / ours:4.2f}x)" for name, t in median.items())
        print(f"{label:<22} {cells}")


if __name__ == "__main__":
    main()
