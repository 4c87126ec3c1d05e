"""``dot_general``: every contraction (dot, matmul, tensordot, einsum with two
operands) is one of these, with explicit batch and contracting dimensions."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..types import ShapedType
from .core import Primitive, check_axes, check_kinds, check_same_dtype, register


def _free(ndim: int, *used) -> list[int]:
    taken = {d for dims in used for d in dims}
    return [d for d in range(ndim) if d not in taken]


def _dot_general_rule(lhs: ShapedType, rhs: ShapedType, *, dimension_numbers):
    (lc, rc), (lb, rb) = dimension_numbers
    dt = check_same_dtype("dot_general", [lhs, rhs])
    check_kinds("dot_general", lhs, "fib")
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise ShapeError(f"dot_general: contracting {lc}/{rc} and batch {lb}/{rb} dimensions must pair up")
    check_axes("dot_general", tuple(lc) + tuple(lb), lhs.ndim, "lhs dimensions")
    check_axes("dot_general", tuple(rc) + tuple(rb), rhs.ndim, "rhs dimensions")
    for kind, ld, rd in (("contracting", lc, rc), ("batch", lb, rb)):
        for a, b in zip(ld, rd):
            if lhs.shape[a] != rhs.shape[b]:
                raise ShapeError(f"dot_general: {kind} dimension {a} of {lhs} (size {lhs.shape[a]}) does not match "
                                 f"dimension {b} of {rhs} (size {rhs.shape[b]})")
    shape = ([lhs.shape[d] for d in lb] + [lhs.shape[d] for d in _free(lhs.ndim, lc, lb)]
             + [rhs.shape[d] for d in _free(rhs.ndim, rc, rb)])
    return [ShapedType(shape, dt)]


def _dot_general_impl(lhs, rhs, *, dimension_numbers):
    """Bring both operands to (batch, rows, k) x (batch, k, cols) and use np.matmul."""
    (lc, rc), (lb, rb) = dimension_numbers
    lf, rf = _free(lhs.ndim, lc, lb), _free(rhs.ndim, rc, rb)
    size = lambda x, dims: int(np.prod([x.shape[d] for d in dims], dtype=np.int64))
    a = np.transpose(lhs, list(lb) + lf + list(lc)).reshape(size(lhs, lb), size(lhs, lf), size(lhs, lc))
    b = np.transpose(rhs, list(rb) + list(rc) + rf).reshape(size(rhs, rb), size(rhs, rc), size(rhs, rf))
    out_shape = [lhs.shape[d] for d in lb] + [lhs.shape[d] for d in lf] + [rhs.shape[d] for d in rf]
    if not lb:  # a plain 2-D product takes NumPy's faster BLAS path
        return [np.matmul(a[0], b[0]).reshape(out_shape)]
    return [np.matmul(a, b).reshape(out_shape)]


dot_general = register(Primitive(
    "dot_general", _dot_general_rule, _dot_general_impl, "linalg",
    "sum over paired contracting dimensions, elementwise over paired batch dimensions; "
    "output axes are batch, then lhs free, then rhs free; "
    "dimension_numbers = ((lhs_contracting, rhs_contracting), (lhs_batch, rhs_batch))"))
