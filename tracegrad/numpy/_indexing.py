"""Indexing with NumPy's rules: basic slices (steps, negative indices), ints,
``None``, ``...``, and integer-array (advanced) indexing, plus ``take``.

Basic indexing becomes one ``slice`` (with a ``rev`` for negative steps) and
a ``reshape``; advanced indexing becomes a ``gather`` on the leading axes.
Concrete index arrays are bounds-checked like NumPy's; traced ones are
clamped, as a compiled program cannot raise mid-kernel."""

from __future__ import annotations

import numpy as np

from ir import dtypes

from ..core import Tensor, Tracer, bind1
from ..source import at_user_line
from ._base import astype, broadcast_shapes, broadcast_to, dtype_of, normalize_axis, operands, reshape, shape_of
from ._elementwise import add, less, where


def _is_int(k) -> bool:
    return isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))


def _index_array(k):
    """An advanced index as a Tracer or an integer NumPy array, or None if k is not one."""
    if isinstance(k, Tracer):
        if not (dtypes.is_int(k.dtype) or k.dtype == dtypes.bool_):
            raise IndexError(f"arrays used as indices must be of integer (or boolean) type, got {k.dtype}"
                             f"{at_user_line()}")
        return k
    if isinstance(k, (list, np.ndarray)):
        arr = np.asarray(k)
        if arr.size == 0 and arr.dtype.kind not in "iub":
            arr = arr.astype(np.int64)  # x[[]] selects nothing, as in NumPy
        if arr.dtype.kind not in "iub":
            raise IndexError(f"arrays used as indices must be of integer (or boolean) type, got {arr.dtype}"
                             f"{at_user_line()}")
        return arr
    return None


def _normalize_index(idx, n: int, axis: int):
    """Negative indices count from the end; concrete ones are bounds-checked."""
    if isinstance(idx, Tracer):
        return where(less(idx, 0), add(idx, np.asarray(n, idx.dtype)), idx)
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise IndexError(f"index {idx[bad].flat[0]} is out of bounds for axis {axis} with size {n}{at_user_line()}")
    return np.where(idx < 0, idx + n, idx)


def _concrete_tensors(key):
    """An index given as an eager Tensor is its array: indices carry no gradient,
    and a Tensor's values are known (a boolean mask works, as in PyTorch)."""
    if isinstance(key, tuple):
        return tuple(k.data if isinstance(k, Tensor) else k for k in key)
    return key.data if isinstance(key, Tensor) else key


def _expand(key, shape: tuple[int, ...]) -> list:
    """The key as a list with Ellipsis expanded and bool masks turned into integer
    arrays (after checking that each mask has the shape of the axes it indexes)."""
    ndim = len(shape)
    key = list(key) if isinstance(key, tuple) else [key]
    expanded, masks = [], []  # masks: (position in expanded, mask shape)
    for k in key:
        if isinstance(k, Tracer) and k.dtype == dtypes.bool_:
            raise IndexError("a traced boolean mask selects a data-dependent number of elements, which a traced "
                             "function cannot have; use tnp.where(mask, x, 0) instead" + at_user_line())
        arr = k if isinstance(k, np.ndarray) else (np.asarray(k) if isinstance(k, list) else None)
        if arr is not None and arr.dtype == np.bool_:
            masks.append((len(expanded), arr.shape))
            expanded.extend(np.nonzero(arr))
        else:
            expanded.append(k)
    consumed = sum(1 for k in expanded if k is not None and k is not Ellipsis)
    if consumed > ndim:
        raise IndexError(f"too many indices for array: array is {ndim}-dimensional, but {consumed} were indexed"
                         f"{at_user_line()}")
    if sum(1 for k in expanded if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    ellipsis = [i for i, k in enumerate(expanded) if k is Ellipsis]
    if ellipsis:
        at, fill = ellipsis[0], ndim - consumed
        expanded[at:at + 1] = [slice(None)] * fill
        masks = [(p + fill - 1 if p > at else p, s) for p, s in masks]
    else:
        expanded += [slice(None)] * (ndim - consumed)
    for p, mask_shape in masks:
        axis = sum(1 for k in expanded[:p] if k is not None)
        if shape[axis:axis + len(mask_shape)] != mask_shape:
            raise IndexError(f"boolean index of shape {mask_shape} does not match the indexed array's axes "
                             f"{tuple(range(axis, axis + len(mask_shape)))} of shape "
                             f"{shape[axis:axis + len(mask_shape)]}{at_user_line()}")
    return expanded


def getitem(x, key):
    (x,) = operands(x)
    shape = shape_of(x)
    entries = _expand(_concrete_tensors(key), shape)
    advanced = any(_index_array(k) is not None for k in entries)

    # Pass 1: slices, ints (when nothing is advanced) and None, as one slice + rev + reshape.
    starts, limits, strides, flips = [], [], [], []
    out_shape, adv = [], []  # adv: (position in out_shape, index array, axis size, original axis)
    dim = 0
    for k in entries:
        if k is None:
            out_shape.append(1)
            continue
        n = shape[dim]
        arr = _index_array(k)
        if arr is None and _is_int(k) and advanced:
            arr = np.asarray(k)  # with advanced indices, an int is a 0-d index array (NumPy's rule)
        if arr is not None:
            starts.append(0), limits.append(n), strides.append(1)
            adv.append((len(out_shape), arr, n, dim))
            out_shape.append(n)
        elif _is_int(k):
            i = int(k)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {dim} with size {n}{at_user_line()}")
            i %= n
            starts.append(i), limits.append(i + 1), strides.append(1)
        elif isinstance(k, slice):
            start, stop, step = k.indices(n)
            count = len(range(start, stop, step))
            if step < 0:
                flips.append(dim)
                start, step = n - 1 - start, -step
            if count == 0:
                start = 0
            starts.append(start), limits.append(start + (count - 1) * step + 1 if count else start)
            strides.append(step)
            out_shape.append(count)
        else:
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and integer or boolean arrays "
                             f"are valid indices, got {k!r}{at_user_line()}")
        dim += 1
    y = bind1("rev", x, dimensions=tuple(flips)) if flips else x
    if (tuple(starts), tuple(limits), tuple(strides)) != ((0,) * len(shape), shape, (1,) * len(shape)):
        y = bind1("slice", y, start_indices=tuple(starts), limit_indices=tuple(limits), strides=tuple(strides))
    y = reshape(y, tuple(out_shape))
    if not adv:
        return y

    # Pass 2: integer arrays, as one gather on the indexed axes moved to the front.
    index_shape = broadcast_shapes(*[shape_of(a) for _, a, _, _ in adv], what="indexing arrays")
    idx = [broadcast_to(astype(_normalize_index(a if isinstance(a, Tracer) else np.asarray(a, np.int64), n, ax),
                               dtype_of(a) if isinstance(a, Tracer) else np.int64), index_shape)
           for _, a, n, ax in adv]
    positions = [p for p, _, _, _ in adv]
    rest = [p for p in range(len(out_shape)) if p not in positions]
    moved = y if positions + rest == list(range(len(out_shape))) else \
        bind1("transpose", y, permutation=tuple(positions + rest))
    gathered = bind1("gather", moved, *idx)
    adjacent = positions == list(range(positions[0], positions[0] + len(positions)))
    if not adjacent or positions[0] == 0:
        return gathered  # NumPy puts the index dimensions first unless the indexed axes are adjacent
    k, before = len(index_shape), positions[0]
    perm = list(range(k, k + before)) + list(range(k)) + list(range(k + before, k + len(rest)))
    return bind1("transpose", gathered, permutation=tuple(perm))


def take(a, indices, axis=None):
    """Elements of ``a`` at ``indices`` along ``axis`` (of the flattened array when None)."""
    (a,) = operands(a)
    if axis is None:
        a, axis = reshape(a, (int(np.prod(shape_of(a), dtype=np.int64)),)), 0
    axis = normalize_axis(axis, len(shape_of(a)))
    indices = indices if isinstance(indices, (Tracer, Tensor)) else np.asarray(indices)
    return getitem(a, (slice(None),) * axis + (indices,))


def setitem_error(x, key, value):
    raise TypeError(f"traced arrays are immutable and cannot be assigned to; build the new array with tnp.where, "
                    f"tnp.concatenate or tnp.stack instead{at_user_line()}")
