"""Accuracy and speed of codegen.mathlib's inline functions, against NumPy.

    python benchmarks/math_accuracy.py [--samples N] [--seed S] [--size M] [--only NAME ...]

For every function and both float types it compiles the loop kernel
``out[i] = f(x[i])`` (``mathlib.kernel_ir``; ``pow`` takes two arrays), runs it on

* special values: +-0, subnormals, the smallest and largest normals, +-inf, NaN, and for every function the
  thresholds where results overflow, underflow, saturate or switch method, multiples of ln2/2, pi/4 and
  pi/2 (also huge ones and the double closest to a multiple of pi/2), each with its 3 neighbours either side;
* N random bit patterns spread over all finite numbers of the type (both signs, every exponent);
* N values spread densely over each function's interesting range,

and compares with NumPy (``np.exp`` ... ``np.arctan``, ``np.power``; sigmoid as NumPy's
1/(1+exp(-x)) evaluated stably in a wider type, erf as ``math.erf``). The error is

* float32: the distance in units in the last place, |got - ref| / ulp(ref), ulp(ref) = 2^(e - 23) for
  2^e <= |ref| < 2^(e+1), and 2^-149 (a subnormal's unit) for |ref| below 2^-126;
* float64: the relative error |got - ref| / |ref|, with |ref| counted as 2^-1022 when it is smaller
  (zero or subnormal), i.e. n units of a subnormal count as n * 2^-52;

both only where the two results are finite; NaN-ness, infinities and the sign of zero must match
exactly, and their mismatches are counted apart ("special"). The "true value" columns give the same
error of ours and of NumPy's against the exact value (long double; math.erf for erf), to show how much
of the gap is NumPy's. Throughput is the median time per element over repeats on an array of
M values from the function's typical range, for our kernel and for NumPy's function on the same array.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codegen import mathlib
from codegen.target import compile_module

LD = np.longdouble
BOUND = {np.float32: 4.0, np.float64: 1e-13}
_erf = np.frompyfunc(math.erf, 1, 1)
NUMPY = {"atan": np.arctan, "pow": np.power}


# ------------------------------------------------------------------------------------------------------ kernels
class Kernel:
    """The compiled loop out[i] = name(x[i][, y[i]]) for one float type, callable on NumPy arrays."""

    def __init__(self, name: str, dtype):
        ty = mathlib.F32 if dtype == np.float32 else mathlib.F64
        self.engine, self.module = compile_module(mathlib.kernel_ir(name, ty))
        self.arity = 2 if name == "pow" else 1
        proto = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * (self.arity + 1), ctypes.c_int64)
        self.fn = proto(self.engine.address("kernel"))
        self.dtype = dtype

    def __call__(self, *xs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        xs = [np.ascontiguousarray(x, dtype=self.dtype) for x in xs]
        out = np.empty_like(xs[0]) if out is None else out
        self.fn(out.ctypes.data, *[x.ctypes.data for x in xs], out.size)
        return out


# --------------------------------------------------------------------------------------------------- references
def _sigmoid(x: np.ndarray, wide) -> np.ndarray:
    xw = x.astype(wide)
    ex = np.exp(-np.abs(xw))
    return np.where(xw >= 0, 1 / (1 + ex), ex / (1 + ex))


def reference(name: str, *xs: np.ndarray) -> np.ndarray:
    """NumPy's result in the arguments' type."""
    dtype = xs[0].dtype.type
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return _sigmoid(xs[0], np.float64 if dtype == np.float32 else LD).astype(dtype)
        if name == "erf":
            return _erf(xs[0].astype(np.float64)).astype(np.float64).astype(dtype)
        return (NUMPY.get(name) or getattr(np, name))(*xs)


def exact(name: str, *xs: np.ndarray) -> np.ndarray:
    """The true value, to well beyond the type's precision (long double; math.erf for erf)."""
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return _sigmoid(xs[0], LD)
        if name == "erf":
            return _erf(xs[0].astype(np.float64)).astype(np.float64).astype(LD)
        return (NUMPY.get(name) or getattr(np, name))(*[x.astype(LD) for x in xs])


# ------------------------------------------------------------------------------------------------------ metrics
def errors(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per element: ulps (float32) or relative error (float64) of got against ref (any wider type);
    0 where either is not finite."""
    dtype = got.dtype.type
    finite = np.isfinite(got) & np.isfinite(ref)
    g, r = np.where(finite, got, 0).astype(LD), np.where(finite, ref, 0).astype(LD)
    if dtype == np.float32:     # float32 differences are exact in float64
        g, r = g.astype(np.float64), r.astype(np.float64)
        exponent = np.floor(np.log2(np.maximum(np.abs(r), 2.0 ** -126)))
        return np.where(finite, np.abs(g - r) / np.exp2(exponent - 23), 0)
    return np.where(finite, np.abs(g - r) / np.maximum(np.abs(r), LD(2.0 ** -1022)), 0).astype(np.float64)


def special_mismatches(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Where NaN-ness, an infinity or the sign of a zero differs."""
    bad = np.isnan(got) != np.isnan(ref)
    bad |= (np.isinf(got) | np.isinf(ref)) & ~np.isnan(ref) & (got != ref)
    bad |= (got == 0) & (ref == 0) & (np.signbit(got) != np.signbit(ref))
    return bad


# ------------------------------------------------------------------------------------------------------- inputs
def neighbours(values, dtype, steps: int = 3) -> np.ndarray:
    """The values (rounded to the type), their negatives, and `steps` neighbours either side of each."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        v = np.concatenate([v, -v]).astype(dtype)
        out, up, down = [v], v, v
        for _ in range(steps):
            up, down = np.nextafter(up, dtype(np.inf)), np.nextafter(down, dtype(-np.inf))
            out += [up, down]
    return np.concatenate(out)


def special_values(dtype) -> np.ndarray:
    fi = np.finfo(dtype)
    tiny, sub = float(fi.tiny), float(fi.smallest_subnormal)
    points = [0.0, sub, 2 * sub, 3 * sub, tiny / 3, tiny / 2, tiny, float(fi.max), float(fi.eps), 1.0, 0.5, 2.0,
              3.0, 10.0, 100.0, 1e-3, 1e-7, 1e-20, 1e20, 2.0 ** 24, 2.0 ** 53, 2.0 ** 64, 1e30, 1e300]
    # exp family: overflow, smallest normal, smallest subnormal, rounding to 0 / -1 / 1, switch points.
    points += [88.72283935546875, 88.7228, 89.41598, 709.782712893384, 710.4758600739439, -87.33654,
               -103.278929, -103.972077, -708.3964185322641, -744.4400719213812, -745.1332191019411,
               -17.328679, -37.42994775023705, 9.010913, 19.061547465398498, 16.635532, 36.7368005696771,
               0.5493, 0.25, 2.0 ** -12, 2.0 ** -26, 2.0 ** -25, 1e-8, 6.0, 4.0, 1.5, 3.9192059, 5.921587195794507,
               0.41421356237309503, 2.414213562373095, 0.7071067811865476, 1.4142135623730951]
    points += [k * math.log(2) / 2 for k in range(1, 2200)]
    points += [k * math.pi / 4 for k in range(1, 800)] + [k * math.pi / 2 for k in range(800, 20000, 97)]
    points += [2.0 ** j * math.pi / 2 for j in range(10, 1024, 7)] + [1e6 * math.pi, 1e15 * math.pi]
    # the numbers closest to a multiple of pi/2: a double (Muller's), and two floats (found by search)
    points += [6381956970095103 * 2.0 ** 797, 16367173 * 2.0 ** 72, 10741887 * 2.0 ** 11]
    points += [1 + k * float(fi.eps) for k in range(1, 20)] + [1 - k * float(fi.eps) / 2 for k in range(1, 20)]
    with np.errstate(over="ignore"):
        values = neighbours(points, dtype)
    return np.concatenate([values, np.array([np.inf, -np.inf, np.nan, -np.nan], dtype=dtype)])


DENSE = {   # per function: (low, high) ranges sampled uniformly, plus log-uniform magnitudes over 2^-40 .. 2^a
    "exp": [(-110, 90), (-750, 710), (-1, 1)], "expm1": [(-40, 90), (-1, 1), (-1e-3, 1e-3)],
    "log": [(0, 10), (0.5, 2), (1e-30, 1e-20)], "log1p": [(-1, 10), (-1e-3, 1e-3), (-1, -0.99)],
    "tanh": [(-20, 20), (-1, 1), (-0.6, 0.6)], "sigmoid": [(-110, 40), (-750, 40), (-10, 10)],
    "sin": [(-10, 10), (-1e4, 1e4), (-1e9, 1e9)], "cos": [(-10, 10), (-1e4, 1e4), (-1e9, 1e9)],
    "tan": [(-10, 10), (-1e4, 1e4), (-1e9, 1e9)], "sinh": [(-90, 90), (-715, 715), (-2, 2)],
    "cosh": [(-90, 90), (-715, 715), (-2, 2)], "atan": [(-10, 10), (-1, 1), (-1e4, 1e4)],
    "sqrt": [(0, 10), (0, 1e30)], "erf": [(-6, 6), (-2, 2), (-0.1, 0.1)],
}


def bit_patterns(dtype, n: int, rng) -> np.ndarray:
    """n random finite numbers with uniformly random bits: every exponent equally likely."""
    utype = np.uint32 if dtype == np.float32 else np.uint64
    x = rng.integers(0, np.iinfo(utype).max, n, dtype=utype, endpoint=True).view(dtype)
    return np.where(np.isfinite(x), x, dtype(1.0))


def dense(name: str, dtype, n: int, rng) -> np.ndarray:
    parts = []
    for lo, hi in DENSE[name]:
        parts.append(rng.uniform(lo, hi, n // 4))
    top = 30 if name not in ("exp", "expm1", "sigmoid", "tanh", "sinh", "cosh") else 9.5
    parts.append(rng.choice([-1, 1], n // 4) * np.exp2(rng.uniform(-40, top, n // 4)))
    with np.errstate(over="ignore"):
        return np.concatenate(parts).astype(dtype)


def pow_inputs(dtype, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Pairs: every special value with every other, random bit patterns, and dense ranges that reach the
    overflow and underflow, negative bases with integral exponents, and bases near 1 with large exponents."""
    fi = np.finfo(dtype)
    top = 1100.0 if dtype == np.float64 else 150.0
    sv = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 1.5, -1.5, 0.25, 10.0, -10.0, 1e-3,
                   1e6, -1e6, float(fi.smallest_subnormal), -float(fi.smallest_subnormal), float(fi.tiny),
                   float(fi.max), -float(fi.max), 2.0 ** 24, 2.0 ** 24 + 2, 2.0 ** 53, 2.0 ** 53 + 2, 2.0 ** 60 + 1,
                   1 + float(fi.eps), 1 - float(fi.epsneg), np.inf, -np.inf, np.nan], dtype=dtype)
    gx, gy = (a.ravel() for a in np.meshgrid(sv, sv))
    k = n // 6
    base = rng.uniform(0.5, 2.0, k)
    xs = [gx, bit_patterns(dtype, k, rng), rng.uniform(0, 10, k), -rng.uniform(0, 10, k),
          1 + rng.uniform(-1e-3, 1e-3, k), base, rng.uniform(0, 1e-30, k)]
    ys = [gy, bit_patterns(dtype, k, rng), rng.uniform(-40, 40, k), np.round(rng.uniform(-60, 60, k)),
          rng.uniform(-1e5, 1e5, k), rng.uniform(-1, 1, k) * top / np.abs(np.log2(base)).clip(1e-3),
          rng.uniform(-1.3, 1.3, k)]
    with np.errstate(over="ignore", invalid="ignore"):
        return np.concatenate(xs).astype(dtype), np.concatenate(ys).astype(dtype)


def inputs(name: str, dtype, n: int, rng) -> list[np.ndarray]:
    if name == "pow":
        return list(pow_inputs(dtype, n, rng))
    return [np.concatenate([special_values(dtype), bit_patterns(dtype, n, rng), dense(name, dtype, n, rng)])]


# ------------------------------------------------------------------------------------------------------ measure
def accuracy(name: str, dtype, kernel: Kernel, n: int, rng) -> dict:
    xs = inputs(name, dtype, n, rng)
    got = kernel(*xs)
    ref = reference(name, *xs)
    err = errors(got, ref)
    worst = int(np.argmax(err))
    truth = exact(name, *xs)
    true_err, numpy_err = errors(got, truth), errors(ref, truth)
    return {"count": got.size, "max": float(err.max()), "true": float(true_err.max()),
            "numpy_true": float(numpy_err.max()),
            "special": int(special_mismatches(got, ref).sum()),
            "at": tuple(x[worst] for x in xs), "got": got[worst], "ref": ref[worst]}


def exhaustive(name: str, kernel: Kernel, chunk: int = 1 << 24) -> dict:
    """Every float32 bit pattern (2^32 of them) against NumPy: max error and special mismatches."""
    worst, at, special = 0.0, None, 0
    out = np.empty(chunk, np.float32)
    with np.errstate(all="ignore"):
        for start in range(0, 1 << 32, chunk):
            x = np.arange(start, start + chunk, dtype=np.uint32).view(np.float32)
            got = kernel(x, out=out)
            ref = reference(name, x)
            differ = np.nonzero(got.view(np.int32) != ref.view(np.int32))[0]
            g, r = got[differ], ref[differ]
            special += int(special_mismatches(g, r).sum())
            err = errors(g, r)
            if err.size and err.max() > worst:
                worst, at = float(err.max()), x[differ[np.argmax(err)]]
    return {"max": worst, "at": at, "special": special}


TYPICAL = {"log": (0.0, 100.0), "log1p": (-0.9, 100.0), "sqrt": (0.0, 100.0), "atan": (-20.0, 20.0),
           "exp": (-80.0, 80.0), "sinh": (-80.0, 80.0), "cosh": (-80.0, 80.0)}


def numpy_function(name: str):
    if name == "sigmoid":
        return lambda x: 1 / (1 + np.exp(-x))
    if name == "erf":
        return lambda x: _erf(x)
    return NUMPY.get(name) or getattr(np, name)


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def throughput(name: str, dtype, kernel: Kernel, size: int, rng, repeats: int = 7) -> tuple[float, float]:
    """ns per element: (ours, NumPy's) on the same array of the function's typical arguments."""
    lo, hi = TYPICAL.get(name, (-10.0, 10.0))
    xs = [rng.uniform(lo, hi, size).astype(dtype)]
    if name == "pow":
        xs = [rng.uniform(0, 10, size).astype(dtype), rng.uniform(-10, 10, size).astype(dtype)]
    out = np.empty_like(xs[0])
    ours = _median_time(lambda: kernel(*xs, out=out), repeats)
    size_np = size if name != "erf" else size // 20                   # math.erf one by one is slow
    xs_np = [x[:size_np] for x in xs]
    fn = numpy_function(name)
    with np.errstate(all="ignore"):
        theirs = _median_time(lambda: fn(*xs_np), repeats if name != "erf" else 3)
    return ours / size * 1e9, theirs / size_np * 1e9


def fused_benchmark(size: int, rng, repeats: int = 7) -> list[tuple[str, float]]:
    """The hottest benchmark loop, sum(tanh(x)*sigmoid(x) + 0.5*x**2) over float32, as one kernel (the
    accumulator alone carries ``reassoc``, as the code generator emits it), next to a plain sum of the
    same array: the memory-bound floor."""
    from llvmlite import ir

    def build(body) -> ctypes.CFUNCTYPE:
        module = ir.Module()
        f32, i64 = mathlib.F32, ir.IntType(64)
        fn = ir.Function(module, ir.FunctionType(f32, [f32.as_pointer(), i64]), "kernel")
        x, n = fn.args
        entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
        b = ir.IRBuilder(entry)
        b.cbranch(b.icmp_signed(">", n, i64(0)), loop, done)
        b.position_at_end(loop)
        i, acc = b.phi(i64), b.phi(f32)
        i.add_incoming(i64(0), entry)
        acc.add_incoming(ir.Constant(f32, 0.0), entry)
        v = b.load(b.gep(x, [i], inbounds=True))
        new = b.fadd(acc, body(b, v), flags=("reassoc", "contract"))
        following = b.add(i, i64(1))
        i.add_incoming(following, loop)
        acc.add_incoming(new, loop)
        b.cbranch(b.icmp_signed("<", following, n), loop, done)
        b.position_at_end(done)
        result = b.phi(f32)
        result.add_incoming(ir.Constant(f32, 0.0), entry)
        result.add_incoming(new, loop)
        b.ret(result)
        engine, _ = compile_module(str(module))
        cfn = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_void_p, ctypes.c_int64)(engine.address("kernel"))
        cfn.engine = engine
        return cfn

    def elementwise(b, v):
        t = mathlib.call(b, "tanh", [v])
        s = mathlib.call(b, "sigmoid", [v])
        half = ir.Constant(mathlib.F32, 0.5)
        return b.fadd(b.fmul(t, s, flags=mathlib.CONTRACT), b.fmul(b.fmul(half, v, flags=mathlib.CONTRACT), v,
                                                                   flags=mathlib.CONTRACT), flags=mathlib.CONTRACT)

    x = rng.standard_normal(size).astype(np.float32)
    fused, plain = build(elementwise), build(lambda b, v: v)
    expected = float(np.sum(np.tanh(x.astype(np.float64)) / (1 + np.exp(-x.astype(np.float64)))
                            + 0.5 * x.astype(np.float64) ** 2))
    assert abs(fused(x.ctypes.data, size) - expected) <= 1e-3 * abs(expected)
    rows = [("sum(x) (memory bound)", _median_time(lambda: plain(x.ctypes.data, size), repeats)),
            ("sum(tanh(x)*sigmoid(x) + 0.5*x**2), one kernel", _median_time(lambda: fused(x.ctypes.data, size),
                                                                            repeats))]
    with np.errstate(all="ignore"):
        rows.append(("the same in NumPy", _median_time(
            lambda: np.sum(np.tanh(x) * (1 / (1 + np.exp(-x))) + 0.5 * x ** 2), repeats)))
    return [(label, t / size * 1e9) for label, t in rows]


# --------------------------------------------------------------------------------------------------------- main
def _fmt_err(value: float, dtype) -> str:
    return f"{value:.2f}" if dtype == np.float32 else f"{value:.1e}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1_000_000,
                        help="random bit patterns, and as many dense values, per function and type")
    parser.add_argument("--size", type=int, default=1_000_000, help="array length for the throughput")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="these functions only")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--exhaustive", action="store_true",
                        help="instead: every float32 input of the one-argument functions (minutes each; erf skipped, "
                             "math.erf is too slow a reference)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    names = args.only or list(mathlib.NAMES)
    if args.exhaustive:
        print("| function | max error vs NumPy, all 2^32 float32 inputs | at | special mismatches |")
        print("|---|---|---|---|")
        for name in names:
            if name not in ("pow", "erf"):
                result = exhaustive(name, Kernel(name, np.float32))
                print(f"| {name} | {result['max']:.2f} ulp | {result['at']!r} | {result['special']} |", flush=True)
        return 0
    failed = []
    print(f"{args.samples} random bit patterns + {args.samples} dense values + special values per function"
          f" and type; throughput on {args.size} elements (median ns/element)\n")
    print("| function | type | max error vs NumPy | vs true value | NumPy's vs true value | special mismatches "
          "| worst argument | ns/elem | NumPy ns/elem |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for dtype in (np.float32, np.float64):
            kernel = Kernel(name, dtype)
            acc = accuracy(name, dtype, kernel, args.samples, rng)
            ours, theirs = (float("nan"),) * 2 if args.no_speed else throughput(name, dtype, kernel, args.size, rng)
            unit = " ulp" if dtype == np.float32 else ""
            ok = acc["max"] <= BOUND[dtype] and acc["special"] == 0
            if not ok:
                failed.append(f"{name} {dtype.__name__}")
            at = ", ".join(f"{float(v):.9g}" for v in acc["at"])
            np_note = "*" if name in ("sigmoid", "erf") else ""
            print(f"| {name} | {dtype.__name__} | {_fmt_err(acc['max'], dtype)}{unit}{'' if ok else ' **FAIL**'} "
                  f"| {_fmt_err(acc['true'], dtype)}{unit} | {_fmt_err(acc['numpy_true'], dtype)}{unit} "
                  f"| {acc['special']} | {at} | {ours:.2f} | "
                  f"{theirs:.2f}{np_note} |")
    print("\nBounds: float32 4 ulp, float64 1e-13. * NumPy has no sigmoid or erf: its column times "
          "1/(1+np.exp(-x)) and math.erf applied element by element.")
    if not args.no_speed:
        print("\nThe hottest benchmark loop, float32, 1e7 elements (ns/element, median):\n")
        print("| kernel | ns/elem |")
        print("|---|---|")
        for label, ns in fused_benchmark(10_000_000, rng):
            print(f"| {label} | {ns:.3f} |")
    if failed:
        print("\nOut of bounds: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
