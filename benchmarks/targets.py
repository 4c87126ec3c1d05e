"""The speed targets the issues set, checked against a fresh run of the
benchmark workloads (``python benchmarks/targets.py [--quick]``), or against a saved run
(``python benchmarks/targets.py --json FILE``, FILE from ``python -m tracegrad bench --json FILE``). A benchmark,
not a test: it reports each target as met or missed, with the measured ratio.
Targets against JAX or PyTorch are skipped when those are not installed.
One thread against one thread: run it pinned to one core
(``taskset -c 1 python benchmarks/targets.py``), as XLA sizes its thread pool
by the cores it may use."""

import os
import sys

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # one thread against one thread, set before NumPy is imported
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

from tracegrad.bench import run  # noqa: E402

JIT, EAGER, INTERPRETER = "tracegrad jit", "tracegrad eager", "tracegrad interpreter"
ELEMENTWISE = ["elementwise 1e6", "elementwise 1e6 value_and_grad", "elementwise 1e7", "elementwise 1e7 value_and_grad"]

# (workload, implementation, reference implementation or None for seconds, at most this many times the reference)
TARGETS = [
    ("mlp value_and_grad", INTERPRETER, "numpy", 1.5),  # issue 3: the interpreter within 1.5x of hand-written NumPy
    # issue 5: the native backend
    *[(w, JIT, "jax jit", 1.0) for w in ELEMENTWISE],
    *[(w, JIT, "numpy", 1 / 3) for w in ELEMENTWISE],
    ("mlp step", JIT, "jax jit", 1.0),
    ("mlp step", JIT, "pytorch eager", 1.0),
    ("softmax xent", JIT, "jax jit", 1.0),
    ("softmax xent value_and_grad", JIT, "jax jit", 1.0),
    ("dispatch x*2+1", JIT, None, 3e-6),
    ("dispatch x*y+z", JIT, None, 5e-6),
    ("compile mlp step (cold)", JIT, None, 0.3),  # the once-per-machine matmul library included
    ("compile mlp step (library cached)", JIT, None, 0.3),
    ("compile mlp step (cold)", JIT, "jax jit", 1.0),
    ("compile mlp step (disk cache)", JIT, None, 0.05),
    # issue 6: the eager mode, against PyTorch's
    ("eager overhead", EAGER, "pytorch eager", 2.0),
    ("eager overhead value_and_grad", EAGER, "pytorch eager", 2.0),
    ("mlp step", EAGER, "pytorch eager", 1.5),
    # issue 7: structured control flow compiled to native loops
    ("rnn value_and_grad", JIT, "jax jit", 1.0),
    ("rnn value_and_grad", JIT, "pytorch eager", 1.0),
]


def main() -> int:
    if "--json" in sys.argv:  # a saved run (``python -m tracegrad bench --json FILE``) instead of a new one
        import json

        with open(sys.argv[sys.argv.index("--json") + 1]) as f:
            measured = json.load(f)["rows"]
    else:
        measured = run(quick="--quick" in sys.argv)
    rows = {(r["workload"], r["impl"]): r["median"] for r in measured}
    missed = 0
    for workload, impl, reference, limit in TARGETS:
        if reference is not None and (workload, reference) not in rows:
            print(f"SKIP   {workload}: {reference} is not installed")
            continue
        value = rows[workload, impl]
        ratio = value / rows[workload, reference] if reference else value
        met = ratio <= limit
        missed += not met
        if reference:
            print(f"{'MET   ' if met else 'MISSED'} {workload}: {impl} takes {ratio:.2f}x {reference}'s time "
                  f"(target: at most {limit:.2g}x)")
        else:
            print(f"{'MET   ' if met else 'MISSED'} {workload}: {impl} takes {value * 1e3:.3g} ms "
                  f"(target: at most {limit * 1e3:.3g} ms)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
