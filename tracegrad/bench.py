"""``python -m tracegrad bench``: the benchmark workloads, timed for every
implementation that is installed, after checking that they agree.

Columns: tracegrad under ``jit`` (native code through LLVM), the same model
code run define-by-run on eager Tensors (``tracegrad eager``: gradients from
the tape), the same program on tracegrad's reference interpreter
(``jit(..., backend="interpret")``), plain NumPy (gradients written by hand), and JAX's ``jit`` and PyTorch eager
(autograd for the gradients) when they are installed. Every implementation
gets the same inputs, and its result is checked against NumPy's before it is
timed; a disagreement stops the run.

The ``compile`` rows time the first call of the jitted MLP training step in a
fresh process (imports excluded): tracegrad with an empty on-disk cache
(``TRACEGRAD_CACHE_DIR``), tracegrad again on the cache the first process
filled, and JAX's jit with its persistent cache off."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp

LR = 0.01  # the SGD step of the ``mlp step`` workload


@dataclass
class Workload:
    """A function timed per call: ``impls`` maps an implementation's name to a
    maker that takes the inputs and returns a zero-argument call."""
    name: str
    description: str
    inputs: Callable[[], list[np.ndarray]]
    impls: dict[str, Callable[[list[np.ndarray]], Callable[[], object]]] = field(default_factory=dict)
    rtol: float = 1e-4  # on the largest difference, relative to the largest magnitude of each output
    check: Callable[[list[np.ndarray], object], list[np.ndarray]] | None = None  # outputs -> what is compared


@dataclass
class FirstCall:
    """The first call of the jitted MLP step, timed in fresh processes."""
    name: str
    description: str
    impls: list[str]
    cache: str  # "cold": an empty TRACEGRAD_CACHE_DIR; "library": one holding the matmul library only;
    # "disk": the directory a cold run filled


_MODULES: dict[str, object] = {}


def _optional(module: str):
    if module not in _MODULES:
        try:
            _MODULES[module] = __import__(module)
        except Exception:
            _MODULES[module] = None
    return _MODULES[module]


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


def _mlp_step(loss_vg: Callable) -> Callable:
    """One SGD step from a value_and_grad of the loss with respect to the six parameters:
    the loss and the updated parameters."""

    def step(w1, b1, w2, b2, w3, b3, x, onehot):
        params = (w1, b1, w2, b2, w3, b3)
        loss, grads = loss_vg(*params, x, onehot)
        return loss, tuple(p - LR * g for p, g in zip(params, grads))

    return step


def _mlp_step_numpy(*args):
    loss, grads = _mlp_value_and_grad_numpy(*args)
    return loss, tuple(p - np.float32(LR) * g for p, g in zip(args[:6], grads))


def _step_check(args: list[np.ndarray], out) -> list[np.ndarray]:
    """The loss and each parameter's change: new parameters differ from the old by only
    0.01 * gradient, so comparing the parameters themselves would hide a wrong gradient."""
    loss, params = out
    return [_flat(loss)] + [_flat(new) - old.astype(np.float64).ravel() for new, old in zip(params, args)]


def _mlp_step_eager(loss: Callable, autograd_grad: Callable, no_grad: Callable) -> Callable:
    """One SGD step define-by-run, written once for PyTorch and tracegrad's eager mode
    (``autograd_grad``: torch.autograd.grad or tg.eager.grad)."""

    def step(*ts):
        ps = [t.detach().requires_grad_() for t in ts[:6]]
        value = loss(*ps, *ts[6:])
        grads = autograd_grad(value, ps)
        with no_grad():
            return value.detach(), tuple(p - LR * g for p, g in zip(ps, grads))

    return step


def _mlp_step_torch(torch):
    return _mlp_step_eager(_mlp_loss_torch(torch), torch.autograd.grad, torch.no_grad)


def _elementwise(xp):
    def f(x):
        return xp.sum(xp.tanh(x) * (1.0 / (1.0 + xp.exp(-x))) + 0.5 * x ** 2)

    return f


def _elementwise_value_and_grad_numpy(x):
    t = np.tanh(x)
    s = 1.0 / (1.0 + np.exp(-x))
    return np.sum(t * s + 0.5 * x * x), (1.0 - t * t) * s + t * s * (1.0 - s) + x


def _xent(xp):
    """Mean softmax cross-entropy of logits against one-hot labels, for a NumPy-like ``xp``."""

    def loss(logits, onehot):
        top = xp.max(logits, axis=1, keepdims=True)
        log_z = xp.log(xp.sum(xp.exp(logits - top), axis=1, keepdims=True)) + top
        return -xp.mean(xp.sum(onehot * (logits - log_z), axis=1))

    return loss


def _xent_torch(torch):
    return lambda logits, onehot: -(onehot * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def _xent_value_and_grad_numpy(logits, onehot):
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    z = exp.sum(axis=1, keepdims=True)
    loss = -(onehot * (shifted - np.log(z))).sum(axis=1).mean()
    return loss, (exp / z * onehot.sum(axis=1, keepdims=True) - onehot) / logits.shape[0]


def _xent_inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal((4096, 1000)) * 3).astype(np.float32)
    onehot = np.eye(1000, dtype=np.float32)[rng.integers(0, 1000, 4096)]
    return [logits, onehot]


RNN = dict(batch=32, hidden=128, inputs=64, steps=50)


def _rnn_inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    h, i = RNN["hidden"], RNN["inputs"]
    return [(rng.standard_normal((h, h)) / np.sqrt(h)).astype(np.float32),
            (rng.standard_normal((i, h)) / np.sqrt(i)).astype(np.float32),
            np.zeros(h, np.float32), np.zeros((RNN["batch"], h), np.float32),
            rng.standard_normal((RNN["steps"], RNN["batch"], i)).astype(np.float32)]


def _rnn_scan(xp, scan):
    """The tanh RNN as traced programs write it: one ``scan`` over the steps;
    the loss is the mean square of every hidden state."""

    def loss(w, u, b, h0, xs):
        def step(h, x):
            h = xp.tanh(h @ w + x @ u + b)
            return h, h

        _, hs = scan(step, h0, xs)
        return xp.mean(hs * hs)

    return loss


def _rnn_loop(xp):
    """The same RNN as define-by-run code writes it: a Python loop."""

    def loss(w, u, b, h0, xs):
        h, total = h0, 0.0
        for t in range(xs.shape[0]):
            h = xp.tanh(h @ w + xs[t] @ u + b)
            total = total + xp.sum(h * h)
        return total / (xs.shape[0] * h.shape[0] * h.shape[1])

    return loss


def _rnn_value_and_grad_numpy(w, u, b, h0, xs):
    """Backpropagation through time, by hand."""
    hs, h = [], h0
    for x in xs:
        h = np.tanh(h @ w + x @ u + b)
        hs.append(h)
    n = len(hs) * h.size
    gw, gu, gb, gh = np.zeros_like(w), np.zeros_like(u), np.zeros_like(b), np.zeros_like(h0)
    for t in range(len(hs) - 1, -1, -1):
        gz = (gh + (2 / n) * hs[t]) * (1 - hs[t] * hs[t])
        gw += (hs[t - 1] if t else h0).T @ gz
        gu += xs[t].T @ gz
        gb += gz.sum(axis=0)
        gh = gz @ w.T
    return sum(float(np.sum(h * h)) for h in hs) / n, (gw, gu, gb)


def _rnn_impls() -> dict:
    params = (0, 1, 2)
    return _impls(lambda: tg.value_and_grad(_rnn_scan(tnp, tg.lax.scan), argnums=params), _rnn_value_and_grad_numpy,
                  lambda jax, jnp: jax.value_and_grad(_rnn_scan(jnp, jax.lax.scan), argnums=params),
                  lambda torch: _eager_value_and_grad(_rnn_loop(torch), params, torch.autograd.grad),
                  lambda: _eager_value_and_grad(_rnn_loop(tnp), params, tg.eager.grad))


def _dispatch(xp):
    return lambda x: x * 2.0 + 1.0


def _dispatch3(xp):
    return lambda x, y, z: x * y + z


def _tiny_chain(xp):
    """Ten steps of three operations on tiny arrays: the cost is the per-operation overhead."""

    def f(x):
        y = x
        for _ in range(10):
            y = xp.tanh(y) * x + 0.5
        return xp.sum(y)

    return f


def _tiny_chain_value_and_grad_numpy(x):
    ys, y = [], x
    for _ in range(10):
        ys.append(y)
        y = np.tanh(y) * x + np.float32(0.5)
    value = np.sum(y)
    g_y, g_x = np.ones_like(x), np.zeros_like(x)
    for prev in reversed(ys):  # y_{k+1} = tanh(y_k) * x + 0.5, and y_0 is x itself
        t = np.tanh(prev)
        g_x += g_y * t
        g_y = g_y * x * (1 - t * t)
    return value, g_x + g_y


def _dispatch3_inputs() -> list[np.ndarray]:
    return [np.arange(8, dtype=np.float32), np.full(8, 0.5, np.float32), np.ones(8, np.float32)]


# ------------------------------------------------------------ implementations
def _call(f, args):
    return lambda: f(*args)


def _jax_impl(build_jax: Callable):
    """``build_jax(jax, jnp)`` -> the function to jit; arguments are put on the device once, outside the call."""

    def make(args):
        jax = _optional("jax")
        import jax.numpy as jnp

        f = jax.jit(build_jax(jax, jnp))
        dev = [jax.device_put(a) for a in args]
        jax.block_until_ready(dev)
        return lambda: jax.block_until_ready(f(*dev))

    return make


def _torch_impl(build_torch: Callable):
    def make(args):
        torch = _optional("torch")
        return _call(build_torch(torch), [torch.from_numpy(a) for a in args])

    return make


def _eager_value_and_grad(f: Callable, argnums: tuple[int, ...], autograd_grad: Callable) -> Callable:
    """value_and_grad define-by-run: a Python function whose gradient comes from the tape
    (PyTorch's autograd, or tracegrad's eager mode: the same calls)."""

    def vg(*ts):
        ts = list(ts)
        for i in argnums:
            ts[i] = ts[i].detach().requires_grad_()
        value = f(*ts)
        return value.detach(), autograd_grad(value, [ts[i] for i in argnums])

    return vg


def _eager_impl(build: Callable):
    """``build()`` is the define-by-run function; it is called on eager Tensors."""
    return lambda args: _call(build(), [tg.tensor(a) for a in args])


def _impls(tracegrad_fn: Callable, numpy_fn: Callable, jax_fn: Callable | None = None,
           torch_fn: Callable | None = None, eager_fn: Callable | None = None) -> dict:
    """The columns. ``tracegrad_fn()`` builds the function to jit and ``eager_fn()`` the one to run on
    eager Tensors; ``jax_fn(jax, jnp)`` and ``torch_fn(torch)`` build theirs (omitted when the library
    is not importable)."""
    impls = {
        "tracegrad jit": lambda args: _call(tg.jit(tracegrad_fn()), args),
        "tracegrad eager": _eager_impl(eager_fn),
        "tracegrad interpreter": lambda args: _call(tg.jit(tracegrad_fn(), backend="interpret"), args),
        "numpy": lambda args: _call(numpy_fn, args),
    }
    if jax_fn is not None and _optional("jax") is not None:
        impls["jax jit"] = _jax_impl(jax_fn)
    if torch_fn is not None and _optional("torch") is not None:
        impls["pytorch eager"] = _torch_impl(torch_fn)
    return impls


def _forward(build: Callable, build_torch: Callable | None = None) -> dict:
    """A function written once against a NumPy-like namespace ``xp``, run forward only."""
    return _impls(lambda: build(tnp), build(np), lambda jax, jnp: build(jnp), build_torch or build,
                  lambda: build(tnp))


def _value_and_grad(build: Callable, numpy_vg: Callable, argnums, build_torch: Callable | None = None) -> dict:
    """value_and_grad of ``build(xp)`` with respect to ``argnums``; NumPy's is written by hand."""
    nums = argnums if isinstance(argnums, tuple) else (argnums,)
    return _impls(lambda: tg.value_and_grad(build(tnp), argnums=argnums), numpy_vg,
                  lambda jax, jnp: jax.value_and_grad(build(jnp), argnums=argnums),
                  lambda torch: _eager_value_and_grad((build_torch or build)(torch), nums, torch.autograd.grad),
                  lambda: _eager_value_and_grad(build(tnp), nums, tg.eager.grad))


def _step_impls() -> dict:
    params = tuple(range(6))
    return _impls(lambda: _mlp_step(tg.value_and_grad(_mlp_loss(tnp), argnums=params)), _mlp_step_numpy,
                  lambda jax, jnp: _mlp_step(jax.value_and_grad(_mlp_loss(jnp), argnums=params)), _mlp_step_torch,
                  lambda: _mlp_step_eager(_mlp_loss(tnp), tg.eager.grad, tg.no_grad))


def _elementwise_sizes(quick: bool) -> tuple[int, int]:
    return (10**5, 10**6) if quick else (10**6, 10**7)


def workloads(quick: bool) -> list[Workload | FirstCall]:
    mlp = "784-512-512-10 ReLU MLP, softmax cross-entropy, batch 128, float32"
    found: list[Workload | FirstCall] = []
    for n in _elementwise_sizes(quick):
        size = f"1e{len(str(n)) - 1}"
        inputs = lambda n=n: [np.random.default_rng(1).standard_normal(n).astype(np.float32)]
        # A float32 sum of 1e7 terms: implementations that add in different orders differ by ~1e-5 of the sum.
        found += [
            Workload(f"elementwise {size}", f"sum(tanh(x)*sigmoid(x) + 0.5*x**2), float32, N={size}", inputs,
                     _forward(_elementwise), rtol=1e-3),
            Workload(f"elementwise {size} value_and_grad", "the same sum and its gradient with respect to x",
                     inputs, _value_and_grad(_elementwise, _elementwise_value_and_grad_numpy, 0), rtol=1e-3),
        ]
    found += [
        Workload("mlp loss", f"{mlp}, forward", _mlp_inputs, _forward(_mlp_loss, _mlp_loss_torch)),
        Workload("mlp value_and_grad", "the same loss and its gradient with respect to the six parameters",
                 _mlp_inputs, _value_and_grad(_mlp_loss, _mlp_value_and_grad_numpy, tuple(range(6)),
                                              _mlp_loss_torch)),
        Workload("mlp step", f"one SGD step: the loss, its gradient, and p - {LR}*g for the six parameters; "
                 "returns the loss and the new parameters", _mlp_inputs, _step_impls(), rtol=1e-3,
                 check=_step_check),
        Workload("softmax xent", "mean softmax cross-entropy of logits (4096, 1000) float32 against one-hot labels",
                 _xent_inputs, _forward(_xent, _xent_torch)),
        Workload("softmax xent value_and_grad", "the same loss and its gradient with respect to the logits",
                 _xent_inputs, _value_and_grad(_xent, _xent_value_and_grad_numpy, 0, _xent_torch)),
        Workload("eager overhead", "ten steps of tanh(y)*x + 0.5 and a sum on 8 float32 values (31 operations): "
                 "the cost of an operation, not of its arithmetic", lambda: [np.linspace(-1, 1, 8, dtype=np.float32)],
                 _forward(_tiny_chain)),
        Workload("eager overhead value_and_grad", "the same and its gradient: recording and replaying the tape",
                 lambda: [np.linspace(-1, 1, 8, dtype=np.float32)],
                 _value_and_grad(_tiny_chain, _tiny_chain_value_and_grad_numpy, 0), rtol=1e-3),
        Workload("rnn value_and_grad", "a tanh RNN (h = tanh(h @ W + x @ U + b); hidden {hidden}, input {inputs}, "
                 "{steps} steps, batch {batch}, float32) and the gradient of the mean square of its states with "
                 "respect to W, U, b: lax.scan when traced (jit, interpreter, JAX), a Python loop when run "
                 "define-by-run (eager, PyTorch)".format(**RNN), _rnn_inputs, _rnn_impls(), rtol=1e-3),
        Workload("dispatch x*2+1", "x*2+1 on 8 float32 values: the cost of one call",
                 lambda: [np.arange(8, dtype=np.float32)], _forward(_dispatch)),
        Workload("dispatch x*y+z", "x*y+z on three arguments of 8 float32 values", _dispatch3_inputs,
                 _forward(_dispatch3)),
    ]
    jax = ["jax jit"] if _optional("jax") is not None else []
    found += [
        FirstCall("compile mlp step (cold)", "the first call of the jitted mlp step in a fresh process, imports "
                  "excluded: trace, passes, code generation and one run; tracegrad with an empty "
                  "TRACEGRAD_CACHE_DIR, JAX with its persistent cache off", ["tracegrad jit"] + jax, "cold"),
        FirstCall("compile mlp step (library cached)", "the same on a cache directory that holds only the matmul "
                  "library, compiled once per machine (by an earlier process): what the first call of a new "
                  "program costs once tracegrad has run on the machine", ["tracegrad jit"], "library"),
        FirstCall("compile mlp step (disk cache)", "the same in a new process, served from the on-disk cache "
                  "the cold run filled", ["tracegrad jit"], "disk"),
    ]
    return found


def select(items: list, only: list[str] | None) -> list:
    """The workloads whose name starts with one of ``only`` (case-insensitive), or all of them."""
    if not only:
        return items
    wanted = [o.lower() for o in only]
    chosen = [w for w in items if any(w.name.lower().startswith(o) for o in wanted)]
    if not chosen:
        raise SystemExit(f"error: --only {' '.join(only)} matches no workload; workloads: "
                         + ", ".join(w.name for w in items))
    return chosen


# ------------------------------------------------------------------- checks
def _flat(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().numpy()
    return np.asarray(value, dtype=np.float64).ravel()


def _leaves(value) -> list[np.ndarray]:
    """Any result (an array, a framework tensor, nested tuples of them) as flat float64 vectors."""
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [_flat(value)]


def disagreement(got: list[np.ndarray], want: list[np.ndarray], rtol: float) -> str | None:
    """None when every output's largest difference is within ``rtol`` of that output's largest magnitude."""
    if len(got) != len(want):
        return f"{len(got)} outputs, NumPy gives {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape:
            return f"output {i} has {g.size} values, NumPy's has {w.size}"
        if not g.size:
            continue
        scale = max(float(np.max(np.abs(w))), float(np.finfo(np.float32).tiny))
        err = float(np.max(np.abs(g - w)))
        if not err <= rtol * scale:  # also false for NaN
            return f"output {i} differs by up to {err:.3g}, {err / scale:.2g} of its magnitude {scale:.3g} " \
                   f"(allowed: {rtol:g})"
    return None


# ------------------------------------------------------------------- timing
def _calls_per_batch(fn: Callable[[], object]) -> int:
    """How many calls of ``fn`` last about 20 ms (after one warm-up call)."""
    fn()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < 0.02:
        fn()
        calls += 1
    return max(calls, 1)


def time_calls(fns: dict[str, Callable[[], object]], quick: bool) -> dict[str, list[float]]:
    """Per-call seconds of each function, over rounds of one ~20 ms batch of each in turn.
    Interleaved, so that a burst of load from elsewhere on this shared machine (it can halve
    the speed of everything for a second or two) falls on every implementation alike and
    the ratios of the medians hold."""
    numbers = {name: _calls_per_batch(fn) for name, fn in fns.items()}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(5 if quick else 15):
        for name, fn in fns.items():
            number = numbers[name]
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - start) / number)
    return samples


def _row(w, impl: str, samples: list[float]) -> dict:
    return dict(workload=w.name, description=w.description, impl=impl, median=float(np.median(samples)),
                min=float(np.min(samples)), max=float(np.max(samples)), repeats=len(samples))


def _progress(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def _time_workload(w: Workload, quick: bool) -> list[dict]:
    args = w.inputs()
    calls = {name: make(args) for name, make in w.impls.items()}
    view = w.check or (lambda args, out: _leaves(out))
    reference = view(args, calls["numpy"]())
    for name, call in calls.items():
        problem = disagreement(view(args, call()), reference, w.rtol)
        if problem:
            raise AssertionError(f"{w.name}: {name} disagrees with NumPy: {problem}")
    return [_row(w, name, samples) for name, samples in time_calls(calls, quick).items()]


# ------------------------------------------------- first calls, in fresh processes
_CHILD = "import sys; from tracegrad.bench import first_call_child; first_call_child(sys.argv[1])"


def first_call_child(impl: str) -> None:
    """Run in a fresh process: time the first call of the jitted MLP step (everything is
    imported before the clock starts) and print the seconds and the loss as JSON."""
    args = _mlp_inputs()
    params = tuple(range(6))
    from_disk = None
    if impl == "tracegrad jit":
        start = time.perf_counter()
        jf = tg.jit(_mlp_step(tg.value_and_grad(_mlp_loss(tnp), argnums=params)))
        loss, _ = jf(*args)
        seconds = time.perf_counter() - start
        native = getattr(jf.lower(*args).compile(), "_native", None)
        from_disk = getattr(native, "from_disk", None)
    elif impl == "tracegrad library":  # not timed: fills the cache directory with the float32 matmul library
        from codegen import library

        library.load(library.every_routine("float32"))
        print(json.dumps(dict(seconds=0.0, loss=None, from_disk=None)))
        return
    elif impl == "jax jit":
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_compilation_cache", False)
        dev = [jax.device_put(a) for a in args]
        jax.block_until_ready(dev)
        start = time.perf_counter()
        loss, _ = jax.block_until_ready(jax.jit(_mlp_step(jax.value_and_grad(_mlp_loss(jnp), argnums=params)))(*dev))
        seconds = time.perf_counter() - start
    else:
        raise SystemExit(f"unknown implementation {impl!r}")
    print(json.dumps(dict(seconds=seconds, loss=float(loss), from_disk=from_disk)))


def _run_child(impl: str, threads: int, cache_dir: str) -> dict:
    root = str(Path(tg.__file__).absolute().parent.parent)  # tracegrad, ir and codegen live side by side
    env = dict(os.environ, TRACEGRAD_CACHE_DIR=cache_dir, TRACEGRAD_THREADS=str(threads),
               JAX_ENABLE_COMPILATION_CACHE="false",
               PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("TRACEGRAD_VERIFY", None)  # the verifier after every pass is a debugging aid, not the default
    result = subprocess.run([sys.executable, "-c", _CHILD, impl], env=env, capture_output=True, text=True,
                            timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"the first-call process for {impl} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _time_first_calls(selected: list[FirstCall], quick: bool, threads: int) -> list[dict]:
    """Fresh processes: per repeat, tracegrad cold on an empty cache directory, then tracegrad again
    on the directory it filled, then tracegrad on a directory holding only the matmul library, then
    JAX (cold)."""
    wanted = {(w.cache, impl) for w in selected for impl in w.impls}
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in wanted}
    want_loss = float(_mlp_value_and_grad_numpy(*_mlp_inputs())[0])
    for _ in range(1 if quick else 3):
        runs = []
        if ("cold", "tracegrad jit") in wanted or ("disk", "tracegrad jit") in wanted:
            with tempfile.TemporaryDirectory(prefix="tracegrad-bench-cache-") as cache:
                cold = _run_child("tracegrad jit", threads, cache)
                if cold["from_disk"]:
                    raise AssertionError("the cold first call was served from the disk cache")
                runs.append(("cold", "tracegrad jit", cold))
                if ("disk", "tracegrad jit") in wanted:
                    warm = _run_child("tracegrad jit", threads, cache)
                    if warm["from_disk"] is False:  # None: this runtime does not say
                        raise AssertionError("the second first call was not served from the disk cache (did the "
                                             "code generator's source change between the two runs?)")
                    runs.append(("disk", "tracegrad jit", warm))
        if ("library", "tracegrad jit") in wanted:
            with tempfile.TemporaryDirectory(prefix="tracegrad-bench-library-") as cache:
                _run_child("tracegrad library", threads, cache)
                compiled = _run_child("tracegrad jit", threads, cache)
                if compiled["from_disk"]:
                    raise AssertionError("the first call on a directory holding only the library came from disk")
                runs.append(("library", "tracegrad jit", compiled))
        if ("cold", "jax jit") in wanted:
            with tempfile.TemporaryDirectory(prefix="tracegrad-bench-jax-") as unused:
                runs.append(("cold", "jax jit", _run_child("jax jit", threads, unused)))
        for cache, impl, run in runs:
            if not abs(run["loss"] - want_loss) <= 1e-4 * abs(want_loss):
                raise AssertionError(f"first call of the mlp step: {impl} gives the loss {run['loss']}, "
                                     f"NumPy gives {want_loss}")
            if (cache, impl) in samples:
                samples[cache, impl].append(run["seconds"])
    return [_row(w, impl, samples[w.cache, impl]) for w in selected for impl in w.impls]


def run(quick: bool = False, threads: int = 1, only: list[str] | None = None) -> list[dict]:
    """Check and time the selected workloads with ``threads`` threads for tracegrad and PyTorch
    (NumPy's BLAS and XLA take theirs from the environment, set before they are imported)."""
    tg.config.threads = threads
    torch = _optional("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    chosen = select(workloads(quick), only)
    rows = []
    for w in chosen:
        if isinstance(w, Workload):
            _progress(w.name)
            rows += _time_workload(w, quick)
    first = [w for w in chosen if isinstance(w, FirstCall)]
    if first:
        _progress(", ".join(w.name for w in first))
        found = _time_first_calls(first, quick, threads)
        rows += found
    order = {w.name: i for i, w in enumerate(chosen)}
    return sorted(rows, key=lambda r: order[r["workload"]])  # stable: implementations keep their order


# ------------------------------------------------------------------ reports
def _fmt(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def table(rows: list[dict]) -> str:
    """A Markdown table: median (min-max) per call and the ratio to NumPy (none for first calls)."""
    lines = ["| workload | implementation | median per call (min-max) | time / NumPy's |", "|---|---|---|---|"]
    numpy_time = {r["workload"]: r["median"] for r in rows if r["impl"] == "numpy"}
    for r in rows:
        base = numpy_time.get(r["workload"])
        ratio = f"{r['median'] / base:.2f}" if base else "-"
        lines.append(f"| {r['workload']} | {r['impl']} | {_fmt(r['median'])} ({_fmt(r['min'])}-{_fmt(r['max'])}) "
                     f"| {ratio} |")
    return "\n".join(lines)


SUMMARY_COLUMNS = ("tracegrad jit", "tracegrad eager", "numpy", "jax jit", "pytorch eager")


def summary(rows: list[dict]) -> str:
    """A Markdown table of medians, a workload a row and an implementation a column (the
    interpreter left out): the short form the README quotes."""
    median = {(r["workload"], r["impl"]): r["median"] for r in rows}
    columns = [c for c in SUMMARY_COLUMNS if any(impl == c for _, impl in median)]
    lines = ["| workload | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for w in dict.fromkeys(r["workload"] for r in rows):
        cells = [_fmt(median[w, c]) if (w, c) in median else "-" for c in columns]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: str) -> bool:
    """A bar chart of each workload's times relative to NumPy's (first calls, which have no
    NumPy row, are left out); False, with a note, when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"--plot: matplotlib is not installed (pip install -e '.[bench]'); {path} not written", file=sys.stderr)
        return False
    numpy_time = {r["workload"]: r["median"] for r in rows if r["impl"] == "numpy"}
    median = {(r["workload"], r["impl"]): r["median"] for r in rows}
    names = [w for w in dict.fromkeys(r["workload"] for r in rows) if w in numpy_time]
    impls = list(dict.fromkeys(r["impl"] for r in rows if r["workload"] in numpy_time))
    fig, ax = plt.subplots(figsize=(max(8.0, 1.1 * len(names)), 5.5))
    width = 0.8 / len(impls)
    for k, impl in enumerate(impls):
        found = [(i, median[w, impl] / numpy_time[w]) for i, w in enumerate(names) if (w, impl) in median]
        ax.bar([i + (k - (len(impls) - 1) / 2) * width for i, _ in found], [r for _, r in found], width, label=impl)
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("time / NumPy's time (log scale: lower is faster)")
    ax.set_title("tracegrad bench: median time per call, relative to NumPy")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    return f"{model} ({platform.machine()}{', ' + isa if isa else ''})"


def _blas_threads() -> str:
    """NumPy's BLAS and the threads it runs, asked of the loaded OpenBLAS (it reads its
    environment variables once, when NumPy is first imported)."""
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            path = next(line.split()[-1] for line in maps if "openblas" in line.lower())
        lib = ctypes.CDLL(path)
    except (OSError, StopIteration):
        return "BLAS threads unknown"
    for symbol in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads"):
        if hasattr(lib, symbol):
            count = getattr(lib, symbol)()
            return f"OpenBLAS {count} thread{'s' if count != 1 else ''}"
    return "OpenBLAS threads unknown"


def machine(threads: int) -> dict:
    """What the figures depend on: the CPU, the cores this process may use, the threads, the versions."""
    import llvmlite
    import llvmlite.binding as llvm

    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    versions = {"tracegrad": tg.__version__, "Python": platform.python_version(),
                "NumPy": f"{np.__version__} ({_blas_threads()})",
                "llvmlite": f"{llvmlite.__version__} (LLVM {'.'.join(map(str, llvm.llvm_version_info))})"}
    for module, label in (("jax", "JAX"), ("torch", "PyTorch")):
        if _optional(module) is not None:
            versions[label] = _optional(module).__version__
    return dict(cpu=_cpu_model(), cores=os.cpu_count(), cpus_used=affinity, threads=threads, versions=versions,
                date=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))


def machine_line(m: dict) -> str:
    used = m["cpus_used"]
    pinned = f" (this process pinned to CPU {', '.join(map(str, used))})" if used and len(used) < m["cores"] else ""
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return (f"machine: {m['cpu']}, {m['cores']} cores{pinned}, {m['threads']} thread"
            f"{'s' if m['threads'] != 1 else ''} per library; {versions}; {m['date']}")


def main(quick: bool = False, json_out: str | None = None, threads: int = 1, only: list[str] | None = None,
         plot_out: str | None = None) -> int:
    if threads < 1:
        raise SystemExit("error: --threads must be at least 1")
    started = time.perf_counter()
    info = machine(threads)
    command = "python -m tracegrad bench" + "".join(f" {a}" for a in sys.argv[2:]) if sys.argv[1:2] == ["bench"] \
        else None
    print(f"tracegrad bench{' (quick)' if quick else ''}: every result checked against NumPy's before it is "
          f"timed; medians over {5 if quick else 15} rounds of one ~20 ms batch per implementation in turn, "
          f"first calls over {'1 fresh process' if quick else '3 fresh processes'}")
    if command:
        print(f"command: `{command}`")
    print(machine_line(info))
    print()
    rows = run(quick, threads, only)
    chosen = select(workloads(quick), only)
    for w in chosen:
        print(f"- {w.name}: {w.description}")
    print()
    print(table(rows))
    print("\nMedians per call:\n")
    print(summary(rows))
    seconds = time.perf_counter() - started
    print(f"\n(the run took {seconds:.0f} s)")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(dict(machine=info, command=command, quick=quick, seconds=seconds, rows=rows), f, indent=2)
    if plot_out and plot(rows, plot_out):
        print(f"wrote the chart to {plot_out}")
    return 0
