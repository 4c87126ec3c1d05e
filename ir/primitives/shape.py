"""Primitives that move data without arithmetic: broadcasting, reshaping,
permuting, slicing, reversing, joining, gathering, and the value makers
``iota`` and ``constant``."""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import ShapeError
from ..types import ShapedType
from .core import Primitive, check_axes, check_kinds, check_same_dtype, register

FAMILY = "shape"


# ------------------------------------------------------------- broadcast_in_dim
def _broadcast_rule(x: ShapedType, *, shape, broadcast_dimensions):
    dims = broadcast_dimensions
    if len(dims) != x.ndim:
        raise ShapeError(f"broadcast_in_dim: operand {x} needs {x.ndim} broadcast_dimensions, got {dims}")
    if list(dims) != sorted(set(dims)) or any(not 0 <= d < len(shape) for d in dims):
        raise ShapeError(f"broadcast_in_dim: broadcast_dimensions {dims} must increase and lie in [0, {len(shape)})")
    for i, d in enumerate(dims):
        if x.shape[i] not in (1, shape[d]):
            raise ShapeError(f"broadcast_in_dim: operand {x} dimension {i} (size {x.shape[i]}) "
                             f"cannot broadcast to size {shape[d]} of {tuple(shape)}")
    return [ShapedType(shape, x.dtype)]


def _broadcast_impl(x, *, shape, broadcast_dimensions):
    expanded = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        expanded[d] = x.shape[i]
    return [np.broadcast_to(np.reshape(x, expanded), shape)]


broadcast_in_dim = register(Primitive(
    "broadcast_in_dim", _broadcast_rule, _broadcast_impl, FAMILY,
    "operand dimension i becomes output dimension broadcast_dimensions[i] (size 1 or equal); "
    "the other output dimensions repeat the operand"))


# ---------------------------------------------------------------------- reshape
def _reshape_rule(x: ShapedType, *, new_sizes):
    if any(d < 0 for d in new_sizes) or int(np.prod(new_sizes, dtype=np.int64)) != x.size:
        raise ShapeError(f"reshape: cannot reshape {x} (size {x.size}) into shape {tuple(new_sizes)}")
    return [ShapedType(new_sizes, x.dtype)]


reshape = register(Primitive(
    "reshape", _reshape_rule, lambda x, *, new_sizes: [np.reshape(x, new_sizes)], FAMILY,
    "the same elements in row-major order, in shape new_sizes"))


# -------------------------------------------------------------------- transpose
def _transpose_rule(x: ShapedType, *, permutation):
    if sorted(permutation) != list(range(x.ndim)):
        raise ShapeError(f"transpose: permutation {tuple(permutation)} is not a permutation of the {x.ndim} axes of {x}")
    return [ShapedType([x.shape[p] for p in permutation], x.dtype)]


transpose = register(Primitive(
    "transpose", _transpose_rule, lambda x, *, permutation: [np.transpose(x, permutation)], FAMILY,
    "output axis i is operand axis permutation[i]"))


# ------------------------------------------------------------------------ slice
def _slice_rule(x: ShapedType, *, start_indices, limit_indices, strides):
    if not len(start_indices) == len(limit_indices) == len(strides) == x.ndim:
        raise ShapeError(f"slice: {x} needs {x.ndim} start, limit and stride values")
    out = []
    for d, s, l, st in zip(x.shape, start_indices, limit_indices, strides):
        if not (0 <= s <= l <= d and st >= 1):
            raise ShapeError(f"slice: start {s}, limit {l}, stride {st} do not fit a dimension of size {d} "
                             f"(need 0 <= start <= limit <= size, stride >= 1)")
        out.append(-(-(l - s) // st))
    return [ShapedType(out, x.dtype)]


def _slice_impl(x, *, start_indices, limit_indices, strides):
    return [x[tuple(slice(s, l, st) for s, l, st in zip(start_indices, limit_indices, strides))]]


slice_ = register(Primitive(
    "slice", _slice_rule, _slice_impl, FAMILY,
    "x[start:limit:stride] on every axis; starts, limits and strides are static and non-negative"))


# -------------------------------------------------------------------------- rev
def _rev_rule(x: ShapedType, *, dimensions):
    check_axes("rev", dimensions, x.ndim, "dimensions")
    return [x]


rev = register(Primitive(
    "rev", _rev_rule, lambda x, *, dimensions: [np.flip(x, dimensions)], FAMILY,
    "reverse the order of elements along `dimensions`"))


# ------------------------------------------------------------------ concatenate
def _concatenate_rule(*xs: ShapedType, dimension):
    if not xs:
        raise ShapeError("concatenate: needs at least one operand")
    dt = check_same_dtype("concatenate", xs)
    first = xs[0]
    check_axes("concatenate", (dimension,), first.ndim, "dimension")
    for x in xs:
        if x.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != dimension):
            listed = ", ".join(str(t) for t in xs)
            raise ShapeError(f"concatenate: operands must agree except on dimension {dimension}, got {listed}")
    shape = list(first.shape)
    shape[dimension] = sum(x.shape[dimension] for x in xs)
    return [ShapedType(shape, dt)]


concatenate = register(Primitive(
    "concatenate", _concatenate_rule, lambda *xs, dimension: [np.concatenate(xs, axis=dimension)], FAMILY,
    "join the operands along `dimension`"))


# ----------------------------------------------------------------------- gather
def _gather_rule(x: ShapedType, *indices: ShapedType):
    if not 1 <= len(indices) <= x.ndim:
        raise ShapeError(f"gather: {x} takes 1 to {x.ndim} index arrays, got {len(indices)}")
    for i in indices:
        check_kinds("gather", i, "i", "index")
    if len({i.shape for i in indices}) > 1:
        raise ShapeError(f"gather: index arrays must share one shape, got {', '.join(map(str, indices))}")
    idx_shape = indices[0].shape
    k = len(indices)
    if any(x.shape[a] == 0 for a in range(k)) and int(np.prod(idx_shape)) > 0:
        raise ShapeError(f"gather: cannot index a size-0 axis of {x}")
    return [ShapedType(idx_shape + x.shape[k:], x.dtype)]


def _gather_impl(x, *indices):
    k = len(indices)
    clipped = tuple(np.clip(i, 0, max(x.shape[a] - 1, 0)) for a, i in enumerate(indices))
    return [x[clipped] if all(x.shape[:k]) else np.zeros(indices[0].shape + x.shape[k:], x.dtype)]


gather = register(Primitive(
    "gather", _gather_rule, _gather_impl, FAMILY,
    "x[i0, i1, ...] with integer arrays of one shape indexing the leading axes; "
    "out-of-range indices are clamped (the front end normalises negative ones)"))


# --------------------------------------------------------------- value makers
def _iota_rule(*, dtype, shape, dimension):
    if not 0 <= dimension < len(shape):
        raise ShapeError(f"iota: dimension {dimension} out of range for shape {tuple(shape)}")
    return [ShapedType(shape, dtype)]


def _iota_impl(*, dtype, shape, dimension):
    counts = np.arange(shape[dimension], dtype=dtype)
    return [np.broadcast_to(counts.reshape([-1 if i == dimension else 1 for i in range(len(shape))]), shape)]


iota = register(Primitive(
    "iota", _iota_rule, _iota_impl, FAMILY,
    "0, 1, 2, ... counting along `dimension`, repeated along the others", differentiable=False))


def _constant_rule(*, value):
    return [ShapedType(value.array.shape, value.array.dtype)]


constant = register(Primitive(
    "constant", _constant_rule, lambda *, value: [value.array], FAMILY,
    "an array fixed in the graph (scalars are written inline as literals instead)", differentiable=False))
