"""Elementwise primitives: unary maths, binary arithmetic, comparisons, logic,
``select`` and dtype conversion.

All operands share one shape, except that a 0-d operand is broadcast; they
share one dtype (the front end promotes before it binds). Reference
implementations are the NumPy ufuncs of the same meaning.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError
from ..types import ShapedType
from .core import Primitive, check_kinds, check_same_dtype, elementwise_shape, register

FAMILY = "elementwise"


def _unary(name: str, fn, kinds: str, doc: str, out_dtype=None, differentiable: bool = True) -> Primitive:
    def shape_rule(x: ShapedType):
        check_kinds(name, x, kinds)
        return [ShapedType(x.shape, out_dtype or x.dtype)]

    return register(Primitive(name, shape_rule, lambda x: [fn(x)], FAMILY, doc, differentiable))


def _nary(name: str, fn, kinds: str, doc: str, out_dtype=None, differentiable: bool = True) -> Primitive:
    def shape_rule(*types: ShapedType):
        dt = check_same_dtype(name, types)
        for t in types:
            check_kinds(name, t, kinds)
        return [ShapedType(elementwise_shape(name, types), out_dtype or dt)]

    return register(Primitive(name, shape_rule, lambda *xs: [fn(*xs)], FAMILY, doc, differentiable))


# ----------------------------------------------------------------- unary maths
neg = _unary("neg", np.negative, "fi", "-x")
exp = _unary("exp", np.exp, "f", "e**x")
log = _unary("log", np.log, "f", "natural logarithm; -inf at 0, nan below")
log1p = _unary("log1p", np.log1p, "f", "log(1 + x), accurate near 0")
expm1 = _unary("expm1", np.expm1, "f", "e**x - 1, accurate near 0")
sin = _unary("sin", np.sin, "f", "sine (radians)")
cos = _unary("cos", np.cos, "f", "cosine (radians)")
tan = _unary("tan", np.tan, "f", "tangent (radians)")
tanh = _unary("tanh", np.tanh, "f", "hyperbolic tangent")
sinh = _unary("sinh", np.sinh, "f", "hyperbolic sine")
cosh = _unary("cosh", np.cosh, "f", "hyperbolic cosine")
atan = _unary("atan", np.arctan, "f", "inverse tangent, in (-pi/2, pi/2)")
sqrt = _unary("sqrt", np.sqrt, "f", "square root; nan below 0")
abs_ = _unary("abs", np.abs, "fi", "|x|")
sign = _unary("sign", np.sign, "fi", "-1, 0 or 1 (nan for nan); zero derivative", differentiable=False)
floor = _unary("floor", np.floor, "f", "round towards -inf; zero derivative", differentiable=False)
ceil = _unary("ceil", np.ceil, "f", "round towards +inf; zero derivative", differentiable=False)
round_ = _unary("round", np.round, "f", "round half to even, as NumPy; zero derivative", differentiable=False)
is_finite = _unary("is_finite", np.isfinite, "f", "true where x is neither inf nor nan", out_dtype=dtypes.bool_,
                   differentiable=False)
not_ = _unary("not", np.invert, "ib", "bitwise not of integers, logical not of bools", differentiable=False)


def _integer_pow_rule(x: ShapedType, *, y: int):
    check_kinds("integer_pow", x, "fi")
    if dtypes.is_int(x.dtype) and y < 0:
        raise DTypeError("integer_pow: integers to negative integer powers are not allowed")
    return [ShapedType(x.shape, x.dtype)]


def _integer_pow_impl(x, *, y: int):
    """Square-and-multiply, the way compiled code computes it, so that the
    oracle and the kernels round alike (x**3 is x*x*x, not libm's pow)."""
    result, base, n = None, x, abs(y)
    while n:
        if n & 1:
            result = base if result is None else result * base
        n >>= 1
        if n:
            base = base * base
    if result is None:
        result = np.ones_like(x)
    return [np.divide(np.ones_like(result), result) if y < 0 else np.asarray(result)]


integer_pow = register(Primitive("integer_pow", _integer_pow_rule, _integer_pow_impl, FAMILY,
                                 "x**y for a Python integer y fixed in the graph (x*x for y=2)"))

# ------------------------------------------------------------ binary arithmetic
add = _nary("add", np.add, "fib", "x + y (logical or on bool)")
sub = _nary("sub", np.subtract, "fi", "x - y")
mul = _nary("mul", np.multiply, "fib", "x * y (logical and on bool)")
div = _nary("div", np.divide, "f", "x / y, IEEE: x/0 is +-inf, 0/0 is nan")
pow_ = _nary("pow", np.power, "fi", "x**y elementwise")
max_ = _nary("max", np.maximum, "fib", "elementwise maximum; nan if either is nan")
min_ = _nary("min", np.minimum, "fib", "elementwise minimum; nan if either is nan")
floor_divide = _nary("floor_divide", np.floor_divide, "fi", "floor(x / y), as NumPy's // (x // 0 is 0 for integers)",
                     differentiable=False)
remainder = _nary("remainder", np.remainder, "fi", "x - floor(x / y) * y: the sign of y, as NumPy's %")
and_ = _nary("and", np.bitwise_and, "ib", "bitwise and of integers, logical and of bools", differentiable=False)
or_ = _nary("or", np.bitwise_or, "ib", "bitwise or of integers, logical or of bools", differentiable=False)
xor = _nary("xor", np.bitwise_xor, "ib", "bitwise xor of integers, logical xor of bools", differentiable=False)

# ------------------------------------------------------------------ comparisons
eq = _nary("eq", np.equal, "fib", "x == y", out_dtype=dtypes.bool_, differentiable=False)
ne = _nary("ne", np.not_equal, "fib", "x != y", out_dtype=dtypes.bool_, differentiable=False)
lt = _nary("lt", np.less, "fib", "x < y", out_dtype=dtypes.bool_, differentiable=False)
le = _nary("le", np.less_equal, "fib", "x <= y", out_dtype=dtypes.bool_, differentiable=False)
gt = _nary("gt", np.greater, "fib", "x > y", out_dtype=dtypes.bool_, differentiable=False)
ge = _nary("ge", np.greater_equal, "fib", "x >= y", out_dtype=dtypes.bool_, differentiable=False)


# ------------------------------------------------------------------- selection
def _select_rule(pred: ShapedType, on_true: ShapedType, on_false: ShapedType):
    check_kinds("select", pred, "b", "predicate")
    dt = check_same_dtype("select", [on_true, on_false])
    return [ShapedType(elementwise_shape("select", [pred, on_true, on_false]), dt)]


select = register(Primitive(
    "select", _select_rule, lambda p, t, f: [np.where(p, t, f)], FAMILY,
    "pred ? on_true : on_false, elementwise; only the chosen operand's value reaches the output"))


# ------------------------------------------------------------------ conversion
def _convert_rule(x: ShapedType, *, dtype):
    return [ShapedType(x.shape, dtype)]


def _convert_impl(x, *, dtype):
    with np.errstate(invalid="ignore", over="ignore"):
        return [np.asarray(x).astype(dtype)]


convert_element_type = register(Primitive(
    "convert_element_type", _convert_rule, _convert_impl, FAMILY,
    "x.astype(dtype): floats to integers truncate towards zero; nonzero is True"))
