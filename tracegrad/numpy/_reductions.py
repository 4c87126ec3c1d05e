"""Reductions with NumPy's ``axis``, ``keepdims`` and dtype rules."""

from __future__ import annotations

import builtins

import numpy as np

from ir import dtypes

from ..core import bind1
from ..errors import ShapeError
from ..source import at_user_line
from ._base import astype, dtype_of, normalize_axes, normalize_axis, operands, reshape, shape_of
from ._elementwise import _truth, divide, multiply, sqrt, subtract
from ._creation import full_like


def _keep(out, shape, axes, keepdims: bool):
    if not keepdims:
        return out
    return reshape(out, tuple(1 if i in axes else d for i, d in enumerate(shape)))


def _count(shape, axes) -> int:
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def _accumulator(dt, dtype):
    """NumPy's sum/prod dtype: small integers and bool accumulate in int64."""
    if dtype is not None:
        return dtypes.canonicalize(dtype)
    return dtypes.int64 if dt in (dtypes.bool_, dtypes.int32) else dt


def _reduce(prim: str, a, axis, keepdims: bool, dtype=None):
    (a,) = operands(a)
    shape = shape_of(a)
    axes = normalize_axes(axis, len(shape))
    a = astype(a, dtype) if dtype is not None else a
    # A float sum over no axes still adds to 0.0 (turning -0.0 into +0.0, as NumPy); the others are the identity.
    out = bind1(prim, a, axes=axes) if axes or (prim == "reduce_sum" and dtypes.is_float(dtype_of(a))) else a
    return _keep(out, shape, axes, keepdims)


def sum(a, axis=None, dtype=None, keepdims: bool = False):
    return _reduce("reduce_sum", a, axis, keepdims, _accumulator(dtype_of(a), dtype))


def prod(a, axis=None, dtype=None, keepdims: bool = False):
    return _reduce("reduce_prod", a, axis, keepdims, _accumulator(dtype_of(a), dtype))


def _extremum(prim: str, name: str, a, axis, keepdims):
    shape = shape_of(a)
    axes = normalize_axes(axis, len(shape))
    if builtins.any(shape[i] == 0 for i in axes):
        raise ShapeError(f"zero-size array to reduction operation {name} which has no identity{at_user_line()}")
    return _reduce(prim, a, axis, keepdims)


def max(a, axis=None, keepdims: bool = False):
    return _extremum("reduce_max", "maximum", a, axis, keepdims)


def min(a, axis=None, keepdims: bool = False):
    return _extremum("reduce_min", "minimum", a, axis, keepdims)


amax, amin = max, min


def mean(a, axis=None, dtype=None, keepdims: bool = False):
    """Sum in the float dtype, then divide by the count (NumPy's order of operations)."""
    (a,) = operands(a)
    dt = dtypes.canonicalize(dtype) if dtype is not None else (
        dtype_of(a) if dtypes.is_float(dtype_of(a)) else dtypes.float64)
    shape = shape_of(a)
    total = sum(a, axis, dtype=dt, keepdims=keepdims)
    # An integer dtype asks for an integer mean: NumPy divides and truncates it back.
    return astype(divide(total, np.asarray(_count(shape, normalize_axes(axis, len(shape))), dt)), dt)


def var(a, axis=None, dtype=None, ddof: int = 0, keepdims: bool = False):
    """mean((a - mean(a))**2) with ``ddof`` delta degrees of freedom, in NumPy's order of operations."""
    (a,) = operands(a)
    dt = dtypes.canonicalize(dtype) if dtype is not None else (
        dtype_of(a) if dtypes.is_float(dtype_of(a)) else dtypes.float64)
    a = astype(a, dt)
    shape = shape_of(a)
    centred = subtract(a, mean(a, axis, dtype=dt, keepdims=True))
    dof = _count(shape, normalize_axes(axis, len(shape))) - ddof
    total = sum(multiply(centred, centred), axis, dtype=dt, keepdims=keepdims)
    return astype(divide(total, np.asarray(dof if dof > 0 else 0, dt)), dt)  # truncated for an integer dtype


def std(a, axis=None, dtype=None, ddof: int = 0, keepdims: bool = False):
    """sqrt(var); an integer dtype truncates the root back to it, as NumPy does for a
    scalar result (for an array result NumPy raises a casting error instead)."""
    out = sqrt(var(a, axis, dtype, ddof, keepdims))
    return astype(out, dtypes.canonicalize(dtype)) if dtype is not None else out


def _arg(prim: str, name: str, a, axis, keepdims):
    (a,) = operands(a)
    shape = shape_of(a)
    if axis is None:
        flat = reshape(a, (int(np.prod(shape, dtype=np.int64)),))
        if shape_of(flat)[0] == 0:
            raise ShapeError(f"attempt to get {name} of an empty sequence{at_user_line()}")
        out = bind1(prim, flat, axis=0, index_dtype=dtypes.int64)
        return reshape(out, (1,) * len(shape)) if keepdims else out
    ax = normalize_axis(axis, len(shape))
    if shape[ax] == 0:
        raise ShapeError(f"attempt to get {name} of an empty sequence{at_user_line()}")
    return _keep(bind1(prim, a, axis=ax, index_dtype=dtypes.int64), shape, (ax,), keepdims)


def argmax(a, axis=None, keepdims: bool = False):
    return _arg("argmax", "argmax", a, axis, keepdims)


def argmin(a, axis=None, keepdims: bool = False):
    return _arg("argmin", "argmin", a, axis, keepdims)


def _boolean(prim: str, empty_value: bool, a, axis, keepdims):
    t = _truth(a)
    shape = shape_of(t)
    axes = normalize_axes(axis, len(shape))
    if builtins.any(shape[i] == 0 for i in axes):  # an empty any() is False and an empty all() is True
        out_shape = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keepdims else \
            tuple(d for i, d in enumerate(shape) if i not in axes)
        return full_like(t, empty_value, shape=out_shape)
    return _reduce(prim, t, axis, keepdims)


def any(a, axis=None, keepdims: bool = False):
    return _boolean("reduce_max", False, a, axis, keepdims)


def all(a, axis=None, keepdims: bool = False):
    return _boolean("reduce_min", True, a, axis, keepdims)
