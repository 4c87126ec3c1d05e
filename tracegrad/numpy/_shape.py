"""Shape manipulation: reshape, transpose, joins, splits, repeats."""

from __future__ import annotations

import builtins

import numpy as np

from ..core import Tracer, bind1
from ..errors import ShapeError
from ..source import at_user_line
from ._base import astype, broadcast_shapes, broadcast_to as _broadcast_to, normalize_axes, normalize_axis, \
    operands, reshape as _reshape, result_type, shape_of


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def reshape(a, newshape=None, order: str = "C", *, shape=None):
    """Row-major reshape; one dimension may be -1."""
    if order != "C":
        raise ValueError(f"only row-major (order='C') reshapes are supported{at_user_line()}")
    newshape = shape if shape is not None else newshape
    (a,) = operands(a)
    old = shape_of(a)
    newshape = (int(newshape),) if np.ndim(newshape) == 0 else tuple(int(d) for d in newshape)
    unknown = [i for i, d in enumerate(newshape) if d == -1]
    known = _size([d for d in newshape if d != -1])
    if len(unknown) > 1 or builtins.any(d < -1 for d in newshape):
        raise ShapeError(f"can only specify one unknown dimension (-1) and no other negative size, got "
                         f"{newshape}{at_user_line()}")
    if unknown:
        if known == 0 or _size(old) % known:
            raise ShapeError(f"cannot reshape array of size {_size(old)} into shape {newshape}{at_user_line()}")
        newshape = tuple(_size(old) // known if d == -1 else d for d in newshape)
    if _size(newshape) != _size(old):
        raise ShapeError(f"cannot reshape array of size {_size(old)} into shape {newshape}{at_user_line()}")
    return _reshape(a, newshape)


def ravel(a):
    return reshape(a, -1)


def transpose(a, axes=None):
    (a,) = operands(a)
    ndim = len(shape_of(a))
    if axes is None:
        perm = tuple(reversed(range(ndim)))
    else:
        if len(axes) != ndim:
            raise ValueError(f"axes {tuple(axes)} don't match an array of dimension {ndim}{at_user_line()}")
        perm = tuple(normalize_axis(ax, ndim) for ax in axes)
        if len(set(perm)) != ndim:
            raise ValueError(f"repeated axis in transpose {tuple(axes)}{at_user_line()}")
    return a if perm == tuple(range(ndim)) else bind1("transpose", a, permutation=perm)


def swapaxes(a, axis1: int, axis2: int):
    ndim = len(shape_of(a))
    perm = list(range(ndim))
    i, j = normalize_axis(axis1, ndim, "axis1"), normalize_axis(axis2, ndim, "axis2")
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(a, perm)


def moveaxis(a, source, destination):
    ndim = len(shape_of(a))
    src = [normalize_axis(s, ndim, "source") for s in np.atleast_1d(source)]
    dst = [normalize_axis(d, ndim, "destination") for d in np.atleast_1d(destination)]
    if len(src) != len(dst):
        raise ValueError("`source` and `destination` arguments must have the same number of elements")
    order = [n for n in range(ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, order)


def expand_dims(a, axis):
    shape = list(shape_of(a))
    axes = normalize_axes(axis if isinstance(axis, (tuple, list)) else (axis,), len(shape) + (
        len(axis) if isinstance(axis, (tuple, list)) else 1))
    for ax in axes:
        shape.insert(ax, 1)
    return _reshape(operands(a)[0], tuple(shape))


def squeeze(a, axis=None):
    shape = shape_of(a)
    axes = tuple(i for i, d in enumerate(shape) if d == 1) if axis is None else normalize_axes(axis, len(shape))
    for ax in axes:
        if shape[ax] != 1:
            raise ShapeError(f"cannot select an axis to squeeze out which has size not equal to one (axis {ax} of "
                             f"shape {shape}){at_user_line()}")
    return _reshape(operands(a)[0], tuple(d for i, d in enumerate(shape) if i not in axes))


def broadcast_to(array, shape):
    (a,) = operands(array)
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(shape)
    if broadcast_shapes(shape_of(a), shape, what="input operand and requested shape") != shape:
        raise ShapeError(f"cannot broadcast an array of shape {shape_of(a)} to the requested shape {shape}"
                         f"{at_user_line()}")
    return _broadcast_to(a, shape)


def atleast_1d(a):
    (a,) = operands(a)
    return _reshape(a, (1,)) if shape_of(a) == () else a


def concatenate(arrays, axis=0):
    arrays = operands(*arrays)
    if not arrays:
        raise ValueError(f"need at least one array to concatenate{at_user_line()}")
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    ndim = len(shape_of(arrays[0]))
    if ndim == 0:
        raise ValueError(f"zero-dimensional arrays cannot be concatenated{at_user_line()}")
    axis = normalize_axis(axis, ndim)
    dt, _ = result_type(*arrays)
    for a in arrays:
        if len(shape_of(a)) != ndim:
            raise ShapeError(f"all the input array dimensions must match: shapes "
                             f"{', '.join(str(shape_of(x)) for x in arrays)}{at_user_line()}")
    return bind1("concatenate", *[astype(a, dt) for a in arrays], dimension=axis) if len(arrays) > 1 \
        else astype(arrays[0], dt)


def stack(arrays, axis: int = 0):
    arrays = operands(*arrays)
    if not arrays:
        raise ValueError(f"need at least one array to stack{at_user_line()}")
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) > 1:
        raise ShapeError(f"all input arrays must have the same shape, got {sorted(shapes)}{at_user_line()}")
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis)


def split(ary, indices_or_sections, axis: int = 0) -> list:
    (a,) = operands(ary)
    shape = shape_of(a)
    axis = normalize_axis(axis, len(shape))
    n = shape[axis]
    if np.ndim(indices_or_sections) == 0:
        sections = int(indices_or_sections)
        if sections <= 0 or n % sections:
            raise ShapeError(f"array split does not result in an equal division: {n} elements into {sections} "
                             f"sections{at_user_line()}")
        bounds = [i * (n // sections) for i in range(sections + 1)]
    else:
        bounds = [0] + [builtins.min(builtins.max(int(i) + (n if int(i) < 0 else 0), 0), n)
                        for i in indices_or_sections] + [n]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        hi = builtins.max(lo, hi)
        start = [0] * len(shape)
        limit = list(shape)
        start[axis], limit[axis] = lo, hi
        out.append(bind1("slice", a, start_indices=tuple(start), limit_indices=tuple(limit),
                         strides=(1,) * len(shape)))
    return out


def flip(m, axis=None):
    (m,) = operands(m)
    axes = normalize_axes(axis, len(shape_of(m)))
    return bind1("rev", m, dimensions=axes) if axes else m


def tile(A, reps):
    (a,) = operands(A)
    reps = (int(reps),) if np.ndim(reps) == 0 else tuple(int(r) for r in reps)
    ndim = builtins.max(len(reps), len(shape_of(a)))
    shape = (1,) * (ndim - len(shape_of(a))) + shape_of(a)
    reps = (1,) * (ndim - len(reps)) + reps
    # (s0, s1) -> broadcast to (r0, s0, r1, s1) -> reshape to (r0*s0, r1*s1)
    wide = tuple(x for r, s in zip(reps, shape) for x in (r, s))
    b = bind1("broadcast_in_dim", _reshape(a, shape), shape=wide, broadcast_dimensions=tuple(range(1, 2 * ndim, 2)))
    return _reshape(b, tuple(r * s for r, s in zip(reps, shape)))


def repeat(a, repeats, axis=None):
    """Repeat each element ``repeats`` times along ``axis`` (flattened when None).
    ``repeats`` must be concrete: it decides the result's shape."""
    (a,) = operands(a)
    if isinstance(repeats, Tracer):
        raise TypeError(f"repeat needs concrete repeats: they decide the shape of the result{at_user_line()}")
    if axis is None:
        a, axis = ravel(a), 0
    shape = shape_of(a)
    axis = normalize_axis(axis, len(shape))
    reps = np.asarray(repeats)
    if reps.ndim == 0:
        r = int(reps)
        wide = shape[:axis + 1] + (r,) + shape[axis + 1:]
        dims = tuple(range(axis + 1)) + tuple(range(axis + 2, len(shape) + 1))
        b = bind1("broadcast_in_dim", a, shape=wide, broadcast_dimensions=dims)
        return _reshape(b, shape[:axis] + (shape[axis] * r,) + shape[axis + 1:])
    from ._indexing import take

    return take(a, np.repeat(np.arange(shape[axis]), reps), axis=axis)
