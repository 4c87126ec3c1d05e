import os
import sys

# Benchmarks compare one thread against one thread (the machine is shared, and the thread pools of NumPy's
# BLAS, PyTorch and XLA collapse when a neighbour holds a core); the pools size themselves at import, so this
# must happen before NumPy is imported. `bench --threads N` asks for N.
if len(sys.argv) > 1 and sys.argv[1] == "bench":
    threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, threads)
    os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen={'true' if threads != '1' else 'false'} "
                                       f"intra_op_parallelism_threads={threads}")

from .cli import main  # noqa: E402  (after the thread settings)

sys.exit(main())
