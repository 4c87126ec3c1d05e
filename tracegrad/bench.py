"""``python -m tracegrad bench``: the benchmark workloads, timed for every
implementation that is installed, after checking that they agree.

Columns: tracegrad under ``jit`` (today on the reference interpreter), plain
NumPy, and JAX's ``jit`` and PyTorch eager when they are installed. Every
implementation gets the same inputs; a disagreement stops the run."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp


@dataclass
class Workload:
    name: str
    description: str
    inputs: Callable[[], list[np.ndarray]]
    impls: dict[str, Callable[[list[np.ndarray]], Callable[[], object]]] = field(default_factory=dict)
    rtol: float = 1e-4


def _optional(module: str):
    try:
        return __import__(module)
    except Exception:
        return None


# ------------------------------------------------------------------ workloads
def _mlp_inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    sizes = [784, 512, 512, 10]
    ws = [(rng.standard_normal((m, n)) * np.sqrt(2.0 / m)).astype(np.float32) for m, n in zip(sizes, sizes[1:])]
    bs = [np.zeros(n, np.float32) for n in sizes[1:]]
    x = rng.standard_normal((128, 784)).astype(np.float32)
    onehot = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)]
    return [ws[0], bs[0], ws[1], bs[1], ws[2], bs[2], x, onehot]


def _mlp_loss(xp):
    """The MLP loss written once for a NumPy-like namespace ``xp`` (tracegrad.numpy, NumPy, jax.numpy)."""

    def loss(w1, b1, w2, b2, w3, b3, x, onehot):
        h = xp.maximum(x @ w1 + b1, 0.0)
        h = xp.maximum(h @ w2 + b2, 0.0)
        logits = h @ w3 + b3
        top = xp.max(logits, axis=1, keepdims=True)
        log_z = xp.log(xp.sum(xp.exp(logits - top), axis=1, keepdims=True)) + top
        return -xp.mean(xp.sum(onehot * (logits - log_z), axis=1))

    return loss


def _mlp_loss_torch(torch):
    def loss(w1, b1, w2, b2, w3, b3, x, onehot):
        h = torch.relu(x @ w1 + b1)
        h = torch.relu(h @ w2 + b2)
        logits = h @ w3 + b3
        return -(onehot * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()

    return loss


def _mlp_value_and_grad_numpy(w1, b1, w2, b2, w3, b3, x, onehot):
    """The loss and its gradient with respect to the six parameters, by hand."""
    a1 = x @ w1 + b1
    h1 = np.maximum(a1, 0)
    a2 = h1 @ w2 + b2
    h2 = np.maximum(a2, 0)
    logits = h2 @ w3 + b3
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    z = exp.sum(axis=1, keepdims=True)
    loss = -(onehot * (shifted - np.log(z))).sum(axis=1).mean()
    d_logits = (exp / z * onehot.sum(axis=1, keepdims=True) - onehot) / x.shape[0]
    d_a2 = (d_logits @ w3.T) * (a2 > 0)
    d_a1 = (d_a2 @ w2.T) * (a1 > 0)
    return loss, (x.T @ d_a1, d_a1.sum(0), h1.T @ d_a2, d_a2.sum(0), h2.T @ d_logits, d_logits.sum(0))


def _call(f, args):
    return lambda: f(*args)


def _forward_impls(build: Callable, build_torch: Callable | None = None) -> dict:
    """tracegrad, NumPy, and JAX / PyTorch when importable, for a function written against ``xp``."""
    impls = {
        "tracegrad jit": lambda args: _call(tg.jit(build(tnp)), args),
        "numpy": lambda args: _call(build(np), args),
    }
    jax = _optional("jax")
    if jax is not None:
        import jax.numpy as jnp

        def jax_impl(args):
            f = jax.jit(build(jnp))
            dev = [jax.device_put(a) for a in args]
            return lambda: jax.block_until_ready(f(*dev))

        impls["jax jit"] = jax_impl
    torch = _optional("torch")
    if torch is not None:
        impls["pytorch eager"] = lambda args: _call((build_torch or build)(torch), [torch.from_numpy(a) for a in args])
    return impls


def _grad_impls() -> dict:
    """value_and_grad of the MLP loss with respect to its six parameters."""
    params = tuple(range(6))
    impls = {
        "tracegrad jit": lambda args: _call(tg.jit(tg.value_and_grad(_mlp_loss(tnp), argnums=params)), args),
        "tracegrad, no jit": lambda args: _call(tg.value_and_grad(_mlp_loss(tnp), argnums=params), args),
        "numpy": lambda args: _call(_mlp_value_and_grad_numpy, args),
    }
    jax = _optional("jax")
    if jax is not None:
        import jax.numpy as jnp

        def jax_impl(args):
            f = jax.jit(jax.value_and_grad(_mlp_loss(jnp), argnums=params))
            dev = [jax.device_put(a) for a in args]
            return lambda: jax.block_until_ready(f(*dev))

        impls["jax jit"] = jax_impl
    torch = _optional("torch")
    if torch is not None:
        def torch_impl(args):
            loss = _mlp_loss_torch(torch)
            ts = [torch.from_numpy(a) for a in args]

            def step():
                ps = [t.detach().requires_grad_() for t in ts[:6]]
                value = loss(*ps, *ts[6:])
                return value, torch.autograd.grad(value, ps)

            return step

        impls["pytorch eager"] = torch_impl
    return impls


def _elementwise(xp):
    def f(x):
        return xp.sum(xp.tanh(x) * (1.0 / (1.0 + xp.exp(-x))) + 0.5 * x ** 2)

    return f


def _dispatch(xp):
    return lambda x: x * 2.0 + 1.0


def workloads(quick: bool) -> list[Workload]:
    n = 10**5 if quick else 10**6
    rng = np.random.default_rng(1)
    return [
        Workload("mlp loss", "softmax cross-entropy of a 784-512-512-10 ReLU MLP, batch 128, float32, forward",
                 _mlp_inputs, _forward_impls(_mlp_loss, _mlp_loss_torch)),
        Workload("mlp value_and_grad", "the same loss and its gradient with respect to the six parameters",
                 _mlp_inputs, _grad_impls()),
        Workload("elementwise", f"sum(tanh(x)*sigmoid(x) + 0.5*x**2), float32, N={n:.0e}",
                 lambda: [rng.standard_normal(n).astype(np.float32)], _forward_impls(_elementwise), rtol=1e-3),
        Workload("dispatch", "x*2+1 on 8 float32 values: the cost of one call",
                 lambda: [np.arange(8, dtype=np.float32)], _forward_impls(_dispatch)),
    ]


# ------------------------------------------------------------------- timing
def _to_numpy(value) -> np.ndarray:
    """Any result (an array, a framework tensor, a tuple of them) as one flat float64 vector."""
    if isinstance(value, (tuple, list)):
        return np.concatenate([_to_numpy(v) for v in value]) if value else np.zeros(0)
    if hasattr(value, "detach"):
        value = value.detach().numpy()
    return np.asarray(value, dtype=np.float64).ravel()


def time_call(fn: Callable[[], object], quick: bool) -> list[float]:
    """Per-call seconds over repeats; each repeat runs enough calls to last ~20 ms."""
    fn()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < 0.02:
        fn()
        calls += 1
    number = max(calls, 1)
    samples = []
    for _ in range(5 if quick else 15):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return samples


def run(quick: bool = False) -> list[dict]:
    rows = []
    for w in workloads(quick):
        args = w.inputs()
        calls = {name: make(args) for name, make in w.impls.items()}
        reference = _to_numpy(calls["numpy"]())
        for name, call in calls.items():
            got = _to_numpy(call())
            if not np.allclose(got, reference, rtol=w.rtol, atol=w.rtol):
                raise AssertionError(f"{w.name}: {name} gives {got}, NumPy gives {reference}")
        for name, call in calls.items():
            samples = time_call(call, quick)
            rows.append(dict(workload=w.name, description=w.description, impl=name, median=float(np.median(samples)),
                             min=float(np.min(samples)), max=float(np.max(samples))))
    return rows


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def table(rows: list[dict]) -> str:
    """A Markdown table: median (min-max) per call and the ratio to NumPy."""
    lines = ["| workload | implementation | median per call (min-max) | time / NumPy's |", "|---|---|---|---|"]
    numpy_time = {r["workload"]: r["median"] for r in rows if r["impl"] == "numpy"}
    for r in rows:
        ratio = r["median"] / numpy_time[r["workload"]]
        lines.append(f"| {r['workload']} | {r['impl']} | {_fmt(r['median'])} ({_fmt(r['min'])}-{_fmt(r['max'])}) "
                     f"| {ratio:.2f} |")
    return "\n".join(lines)


def main(quick: bool = False, json_out: str | None = None, threads: int = 1) -> int:
    torch = _optional("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    versions = [f"NumPy {np.__version__}"] + [f"{m} {__import__(m).__version__}" for m in ("jax", "torch")
                                              if _optional(m) is not None]
    print(f"tracegrad {tg.__version__} bench on {platform.machine()} with {os.cpu_count()} cores, {threads} "
          f"thread{'s' if threads > 1 else ''}, {', '.join(versions)}{' (quick)' if quick else ''}; results checked "
          f"against NumPy first\n")
    rows = run(quick)
    for w in workloads(quick):
        print(f"- {w.name}: {w.description}")
    print()
    print(table(rows))
    if json_out:
        with open(json_out, "w") as f:
            json.dump(rows, f, indent=2)
    return 0
