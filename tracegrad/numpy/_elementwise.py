"""Elementwise functions, comparisons and logic, with NumPy 2's dtype rules."""

from __future__ import annotations

import numpy as np

from ir import dtypes
from ir.primitives import REGISTRY

from ..core import Tensor, Tracer, bind1
from ..eager.tape import TAPE
from ..errors import DTypeError
from ..source import at_user_line
from ._base import astype, broadcast_shapes, broadcast_to, dtype_of, elementwise, operands, python_int_out_of_range, \
    result_type, shape_of, to_float, weak


# ------------------------------------------------------------------ arithmetic
def add(x, y):
    return elementwise("add", x, y)


def subtract(x, y):
    if result_type(x, y)[0] == dtypes.bool_:
        raise DTypeError("numpy boolean subtract, the `-` operator, is not supported, use the bitwise_xor, the `^` "
                         f"operator, or the logical_xor function instead{at_user_line()}")
    return elementwise("sub", x, y, kinds="fi", fname="subtract")


def multiply(x, y):
    return elementwise("mul", x, y)


def divide(x, y):
    """True division: integer operands give float64, as in NumPy."""
    return elementwise("div", x, y, dtype=to_float, fname="divide")


true_divide = divide


def floor_divide(x, y):
    return elementwise("floor_divide", x, y, dtype=_no_bool, kinds="fi", fname="floor_divide")


def remainder(x, y):
    return elementwise("remainder", x, y, dtype=_no_bool, kinds="fi", fname="remainder")


mod = remainder


def _no_bool(dt):
    """Integer-only arithmetic on bools computes in int64 (NumPy uses int8, which tracegrad lacks)."""
    return dtypes.int64 if dt == dtypes.bool_ else dt


def negative(x):
    (x,) = operands(x)
    if dtype_of(x) == dtypes.bool_:
        raise DTypeError("The numpy boolean negative, the `-` operator, is not supported, use the `~` operator or "
                         f"the logical_not function instead.{at_user_line()}")
    return weak(bind1("neg", x), getattr(x, "weak", False))


def positive(x):
    (x,) = operands(x)
    return x


def power(x, y):
    """x**y. A Python int exponent gives ``integer_pow`` (exact, cheap, with a simple derivative)."""
    if isinstance(y, int) and not isinstance(y, bool) and not isinstance(x, bool):
        (x,) = operands(x)
        dt, is_weak = result_type(x, y)
        if dt == dtypes.bool_:
            dt = dtypes.int64
        if dtypes.is_int(dt) and y < 0:
            raise ValueError(f"Integers to negative integer powers are not allowed.{at_user_line()}")
        return weak(bind1("integer_pow", astype(x, dt), y=y), is_weak)
    return elementwise("pow", x, y, dtype=_no_bool, kinds="fi", fname="power")


def square(x):
    """x**2; bools give int64, as power does (NumPy gives int8, which tracegrad lacks)."""
    return power(x, 2)


def reciprocal(x):
    (x,) = operands(x)
    if not dtypes.is_float(dtype_of(x)):
        raise DTypeError(f"reciprocal of {dtype_of(x)} values would be integer division in NumPy; write 1 / x for a "
                         f"float result{at_user_line()}")
    return divide(np.asarray(1, dtype_of(x)), x)


def absolute(x):
    (x,) = operands(x)
    if dtype_of(x) == dtypes.bool_:
        return x
    return weak(bind1("abs", x), getattr(x, "weak", False))


abs = absolute


def sign(x):
    (x,) = operands(x)
    if dtype_of(x) == dtypes.bool_:
        raise DTypeError(f"sign is not defined for bool values; convert with .astype(int){at_user_line()}")
    return weak(bind1("sign", x), getattr(x, "weak", False))


def maximum(x, y):
    return elementwise("max", x, y, fname="maximum")


def minimum(x, y):
    return elementwise("min", x, y, fname="minimum")


def clip(a, a_min=None, a_max=None):
    """min(max(a, a_min), a_max): a_max wins where a_min > a_max, as in NumPy."""
    if a_min is None and a_max is None:
        raise ValueError(f"One of max or min must be given{at_user_line()}")
    dt, is_weak = result_type(*[v for v in (a, a_min, a_max) if v is not None])
    a_min, a_max = _clip_bound(a_min, dt, lower=True), _clip_bound(a_max, dt, lower=False)
    out = astype(operands(a)[0], dt)
    if a_min is not None:
        out = maximum(out, astype(operands(a_min)[0], dt))
    if a_max is not None:
        out = minimum(out, astype(operands(a_max)[0], dt))
    return weak(out, is_weak)


def _clip_bound(bound, dt, lower: bool):
    """A Python int bound beyond the integer dtype's range clips nothing on its own
    side (None); beyond it on the other side it is an OverflowError, as in NumPy 2."""
    if python_int_out_of_range([bound], dt) is None:
        return bound
    if (bound < 0) == lower:
        return None
    raise OverflowError(f"Python integer {bound} out of bounds for {dt}{at_user_line()}")


# ------------------------------------------------------------------ float maths
def _float_unary(prim: str, fname: str):
    primitive = REGISTRY[prim]

    def fn(x):
        if type(x) is Tensor and x.data.dtype.kind == "f":  # eager, nothing to convert or check: the common case
            return TAPE.run(primitive, (x,), {}, check=False)[0]
        (x,) = operands(x)
        is_weak = getattr(x, "weak", False)
        return weak(bind1(prim, astype(x, to_float(dtype_of(x)))), is_weak)

    fn.__name__ = fname
    fn.__doc__ = f"Elementwise {fname}; integer and bool inputs are computed in float64."
    return fn


sqrt = _float_unary("sqrt", "sqrt")
exp = _float_unary("exp", "exp")
log = _float_unary("log", "log")
log1p = _float_unary("log1p", "log1p")
expm1 = _float_unary("expm1", "expm1")
sin = _float_unary("sin", "sin")
cos = _float_unary("cos", "cos")
tan = _float_unary("tan", "tan")
tanh = _float_unary("tanh", "tanh")
sinh = _float_unary("sinh", "sinh")
cosh = _float_unary("cosh", "cosh")
arctan = _float_unary("atan", "arctan")


def _rounding(prim: str, fname: str):
    def fn(x):
        (x,) = operands(x)
        if not dtypes.is_float(dtype_of(x)):
            return x  # integers are already whole, as in NumPy
        return weak(bind1(prim, x), getattr(x, "weak", False))

    fn.__name__ = fname
    return fn


floor = _rounding("floor", "floor")
ceil = _rounding("ceil", "ceil")
_round_half_even = _rounding("round", "round")


def round(a, decimals: int = 0):
    """Round half to even, at ``decimals`` decimal places (NumPy's rule: scale, round, unscale).
    Integers stay integers: rounding to tens, hundreds... (``decimals < 0``) is done
    in float64 and converted back, as NumPy does. Bools give float64, as the other
    float functions do (NumPy gives float16, which tracegrad lacks)."""
    (a,) = operands(a)
    if dtype_of(a) == dtypes.bool_:
        return round(astype(a, dtypes.float64), decimals)
    if dtypes.is_int(dtype_of(a)):
        return a if decimals >= 0 else astype(round(astype(a, dtypes.float64), decimals), dtype_of(a))
    if decimals == 0:
        return _round_half_even(a)
    scale = np.asarray(10.0 ** abs(decimals), dtype_of(a))
    if decimals > 0:
        return divide(_round_half_even(multiply(a, scale)), scale)
    return multiply(_round_half_even(divide(a, scale)), scale)


around = round


def isfinite(x):
    (x,) = operands(x)
    if not dtypes.is_float(dtype_of(x)):
        return full_like_bool(x, True)
    return bind1("is_finite", x)


def isnan(x):
    (x,) = operands(x)
    if not dtypes.is_float(dtype_of(x)):
        return full_like_bool(x, False)
    return bind1("ne", x, x)


def isinf(x):
    return logical_and(logical_not(isfinite(x)), logical_not(isnan(x)))


def full_like_bool(x, value: bool):
    from ._creation import full_like

    return full_like(x, value, dtype=dtypes.bool_)


# ----------------------------------------------------------------- comparisons
def _compare(prim: str, fname: str):
    def fn(x, y):
        return elementwise(prim, x, y, fname=fname, exact_ints=True)

    fn.__name__ = fname
    return fn


equal = _compare("eq", "equal")
not_equal = _compare("ne", "not_equal")
less = _compare("lt", "less")
less_equal = _compare("le", "less_equal")
greater = _compare("gt", "greater")
greater_equal = _compare("ge", "greater_equal")


# ------------------------------------------------------------------- logic
def _truth(x):
    """x as bool, NumPy's truthiness: nonzero is True."""
    (x,) = operands(x)
    return x if dtype_of(x) == dtypes.bool_ else not_equal(x, np.asarray(0, dtype_of(x)))


def logical_not(x):
    return bind1("not", _truth(x))


def logical_and(x, y):
    return elementwise("and", _truth(x), _truth(y))


def logical_or(x, y):
    return elementwise("or", _truth(x), _truth(y))


def logical_xor(x, y):
    return elementwise("xor", _truth(x), _truth(y))


def bitwise_and(x, y):
    return elementwise("and", x, y, kinds="ib", fname="bitwise_and")


def bitwise_or(x, y):
    return elementwise("or", x, y, kinds="ib", fname="bitwise_or")


def bitwise_xor(x, y):
    return elementwise("xor", x, y, kinds="ib", fname="bitwise_xor")


def invert(x):
    (x,) = operands(x)
    if dtypes.is_float(dtype_of(x)):
        raise DTypeError(f"invert (~) is not defined for {dtype_of(x)} values{at_user_line()}")
    return weak(bind1("not", x), getattr(x, "weak", False))


bitwise_not = invert


# ------------------------------------------------------------------- where
def where(condition, x=None, y=None):
    """Elementwise choice. Only the chosen operand's value reaches the output
    (the one-argument form, ``nonzero``, has a data-dependent shape and works
    only on concrete arrays)."""
    if x is None and y is None:
        (c,) = operands(condition)
        if isinstance(c, Tracer):
            raise TypeError("where(condition) with one argument returns a data-dependent number of indices, which "
                            "a traced function cannot have; use the three-argument where(condition, x, y)"
                            f"{at_user_line()}")
        return np.nonzero(c)
    if x is None or y is None:
        raise ValueError(f"either both or neither of x and y should be given{at_user_line()}")
    c = _truth(condition)
    dt, is_weak = result_type(x, y)
    x, y = (astype(v, dt) for v in operands(x, y))
    shape = broadcast_shapes(shape_of(c), shape_of(x), shape_of(y))
    args = [v if shape_of(v) == () else broadcast_to(v, shape) for v in (c, x, y)]
    if shape and all(shape_of(v) == () for v in args):
        args[0] = broadcast_to(args[0], shape)
    return weak(bind1("select", *args), is_weak)
