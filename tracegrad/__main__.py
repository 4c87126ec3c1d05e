import os
import sys

# Benchmarks compare N threads against N threads (one by default: the machine is shared, and the thread pools
# of NumPy's BLAS, PyTorch and XLA collapse when a neighbour holds a core). The pools size themselves when
# they start: `bench --threads N` sets the BLAS and OpenMP variables and XLA's flag to N and, since JAX sizes
# its CPU thread pool by the process's affinity mask whatever its flags say, pins the process to N CPUs when
# it may run on more (`--no-pin`: it does not). `python -m tracegrad` has imported the package, and with it
# NumPy and its BLAS, before this file runs, so when a variable changes the process starts again with it set.
if len(sys.argv) > 1 and sys.argv[1] == "bench":
    threads = "1"
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            threads = sys.argv[i + 1]
        elif arg.startswith("--threads="):
            threads = arg.partition("=")[2]
    if threads.isdigit() and int(threads) >= 1:  # otherwise the argument parser reports it
        before = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TRACEGRAD_THREADS"):
            os.environ[var] = threads
        xla = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_cpu_multi_thread_eigen")]
        os.environ["XLA_FLAGS"] = " ".join(xla + [f"--xla_cpu_multi_thread_eigen={str(threads != '1').lower()}"])
        if "--no-pin" not in sys.argv and hasattr(os, "sched_setaffinity"):
            cpus = sorted(os.sched_getaffinity(0))
            if int(threads) < len(cpus):
                os.sched_setaffinity(0, cpus[-int(threads):])
        if dict(os.environ) != before and "numpy" in sys.modules:
            sys.stdout.flush()
            os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # again, with the variables set

from .cli import main  # noqa: E402  (after the thread settings)

sys.exit(main())
