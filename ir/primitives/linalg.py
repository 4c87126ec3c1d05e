"""``dot_general``: every contraction (dot, matmul, tensordot, einsum with two
operands) is one of these, with explicit batch and contracting dimensions."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..types import ShapedType
from .core import Primitive, add_tangents, check_axes, check_kinds, check_same_dtype, register, wanted


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


def _ranges_like(*groups) -> list[list[int]]:
    """Consecutive index ranges as long as each group: ([a, b], [c]) -> [[0, 1], [2]]."""
    out, start = [], 0
    for g in groups:
        out.append(list(range(start, start + len(g))))
        start += len(g)
    return out


def _transpose_lhs(b, g, lhs, rhs, dimension_numbers, swap_ans: bool = False):
    """The cotangent of lhs: contract g with rhs over rhs's free (and batch)
    dimensions, then order the axes as lhs has them."""
    (lc, rc), (lb, rb) = dimension_numbers
    l_kept = _free(b.type_of(lhs).ndim, lc, lb)
    r_kept = _free(b.type_of(rhs).ndim, rc, rb)
    if swap_ans:
        ans_batch, ans_r, _ = _ranges_like(lb, r_kept, l_kept)
    else:
        ans_batch, _, ans_r = _ranges_like(lb, l_kept, r_kept)
    dims = ((tuple(ans_r), tuple(r_kept)), (tuple(ans_batch), tuple(rb)))
    lc_in_rc_order = [lc[i] for i in np.argsort(rc)]
    out_axes = np.argsort(list(lb) + l_kept + lc_in_rc_order)
    product = b.dot_general(g, rhs, dimension_numbers=dims)
    perm = tuple(int(a) for a in out_axes)
    return product if perm == tuple(range(len(perm))) else b.transpose(product, permutation=perm)


def _dot_general_jvp(b, primals, tangents, outs, *, dimension_numbers):
    (lhs, rhs), (tl, tr) = primals, tangents
    terms = [None if tl is None else b.dot_general(tl, rhs, dimension_numbers=dimension_numbers),
             None if tr is None else b.dot_general(lhs, tr, dimension_numbers=dimension_numbers)]
    return [add_tangents(b, terms)]


def _dot_general_vjp(b, cts, primals, outs, *, dimension_numbers):
    (lhs, rhs), g = primals, cts[0]
    (lc, rc), (lb, rb) = dimension_numbers
    swapped = ((rc, lc), (rb, lb))
    return [_transpose_lhs(b, g, lhs, rhs, dimension_numbers) if wanted(b, 0) else None,
            _transpose_lhs(b, g, rhs, lhs, swapped, swap_ans=True) if wanted(b, 1) else None]


dot_general = register(Primitive(
    "dot_general", _dot_general_rule, _dot_general_impl, "linalg",
    "sum over paired contracting dimensions, elementwise over paired batch dimensions; "
    "output axes are batch, then lhs free, then rhs free; "
    "dimension_numbers = ((lhs_contracting, rhs_contracting), (lhs_batch, rhs_batch))",
    jvp=_dot_general_jvp, vjp=_dot_general_vjp))
