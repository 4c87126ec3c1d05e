"""The llvm backend against the reference interpreter.

Every primitive is compiled alone (a hand-built graph whose equations each
become a kernel of their own) and inside small fused programs, and its
results are compared with ``ir.evaluate`` on the same inputs: 0-d to 4-d
shapes, size-0 and size-1 dimensions, every dtype the primitive takes, and
the values where implementations part ways (NaN, +-inf, +-0, the extreme
integers, out-of-range conversions and indices). Then the compiled versions
of whole programs: random fused chains, row kernels, matmul epilogues,
derivatives of first and second order. Inputs may be strided, reversed,
Fortran-ordered or misaligned, and are never written.

Compiling costs tens of milliseconds per program, so each test compiles one
program holding many cases (one output per case) and the per-primitive tests
share it through a cache.

Tolerances: integers and bools exactly; floats to rtol 1e-12 (float64) or
1e-5 (float32), NaN where the interpreter has NaN, infinities exactly, and the
sign of a zero wherever the operation is exact (the library functions of the
two backends may round differently, so not for them). Sums get an absolute
tolerance scaled by the sum of the magnitudes they add.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

import ir
import tracegrad as tg
import tracegrad.numpy as tnp
from codegen.runtime import Executable
from ir import GraphBuilder, Literal, ShapedType
from ir.passes.pipeline import optimize
from ir.primitives import REGISTRY

F32, F64, I32, I64, BOOL = (np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64, np.bool_))
FLOATS = (F32, F64)
INTS = (I32, I64)
DTYPES = (F32, F64, I32, I64, BOOL)
RTOL = {F32: 1e-5, F64: 1e-12}
KIND = {F32: "f", F64: "f", I32: "i", I64: "i", BOOL: "b"}


def short(dtype) -> str:
    return {F32: "f32", F64: "f64", I32: "i32", I64: "i64", BOOL: "bool"}[np.dtype(dtype)]


# ------------------------------------------------------------ comparing values
def assert_close(got, want, what: str = "", rtol: float | None = None, atol=0.0, signed_zeros: bool = False) -> None:
    """``got`` is the interpreter's ``want``: dtype and shape, then exact values
    for ints and bools; for floats NaN in the same places, the same infinities
    and the finite values within ``rtol`` (plus ``atol``, a scalar or an array
    of per-element allowances); with ``signed_zeros`` a zero has the
    interpreter's sign."""
    got, want = np.asarray(got), np.asarray(want)
    assert (got.dtype, got.shape) == (want.dtype, want.shape), \
        f"{what}: got {got.dtype}{list(got.shape)}, the interpreter gives {want.dtype}{list(want.shape)}"
    if want.dtype.kind != "f":
        if not np.array_equal(got, want):
            bad = np.flatnonzero((got != want).reshape(-1))
            raise AssertionError(f"{what}: {bad.size} of {want.size} differ, first at flat index {bad[:5]}: "
                                 f"got {got.reshape(-1)[bad[:5]]}, want {want.reshape(-1)[bad[:5]]}")
        return
    rtol = RTOL[want.dtype] if rtol is None else rtol
    g, w = got.astype(np.float64).reshape(-1), want.astype(np.float64).reshape(-1)
    allowance = np.broadcast_to(np.asarray(atol, np.float64), want.shape).reshape(-1)
    nan_g, nan_w = np.isnan(g), np.isnan(w)
    bad = (nan_g != nan_w)
    inf_w = np.isinf(w)
    bad |= inf_w & (g != w)
    finite = ~nan_w & ~inf_w
    with np.errstate(invalid="ignore"):
        bad |= finite & ~(np.abs(g - w) <= rtol * np.abs(w) + allowance)
    if signed_zeros:
        bad |= (w == 0) & (g == 0) & (np.signbit(g) != np.signbit(w))
    if bad.any():
        idx = np.flatnonzero(bad)
        raise AssertionError(f"{what}: {idx.size} of {w.size} differ (rtol {rtol:g}), first at flat index {idx[:5]}: "
                             f"got {got.reshape(-1)[idx[:5]]!r}, want {want.reshape(-1)[idx[:5]]!r}")


def test_assert_close_checks_nans_infinities_and_signed_zeros():
    assert_close(np.array([np.nan, np.inf, 1.0]), np.array([np.nan, np.inf, 1.0 + 1e-13]))
    for got, want in (([np.nan], [1.0]), ([1.0], [np.nan]), ([np.inf], [-np.inf]), ([1e308], [np.inf]),
                      ([1.0], [1.0 + 1e-9])):
        with pytest.raises(AssertionError):
            assert_close(np.array(got), np.array(want))
    assert_close(np.array([0.0]), np.array([-0.0]))
    with pytest.raises(AssertionError, match="differ"):
        assert_close(np.array([0.0]), np.array([-0.0]), signed_zeros=True)
    with pytest.raises(AssertionError, match="float32"):
        assert_close(np.zeros(2, F64), np.zeros(2, F32))


# --------------------------------------------------------------- input values
def float_specials(dtype) -> np.ndarray:
    """The values where float implementations part ways."""
    info = np.finfo(dtype)
    big = 100.0 if dtype == F32 else 750.0  # exp overflows, exp of the negative underflows
    return np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.0, -7.25,
                     info.max, -info.max, info.tiny, -info.tiny, info.smallest_subnormal, big, -big, 1e-7, 0.7853981,
                     20.0, -20.0, 1e6], dtype)


def int_specials(dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.array([info.min, info.min + 1, info.max, -7, -3, -2, -1, 0, 1, 2, 3, 7, 100], dtype)


def values(dtype, shape, seed, kind: str = "special") -> np.ndarray:
    """Data of ``shape``: the special values first (``kind="special"``), then
    random ones (normal for floats, small for integers, so ties are common)."""
    dtype = np.dtype(dtype)
    r = np.random.default_rng([seed, len(shape), *shape, DTYPES.index(dtype)])
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == BOOL:
        return r.random(shape) < 0.5
    if dtype.kind == "i":
        flat = r.integers(-9, 10, size=n).astype(dtype)
        specials = int_specials(dtype)
    else:
        flat = (r.standard_normal(n) * 2.0).astype(dtype)
        specials = float_specials(dtype)
    if kind == "special":
        k = min(n, specials.size)
        flat[:k] = specials[:k] if n >= specials.size or n == 0 else r.choice(specials, k)
    return flat.reshape(shape)


def pairs(dtype) -> tuple[np.ndarray, np.ndarray]:
    """Every special value against every other: two 1-d arrays, the Cartesian product."""
    s = float_specials(dtype) if KIND[dtype] == "f" else int_specials(dtype) if KIND[dtype] == "i" \
        else np.array([False, True])
    x, y = np.meshgrid(s, s, indexing="ij")
    return x.reshape(-1).copy(), y.reshape(-1).copy()


# ---------------------------------------------------------------- a program
class Program:
    """A hand-built graph of many labelled cases (one output each), compiled
    once, run natively and on the interpreter. ``fused=True`` compiles the
    graph after the whole pass pipeline instead (fused kernels)."""

    def __init__(self, name: str):
        self.b = GraphBuilder(hash_cons=False)
        self.name = name
        self.inputs: list = []
        self.args: list[np.ndarray] = []
        self.labels: list[str] = []
        self.outputs: list = []
        self.atol: dict[str, np.ndarray] = {}  # label -> absolute tolerance (per element) of a sum

    def input(self, value: np.ndarray):
        value = np.asarray(value)
        v = self.b.new_input(ShapedType(value.shape, value.dtype))
        self.inputs.append(v)
        self.args.append(value)
        return v

    def out(self, label: str, value, atol=0.0) -> None:
        assert label not in self.labels, label
        self.labels.append(label)
        self.outputs.append(value)
        if np.any(atol):
            self.atol[label] = atol

    @functools.cached_property
    def graph(self):
        return ir.verify(self.b.build(self.inputs, self.outputs, self.name))

    def run(self, fused: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """label -> (compiled result, interpreter result); the inputs must come back unchanged."""
        graph = optimize(self.graph).fused if fused else self.graph
        before = [a.copy() for a in self.args]
        want = ir.evaluate(self.graph, self.args)
        got, status = Executable(graph)(list(self.args))
        assert status == 0
        for a, b in zip(self.args, before):
            np.testing.assert_array_equal(a, b, err_msg=f"{self.name}: an input was written")
        return dict(zip(self.labels, zip(got, want)))

    def primitives(self) -> set[str]:
        return {e.prim.name for e in self.graph.walk_eqns()}


def check_all(program: Program, results: dict, signed_zeros=lambda label: False, rtol=None) -> None:
    """Every case of a program, each failure listed with its label."""
    failures = []
    for lab, (got, want) in results.items():
        try:
            assert_close(got, want, f"{program.name}: {lab}", rtol=rtol, atol=program.atol.get(lab, 0.0),
                         signed_zeros=signed_zeros(lab))
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, f"{len(failures)} of {len(results)} cases differ:\n" + "\n".join(failures)


@functools.cache
def run(program: Program, fused: bool = False) -> dict:
    """A program's results, compiled once per session."""
    return program.run(fused)


def label(prim: str, **params) -> str:
    return prim + ("[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]" if params else "")


# ------------------------------------------------------- elementwise, unary
UNARY = [  # (primitive, params, the dtype kinds it takes)
    ("neg", {}, "fi"), ("exp", {}, "f"), ("log", {}, "f"), ("log1p", {}, "f"), ("expm1", {}, "f"),
    ("sin", {}, "f"), ("cos", {}, "f"), ("tan", {}, "f"), ("tanh", {}, "f"), ("sinh", {}, "f"), ("cosh", {}, "f"),
    ("atan", {}, "f"), ("sqrt", {}, "f"), ("abs", {}, "fi"), ("sign", {}, "fi"), ("floor", {}, "f"),
    ("ceil", {}, "f"), ("round", {}, "f"), ("is_finite", {}, "f"), ("not", {}, "ib"), ("stop_gradient", {}, "fib"),
    *[("integer_pow", {"y": y}, "fi") for y in (0, 1, 2, 3, 7)],
    *[("integer_pow", {"y": y}, "f") for y in (-1, -2, -3)],
]
# Every unary case runs on these shapes; the special values fill the 77-element one (with a vector tail).
UNARY_SHAPES = [(), (0,), (1,), (77,)]
# A few cases also on these (higher rank, size-0 and size-1 dimensions), to keep the compile time down.
RANK_SHAPES = [(2, 3, 4, 5), (3, 0, 2), (1, 1, 1), (2, 1, 33)]
RANK_UNARY = {"neg", "exp", "round", "abs", "not", "is_finite", "stop_gradient"}


@functools.cache
def unary_program(dtype, shape) -> Program:
    p = Program(f"unary_{short(dtype)}_{'x'.join(map(str, shape))}")
    x = p.input(values(dtype, shape, 1))
    for prim, params, kinds in UNARY:
        if KIND[dtype] in kinds and (shape in UNARY_SHAPES or (prim in RANK_UNARY and params.get("y", 3) == 3)):
            p.out(label(prim, **params), p.b.bind1(prim, x, **params))
    return p


def unary_cases():
    for prim, params, kinds in UNARY:
        for dtype in DTYPES:
            if KIND[dtype] in kinds:
                yield pytest.param(prim, params, dtype, id=f"{label(prim, **params)}-{short(dtype)}")


LIBRARY = {"exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sinh", "cosh", "atan", "pow"}
# The sign of a zero these give is pinned by tests of its own (below), not by the table's.
OWN_ZERO_TESTS = {"sign", "max", "min"}


@pytest.mark.parametrize("prim, params, dtype", list(unary_cases()))
def test_unary_primitive_matches_the_interpreter(prim, params, dtype):
    """Alone in its kernel, on special values and on every rank; exact for everything
    but the library functions (whose last bit may differ), signed zeros included."""
    lab = label(prim, **params)
    for shape in UNARY_SHAPES + RANK_SHAPES:
        program = unary_program(dtype, shape)
        if lab in program.labels:
            got, want = run(program)[lab]
            assert_close(got, want, f"{lab} on {short(dtype)}{list(shape)}", rtol=None if prim in LIBRARY else 0,
                         signed_zeros=prim not in OWN_ZERO_TESTS)


# ------------------------------------------------------ elementwise, binary
BINARY = [("add", "fib"), ("sub", "fi"), ("mul", "fib"), ("div", "f"), ("pow", "fi"), ("max", "fib"), ("min", "fib"),
          ("floor_divide", "fi"), ("remainder", "fi"), ("and", "ib"), ("or", "ib"), ("xor", "ib"), ("eq", "fib"),
          ("ne", "fib"), ("lt", "fib"), ("le", "fib"), ("gt", "fib"), ("ge", "fib")]


def _literal(dtype, which: str) -> Literal:
    """A special scalar written into the graph: -0.0 and -2.5 for floats, -1
    and 0 (a zero divisor) for integers."""
    table = {"f": {"left": -0.0, "right": -2.5}, "i": {"left": -1, "right": 0}, "b": {"left": True, "right": False}}
    return Literal(table[KIND[dtype]][which], dtype)


# How the two operands are given: both arrays (every special value against every other), one of them 0-d (an
# input on the right, a literal on either side, broadcast by the primitive), both 0-d, rank 4, size 0.
BINARY_LAYOUTS = ["pairs", "x_0d", "x_literal", "literal_y", "both_0d", "rank4", "size0"]


@functools.cache
def binary_program(dtype, layout: str) -> Program:
    p = Program(f"binary_{short(dtype)}_{layout}")
    if layout == "pairs":
        xv, yv = pairs(dtype)
    else:
        shape = {"rank4": (2, 3, 1, 5), "size0": (0, 3), "both_0d": ()}.get(layout, (77,))
        xv, yv = values(dtype, shape, 2), values(dtype, shape, 3)
    if layout == "x_0d":  # -7.25 for floats (NumPy computes x ** 0.5 as sqrt(x), so sqrt(-0.0) = -0.0 and
        # sqrt(-inf) = NaN, when 0.5 is a 0-d exponent, but as C99's pow otherwise), a zero divisor for integers
        yv = yv[13 if KIND[dtype] == "f" else 7]
    x = _literal(dtype, "left") if layout == "literal_y" else p.input(np.asarray(xv))
    y = _literal(dtype, "right") if layout == "x_literal" else p.input(np.asarray(yv))
    for prim, kinds in BINARY:
        if KIND[dtype] not in kinds:
            continue
        if prim == "pow" and KIND[dtype] == "i":  # integers to negative powers raise: a separate test
            exponent = y
            if isinstance(y, Literal):
                exponent = Literal(abs(int(y.value)), dtype)
            else:
                exponent = p.input((np.abs(np.asarray(yv).astype(np.int64)) % 67).astype(dtype))
            p.out(prim, p.b.bind1(prim, x, exponent))
        else:
            p.out(prim, p.b.bind1(prim, x, y))
    return p


def table_cases(table):
    """(primitive, dtype) for every dtype of a (primitive, kinds) table."""
    for prim, kinds in table:
        for dtype in DTYPES:
            if KIND[dtype] in kinds:
                yield pytest.param(prim, dtype, id=f"{prim}-{short(dtype)}")


@pytest.mark.parametrize("prim, dtype", list(table_cases(BINARY)))
def test_binary_primitive_matches_the_interpreter(prim, dtype):
    """Every special value against every other (integer division and remainder
    by zero, the minimum integer by -1, NaN and infinite operands), 0-d and
    literal operands on either side, rank 4 and size 0."""
    for layout in BINARY_LAYOUTS:
        got, want = run(binary_program(dtype, layout))[prim]
        assert_close(got, want, f"{prim} on {short(dtype)} ({layout})", rtol=None if prim in LIBRARY else 0,
                     signed_zeros=prim not in OWN_ZERO_TESTS)


@pytest.mark.parametrize("dtype", FLOATS, ids=short)
def test_sign_of_negative_zero_is_positive_zero_as_numpy(dtype):
    """np.sign(-0.0) is +0.0 (NumPy's sign is 0 for either zero); 1 / sign(x) tells them apart."""
    got, want = run(unary_program(dtype, (77,)))["sign"]
    assert_close(got, want, f"sign on {short(dtype)}", rtol=0, signed_zeros=True)


@pytest.mark.parametrize("dtype", FLOATS, ids=short)
def test_maximum_and_minimum_of_opposite_zeros_give_numpys_zero(dtype):
    """NumPy's maximum(0.0, -0.0) is -0.0 and minimum(-0.0, 0.0) is 0.0 (the
    second operand when the two compare equal), and the interpreter inherits it."""
    for prim in ("max", "min"):
        got, want = run(binary_program(dtype, "pairs"))[prim]
        assert_close(got, want, f"{prim} on {short(dtype)}", rtol=0, signed_zeros=True)


@pytest.mark.parametrize("dtype", FLOATS, ids=short)
def test_x_to_the_power_one_half_is_numpys_square_root(dtype):
    """NumPy computes ``x ** 0.5`` with a scalar exponent as sqrt(x): (-inf) ** 0.5 is NaN and
    (-0.0) ** 0.5 is -0.0 (C99's pow gives +inf and +0.0, which NumPy keeps for array exponents)."""
    x = np.array([-np.inf, -0.0, 0.0, np.inf, np.nan, -2.0, 2.0, 1e-30], dtype)
    for fn in (lambda a: a ** 0.5, lambda a: tnp.power(a, 0.5)):
        want = tg.jit(fn, backend="interpret")(x)
        assert np.isnan(want[0]) and want[1] == 0 and np.signbit(want[1])
        assert_close(tg.jit(fn)(x), want, "x ** 0.5", signed_zeros=True)


# ------------------------------------------------------ select and convert
@functools.cache
def select_program(dtype) -> Program:
    """Predicates of every kind against values of every kind; 0-d predicate, literal and 0-d branches."""
    p = Program(f"select_{short(dtype)}")
    n = 77
    pred = p.input(values(BOOL, (n,), 4))
    t, f = p.input(values(dtype, (n,), 5)), p.input(values(dtype, (n,), 6)[::-1].copy())
    b = p.b
    p.out("arrays", b.select(pred, t, f))
    p.out("0d predicate", b.select(p.input(np.array(True)), t, f))
    p.out("literal on_true", b.select(pred, _literal(dtype, "left"), f))
    p.out("0d on_false", b.select(pred, t, p.input(values(dtype, (), 7))))
    p.out("all 0d", b.select(p.input(np.array(False)), p.input(values(dtype, (), 8)), _literal(dtype, "right")))
    p.out("rank 3", b.select(p.input(values(BOOL, (2, 1, 3), 9)), p.input(values(dtype, (2, 1, 3), 10)),
                             p.input(values(dtype, (2, 1, 3), 11))))
    p.out("size 0", b.select(p.input(np.zeros((0, 2), bool)), p.input(values(dtype, (0, 2), 1)),
                             p.input(values(dtype, (0, 2), 2))))
    return p


@pytest.mark.parametrize("dtype", DTYPES, ids=short)
def test_select_matches_the_interpreter_bit_for_bit(dtype):
    program = select_program(dtype)
    check_all(program, run(program), signed_zeros=lambda _: True, rtol=0)


def conversion_sources(dtype) -> np.ndarray:
    """Special values plus the edges of every integer range: NaN, infinities and
    values just inside and just outside int32 and int64."""
    v = values(dtype, (77,), 12)
    if KIND[dtype] == "f":
        edges = np.array([2.0 ** 31, -2.0 ** 31, 2.0 ** 31 - 1, 2.0 ** 31 - 0.5, -2.0 ** 31 - 0.5, -2.0 ** 31 + 0.5,
                          2.0 ** 63, -2.0 ** 63, 2.0 ** 62, 1e20, -1e20, 4e9, -4e9, 0.9, -0.9, -1.5, 1e-30], np.float64)
        if dtype == F32:
            edges = edges[(np.abs(edges) < 3e38)]
        v[-edges.size:] = edges.astype(dtype)
    return v


@functools.cache
def convert_program(src) -> Program:
    p = Program(f"convert_from_{short(src)}")
    x = p.input(conversion_sources(src))
    x4 = p.input(values(src, (2, 3, 1, 4), 13))
    for dst in DTYPES:
        p.out(short(dst), p.b.convert_element_type(x, dtype=dst))
        p.out(f"{short(dst)} rank 4", p.b.convert_element_type(x4, dtype=dst))
    p.out("literal", p.b.convert_element_type(Literal(-2.5 if KIND[src] == "f" else -3, src), dtype=I32))
    return p


@pytest.mark.parametrize("src", DTYPES, ids=short)
def test_convert_element_type_matches_the_interpreter(src):
    """To every dtype, from special values: NaN, infinities and out-of-range
    floats become the minimum integer as NumPy's on x86, NaN is True, -0.0 stays."""
    program = convert_program(src)
    check_all(program, run(program), signed_zeros=lambda _: True, rtol=0)


# --------------------------------------------------------------- reductions
REDUCTIONS = [("reduce_sum", "fi"), ("reduce_prod", "fi"), ("reduce_max", "fib"), ("reduce_min", "fib")]
REDUCTION_SHAPES = [(3, 4, 5), (2, 0, 3), (2, 3, 1, 4), (), (1,), (37,)]


def reduction_data(dtype, shape, seed) -> np.ndarray:
    """Random data; for floats a few NaNs and infinities (one slice holds +inf
    and -inf), and -0.0, so some results are NaN or infinite and most are not."""
    x = values(dtype, shape, seed, kind="random")
    if KIND[dtype] == "f" and x.ndim >= 3 and x.size >= 30:
        x.reshape(-1)[[7, 17, 29, 26, 0]] = np.nan, np.inf, -np.inf, np.inf, -0.0
    return x


def _subsets(ndim: int):
    return [c for k in range(ndim + 1) for c in itertools.combinations(range(ndim), k)]


@functools.cache
def reduction_program(dtype, shape) -> Program:
    """Every reduction over every subset of the axes (the ones with no identity skip size-0 axes; on
    rank 4 only the sum and the maximum)."""
    p = Program(f"reduce_{short(dtype)}_{'x'.join(map(str, shape))}")
    data = reduction_data(dtype, shape, 14)
    x = p.input(data)
    for prim, kinds in REDUCTIONS:
        if KIND[dtype] not in kinds:
            continue
        if len(shape) == 4 and prim in ("reduce_prod", "reduce_min"):
            continue  # rank 4 for two of the four, to keep the compile time down
        for axes in _subsets(len(shape)):
            if prim in ("reduce_max", "reduce_min") and any(shape[a] == 0 for a in axes):
                continue
            atol = 0.0
            if KIND[dtype] == "f" and axes:
                n = int(np.prod([shape[a] for a in axes]))
                with np.errstate(all="ignore"):
                    magnitude = np.sum(np.abs(data), axis=axes) if prim == "reduce_sum" else \
                        n * np.abs(np.prod(data, axis=axes)) if prim == "reduce_prod" else 0.0
                atol = 4 * RTOL[dtype] * np.nan_to_num(magnitude, posinf=0.0)
            p.out(label(prim, axes=axes), p.b.bind1(prim, x, axes=axes), atol)
    return p


@pytest.mark.parametrize("prim, dtype", list(table_cases(REDUCTIONS)))
def test_reduction_over_every_axis_subset_matches_the_interpreter(prim, dtype):
    """0-d to 4-d, size-0 and size-1 axes; the empty axis set too. Integers
    exactly (wrapping alike); float sums to a tolerance scaled by the sum of magnitudes."""
    failures = []
    for shape in REDUCTION_SHAPES:
        program = reduction_program(dtype, shape)
        for lab, (got, want) in run(program).items():
            if lab.startswith(prim + "["):
                try:
                    assert_close(got, want, f"{lab} on {short(dtype)}{list(shape)}", atol=program.atol.get(lab, 0.0))
                except AssertionError as e:
                    failures.append(str(e))
    assert not failures, "\n".join(failures)


def arg_data(dtype, shape, seed) -> np.ndarray:
    """Few distinct values, so ties are everywhere; NaNs in some rows of floats."""
    r = np.random.default_rng(seed)
    if dtype == BOOL:
        return r.random(shape) < 0.3
    x = r.integers(-2, 3, size=shape).astype(dtype)
    if KIND[dtype] == "f" and x.size > 4:
        flat = x.reshape(-1)
        flat[r.choice(flat.size, max(1, flat.size // 9), replace=False)] = np.nan
        flat[1] = np.inf
        flat[2] = -np.inf
    return x


ARG_SHAPES = [(3, 4, 5), (1,), (7,), (2, 1, 3), (0, 3)]


@functools.cache
def arg_program(dtype) -> Program:
    p = Program(f"arg_{short(dtype)}")
    for shape in ARG_SHAPES:
        x = p.input(arg_data(dtype, shape, len(shape) + shape[0]))
        for axis, n in enumerate(shape):
            if n == 0:
                continue
            for prim in ("argmax", "argmin"):
                for index_dtype in INTS:
                    p.out(f"{label(prim, axis=axis, index_dtype=short(index_dtype))} of {list(shape)}",
                          p.b.bind1(prim, x, axis=axis, index_dtype=index_dtype))
    return p


@pytest.mark.parametrize("dtype", DTYPES, ids=short)
def test_argmax_and_argmin_take_the_first_extreme_or_the_first_nan(dtype):
    program = arg_program(dtype)
    check_all(program, run(program))


# ------------------------------------------------- moving data: shape primitives
def _indices(dtype, values_) -> np.ndarray:
    return np.asarray(values_, dtype)


@functools.cache
def shape_program(dtype) -> Program:
    """Every data-movement primitive, several configurations each (the label says which)."""
    p = Program(f"shape_{short(dtype)}")
    b = p.b
    v = lambda shape, seed: p.input(values(dtype, shape, seed, kind="random"))

    # broadcast_in_dim: size-1 axes stretched, new axes anywhere, from 0-d, to a size-0 axis
    p.out("broadcast_in_dim (3,1,4)->(5,3,2,4)", b.broadcast_in_dim(v((3, 1, 4), 1), shape=(5, 3, 2, 4),
                                                                   broadcast_dimensions=(1, 2, 3)))
    p.out("broadcast_in_dim ()->(2,3)", b.broadcast_in_dim(v((), 2), shape=(2, 3), broadcast_dimensions=()))
    p.out("broadcast_in_dim (4,)->(4,3)", b.broadcast_in_dim(v((4,), 3), shape=(4, 3), broadcast_dimensions=(0,)))
    p.out("broadcast_in_dim (1,)->(0,2)", b.broadcast_in_dim(v((1,), 4), shape=(0, 2), broadcast_dimensions=(0,)))
    p.out("broadcast_in_dim literal", b.broadcast_in_dim(_literal(dtype, "left"), shape=(3, 2),
                                                         broadcast_dimensions=()))

    # reshape: regrouping axes (not only unit axes coming or going), to and from 0-d, size 0
    x234 = v((2, 3, 4), 5)
    for to in ((4, 6), (3, 8), (24,), (2, 12), (4, 3, 2), (1, 6, 1, 4), (2, 3, 4, 1)):
        p.out(f"reshape (2,3,4)->{to}", b.reshape(x234, new_sizes=to))
    p.out("reshape (6,4)->(4,2,3)", b.reshape(v((6, 4), 6), new_sizes=(4, 2, 3)))
    p.out("reshape (1,1,1)->()", b.reshape(v((1, 1, 1), 7), new_sizes=()))
    p.out("reshape ()->(1,1)", b.reshape(v((), 8), new_sizes=(1, 1)))
    p.out("reshape (0,3)->(3,0,1)", b.reshape(v((0, 3), 9), new_sizes=(3, 0, 1)))
    p.out("reshape (5,1)->(1,5)", b.reshape(v((5, 1), 10), new_sizes=(1, 5)))

    # transpose
    x4 = v((2, 3, 4, 5), 11)
    for perm in ((3, 1, 0, 2), (0, 1, 3, 2), (3, 2, 1, 0)):
        p.out(f"transpose {perm}", b.transpose(x4, permutation=perm))
    p.out("transpose (1,0)", b.transpose(v((7, 3), 12), permutation=(1, 0)))
    p.out("transpose (2,0,1) with unit axis", b.transpose(v((3, 1, 2), 13), permutation=(2, 0, 1)))

    # slice and rev
    x79 = v((7, 9), 14)
    p.out("slice strided", b.slice(x79, start_indices=(1, 2), limit_indices=(7, 9), strides=(2, 3)))
    p.out("slice tail", b.slice(x79, start_indices=(6, 8), limit_indices=(7, 9), strides=(1, 1)))
    p.out("slice empty", b.slice(x79, start_indices=(3, 4), limit_indices=(3, 9), strides=(1, 2)))
    p.out("slice 3-d", b.slice(x234, start_indices=(1, 0, 1), limit_indices=(2, 3, 4), strides=(1, 2, 2)))
    p.out("rev (0,2)", b.rev(x234, dimensions=(0, 2)))
    p.out("rev all", b.rev(x79, dimensions=(0, 1)))
    p.out("rev 0-d", b.rev(v((), 15), dimensions=()))

    # concatenate, with size-0 parts
    p.out("concatenate with a size-0 part", b.concatenate(v((2, 3), 16), v((0, 3), 17), v((4, 3), 18), dimension=0))
    p.out("concatenate dim 1", b.concatenate(v((2, 1), 19), v((2, 3), 20), dimension=1))
    p.out("concatenate one part", b.concatenate(v((3,), 21), dimension=0))
    p.out("concatenate size-0 first and last", b.concatenate(v((2, 0), 22), v((2, 2), 23), v((2, 0), 24),
                                                             dimension=1))

    # pad: low, high and interior padding; a traced or a literal padding value; a size-0 operand
    value = v((), 27)
    p.out("pad interior", b.pad(v((3, 4), 28), value, padding_config=((1, 2, 1), (0, 0, 2))))
    p.out("pad ends", b.pad(v((3, 4), 29), _literal(dtype, "left"), padding_config=((0, 0, 0), (2, 1, 0))))
    p.out("pad 1-d interior 3", b.pad(v((5,), 30), value, padding_config=((0, 1, 3),)))
    p.out("pad a size-0 operand", b.pad(v((0,), 31), value, padding_config=((2, 1, 5),)))
    p.out("pad 3-d", b.pad(x234, value, padding_config=((0, 1, 0), (1, 0, 1), (2, 2, 0))))
    p.out("pad 0-d", b.pad(v((), 32), value, padding_config=()))

    # gather and scatter_add: out-of-range indices are clamped, repeats accumulate
    x54 = v((5, 4), 33)
    idx = p.input(_indices(I32, [-3, 0, 4, 5, 100, 2]))
    p.out("gather clamped", b.gather(x54, idx))
    i0 = p.input(_indices(I64, [[0, 4, 9], [-1, 2, 2]]))
    i1 = p.input(_indices(I64, [[3, 0, -7], [1, 1, 5]]))
    x543 = v((5, 4, 3), 34)
    p.out("gather two index arrays", b.gather(x543, i0, i1))
    p.out("gather no indices", b.gather(x54, p.input(np.zeros((0,), np.int32))))
    p.out("gather 0-d index", b.gather(x54, p.input(np.array(7, np.int64))))
    p.out("scatter_add clamped and repeated", b.scatter_add(x54, v((6, 4), 35), idx))
    p.out("scatter_add two index arrays", b.scatter_add(x543, v((2, 3, 3), 36), i0, i1))
    p.out("scatter_add no updates", b.scatter_add(x54, v((0, 4), 37), p.input(np.zeros((0,), np.int64))))

    # iota and constant
    if dtype != BOOL:
        p.out("iota dim 1", b.iota(dtype=dtype, shape=(3, 4), dimension=1))
        p.out("iota dim 0", b.iota(dtype=dtype, shape=(5,), dimension=0))
        p.out("iota in arithmetic", b.add(b.iota(dtype=dtype, shape=(2, 3), dimension=0), v((2, 3), 38)))
    const = values(dtype, (3, 4), 39)
    p.out("constant returned", b.constant(const))
    p.out("constant in arithmetic", b.mul(b.constant(const), v((3, 4), 40)))
    return p


@pytest.mark.parametrize("dtype", DTYPES, ids=short)
def test_data_movement_primitives_match_the_interpreter_bit_for_bit(dtype):
    program = shape_program(dtype)
    check_all(program, run(program), signed_zeros=lambda _: True, rtol=0)


@functools.cache
def empty_concatenate_program(dtype) -> Program:
    p = Program(f"empty_concatenate_{short(dtype)}")
    x, y = p.input(values(dtype, (0, 2), 1)), p.input(values(dtype, (0, 2), 2))
    p.out("concatenate of size-0 parts", p.b.concatenate(x, y, dimension=0))
    p.out("concatenate of size-0 parts, doubled", p.b.add(p.b.concatenate(x, y, dimension=0),
                                                          p.b.concatenate(y, x, dimension=0)))
    return p


@pytest.mark.parametrize("dtype", [F32, I64], ids=short)
def test_concatenate_of_only_size_0_parts_compiles_to_an_empty_result(dtype):
    """Every part empty along the joined axis: the result is empty too, and its
    (never executed) loop body must still be generated."""
    program = empty_concatenate_program(dtype)
    check_all(program, run(program), rtol=0)


# -------------------------------------------------------------- dot_general
DOTS = [  # (label, lhs shape, rhs shape, dimension_numbers)
    ("matmul", (4, 5), (5, 3), (((1,), (0,)), ((), ()))),
    ("lhs transposed", (5, 4), (5, 3), (((0,), (0,)), ((), ()))),
    ("rhs transposed", (4, 5), (3, 5), (((1,), (1,)), ((), ()))),
    ("vector dot", (7,), (7,), (((0,), (0,)), ((), ()))),
    ("matrix-vector", (4, 5), (5,), (((1,), (0,)), ((), ()))),
    ("batched", (2, 4, 5), (2, 5, 3), (((2,), (1,)), ((0,), (0,)))),
    ("batch axis in the middle", (4, 2, 5), (5, 2, 3), (((2,), (0,)), ((1,), (1,)))),
    ("two contracting axes", (3, 4, 5), (4, 5, 2), (((1, 2), (0, 1)), ((), ()))),
    ("outer product", (3,), (4,), (((), ()), ((), ()))),
    ("size-0 contraction", (3, 0), (0, 2), (((1,), (0,)), ((), ()))),
    ("size-0 rows", (0, 4), (4, 3), (((1,), (0,)), ((), ()))),
    ("unit axes", (1, 6), (6, 1), (((1,), (0,)), ((), ()))),
    ("odd sizes", (13, 37), (37, 11), (((1,), (0,)), ((), ()))),
]


@functools.cache
def dot_program(dtype) -> Program:
    p = Program(f"dot_{short(dtype)}")
    impl = REGISTRY["dot_general"].impl
    for i, (lab, ls, rs, dn) in enumerate(DOTS):
        a, c = values(dtype, ls, 40 + i, kind="random"), values(dtype, rs, 60 + i, kind="random")
        atol = 0.0
        if KIND[dtype] == "f":
            k = int(np.prod([ls[d] for d in dn[0][0]]))
            atol = 2 * (k + 2) * np.finfo(dtype).eps * impl(np.abs(a).astype(F64), np.abs(c).astype(F64),
                                                             dimension_numbers=dn)[0]
        p.out(lab, p.b.dot_general(p.input(a), p.input(c), dimension_numbers=dn), atol)
    return p


@pytest.mark.parametrize("dtype", DTYPES, ids=short)
def test_dot_general_matches_the_interpreter(dtype):
    """Every arrangement of batch, contracting and free axes; an empty
    contraction is zeros; bools are or-of-ands; integers wrap alike."""
    program = dot_program(dtype)
    check_all(program, run(program), rtol=0)


# ------------------------------------------------- the call primitives
@tg.custom_vjp
def sin_with_clipped_gradient(x):
    return tnp.sin(x) * 2.0


sin_with_clipped_gradient.defvjp(lambda x: (sin_with_clipped_gradient(x), tnp.cos(x)),
                                 lambda cos_x, g: (tnp.clip(g * cos_x * 2.0, -1.0, 1.0),))


@tg.custom_jvp
def softplus(x):
    return tnp.log1p(tnp.exp(x))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), t / (1.0 + tnp.exp(-x))


def calls(x, w):
    """A checkpoint (closing over w, and holding a nested checkpoint), a custom_vjp and a custom_jvp function."""
    h = tg.checkpoint(lambda u: tnp.tanh(u @ w) * 2.0 + tg.checkpoint(tnp.exp)(u[:, :1]))(x)
    return tnp.sum(softplus(sin_with_clipped_gradient(h)) * x[:, 1:2])


def call_args(dtype):
    r = np.random.default_rng(70)
    return r.standard_normal((6, 4)).astype(dtype), r.standard_normal((4, 3)).astype(dtype)


@functools.cache
def call_graph(dtype):
    return tg.make_ir(calls)(*call_args(dtype))


@pytest.mark.parametrize("dtype", FLOATS, ids=short)
def test_call_primitives_run_their_bodies_compiled(dtype):
    """checkpoint, custom_vjp_call and custom_jvp_call, compiled as traced (the
    runtime inlines their bodies) and through jit, with their derivatives."""
    graph, args = call_graph(dtype), call_args(dtype)
    assert {"checkpoint", "custom_vjp_call", "custom_jvp_call"} <= {e.prim.name for e in graph.eqns}
    (got,), _ = Executable(graph)(list(args))
    assert_close(got, ir.evaluate(graph, args)[0], "the traced program")
    assert_close(tg.jit(calls)(*args), tg.jit(calls, backend="interpret")(*args), "under jit")
    grad = tg.grad(calls, argnums=(0, 1))
    for got, want, what in zip(tg.jit(grad)(*args), tg.jit(grad, backend="interpret")(*args), ("dx", "dw")):
        assert_close(got, want, what)


# ------------------------------------------- every primitive in small fused programs
@functools.cache
def chain_program(dtype) -> Program:
    """Each elementwise primitive on operands that reach it through index maps
    (a transpose, a broadcast, a reversal), its result both returned through a
    select and reduced along each axis: run after fusion, each such chain is
    one kernel with several stages."""
    p = Program(f"chains_{short(dtype)}")
    b = p.b
    zt = p.input(np.ascontiguousarray(values(dtype, (4, 33), 80).T))  # (33, 4): x, transposed in memory
    y = p.input(values(dtype, (33,), 81)[::-1].copy())
    pred = b.broadcast_in_dim(p.input(values(BOOL, (33,), 82)), shape=(4, 33), broadcast_dimensions=(1,))
    x = b.transpose(zt, permutation=(1, 0))
    yb = b.broadcast_in_dim(y, shape=(4, 33), broadcast_dimensions=(1,))

    def chain(lab: str, u) -> None:
        p.out(f"{lab}: select", b.select(pred, u, b.rev(u, dimensions=(1,))))
        if len(p.labels) % 4 == 1:
            p.out(f"{lab}: max over rows", b.reduce_max(u, axes=(1,)))
        else:
            p.out(f"{lab}: min over columns", b.reduce_min(u, axes=(0,)))

    # The library functions are long straight-line code, each copy costly to compile; their lowering is the
    # same in any kernel, so two of them stand for the rest here.
    for prim, params, kinds in UNARY:
        if KIND[dtype] in kinds and (prim not in LIBRARY or prim in ("exp", "tanh")):
            chain(label(prim, **params), b.bind1(prim, x, **params))
    for prim, kinds in BINARY:
        if KIND[dtype] in kinds and prim != "pow":
            chain(prim, b.bind1(prim, x, yb))
    for dst in DTYPES:
        chain(f"convert to {short(dst)}", b.convert_element_type(b.add(x, yb), dtype=dst))
    return p


CHAIN_DTYPES = (F32, I64, BOOL)  # one of each kind: a kernel's structure does not depend on the width


@pytest.mark.parametrize("dtype", CHAIN_DTYPES, ids=short)
def test_every_elementwise_primitive_fused_into_a_chain_matches_the_interpreter(dtype):
    program = chain_program(dtype)
    fused = optimize(program.graph).fused
    assert "fused" in {e.prim.name for e in fused.eqns}
    results = run(program, fused=True)
    check_all(program, results, rtol=None)


# ------------------------------------------------------------------ coverage
def every_program() -> list[Program]:
    """Every hand-built program of the tests above (built, not compiled)."""
    programs = [unary_program(dt, shape) for dt in DTYPES for shape in UNARY_SHAPES + RANK_SHAPES]
    programs += [binary_program(dt, layout) for dt in DTYPES for layout in BINARY_LAYOUTS]
    programs += [reduction_program(dt, shape) for dt in DTYPES for shape in REDUCTION_SHAPES]
    for build in (select_program, convert_program, arg_program, shape_program, dot_program,
                  empty_concatenate_program):
        programs += [build(dt) for dt in DTYPES]
    programs += [chain_program(dt) for dt in CHAIN_DTYPES]
    return programs


def test_the_tests_cover_every_primitive_in_the_registry():
    """A primitive added to the registry fails here until a test compiles it:
    the hand-built programs hold every primitive but the call family, whose
    members come from tracing (checkpoint, custom_vjp, custom_jvp), the
    control-flow family, compiled by tests/test_codegen_control.py, and
    ``fused``, which the fusion pass makes of the chain programs."""
    covered = set().union(*(p.primitives() for p in every_program()))
    covered |= {e.prim.name for e in call_graph(F32).walk_eqns()}
    covered |= {e.prim.name for e in optimize(chain_program(F32).graph).fused.eqns}
    covered |= {"cond", "while", "scan"}  # compiled by tests/test_codegen_control.py, on traced programs
    assert covered == set(REGISTRY), f"not compiled by any test: {sorted(set(REGISTRY) - covered)}"
    table: dict[str, str] = {}
    for prim, kinds in [(p, k) for p, _, k in UNARY] + BINARY + REDUCTIONS:
        table[prim] = table.get(prim, "") + kinds
    for prim, kinds in table.items():  # ... and on every dtype it takes
        taken = {dt for dt in DTYPES if KIND[dt] in kinds}
        for dt in DTYPES:
            try:
                REGISTRY[prim].shape_rule(ShapedType((2,), dt), *([ShapedType((2,), dt)] * (prim in dict(BINARY))),
                                          **({"axes": (0,)} if prim.startswith("reduce") else
                                             {"y": 2} if prim == "integer_pow" else {}))
                accepted = True
            except (TypeError, ValueError):
                accepted = False
            assert accepted == (dt in taken), f"{prim} on {short(dt)}: the table's kinds disagree with its shape rule"


# ------------------------------------------------- non-contiguous inputs
def layouts(a: np.ndarray) -> dict[str, np.ndarray]:
    """The same values as ``a`` held in every awkward way: strided, reversed,
    transposed (Fortran order), misaligned in a byte buffer, read-only, broadcast."""
    out = {}
    buf = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    buf[..., ::2] = a
    out["every other element"] = buf[..., ::2]
    out["reversed"] = np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
    out["Fortran order"] = np.asfortranarray(a)
    out["transposed view"] = np.ascontiguousarray(a.T).T
    raw = np.zeros(a.nbytes + 1, np.uint8)
    misaligned = np.frombuffer(raw[1:].data, a.dtype, a.size).reshape(a.shape)
    misaligned[...] = a
    out["misaligned"] = misaligned
    readonly = a.copy()
    readonly.flags.writeable = False
    out["read-only"] = readonly
    out["broadcast row"] = np.broadcast_to(a[:1], a.shape) if (a[:1] == a).all() else a.copy()
    return out


def _awkward(x, w, y):
    return tnp.sum(tnp.tanh(x @ w) * 2.0, axis=0) + tnp.max(y, axis=1), x.T * 3.0, tnp.exp(y[::-1]) - x[:, :1]


@pytest.mark.parametrize("dtype", FLOATS, ids=short)
def test_strided_reversed_fortran_and_misaligned_inputs_give_the_contiguous_results_and_are_not_written(dtype):
    r = np.random.default_rng(90)
    x, w, y = (r.standard_normal(s).astype(dtype) for s in ((6, 5), (5, 6), (6, 6)))
    jf = tg.jit(_awkward)
    want = jf(x, w, y)
    assert not any(np.shares_memory(out, a) for out in want for a in (x, w, y))
    cases = {name: (v, w, y) for name, v in layouts(x).items()}
    cases.update({f"w {name}": (x, v, y) for name, v in layouts(w).items()})
    cases.update({f"y {name}": (x, w, v) for name, v in layouts(y).items()})
    cases["all reversed"] = tuple(np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1] for a in (x, w, y))
    assert jf.cache_info().misses == 1
    for name, args in cases.items():
        assert not all(a.flags.c_contiguous and a.flags.aligned and a.flags.writeable for a in args) or \
            name.endswith("broadcast row")
        before = [a.copy() for a in args]
        got = jf(*args)
        for g, wnt in zip(got, want):
            assert_close(g, wnt, name, rtol=0)  # the same program on the same values: the same bits
        for a, b in zip(args, before):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: an input was written")
    assert jf.cache_info().misses == 1, "a layout is not part of the signature"
    interpreted = tg.jit(_awkward, backend="interpret")(*cases["all reversed"])
    for g, wnt in zip(want, interpreted):
        assert_close(g, wnt, "against the interpreter", atol=RTOL[np.dtype(dtype)] * 10)


# ----------------------------------------------------------- fused programs
# Well-conditioned steps only: an error of one rounding in an operand stays about one rounding in the result
# (relative to the magnitudes involved), so the tolerance can be tight. (op name, arity, function)
STEPS = [
    ("tanh", 1, tnp.tanh), ("abs", 1, tnp.abs), ("neg", 1, tnp.negative), ("square", 1, tnp.square),
    ("exp(tanh)", 1, lambda a: tnp.exp(tnp.tanh(a))), ("log(|a|+1)", 1, lambda a: tnp.log(tnp.abs(a) + 1.0)),
    ("sin", 1, lambda a: tnp.sin(tnp.tanh(a) * 3.0)), ("relu", 1, lambda a: tnp.maximum(a, 0.0)),
    ("half", 1, lambda a: a * 0.5), ("reverse", 1, lambda a: a[::-1] if tnp.ndim(a) else a),
    ("roll", 1, lambda a: tnp.concatenate([a[1:], a[:1]]) if tnp.ndim(a) and tnp.shape(a)[0] > 1 else a),
    ("add", 2, tnp.add), ("sub", 2, tnp.subtract), ("mul", 2, tnp.multiply), ("max", 2, tnp.maximum),
    ("min", 2, tnp.minimum), ("where", 2, lambda a, b: tnp.where(a > b, a, b * 2.0)),
    ("div", 2, lambda a, b: a / (tnp.abs(b) + 1.0)),
]
UNIVERSES = [(7,), (4, 9), (3, 1, 17), (2, 3, 4, 5), (5, 0, 3), (1, 33), (6, 2, 1, 3), ()]


class RandomChain:
    """A seeded random program: 5 to 15 steps over 1 to 3 inputs whose shapes
    broadcast against one universe shape (suffixes of it, some axes 1), then a
    sum or mean over random axes. Returns the elementwise result and the reduction."""

    def __init__(self, seed: int):
        r = self.r = np.random.RandomState(seed)
        self.seed = seed
        self.dtype = FLOATS[seed % 2]
        universe = UNIVERSES[r.randint(len(UNIVERSES))]
        self.shapes = []
        for i in range(r.randint(1, 4)):
            shape = [d if (i == 0 or r.rand() < 0.6) else 1 for d in universe]
            self.shapes.append(tuple(shape[(0 if i == 0 else r.randint(0, len(shape) + 1)):]))
        self.steps = [(STEPS[r.randint(len(STEPS))], [int(r.randint(100)) for _ in range(2)])
                      for _ in range(r.randint(5, 16))]
        self.op = "sum" if r.rand() < 0.5 else "mean"
        nd = len(universe)
        self.axes = tuple(a for a in range(nd) if r.rand() < 0.5) if nd else ()
        if r.rand() < 0.2:
            self.axes = None
        if self.op == "mean" and any(universe[a] == 0 for a in (range(nd) if self.axes is None else self.axes)):
            self.op = "sum"  # a mean over nothing is 0/0
        self.keepdims = bool(r.rand() < 0.3)

    def __repr__(self) -> str:
        return (f"RandomChain({self.seed}: {short(self.dtype)} inputs {self.shapes}, "
                + ", ".join(s[0] for s, _ in self.steps) + f", {self.op}(axis={self.axes}))")

    def __call__(self, *inputs):
        pool = list(inputs)
        for (name, arity, fn), picks in self.steps:
            pool.append(fn(*[pool[-1 if k == 0 else p % len(pool)] for k, p in enumerate(picks[:arity])]))
        out = pool[-1]
        for x in pool[:-1]:  # every input reaches the result
            out = out + x * 0.25
        reduce = tnp.sum if self.op == "sum" else tnp.mean
        return out, reduce(out, axis=self.axes, keepdims=self.keepdims)

    def args(self) -> list[np.ndarray]:
        r = np.random.RandomState([self.seed, 1])
        out = [np.asarray(r.standard_normal(s) * 1.5, self.dtype) for s in self.shapes]
        if self.seed % 5 == 0 and out[0].size > 2:
            out[0].reshape(-1)[1] = np.nan  # NaN travels through the chain and the reduction
        return out


def chain_tolerance(chain: RandomChain, args) -> tuple[np.ndarray, np.ndarray]:
    """Absolute tolerances for the two results: a few roundings of the largest
    magnitude any step produced at that element, and for the reduction their
    sum over the reduced elements."""
    rtol = RTOL[chain.dtype]
    values_ = []

    def keep(fn):
        def wrapped(*a):
            v = fn(*a)
            values_.append(np.asarray(v))
            return v
        return wrapped

    with np.errstate(all="ignore"):
        shadow = RandomChain(chain.seed)
        shadow.steps = [((n, k, keep(f)), p) for (n, k, f), p in chain.steps]
        out, _ = shadow(*[a.astype(F64) for a in args])
        big = np.zeros(np.shape(out))
        for v in values_ + [a.astype(F64) for a in args]:
            big = np.maximum(big, np.nan_to_num(np.abs(np.broadcast_to(v, np.shape(out))), posinf=0.0))
        elementwise = 4 * rtol * big
        reduced = np.sum(elementwise + rtol * np.abs(np.nan_to_num(out)), axis=chain.axes, keepdims=chain.keepdims)
        if chain.op == "mean":
            reduced = reduced / max(1, np.size(out) // max(1, np.size(reduced)))
    return elementwise, reduced


CHAIN_SEEDS = range(36)


@pytest.mark.parametrize("seed", CHAIN_SEEDS)
def test_random_fused_chains_match_the_interpreter(seed):
    chain = RandomChain(seed)
    args = chain.args()
    jf = tg.jit(chain)
    want = tg.jit(chain, backend="interpret")(*args)
    got = jf(*args)
    for g, w, atol, what in zip(got, want, chain_tolerance(chain, args), ("elementwise", "reduced")):
        assert_close(g, w, f"{chain}: {what}", atol=atol)
    assert any(e.prim.name == "fused" for e in jf.lower(*args).compile().program.eqns)


def test_random_chains_cover_broadcasting_layouts_and_reductions():
    """The generator is worth its name: every step, both reductions, both dtypes,
    broadcasting inputs, size-0 and 0-d universes, NaN inputs."""
    chains = [RandomChain(s) for s in CHAIN_SEEDS]
    used = {s[0] for c in chains for s, _ in c.steps}
    assert used == {s[0] for s in STEPS}
    assert {c.op for c in chains} == {"sum", "mean"} and {c.dtype for c in chains} == set(FLOATS)
    assert any(len(set(c.shapes)) > 1 for c in chains)
    assert any(0 in c.shapes[0] for c in chains) and any(c.shapes[0] == () for c in chains)
    assert any(c.axes is None for c in chains) and any(c.keepdims for c in chains)
    assert all(5 <= len(c.steps) <= 15 for c in chains)


def kernel_kinds(jf, *args) -> list[str]:
    return [e.params["kind"] for e in jf.lower(*args).compile().program.eqns if e.prim.name == "fused"]


def softmax(x):
    e = tnp.exp(x - tnp.max(x, axis=-1, keepdims=True))
    return e / tnp.sum(e, axis=-1, keepdims=True)


def log_softmax(x):
    s = x - tnp.max(x, axis=-1, keepdims=True)
    return s - tnp.log(tnp.sum(tnp.exp(s), axis=-1, keepdims=True))


def logsumexp(x):
    m = tnp.max(x, axis=-1)
    return m + tnp.log(tnp.sum(tnp.exp(x - m[..., None]), axis=-1))


def cross_entropy(x, onehot):
    return -tnp.mean(tnp.sum(log_softmax(x) * onehot, axis=-1))


ROW_SHAPES = [(8, 33), (2, 3, 17), (1, 1), (5, 1), (64, 100)]


@pytest.mark.parametrize("dtype", FLOATS, ids=short)
@pytest.mark.parametrize("fn", [softmax, log_softmax, logsumexp], ids=lambda f: f.__name__)
def test_row_kernels_match_the_interpreter(fn, dtype):
    """Each row's max, exponentials, sum and normalisation in one loop over the
    rows; rows holding -inf, +inf or NaN give the interpreter's infinities and NaNs."""
    jf, ref = tg.jit(fn), tg.jit(fn, backend="interpret")
    for shape in ROW_SHAPES:
        x = values(dtype, shape, 91, kind="random") * 3
        if x.shape[0] >= 8:
            x[1, 0], x[2, :] = -np.inf, -np.inf  # a row with one -inf; a row of nothing but -inf
            x[3, 1], x[4, 2] = np.inf, np.nan
        want = ref(x)
        scale = 4 * RTOL[dtype] * (1.0 + np.nan_to_num(np.abs(x), posinf=0.0, neginf=0.0).max(axis=-1))
        assert_close(jf(x), want, f"{fn.__name__} on {list(shape)}",
                     atol=scale if fn is logsumexp else scale[..., None])
    assert "row" in kernel_kinds(jf, np.ones((8, 33), dtype))


@pytest.mark.parametrize("dtype", FLOATS, ids=short)
def test_a_loss_accumulated_across_rows_matches_the_interpreter(dtype):
    """The mean over rows of a row-wise quantity: the row kernel accumulates across its loop."""
    r = np.random.default_rng(92)
    x = r.standard_normal((50, 10)).astype(dtype)
    onehot = np.eye(10, dtype=dtype)[r.integers(0, 10, 50)]
    got, want = tg.jit(cross_entropy)(x, onehot), tg.jit(cross_entropy, backend="interpret")(x, onehot)
    assert_close(got, want, "cross entropy", atol=8 * RTOL[dtype] * (1 + np.abs(x).max()))


def dense(x, w, b):
    return tnp.maximum(x @ w + b, 0.0)


@pytest.mark.parametrize("dtype", FLOATS, ids=short)
def test_matmul_with_bias_and_relu_epilogue_matches_the_interpreter(dtype):
    r = np.random.default_rng(93)
    cases = {
        "row bias": ((33, 17), (17, 9), (9,)),
        "column bias": ((33, 17), (17, 9), (33, 1)),
        "batched": ((3, 5, 7), (7, 4), (4,)),
        "vector": ((17,), (17, 9), (9,)),
        "large": ((130, 70), (70, 65), (65,)),
    }
    jf, ref = tg.jit(dense), tg.jit(dense, backend="interpret")
    for name, shapes in cases.items():
        x, w, b = (r.standard_normal(s).astype(dtype) for s in shapes)
        atol = 2 * (x.shape[-1] + 2) * np.finfo(dtype).eps * ((np.abs(x) @ np.abs(w)) + np.abs(b))
        assert_close(jf(x, w, b), ref(x, w, b), name, atol=atol)
    x, w, b = (r.standard_normal(s).astype(dtype) for s in cases["row bias"])
    assert kernel_kinds(jf, x, w, b) == ["matmul"], "the bias and the relu are the matmul's epilogue"


def mlp_loss(params, x, onehot):
    (w1, b1), (w2, b2) = params
    h = tnp.tanh(x @ w1 + b1)
    return cross_entropy(h @ w2 + b2, onehot)


def mlp_args(dtype, batch=32, sizes=(20, 48, 10)):
    r = np.random.default_rng(94)
    params = [(r.standard_normal((m, n)).astype(dtype) / np.sqrt(m), r.standard_normal(n).astype(dtype) * 0.1)
              for m, n in itertools.pairwise(sizes)]
    x = r.standard_normal((batch, sizes[0])).astype(dtype)
    onehot = np.eye(sizes[-1], dtype=dtype)[r.integers(0, sizes[-1], batch)]
    return params, x, onehot


@pytest.mark.parametrize("dtype", FLOATS, ids=short)
def test_value_and_grad_of_an_mlp_loss_matches_the_interpreter(dtype):
    args = mlp_args(dtype)
    vg = tg.value_and_grad(mlp_loss)
    (loss, grads), (loss_ref, grads_ref) = tg.jit(vg)(*args), tg.jit(vg, backend="interpret")(*args)
    assert_close(loss, loss_ref, "loss", atol=16 * RTOL[dtype])
    for (g, gb), (w, wb), what in zip(grads, grads_ref, ("layer 1", "layer 2")):
        assert_close(g, w, f"{what} weights", atol=16 * RTOL[dtype] * np.abs(w).max())
        assert_close(gb, wb, f"{what} bias", atol=16 * RTOL[dtype] * np.abs(wb).max())


# ------------------------------------------------- derivatives, compiled
IDX = np.array([3, 0, 3, -1, 2])
GRAD_FUNCTIONS = {  # name -> (f(x, y), shapes of x and y)
    "tanh": (lambda x, y: tnp.sum(tnp.tanh(x * y) ** 2), ((4, 5), (5,))),
    "exp": (lambda x, y: tnp.sum(tnp.exp(tnp.tanh(x)) * y), ((4, 5), (4, 5))),
    "log": (lambda x, y: tnp.sum(tnp.log(x * x + y * y + 1.0)), ((6,), (6,))),
    "sqrt": (lambda x, y: tnp.sum(tnp.sqrt(x * x + 0.5) * y), ((3, 4), (3, 1))),
    "pow": (lambda x, y: tnp.sum((tnp.abs(x) + 0.5) ** tnp.tanh(y)), ((7,), (7,))),
    "max and min": (lambda x, y: tnp.sum(tnp.maximum(x, y) * tnp.minimum(x, 0.25)), ((4, 6), (4, 6))),
    "where": (lambda x, y: tnp.sum(tnp.where(x > y, x * x, -2.0 * y)), ((5, 5), (5,))),
    "reductions": (lambda x, y: tnp.sum(tnp.mean(x, axis=0) * tnp.max(y, axis=1)) + tnp.max(x), ((3, 4), (4, 6))),
    "matmul": (lambda x, y: tnp.sum(tnp.tanh(x @ y)), ((5, 7), (7, 3))),
    "indexing": (lambda x, y: tnp.sum(x[IDX] * y) + tnp.sum(x[1:3, ::2] ** 2), ((4, 5), (5,))),
    "concatenate": (lambda x, y: tnp.sum(tnp.concatenate([x, y * 2.0, x[:1]]) ** 2), ((3, 4), (2, 4))),
    "prod": (lambda x, y: tnp.sum(tnp.prod(x, axis=0) * y), ((4, 3), (3,))),
    "softmax": (lambda x, y: cross_entropy(x * 2.0, softmax(y)), ((6, 5), (6, 5))),
}


def grad_args(name: str, dtype):
    r = np.random.default_rng([95, len(name)])
    _, shapes = GRAD_FUNCTIONS[name]
    x, y = (r.standard_normal(s).astype(dtype) for s in shapes)
    if name == "max and min":  # ties share the derivative
        y[0] = x[0]
        x[1, :3] = 0.25
    if name == "reductions":
        y[1, 2] = y[1, 4] = y[1].max() + 1.0
    return x, y


def grad_cases():
    for name in GRAD_FUNCTIONS:
        for dtype in FLOATS:
            yield pytest.param(name, dtype, id=f"{name}-{short(dtype)}")


@pytest.mark.parametrize("name, dtype", list(grad_cases()))
def test_compiled_gradients_match_the_interpreters(name, dtype):
    f, _ = GRAD_FUNCTIONS[name]
    g = tg.grad(f, argnums=(0, 1))
    args = grad_args(name, dtype)
    got, want = tg.jit(g)(*args), tg.jit(g, backend="interpret")(*args)
    for a, b, what in zip(got, want, ("d/dx", "d/dy")):
        assert_close(a, b, f"{name} {what}", atol=8 * RTOL[dtype] * np.abs(b).max())


HESSIAN_FUNCTIONS = {
    "tanh of a product": lambda x: tnp.sum(tnp.tanh(x[:3] * x[1:]) ** 2),
    "log-sum-exp": lambda x: logsumexp(x * 2.0),
    "prod": lambda x: tnp.prod(x[:3]) + tnp.sum(tnp.sin(x) * x),
    "quadratic form": lambda x: x @ (tnp.reshape(tnp.arange(16.0), (4, 4)).astype(x.dtype) @ x),
}


@pytest.mark.parametrize("dtype", FLOATS, ids=short)
@pytest.mark.parametrize("name", list(HESSIAN_FUNCTIONS))
def test_compiled_hessians_match_the_interpreters(name, dtype):
    h = tg.hessian(HESSIAN_FUNCTIONS[name])
    x = np.random.default_rng(96).standard_normal(4).astype(dtype)
    want = tg.jit(h, backend="interpret")(x)
    assert_close(tg.jit(h)(x), want, name, atol=8 * RTOL[dtype] * np.abs(want).max())


# ------------------------------------------------------------- the results
CONST = np.arange(6.0).reshape(2, 3)


def _owned(value, *inputs) -> None:
    assert type(value) is np.ndarray, type(value)
    assert value.flags.owndata and value.flags.writeable and value.flags.c_contiguous
    for x in inputs:
        assert value is not x and not np.shares_memory(value, x)


@pytest.mark.parametrize("fn, n", [
    (lambda x: (x * 2.0, x * 2.0), 2),
    (lambda x: (tnp.tanh(x),) * 3, 3),
    (lambda x: x, 1),
    (lambda x: (x, x), 2),
    (lambda x: (x + 1.0, CONST, CONST), 3),
    (lambda x: (tnp.sum(x), 2.0, tnp.sum(x)), 3),
    (lambda x: {"a": x[0], "b": x.T}, 2),
], ids=["same value twice", "same value thrice", "an input", "an input twice", "a constant twice",
        "a literal and a 0-d value twice", "views of an input"])
def test_results_are_arrays_the_caller_owns_each_its_own_object(fn, n):
    x = np.arange(6.0).reshape(2, 3)
    jf = tg.jit(fn)
    out = jf(x)
    leaves = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, tuple) else [out]
    assert len(leaves) == n
    for leaf in leaves:
        _owned(leaf, x, CONST)
    assert len({id(leaf) for leaf in leaves}) == n and \
        not any(np.shares_memory(a, b) for a, b in itertools.combinations(leaves, 2))
    first = [leaf.copy() for leaf in leaves]
    for leaf in leaves:
        leaf[...] = -7.0  # scribbling on the results changes nothing for the next call
    again = jf(x)
    again = list(again.values()) if isinstance(again, dict) else list(again) if isinstance(again, tuple) else [again]
    for a, b in zip(again, first):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(CONST, np.arange(6.0).reshape(2, 3))


# --------------------------------------------------------- integer powers
def test_integers_to_negative_integer_powers_raise_like_numpy_compiled():
    x = np.array([2, 3, -1, 0], np.int32)
    power = tg.jit(lambda a, b: a ** b)
    with pytest.raises(ValueError) as numpy_error:
        x ** np.array([1, -1, 2, 3], np.int32)
    for y in (np.array([1, -1, 2, 3], np.int32), np.array([0, 0, 0, -2], np.int32)):
        with pytest.raises(ValueError, match="Integers to negative integer powers are not allowed"):
            power(x, y)
    assert str(numpy_error.value) == "Integers to negative integer powers are not allowed."
    with pytest.raises(ValueError, match="negative integer powers"):
        tg.jit(lambda a, b: a ** b)(np.int64(5), np.int64(-3))
    with pytest.raises(ValueError, match="negative integer powers"):  # even where the result is then discarded
        tg.jit(lambda a, b: tnp.where(b >= 0, a ** b, 0))(x, np.array([1, -1, 2, 3], np.int32))
    ok = np.array([3, 0, 31, 5], np.int32)
    np.testing.assert_array_equal(power(x, ok), x ** ok)  # and the program still works afterwards
    assert power(x, ok).dtype == np.int32


# ----------------------------------- fused programs: layouts and reductions inside kernels
FUSED_PROGRAMS = {  # name -> (function, input shapes and dtypes)
    "broadcast (3,1,4) with (5,4)": (lambda x, y: (x + y, x * y, tnp.maximum(x, y), tnp.where(x > y, x, y),
                                                   x < y), [((3, 1, 4), F64), ((5, 4), F64)]),
    "reshape of a transposed value, reduced": (
        lambda x: tnp.sum(tnp.reshape(tnp.tanh(x.T) * 2.0, (3, 2, 4, 5)), axis=(1, 3)), [((5, 8, 3), F32)]),
    "flatten then split": (lambda x: tnp.reshape(tnp.reshape(x * 3.0, (-1,))[::-1], (4, 6)) + 1.0,
                           [((2, 3, 4), F64)]),
    "centred over axis 0": (lambda x: x - tnp.mean(x, axis=0), [((7, 9), F64)]),
    "variance over each axis": (lambda x: (tnp.var(x, axis=0), tnp.var(x, axis=1), tnp.std(x)), [((6, 10), F64)]),
    "reductions of a broadcast": (lambda x, y: (tnp.sum(x + y, axis=0), tnp.max(x * y, axis=(0, 2))),
                                  [((4, 1, 3), F32), ((5, 3), F32)]),
    "any and all": (lambda x: (tnp.any(x > 1.0, axis=0), tnp.all(x > -2.0, axis=1), tnp.sum(x > 0, axis=1)),
                    [((8, 5), F32)]),
    "one-hot of an argmax": (lambda x: (tnp.argmax(x, axis=1)[:, None] == tnp.arange(6)) * x,
                             [((5, 6), F64)]),
    "integer arithmetic": (lambda a, b: (a // (tnp.abs(b) + 1) + a % 7, tnp.sum(a * b, axis=0), -a ^ b),
                           [((9, 4), I32), ((4,), I32)]),
    "int64 reductions": (lambda a: (tnp.prod(a, axis=1), tnp.min(a, axis=0), tnp.argmin(a, axis=0)),
                         [((5, 7), I64)]),
    "concatenate and slices": (lambda x: tnp.concatenate([x[::2], tnp.tanh(x[1::2]), x[:0]]) * 2.0,
                               [((7, 3), F32)]),
    "take along both ends": (lambda x: tnp.take(x, np.array([0, -1, 2, 2]), axis=0) + x[-1], [((4, 3), F64)]),
    "mixed dtypes": (lambda x, n: (x * n, (x > 0).astype(tnp.int32) + n, tnp.floor(x).astype(tnp.int64)),
                     [((3, 5), F32), ((5,), I32)]),
    "0-d and size-0": (lambda x, e: (tnp.sum(x) * 2.0, tnp.sum(e, axis=0), tnp.max(x) + tnp.sum(e)),
                       [((), F64), ((0, 3), F64)]),
}


@pytest.mark.parametrize("name", list(FUSED_PROGRAMS))
def test_fused_program_matches_the_interpreter(name):
    fn, specs = FUSED_PROGRAMS[name]
    args = [values(dt, shape, 97 + i, kind="random") for i, (shape, dt) in enumerate(specs)]
    got, want = tg.jit(fn)(*args), tg.jit(fn, backend="interpret")(*args)
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        scale = max([1.0] + [float(np.abs(a).max()) ** 2 for a in args if a.size and a.dtype.kind == "f"])
        assert_close(g, w, f"{name}: result {i}", atol=16 * RTOL.get(w.dtype, 0) * scale)
