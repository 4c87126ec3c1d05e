"""What every tnp function needs: operands, NumPy 2 promotion, broadcasting
and axis normalisation, with errors that name the user's line."""

from __future__ import annotations

import numpy as np

from ir import dtypes

from ..core import Tensor, Tracer, as_operand, bind1, type_and_weak
from ..errors import AxisError, DTypeError, ShapeError
from ..source import at_user_line


def operands(*xs) -> list:
    return [as_operand(x) if x is not None else None for x in xs]


def shape_of(x) -> tuple[int, ...]:
    return type_and_weak(x)[0].shape


def dtype_of(x) -> np.dtype:
    return type_and_weak(x)[0].dtype


def result_type(*xs) -> tuple[np.dtype, bool]:
    """NumPy 2 promotion of operands (Python scalars are weak)."""
    return dtypes.result_type(*[(t.dtype, w) for t, w in map(type_and_weak, xs)])


def astype(x, dtype):
    """x converted to ``dtype`` (a no-op when it already is)."""
    dtype = dtypes.canonicalize(dtype)
    if isinstance(x, (Tracer, Tensor)):
        return x if x.dtype == dtype else bind1("convert_element_type", x, dtype=dtype)
    x = np.asarray(x)
    if x.dtype == dtype:
        return x
    with np.errstate(invalid="ignore", over="ignore"):  # as the primitive converts: NaN to int is not a warning
        return x.astype(dtype)


def weak(x, flag: bool):
    """Mark a result as promoting like a Python scalar (only Tracers carry the mark)."""
    if isinstance(x, Tracer) and flag:
        return Tracer(x.trace, x.atom, weak=True)
    return x


def broadcast_shapes(*shapes, what: str = "operands") -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = " ".join(str(tuple(s)) for s in shapes)
        raise ShapeError(f"{what} could not be broadcast together with shapes {listed}: each dimension, aligned "
                         f"from the right, must be equal or 1{at_user_line()}") from None


def broadcast_to(x, shape):
    """NumPy broadcasting of x to ``shape`` (which must already be compatible):
    trailing axes align, and broadcast_in_dim stretches size-1 axes itself."""
    shape = tuple(shape)
    xs = shape_of(x)
    if xs == shape:
        return x
    lead = len(shape) - len(xs)
    return bind1("broadcast_in_dim", x, shape=shape, broadcast_dimensions=tuple(range(lead, len(shape))))


def python_int_out_of_range(xs, dt: np.dtype):
    """The first Python int among ``xs`` that the integer dtype ``dt`` cannot hold, or None."""
    if not dtypes.is_int(dt):
        return None
    info = np.iinfo(dt)
    return next((x for x in xs if isinstance(x, int) and not isinstance(x, bool) and not info.min <= x <= info.max),
                None)


def elementwise(name: str, *xs, dtype=None, kinds: str = "fib", fname: str | None = None, exact_ints: bool = False):
    """Promote, broadcast and bind an elementwise primitive. ``dtype`` forces the
    operand dtype (e.g. float64 for divide on integers); 0-d operands are left
    for the primitive to broadcast.

    A Python int that the promoted integer dtype cannot hold is an OverflowError,
    as in NumPy 2, rather than a silently wrapped value; with ``exact_ints``
    (comparisons) the operation runs in int64 instead, so ``i32 < 2**40`` is exact."""
    types = [type_and_weak(x) for x in xs]  # before operands(): a Python scalar must still look weak
    if dtype is None:
        # The common cases first: arrays of one type, with Python scalars that take a float array's dtype.
        strong = [t for t, w in types if not w]
        t0 = strong[0] if strong else None
        if t0 is not None and all(t == t0 for t in strong) and _kind(t0.dtype) in kinds:
            if len(strong) == len(xs):
                return bind1(name, *xs)
            if t0.dtype.kind == "f":
                return bind1(name, *[astype(x, t0.dtype) if w else x for x, (_, w) in zip(xs, types)])
    dt, is_weak = dtypes.result_type(*[(t.dtype, w) for t, w in types])
    big = python_int_out_of_range(xs, dt)
    if big is not None and not exact_ints:
        raise OverflowError(f"Python integer {big} out of bounds for {dt}{at_user_line()}")
    dt = dtypes.int64 if big is not None else dt
    xs = operands(*xs)
    if dtype is not None:
        dt = dtype(dt) if callable(dtype) else dtype
    if _kind(dt) not in kinds:
        raise DTypeError(f"{fname or name} does not accept {dt} operands{at_user_line()}")
    shapes = [t.shape for t, _ in types]
    shape = shapes[0] if all(s == shapes[0] for s in shapes) else broadcast_shapes(*shapes)
    cast = [astype(x, dt) for x in xs]
    cast = [x if s == () or s == shape else broadcast_to(x, shape) for x, s in zip(cast, shapes)]
    if shape and all(s == () for s in shapes):
        cast[0] = broadcast_to(cast[0], shape)
    return weak(bind1(name, *cast), is_weak)


def _kind(dt: np.dtype) -> str:
    return "i" if dtypes.is_int(dt) else dt.kind


def to_float(dt: np.dtype) -> np.dtype:
    """NumPy's result dtype of a float function on ``dt``: ints go to float64.
    (NumPy sends bool to float16, which tracegrad lacks; it uses float64.)"""
    return dt if dtypes.is_float(dt) else dtypes.float64


def normalize_axis(axis, ndim: int, what: str = "axis") -> int:
    try:
        axis = int(axis.__index__()) if not isinstance(axis, int) else axis
    except (AttributeError, TypeError):
        raise TypeError(f"{what} must be an integer, got {axis!r}") from None
    if not -ndim <= axis < ndim:
        raise AxisError(f"{what} {axis} is out of bounds for array of dimension {ndim}{at_user_line()}")
    return axis % ndim


def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """``None`` means every axis; an int or a tuple of ints otherwise, sorted."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = [normalize_axis(a, ndim) for a in axis]
        if len(set(axes)) != len(axes):
            raise ValueError(f"repeated axis in {tuple(axis)}{at_user_line()}")
        return tuple(sorted(axes))
    return (normalize_axis(axis, ndim),)


def reshape(x, shape):
    shape = tuple(shape)
    return x if shape_of(x) == shape else bind1("reshape", x, new_sizes=shape)


def full(shape, value, dtype):
    """``value`` (a scalar or a 0-d tracer) broadcast to ``shape``."""
    v = astype(operands(value)[0], dtype)
    return broadcast_to(v, tuple(shape)) if shape_of(v) != tuple(shape) else v
