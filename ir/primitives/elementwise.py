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
from .core import Primitive, check_kinds, check_same_dtype, elementwise_rules, elementwise_shape, register

FAMILY = "elementwise"


def _unary(name: str, fn, kinds: str, doc: str, lin=None, out_dtype=None, differentiable: bool = True,
           rule=None, impl=None) -> Primitive:
    """A one-operand primitive; ``lin(b, t, x, y)`` is its derivative at x applied to t."""
    def shape_rule(x: ShapedType, **params):
        check_kinds(name, x, kinds)
        return [ShapedType(x.shape, out_dtype or x.dtype)]

    rules = elementwise_rules(lin) if lin is not None else {}
    return register(Primitive(name, rule or shape_rule, impl or (lambda x: [fn(x)]), FAMILY, doc, differentiable,
                              **rules))


def _nary(name: str, fn, kinds: str, doc: str, lins=(), out_dtype=None, differentiable: bool = True) -> Primitive:
    """A several-operand primitive; ``lins[i](b, t, *operands, out)`` is its partial derivative in operand i."""
    def shape_rule(*types: ShapedType):
        dt = check_same_dtype(name, types)
        for t in types:
            check_kinds(name, t, kinds)
        return [ShapedType(elementwise_shape(name, types), out_dtype or dt)]

    rules = elementwise_rules(*lins) if lins else {}
    return register(Primitive(name, shape_rule, lambda *xs: [fn(*xs)], FAMILY, doc, differentiable, **rules))


def _lit(b, value, like):
    """A scalar of like's dtype."""
    return b.literal(value, b.type_of(like).dtype)


# ----------------------------------------------------------------- unary maths
# Each derivative is written as its action on a tangent t, with x the operand and y the result.
neg = _unary("neg", np.negative, "fi", "-x",
             lin=lambda b, t, x, y: b.neg(t))
exp = _unary("exp", np.exp, "f", "e**x",
             lin=lambda b, t, x, y: b.mul(t, y))
log = _unary("log", np.log, "f", "natural logarithm; -inf at 0, nan below",
             lin=lambda b, t, x, y: b.div(t, x))
log1p = _unary("log1p", np.log1p, "f", "log(1 + x), accurate near 0",
               lin=lambda b, t, x, y: b.div(t, b.add(x, _lit(b, 1, x))))
expm1 = _unary("expm1", np.expm1, "f", "e**x - 1, accurate near 0",
               lin=lambda b, t, x, y: b.mul(t, b.add(y, _lit(b, 1, y))))
sin = _unary("sin", np.sin, "f", "sine (radians)",
             lin=lambda b, t, x, y: b.mul(t, b.cos(x)))
cos = _unary("cos", np.cos, "f", "cosine (radians)",
             lin=lambda b, t, x, y: b.neg(b.mul(t, b.sin(x))))
tan = _unary("tan", np.tan, "f", "tangent (radians)",
             lin=lambda b, t, x, y: b.mul(t, b.add(_lit(b, 1, y), b.mul(y, y))))
tanh = _unary("tanh", np.tanh, "f", "hyperbolic tangent",
              lin=lambda b, t, x, y: b.mul(t, b.sub(_lit(b, 1, y), b.mul(y, y))))
sinh = _unary("sinh", np.sinh, "f", "hyperbolic sine",
              lin=lambda b, t, x, y: b.mul(t, b.cosh(x)))
cosh = _unary("cosh", np.cosh, "f", "hyperbolic cosine",
              lin=lambda b, t, x, y: b.mul(t, b.sinh(x)))
atan = _unary("atan", np.arctan, "f", "inverse tangent, in (-pi/2, pi/2)",
              lin=lambda b, t, x, y: b.div(t, b.add(_lit(b, 1, x), b.mul(x, x))))
sqrt = _unary("sqrt", np.sqrt, "f", "square root; nan below 0",
              lin=lambda b, t, x, y: b.div(t, b.mul(_lit(b, 2, y), y)))
abs_ = _unary("abs", np.abs, "fi", "|x|; derivative sign(x), so 0 at 0 (as JAX)",
              lin=lambda b, t, x, y: b.mul(t, b.sign(x)))
sign = _unary("sign", np.sign, "fi", "-1, 0 or 1 (nan for nan)", differentiable=False)
floor = _unary("floor", np.floor, "f", "round towards -inf", differentiable=False)
ceil = _unary("ceil", np.ceil, "f", "round towards +inf", differentiable=False)
round_ = _unary("round", np.round, "f", "round half to even, as NumPy", differentiable=False)
is_finite = _unary("is_finite", np.isfinite, "f", "true where x is neither inf nor nan", out_dtype=dtypes.bool_,
                   differentiable=False)
not_ = _unary("not", np.invert, "ib", "bitwise not of integers, logical not of bools", differentiable=False)
stop_gradient = _unary("stop_gradient", np.asarray, "fib", "x, with a zero derivative: gradients stop here",
                       differentiable=False)


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


def _integer_pow_lin(b, t, x, out, *, y: int):
    """d(x**y) = y * x**(y-1) dx."""
    if y == 0:
        return b.mul(t, _lit(b, 0, x))
    if y == 1:
        return t
    power = x if y == 2 else b.integer_pow(x, y=y - 1)
    return b.mul(t, b.mul(_lit(b, y, x), power))


integer_pow = _unary("integer_pow", None, "fi", "x**y for a Python integer y fixed in the graph, by repeated "
                     "multiplication", lin=_integer_pow_lin, rule=_integer_pow_rule, impl=_integer_pow_impl)


# ------------------------------------------------------------ binary arithmetic
def _pow_lin_x(b, t, x, y, out):
    """y * x**(y-1), taken as 0 where y == 0 (so 0**0 has derivative 0, not nan), as JAX."""
    zero = _lit(b, 0, x)
    jac = b.select(b.eq(y, zero), b.zeros_like(out), b.mul(y, b.pow(x, b.sub(y, _lit(b, 1, y)))))
    return b.mul(t, jac)


def _pow_lin_y(b, t, x, y, out):
    """log(x) * x**y, with log(1) in place of log(0) (as JAX: 0**y is flat in y where it is finite)."""
    safe_x = b.select(b.eq(x, _lit(b, 0, x)), b.full(b.type_of(x).shape, 1, b.type_of(x).dtype), x)
    return b.mul(t, b.mul(b.log(safe_x), out))


def _extremum_weight(b, x, y, out):
    """How much of the derivative goes to x: 1 where x alone is the extremum, 1/2
    at ties (the gradient is shared, as JAX), 0 elsewhere (nan included), as
    [x == out] * (1 - [y == out] / 2): arithmetic on masks, no selects."""
    dt = b.type_of(out).dtype
    is_x = b.convert_element_type(b.eq(x, out), dtype=dt)
    is_y = b.convert_element_type(b.eq(y, out), dtype=dt)
    return b.mul(is_x, b.sub(_lit(b, 1, out), b.mul(_lit(b, 0.5, out), is_y)))


add = _nary("add", np.add, "fib", "x + y (logical or on bool)",
            lins=(lambda b, t, x, y, out: t,
                  lambda b, t, x, y, out: t))
sub = _nary("sub", np.subtract, "fi", "x - y",
            lins=(lambda b, t, x, y, out: t,
                  lambda b, t, x, y, out: b.neg(t)))
mul = _nary("mul", np.multiply, "fib", "x * y (logical and on bool)",
            lins=(lambda b, t, x, y, out: b.mul(t, y),
                  lambda b, t, x, y, out: b.mul(x, t)))
div = _nary("div", np.divide, "f", "x / y, IEEE: x/0 is +-inf, 0/0 is nan",
            lins=(lambda b, t, x, y, out: b.div(t, y),
                  lambda b, t, x, y, out: b.neg(b.div(b.mul(t, out), y))))
pow_ = _nary("pow", np.power, "fi", "x**y elementwise",
             lins=(_pow_lin_x, _pow_lin_y))
max_ = _nary("max", np.maximum, "fib", "elementwise maximum; nan if either is nan; ties share the derivative",
             lins=(lambda b, t, x, y, out: b.mul(t, _extremum_weight(b, x, y, out)),
                   lambda b, t, x, y, out: b.mul(t, _extremum_weight(b, y, x, out))))
min_ = _nary("min", np.minimum, "fib", "elementwise minimum; nan if either is nan; ties share the derivative",
             lins=(lambda b, t, x, y, out: b.mul(t, _extremum_weight(b, x, y, out)),
                   lambda b, t, x, y, out: b.mul(t, _extremum_weight(b, y, x, out))))
floor_divide = _nary("floor_divide", np.floor_divide, "fi", "floor(x / y), as NumPy's // (x // 0 is 0 for integers)",
                     differentiable=False)
remainder = _nary("remainder", np.remainder, "fi", "x - floor(x / y) * y: the sign of y, as NumPy's %",
                  lins=(lambda b, t, x, y, out: t,
                        lambda b, t, x, y, out: b.neg(b.mul(t, b.floor(b.div(x, y))))))
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


def _select_lin(chosen: bool):
    """The cotangent goes to the chosen operand only: exact zeros elsewhere, so a
    guarded input (``where(x > 0, sqrt(where(x > 0, x, 1)), 0)``) stays finite."""
    def lin(b, t, p, on_true, on_false, out):
        zero = _lit(b, 0, out)
        return b.select(p, t, zero) if chosen else b.select(p, zero, t)

    return lin


def _select_impl(pred, on_true, on_false):
    """A bitwise blend, (t & m) | (f & ~m) with m all ones where pred holds:
    exact for every value (NaN included) and several times faster than
    np.where, which branches per element and mispredicts on random masks."""
    pred, on_true, on_false = np.asarray(pred), np.asarray(on_true), np.asarray(on_false)
    bits = np.dtype(f"u{on_true.dtype.itemsize}")
    mask = np.negative(pred.view(np.uint8).astype(bits))
    blend = np.bitwise_or(np.bitwise_and(on_true.view(bits), mask),
                          np.bitwise_and(on_false.view(bits), np.invert(mask)))
    return [blend.view(on_true.dtype)]


select = register(Primitive(
    "select", _select_rule, _select_impl, FAMILY,
    "pred ? on_true : on_false, elementwise; only the chosen operand's value reaches the output",
    **elementwise_rules(None, _select_lin(True), _select_lin(False))))


# ------------------------------------------------------------------ conversion
def _convert_rule(x: ShapedType, *, dtype):
    return [ShapedType(x.shape, dtype)]


def _convert_impl(x, *, dtype):
    with np.errstate(invalid="ignore", over="ignore"):
        return [np.asarray(x).astype(dtype)]


def _convert_jvp(b, primals, tangents, outs, *, dtype):
    """Only float-to-float conversions carry a derivative."""
    (t,) = tangents
    return [None if t is None or not dtypes.is_float(dtype) else b.convert_element_type(t, dtype=dtype)]


def _convert_vjp(b, cts, primals, outs, *, dtype):
    (x,) = primals
    return [b.convert_element_type(cts[0], dtype=b.type_of(x).dtype) if dtypes.is_float(b.type_of(x).dtype) else None]


convert_element_type = register(Primitive(
    "convert_element_type", _convert_rule, _convert_impl, FAMILY,
    "x.astype(dtype): floats to integers truncate towards zero; nonzero is True",
    jvp=_convert_jvp, vjp=_convert_vjp))
