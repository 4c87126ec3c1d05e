"""How close the compiled elementwise benchmark comes to what this machine allows.

    PYTHONPATH=. python3 benchmarks/machine_bound.py [--cpu N]

The workload is bench's ``sum(tanh(x) * (1 / (1 + exp(-x))) + 0.5 * x**2)`` over float32,
forward and value_and_grad, at 1e6 and 1e7 elements, pinned to one CPU. Beside tracegrad's
compiled code it times, on the same array and in interleaved rounds:

- the memory floor: a plain sum of the same array (the read every variant must make), compiled
  by gcc with ``-O3 -march=native``;
- a hand-fused C kernel: the same expression (and, for value_and_grad, its derivative written
  into a preallocated array) in one loop, compiled by gcc with ``-O3 -march=native -ffast-math
  -fopenmp-simd``, so that ``tanhf`` and ``expf`` become glibc's vectorised libm (libmvec)
  calls. It is what a careful programmer writes by hand, with a looser accuracy contract than
  tracegrad's (fast-math, libmvec's error bounds).

A ratio below 1 says tracegrad is faster. The C variants are skipped, with a note, where gcc
or libmvec is missing. Each result is checked against NumPy's in float64 before timing.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile

C_SOURCE = r"""
#include <math.h>
float total(const float *x, long n) {
    float acc = 0.0f;
    #pragma omp simd reduction(+:acc)
    for (long i = 0; i < n; i++) acc += x[i];
    return acc;
}
float forward(const float *x, long n) {
    float acc = 0.0f;
    #pragma omp simd reduction(+:acc)
    for (long i = 0; i < n; i++) {
        float v = x[i], t = tanhf(v), s = 1.0f / (1.0f + expf(-v));
        acc += t * s + 0.5f * v * v;
    }
    return acc;
}
float value_and_grad(const float *x, float *g, long n) {
    float acc = 0.0f;
    #pragma omp simd reduction(+:acc)
    for (long i = 0; i < n; i++) {
        float v = x[i], t = tanhf(v), s = 1.0f / (1.0f + expf(-v));
        acc += t * s + 0.5f * v * v;
        g[i] = (1.0f - t * t) * s + t * s * (1.0f - s) + v;
    }
    return acc;
}
"""


def build_c(directory: str):
    """The C kernels as a ctypes library, or (None, why not)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None, "gcc not found"
    source, library = os.path.join(directory, "kernels.c"), os.path.join(directory, "kernels.so")
    with open(source, "w") as f:
        f.write(C_SOURCE)
    done = subprocess.run([gcc, "-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-shared", "-fPIC", source,
                           "-o", library, "-lm", "-lmvec"], capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"gcc failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    lib = ctypes.CDLL(library)
    pointer, length = ctypes.c_void_p, ctypes.c_long
    for name, args in (("total", [pointer, length]), ("forward", [pointer, length]),
                       ("value_and_grad", [pointer, pointer, length])):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = ctypes.c_float, args
    vectorised = "libmvec" if "_ZGVeN16v_expf" in open(library, "rb").read().decode("latin-1") else "scalar libm"
    return lib, f"gcc -O3 -march=native -ffast-math -fopenmp-simd ({vectorised})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    os.environ["TRACEGRAD_THREADS"] = "1"

    import numpy as np

    import tracegrad as tg
    import tracegrad.numpy as tnp
    from tracegrad.bench import _elementwise, _elementwise_value_and_grad_numpy, machine, machine_line, time_calls

    tg.config.threads = 1
    print(f"command: `PYTHONPATH=. python3 benchmarks/machine_bound.py{''.join(' ' + a for a in sys.argv[1:])}`")
    print(machine_line(machine(1)))
    with tempfile.TemporaryDirectory() as directory:
        lib, how = build_c(directory)
        print(f"C kernels: {how}\n")
        forward = tg.jit(_elementwise(tnp))
        value_and_grad = tg.jit(tg.value_and_grad(_elementwise(tnp)))
        print("| elements | variant | median | tracegrad / it |")
        print("|---|---|---|---|")
        for n in (10**6, 10**7):
            x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
            gradient = np.empty_like(x)
            want_value, want_grad = _elementwise_value_and_grad_numpy(x.astype(np.float64))
            value, grad = value_and_grad(x)
            assert abs(float(forward(x)) - want_value) <= 1e-4 * abs(want_value)
            assert abs(float(value) - want_value) <= 1e-4 * abs(want_value)
            np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-5)
            calls = {"tracegrad jit, forward": lambda: forward(x),
                     "tracegrad jit, value_and_grad": lambda: value_and_grad(x)}
            if lib is not None:
                # One float32 accumulator per lane over 1e7 terms: the C sum is good to about 1e-4 only.
                assert abs(lib.forward(x.ctypes.data, n) - want_value) <= 1e-3 * abs(want_value)
                lib.value_and_grad(x.ctypes.data, gradient.ctypes.data, n)
                np.testing.assert_allclose(gradient, want_grad, rtol=1e-4, atol=1e-5)
                calls |= {"memory floor: sum(x), C": lambda: lib.total(x.ctypes.data, n),
                          "hand-fused C, forward": lambda: lib.forward(x.ctypes.data, n),
                          "hand-fused C, value_and_grad into a preallocated array":
                              lambda: lib.value_and_grad(x.ctypes.data, gradient.ctypes.data, n)}
            median = {name: float(np.median(t)) for name, t in time_calls(calls, quick=False).items()}
            for name, t in median.items():
                ours = median["tracegrad jit, value_and_grad" if "value_and_grad" in name else "tracegrad jit, forward"]
                ratio = "-" if name.startswith("tracegrad") else f"{ours / t:.2f}"
                print(f"| 1e{len(str(n)) - 1} | {name} | {t * 1e3:.3f} ms | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
