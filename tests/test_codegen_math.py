"""codegen.mathlib against NumPy: every function, both float types, compiled as a loop kernel
out[i] = f(x[i]) through codegen.target and called on NumPy arrays.

Bounds (docs/math.md): float32 within 4 ulp of NumPy, float64 within 1e-13 relative error (|ref| counted
as the smallest normal when it is smaller, so n units of a subnormal count as n * 2^-52); NaN-ness,
infinities and signed zeros exactly as NumPy's."""

from __future__ import annotations

import ctypes
import functools
import math
import re

import numpy as np
import pytest
from llvmlite import binding as llvm
from llvmlite import ir

from codegen import mathlib
from codegen.target import assembly, compile_module

DTYPES = [np.float32, np.float64]
UNARY = [name for name in mathlib.NAMES if name != "pow"]
BOUND = {np.float32: 4.0, np.float64: 1e-13}
LD = np.longdouble
RANDOM = 100_000          # random bit patterns, and as many values from the dense ranges, per function and type


# ------------------------------------------------------------------------------------------------------ harness
@functools.cache
def kernel(name: str, dtype):
    """The compiled loop for name and dtype: (callable on arrays, optimised module)."""
    engine, module = compile_module(mathlib.kernel_ir(name, mathlib.F32 if dtype == np.float32 else mathlib.F64))
    arity = 2 if name == "pow" else 1
    fn = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * (arity + 1), ctypes.c_int64)(engine.address("kernel"))

    def run(*xs: np.ndarray) -> np.ndarray:
        xs = [np.ascontiguousarray(x, dtype=dtype) for x in xs]
        out = np.empty_like(xs[0])
        fn(out.ctypes.data, *[x.ctypes.data for x in xs], out.size)
        return out

    run.engine = engine     # keeps the machine code alive with the function
    return run, module


_erf = np.frompyfunc(math.erf, 1, 1)


def reference(name: str, *xs: np.ndarray) -> np.ndarray:
    dtype = xs[0].dtype.type
    with np.errstate(all="ignore"):
        if name == "sigmoid":       # NumPy's 1/(1+exp(-x)), evaluated stably in a wider type
            wide = xs[0].astype(np.float64 if dtype == np.float32 else LD)
            ex = np.exp(-np.abs(wide))
            return np.where(wide >= 0, 1 / (1 + ex), ex / (1 + ex)).astype(dtype)
        if name == "erf":
            return _erf(xs[0].astype(np.float64)).astype(np.float64).astype(dtype)
        return {"atan": np.arctan, "pow": np.power}.get(name, getattr(np, name, None))(*xs)


def errors(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """ulps (float32) or relative error (float64) where both are finite, else 0."""
    finite = np.isfinite(got) & np.isfinite(ref)
    g, r = np.where(finite, got, 0).astype(LD), np.where(finite, ref, 0).astype(LD)
    if got.dtype == np.float32:
        unit = np.exp2(np.floor(np.log2(np.maximum(np.abs(r), LD(2.0 ** -126)))) - 23)
        return (np.abs(g - r) / unit).astype(np.float64)
    return (np.abs(g - r) / np.maximum(np.abs(r), LD(2.0 ** -1022))).astype(np.float64)


def check(name: str, xs: list[np.ndarray], got: np.ndarray, ref: np.ndarray) -> None:
    """Special values exactly as NumPy's, and the error bound elsewhere; the message names the worst inputs."""
    dtype = got.dtype.type
    where = lambda i: ", ".join(repr(x[i]) for x in xs) + f" -> {got[i]!r}, NumPy {ref[i]!r}"
    nan = np.isnan(got) != np.isnan(ref)
    assert not nan.any(), f"{name} NaN-ness differs at {where(np.argmax(nan))}"
    inf = (np.isinf(got) | np.isinf(ref)) & ~np.isnan(ref) & (got != ref)
    assert not inf.any(), f"{name} infinity differs at {where(np.argmax(inf))}"
    zero = (got == 0) & (ref == 0) & (np.signbit(got) != np.signbit(ref))
    assert not zero.any(), f"{name} sign of zero differs at {where(np.argmax(zero))}"
    err = errors(got, ref)
    worst = int(np.argmax(err))
    assert err[worst] <= BOUND[dtype], f"{name} {dtype.__name__} error {err[worst]:.3g} at {where(worst)}"


# ------------------------------------------------------------------------------------------------------- inputs
def around(values, dtype, steps: int = 2) -> np.ndarray:
    """values and their negatives in dtype, with `steps` neighbours on either side."""
    with np.errstate(over="ignore"):
        v = np.concatenate([np.asarray(values, np.float64), -np.asarray(values, np.float64)]).astype(dtype)
        out, up, down = [v], v, v
        for _ in range(steps):
            up, down = np.nextafter(up, dtype(np.inf)), np.nextafter(down, dtype(-np.inf))
            out += [up, down]
    return np.concatenate(out)


@functools.cache
def special_values(dtype) -> np.ndarray:
    fi = np.finfo(dtype)
    tiny, sub = float(fi.tiny), float(fi.smallest_subnormal)
    points = [0.0, sub, 5 * sub, tiny / 2, tiny, 1.0, 0.5, 2.0, float(fi.max), float(fi.eps), 1e-20, 1e20,
              # overflow, smallest normal / subnormal results, and where results round to 0, -1 or 1
              88.72283935546875, 89.41598, 709.782712893384, 710.4758600739439, -87.33654, -103.278929,
              -103.972077, -708.3964185322641, -744.4400719213812, -745.1332191019411, -17.328679,
              -37.42994775023705, 9.010913, 19.061547465398498, 16.635532, 36.7368005696771, 3.9192059,
              5.921587195794507, 2.0 ** 24, 2.0 ** 53, 1e30, 1e300,
              # method switch points
              0.5493, 0.25, 1.5, 2.0 ** -12, 2.0 ** -26, 0.41421356237309503, 2.414213562373095, 0.7071067811865476]
    points += [k * math.log(2) / 2 for k in range(1, 2100, 3)]                  # 0.5 ln2 multiples
    points += [k * math.pi / 2 for k in range(1, 400)] + [2.0 ** j * math.pi for j in range(10, 1020, 9)]
    points += [6381956970095103 * 2.0 ** 797, 16367173 * 2.0 ** 72, 10741887 * 2.0 ** 11]   # nearest to k pi/2
    values = around(points, dtype)
    return np.concatenate([values, np.array([np.inf, -np.inf, np.nan], dtype=dtype)])


DENSE = {"exp": (-110, 90), "expm1": (-20, 90), "log": (0, 10), "log1p": (-1, 10), "tanh": (-12, 12),
         "sigmoid": (-110, 30), "sin": (-100, 100), "cos": (-100, 100), "tan": (-100, 100), "sinh": (-90, 90),
         "cosh": (-90, 90), "atan": (-20, 20), "sqrt": (0, 100), "erf": (-6, 6)}


def random_values(name: str, dtype, seed: int) -> np.ndarray:
    """Random bit patterns (every exponent equally likely) and values spread over the function's range."""
    rng = np.random.default_rng(seed)
    utype = np.uint32 if dtype == np.float32 else np.uint64
    bits = rng.integers(0, np.iinfo(utype).max, RANDOM, dtype=utype, endpoint=True).view(dtype)
    lo, hi = DENSE[name]
    return np.concatenate([bits[np.isfinite(bits)], rng.uniform(lo, hi, RANDOM).astype(dtype)])


# -------------------------------------------------------------------------------------------------------- tests
def test_interface():
    assert set(mathlib.NAMES) == {"exp", "expm1", "log", "log1p", "tanh", "sigmoid", "sin", "cos", "tan", "sinh",
                                  "cosh", "atan", "pow", "sqrt", "erf"}
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [mathlib.F32, mathlib.F64]), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    for ty, arg in ((mathlib.F32, fn.args[0]), (mathlib.F64, fn.args[1])):
        assert mathlib.call(b, "exp", [arg]).type == ty
    with pytest.raises(TypeError):
        mathlib.call(b, "pow", [fn.args[0]])
    with pytest.raises(TypeError):
        mathlib.call(b, "pow", [fn.args[0], fn.args[1]])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", UNARY)
def test_special_values(name, dtype):
    run, _ = kernel(name, dtype)
    x = special_values(dtype)
    check(name, [x], run(x), reference(name, x))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", UNARY)
def test_random_values(name, dtype):
    run, _ = kernel(name, dtype)
    x = random_values(name, dtype, seed=UNARY.index(name))
    check(name, [x], run(x), reference(name, x))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_pow(dtype):
    run, _ = kernel("pow", dtype)
    rng = np.random.default_rng(99)
    fi = np.finfo(dtype)
    grid = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 1.5, -2.5, 10.0, 1e-3, 1e6,
                     float(fi.smallest_subnormal), -float(fi.smallest_subnormal), float(fi.tiny), float(fi.max),
                     -float(fi.max), 2.0 ** 24 + 2, 2.0 ** 53, 2.0 ** 60 + 1, 1 + float(fi.eps), np.inf, -np.inf,
                     np.nan], dtype=dtype)
    gx, gy = (a.ravel() for a in np.meshgrid(grid, grid))
    utype = np.uint32 if dtype == np.float32 else np.uint64
    n = 30_000
    top = 1100.0 if dtype == np.float64 else 150.0
    base = rng.uniform(0.5, 2.0, n)
    xs = [gx, rng.integers(0, np.iinfo(utype).max, n, dtype=utype).view(dtype), rng.uniform(0, 10, n),
          -rng.uniform(0, 10, n), 1 + rng.uniform(-1e-3, 1e-3, n), base]
    ys = [gy, rng.integers(0, np.iinfo(utype).max, n, dtype=utype).view(dtype), rng.uniform(-40, 40, n),
          np.round(rng.uniform(-60, 60, n)), rng.uniform(-1e5, 1e5, n),
          rng.uniform(-1, 1, n) * top / np.abs(np.log2(base)).clip(1e-3)]
    with np.errstate(over="ignore", invalid="ignore"):
        x, y = np.concatenate(xs).astype(dtype), np.concatenate(ys).astype(dtype)
    check("pow", [x, y], run(x, y), reference("pow", x, y))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_pow_ieee_cases(dtype):
    """C99 Annex F, as np.power gives it, spelled out."""
    run, _ = kernel("pow", dtype)
    inf, nan = np.inf, np.nan
    cases = [(nan, 0.0, 1.0), (nan, -0.0, 1.0), (1.0, nan, 1.0), (1.0, inf, 1.0), (-1.0, inf, 1.0),
             (-1.0, -inf, 1.0), (-2.0, 0.5, nan), (-2.0, 3.0, -8.0), (-2.0, 2.0, 4.0), (-2.0, -1.0, -0.5),
             (0.0, -1.0, inf), (-0.0, -1.0, -inf), (-0.0, -2.0, inf), (-0.0, 3.0, -0.0), (-0.0, 0.5, 0.0),
             (0.0, -inf, inf), (0.0, inf, 0.0), (0.5, inf, 0.0), (0.5, -inf, inf), (2.0, inf, inf),
             (2.0, -inf, 0.0), (-inf, 3.0, -inf), (-inf, 2.0, inf), (-inf, -3.0, -0.0), (-inf, -2.0, 0.0),
             (-inf, 0.5, inf), (inf, -0.5, 0.0), (inf, 0.5, inf), (nan, 1.0, nan), (2.0, nan, nan)]
    x, y, want = (np.array(column, dtype=dtype) for column in zip(*cases))
    got = run(x, y)
    np.testing.assert_array_equal(got, want)
    assert (np.signbit(got) == np.signbit(want))[want == 0].all()


def test_zeros_and_nan():
    """f(+-0) with its sign and NaN in, NaN out, for every function and type, spelled out."""
    odd = {"expm1", "log1p", "tanh", "sin", "tan", "sinh", "atan", "erf", "sqrt"}
    for dtype in DTYPES:
        for name in UNARY:
            run, _ = kernel(name, dtype)
            got = run(np.array([0.0, -0.0, np.nan], dtype=dtype))
            assert np.isnan(got[2]), name
            if name in odd:
                assert got[0] == 0 and not np.signbit(got[0]) and got[1] == 0 and np.signbit(got[1]), name


@pytest.mark.parametrize("name", ["exp", "tanh"])
def test_float32_loop_is_vectorised(name):
    """FMAs on packed floats in the widest registers the CPU has (512-bit zmm here), and no call anywhere."""
    features = llvm.get_host_cpu_features().flatten()
    if "+fma" not in features:
        pytest.skip("no FMA on this CPU")
    register = "zmm" if "+avx512f" in features else "ymm"
    _, module = kernel(name, np.float32)
    asm = assembly(module)
    assert re.search(rf"vfn?m(add|sub)\d+ps\s.*%{register}", asm), asm
    assert not re.search(r"^\s*call", asm, re.MULTILINE), asm


def test_ir_policy():
    """Only the allowed intrinsics, no other calls, no fast-math flag but contract, no branches."""
    allowed = {"llvm.fma", "llvm.fabs", "llvm.copysign", "llvm.floor", "llvm.rint", "llvm.trunc", "llvm.sqrt"}
    forbidden = re.compile(r"\b(nnan|ninf|nsz|arcp|afn|reassoc|fast)\b")
    for ty in (mathlib.F32, mathlib.F64):
        for name in mathlib.NAMES:
            module = ir.Module()
            fn = ir.Function(module, ir.FunctionType(ty, [ty] * (2 if name == "pow" else 1)), "f")
            b = ir.IRBuilder(fn.append_basic_block())
            b.ret(mathlib.call(b, name, list(fn.args)))
            text = str(module)
            callees = {m.rsplit(".", 1)[0] for m in re.findall(r"call \w+ @\"?([\w.]+)", text)}
            assert callees <= allowed, (name, callees - allowed)
            assert not forbidden.search(text), name
            assert len(fn.blocks) == 1 and " br " not in text, name
