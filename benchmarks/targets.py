"""The speed targets the issues set, checked against a fresh run of the
benchmark workloads (``python benchmarks/targets.py``). A benchmark, not a
test: it reports each target as met or missed, with the measured ratio."""

import os
import sys

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # one thread against one thread, set before NumPy is imported

from tracegrad.bench import run  # noqa: E402

# (workload, implementation, reference implementation, at most this many times the reference's median)
TARGETS = [
    ("mlp value_and_grad", "tracegrad jit", "numpy", 1.5),  # issue 3: the interpreter within 1.5x of hand-written NumPy
]


def main() -> int:
    rows = {(r["workload"], r["impl"]): r["median"] for r in run(quick="--quick" in sys.argv)}
    missed = 0
    for workload, impl, reference, limit in TARGETS:
        ratio = rows[workload, impl] / rows[workload, reference]
        met = ratio <= limit
        missed += not met
        print(f"{'MET   ' if met else 'MISSED'} {workload}: {impl} takes {ratio:.2f}x {reference}'s time "
              f"(target: at most {limit}x)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
