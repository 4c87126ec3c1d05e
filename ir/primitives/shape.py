"""Primitives that move data without arithmetic: broadcasting, reshaping,
permuting, slicing, reversing, joining, gathering, and the value makers
``iota`` and ``constant``."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..types import ShapedType
from .core import Primitive, check_axes, check_kinds, check_same_dtype, linear_rules, register

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


def _broadcast_transpose(b, g, x, *, shape, broadcast_dimensions):
    """Sum over the dimensions broadcasting created or stretched, then restore x's shape."""
    xt = b.type_of(x)
    created = [d for d in range(len(shape)) if d not in broadcast_dimensions]
    stretched = [d for i, d in enumerate(broadcast_dimensions) if xt.shape[i] == 1 and shape[d] != 1]
    axes = tuple(sorted(created + stretched))
    summed = b.reduce_sum(g, axes=axes) if axes else g
    return b.reshape(summed, new_sizes=xt.shape) if b.type_of(summed).shape != xt.shape else summed


broadcast_in_dim = register(Primitive(
    "broadcast_in_dim", _broadcast_rule, _broadcast_impl, FAMILY,
    "operand dimension i becomes output dimension broadcast_dimensions[i] (size 1 or equal); "
    "the other output dimensions repeat the operand",
    **linear_rules(lambda b, t, x, **p: b.broadcast_in_dim(t, **p), _broadcast_transpose)))


# ---------------------------------------------------------------------- reshape
def _reshape_rule(x: ShapedType, *, new_sizes):
    if any(d < 0 for d in new_sizes) or int(np.prod(new_sizes, dtype=np.int64)) != x.size:
        raise ShapeError(f"reshape: cannot reshape {x} (size {x.size}) into shape {tuple(new_sizes)}")
    return [ShapedType(new_sizes, x.dtype)]


reshape = register(Primitive(
    "reshape", _reshape_rule, lambda x, *, new_sizes: [np.reshape(x, new_sizes)], FAMILY,
    "the same elements in row-major order, in shape new_sizes",
    **linear_rules(lambda b, t, x, *, new_sizes: b.reshape(t, new_sizes=new_sizes),
                   lambda b, g, x, *, new_sizes: b.reshape(g, new_sizes=b.type_of(x).shape))))


# -------------------------------------------------------------------- transpose
def _transpose_rule(x: ShapedType, *, permutation):
    if sorted(permutation) != list(range(x.ndim)):
        raise ShapeError(f"transpose: permutation {tuple(permutation)} is not a permutation of the {x.ndim} axes "
                         f"of {x}")
    return [ShapedType([x.shape[p] for p in permutation], x.dtype)]


transpose = register(Primitive(
    "transpose", _transpose_rule, lambda x, *, permutation: [np.transpose(x, permutation)], FAMILY,
    "output axis i is operand axis permutation[i]",
    **linear_rules(lambda b, t, x, *, permutation: b.transpose(t, permutation=permutation),
                   lambda b, g, x, *, permutation: b.transpose(g, permutation=tuple(int(i) for i in
                                                                                     np.argsort(permutation))))))


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


def _slice_transpose(b, g, x, *, start_indices, limit_indices, strides):
    """Put the slice back in place with zeros around and between its elements."""
    config = []
    for size, start, n, stride in zip(b.type_of(x).shape, start_indices, b.type_of(g).shape, strides):
        if n == 0:
            config.append((size, 0, 0))
            continue
        end = start + (n - 1) * stride + 1
        config.append((start, size - end, stride - 1))
    return b.pad(g, b.literal(0, b.type_of(g).dtype), padding_config=tuple(config))


slice_ = register(Primitive(
    "slice", _slice_rule, _slice_impl, FAMILY,
    "x[start:limit:stride] on every axis; starts, limits and strides are static and non-negative",
    **linear_rules(lambda b, t, x, **p: b.slice(t, **p), _slice_transpose)))


# -------------------------------------------------------------------------- rev
def _rev_rule(x: ShapedType, *, dimensions):
    check_axes("rev", dimensions, x.ndim, "dimensions")
    return [x]


rev = register(Primitive(
    "rev", _rev_rule, lambda x, *, dimensions: [np.flip(x, dimensions)], FAMILY,
    "reverse the order of elements along `dimensions`",
    **linear_rules(lambda b, t, x, **p: b.rev(t, **p), lambda b, g, x, **p: b.rev(g, **p))))


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


def _concatenate_jvp(b, primals, tangents, outs, *, dimension):
    if all(t is None for t in tangents):
        return [None]
    filled = [b.zeros_like(x) if t is None else t for x, t in zip(primals, tangents)]
    return [b.concatenate(*filled, dimension=dimension)]


def _concatenate_vjp(b, cts, primals, outs, *, dimension):
    """Each operand's cotangent is its slice of the output's."""
    g, shape = cts[0], b.type_of(outs[0]).shape
    pieces, offset = [], 0
    for x in primals:
        width = b.type_of(x).shape[dimension]
        start = tuple(offset if d == dimension else 0 for d in range(len(shape)))
        limit = tuple(offset + width if d == dimension else n for d, n in enumerate(shape))
        pieces.append(b.slice(g, start_indices=start, limit_indices=limit, strides=(1,) * len(shape)))
        offset += width
    return pieces


concatenate = register(Primitive(
    "concatenate", _concatenate_rule, lambda *xs, dimension: [np.concatenate(xs, axis=dimension)], FAMILY,
    "join the operands along `dimension`", jvp=_concatenate_jvp, vjp=_concatenate_vjp))


# -------------------------------------------------------------------------- pad
def _pad_rule(x: ShapedType, value: ShapedType, *, padding_config):
    check_same_dtype("pad", [x, value])
    if value.ndim != 0:
        raise ShapeError(f"pad: the padding value must be 0-d, got {value}")
    if len(padding_config) != x.ndim or any(lo < 0 or hi < 0 or mid < 0 for lo, hi, mid in padding_config):
        raise ShapeError(f"pad: {x} needs {x.ndim} non-negative (low, high, interior) triples, got {padding_config}")
    return [ShapedType([lo + hi + n + max(n - 1, 0) * mid for n, (lo, hi, mid) in zip(x.shape, padding_config)],
                       x.dtype)]


def _pad_impl(x, value, *, padding_config):
    shape = [lo + hi + n + max(n - 1, 0) * mid for n, (lo, hi, mid) in zip(x.shape, padding_config)]
    out = np.full(shape, value, dtype=x.dtype)
    out[tuple(slice(lo, lo + (n - 1) * (mid + 1) + 1 if n else lo, mid + 1)
              for n, (lo, hi, mid) in zip(x.shape, padding_config))] = x
    return [out]


def _pad_jvp(b, primals, tangents, outs, *, padding_config):
    (x, _), (tx, tv) = primals, tangents
    if tx is None and tv is None:
        return [None]
    tx = b.zeros_like(x) if tx is None else tx
    tv = b.literal(0, b.type_of(x).dtype) if tv is None else tv
    return [b.pad(tx, tv, padding_config=padding_config)]


def _pad_vjp(b, cts, primals, outs, *, padding_config):
    """x gets the cotangent at its own positions; the padding value gets the rest."""
    g, (x, _) = cts[0], primals
    starts, limits, strides = [], [], []
    for n, (lo, hi, mid) in zip(b.type_of(x).shape, padding_config):
        starts.append(lo)
        limits.append(lo + (n - 1) * (mid + 1) + 1 if n else lo)
        strides.append(mid + 1)
    gx = b.slice(g, start_indices=tuple(starts), limit_indices=tuple(limits), strides=tuple(strides))
    every = lambda v: b.reduce_sum(v, axes=tuple(range(b.type_of(v).ndim))) if b.type_of(v).ndim else v
    return [gx, b.sub(every(g), every(gx))]


pad = register(Primitive(
    "pad", _pad_rule, _pad_impl, FAMILY,
    "x with `low` and `high` copies of the 0-d padding value at each end of every axis and `interior` copies "
    "between neighbours; padding_config = ((low, high, interior), ...) per axis",
    jvp=_pad_jvp, vjp=_pad_vjp))


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


def _gather_jvp(b, primals, tangents, outs):
    return [None if tangents[0] is None else b.gather(tangents[0], *primals[1:])]


def _gather_vjp(b, cts, primals, outs):
    x, *indices = primals
    return [b.scatter_add(b.zeros_like(x), cts[0], *indices)] + [None] * len(indices)


gather = register(Primitive(
    "gather", _gather_rule, _gather_impl, FAMILY,
    "x[i0, i1, ...] with integer arrays of one shape indexing the leading axes; "
    "out-of-range indices are clamped (the front end normalises negative ones)",
    jvp=_gather_jvp, vjp=_gather_vjp))


def _scatter_add_rule(x: ShapedType, updates: ShapedType, *indices: ShapedType):
    (gathered,) = _gather_rule(x, *indices)
    check_same_dtype("scatter_add", [x, updates])
    if updates.shape != gathered.shape:
        raise ShapeError(f"scatter_add: updates {updates} must have the shape of x[indices], {gathered.shape}")
    return [x]


def _scatter_add_impl(x, updates, *indices):
    out = np.array(x, copy=True)
    clipped = tuple(np.clip(i, 0, max(x.shape[a] - 1, 0)) for a, i in enumerate(indices))
    if updates.size:
        np.add.at(out, clipped, updates)
    return [out]


def _scatter_add_jvp(b, primals, tangents, outs):
    (x, updates, *indices), (tx, tu, *_) = primals, tangents
    if tx is None and tu is None:
        return [None]
    tx = b.zeros_like(x) if tx is None else tx
    tu = b.zeros_like(updates) if tu is None else tu
    return [b.scatter_add(tx, tu, *indices)]


def _scatter_add_vjp(b, cts, primals, outs):
    g, indices = cts[0], primals[2:]
    return [g, b.gather(g, *indices)] + [None] * len(indices)


scatter_add = register(Primitive(
    "scatter_add", _scatter_add_rule, _scatter_add_impl, FAMILY,
    "x with updates added at x[i0, i1, ...] (repeated indices accumulate; clamped like gather): "
    "the transpose of gather",
    jvp=_scatter_add_jvp, vjp=_scatter_add_vjp))


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
