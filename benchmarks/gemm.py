"""Single-threaded matrix multiply: tracegrad's generated kernel (``codegen/gemm.py``)
against NumPy's matmul (OpenBLAS) and JAX jit's (XLA), when JAX is importable.

    PYTHONPATH=. python3 benchmarks/gemm.py [--quick] [--cpu N] [--no-pin] [--dtype float32]

Every library runs on one thread: the BLAS and OpenMP thread counts and XLA's flags are set
before NumPy and JAX are imported, and the process is pinned to one CPU (``--cpu``, default
the last one). The pinning is what makes JAX single-threaded: with the XLA flags alone, JAX
0.10's CPU client still runs a matmul on every core (its process time is twice its wall
time on this 2-core machine); JAX sizes its thread pool by the affinity mask. ``--no-pin``
shows the unpinned numbers.

Each implementation's result is checked against a float64 NumPy product before it is
timed. The implementations are then timed in interleaved rounds (one call of each per
round), so that load from other processes on this shared machine falls on all of them
alike; the tables give the median time per call and its GFLOP/s, and each library's time
divided by tracegrad's (above 1: tracegrad is faster), first in wall time, then in process
CPU time, which leaves out the slices other processes took from the pinned CPU (on a
shared machine the steadier of the two; JAX's worker threads are in it)."""

from __future__ import annotations

import argparse
import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)), help="CPU to pin to")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    parser.add_argument("--dtype", choices=["float32", "float64"], action="append",
                        help="only this dtype (repeatable); default both")
    return parser.parse_args()


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None and not ARGS.no_pin:
    os.sched_setaffinity(0, {ARGS.cpu})  # before JAX starts its thread pool

import ctypes  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import llvmlite  # noqa: E402
import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402

from codegen import gemm  # noqa: E402
from codegen.target import compile_module  # noqa: E402

try:
    import jax  # noqa: E402
    import jax.numpy as jnp  # noqa: E402

    jax.config.update("jax_enable_x64", True)
except ImportError:  # the project venv has no JAX
    jax = None

# (name, m, k, n, A stored transposed, B stored transposed)
SHAPES = [
    ("128^3", 128, 128, 128, False, False),
    ("256^3", 256, 256, 256, False, False),
    ("512^3", 512, 512, 512, False, False),
    ("1024^3", 1024, 1024, 1024, False, False),
    ("mlp fwd 1: 128x784 @ 784x512", 128, 784, 512, False, False),
    ("mlp fwd 2: 128x512 @ 512x512", 128, 512, 512, False, False),
    ("mlp fwd 3: 128x512 @ 512x10", 128, 512, 10, False, False),
    ("mlp bwd dW: 784x128 @ 128x512 (A^T)", 784, 128, 512, True, False),
    ("mlp bwd dX: 128x512 @ 512x784 (B^T)", 128, 512, 784, False, True),
]

_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                              ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                              ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p)


def build(dtypes: list[str]):
    """Compile tg_gemm for the dtypes; returns (engine, {dtype: ctypes function})."""
    module = ir.Module(name="gemm_bench")
    for dtype in dtypes:
        gemm.define_gemm(module, dtype)
    engine, _ = compile_module(str(module))
    return engine, {d: _SIGNATURE(engine.address(gemm.function_name(d))) for d in dtypes}


def aligned_workspace(nbytes: int) -> np.ndarray:
    raw = np.zeros(nbytes + 64, np.uint8)
    offset = (-raw.ctypes.data) % 64
    return raw[offset:offset + nbytes]


def operands(m: int, k: int, n: int, a_t: bool, b_t: bool, dtype: str):
    rng = np.random.default_rng(0)
    a_store = rng.standard_normal((k, m) if a_t else (m, k)).astype(dtype)
    b_store = rng.standard_normal((n, k) if b_t else (k, n)).astype(dtype)
    return a_store, b_store, (a_store.T if a_t else a_store), (b_store.T if b_t else b_store)


def tracegrad_call(fn, a: np.ndarray, b: np.ndarray, c: np.ndarray, workspace: np.ndarray) -> Callable[[], None]:
    item = a.itemsize
    args = (a.shape[0], b.shape[1], a.shape[1], a.ctypes.data, a.strides[0] // item, a.strides[1] // item,
            b.ctypes.data, b.strides[0] // item, b.strides[1] // item, c.ctypes.data, c.strides[0] // item,
            0, workspace.ctypes.data)
    return lambda: fn(*args)


def check(name: str, got: np.ndarray, want: np.ndarray, k: int, dtype: str) -> None:
    eps = np.finfo(dtype).eps
    tol = 8 * eps * np.sqrt(k) * (np.abs(want).max() + 1)
    err = np.abs(np.asarray(got, np.float64) - want).max()
    if not err <= tol:
        raise AssertionError(f"{name}: max error {err:.3g} exceeds {tol:.3g}")


def time_interleaved(calls: dict[str, Callable[[], object]], quick: bool) -> dict[str, dict[str, np.ndarray]]:
    """Per-call times, one call of each implementation per round, on two clocks: wall time
    and process CPU time (which leaves out the time other work held this CPU)."""
    for call in calls.values():  # warm up
        call()
    budget = 0.25 if quick else 1.5  # seconds of the fastest implementation
    probe = min(_one(call)[0] for call in calls.values())
    rounds = int(min(2000, max(9, budget / max(probe, 1e-6))))
    times = {clock: {name: np.empty(rounds) for name in calls} for clock in ("wall", "cpu")}
    for r in range(rounds):
        for name, call in calls.items():
            times["wall"][name][r], times["cpu"][name][r] = _one(call)
    return times


def _one(call: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def table_row(dtype: str, name: str, flops: float, times: dict[str, np.ndarray]) -> str:
    med = {key: float(np.median(t)) for key, t in times.items()}
    cells = [f"{t * 1e3:.3f} ms ({flops / t / 1e9:.0f} GF/s)" for t in med.values()]
    ratios = [f"{t / med['tracegrad']:.2f}" for key, t in med.items() if key != "tracegrad"]
    return f"| {dtype} | {name} | " + " | ".join(cells + ratios) + " |"


def main() -> int:
    args = ARGS
    dtypes = args.dtype or ["float32", "float64"]
    _, functions = build(dtypes)
    workspaces = {d: aligned_workspace(gemm.workspace_bytes(d)) for d in dtypes}
    affinity = sorted(os.sched_getaffinity(0))
    print(f"# GEMM benchmark, {datetime.date.today().isoformat()}\n")
    command = " ".join(["PYTHONPATH=.", os.path.basename(sys.executable), "benchmarks/gemm.py", *sys.argv[1:]])
    print(f"- command: `{command}`")
    print(f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, process pinned to CPU(s) {affinity}; "
          f"Python {platform.python_version()}, NumPy {np.__version__} ({_openblas_core()}), "
          f"llvmlite {llvmlite.__version__}, JAX {jax.__version__ if jax else 'not installed'}")
    print("- median time per call over interleaved rounds; GFLOP/s = 2mnk / median; "
          "'/ tg' columns: that library's median time / tracegrad's (above 1: tracegrad faster)\n")
    columns = ["dtype", "shape (m x k @ k x n)", "tracegrad", "numpy"] + (["jax jit"] if jax else []) + \
        ["numpy / tg"] + (["jax / tg"] if jax else [])
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    print("## Wall time\n")
    print(header)
    cpu_rows = []
    for dtype in dtypes:
        for name, m, k, n, a_t, b_t in SHAPES:
            a_store, b_store, a, b = operands(m, k, n, a_t, b_t, dtype)
            want = a.astype(np.float64) @ b.astype(np.float64)
            c = np.full((m, n), np.nan, dtype)
            calls: dict[str, Callable[[], object]] = {
                "tracegrad": tracegrad_call(functions[dtype], a, b, c, workspaces[dtype]),
                "numpy": lambda a=a, b=b: a @ b,
            }
            calls["tracegrad"]()
            check("tracegrad", c, want, k, dtype)
            check("numpy", a @ b, want, k, dtype)
            if jax:
                f = jax.jit(lambda x, y, a_t=a_t, b_t=b_t: (x.T if a_t else x) @ (y.T if b_t else y))
                ja, jb = jnp.asarray(a_store), jnp.asarray(b_store)
                check("jax", f(ja, jb), want, k, dtype)
                calls["jax"] = lambda f=f, ja=ja, jb=jb: f(ja, jb).block_until_ready()
            times = time_interleaved(calls, args.quick)
            print(table_row(dtype, name, 2.0 * m * n * k, times["wall"]), flush=True)
            cpu_rows.append(table_row(dtype, name, 2.0 * m * n * k, times["cpu"]))
    print("\n## Process CPU time (the same rounds; leaves out time other processes held the CPU)\n")
    print(header)
    print("\n".join(cpu_rows))
    return 0


def _openblas_core() -> str:
    """The kernel family OpenBLAS picked at run time (e.g. SkylakeX: its AVX-512 kernels)."""
    try:
        with open("/proc/self/maps") as maps:
            path = next(line.split()[-1] for line in maps if "openblas" in line)
        lib = ctypes.CDLL(path)
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            if hasattr(lib, symbol):
                getter = getattr(lib, symbol)
                getter.restype = ctypes.c_char_p
                return f"OpenBLAS core {getter().decode()}"
    except (StopIteration, OSError):
        pass
    return "BLAS core unknown"


if __name__ == "__main__":
    sys.exit(main())
