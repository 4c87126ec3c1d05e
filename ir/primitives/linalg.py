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
    out_shape = [lhs.shape[d] for d in lb] + [lhs.shape[d] for d in lf] + [rhs.shape[d] for d in rf]
    if not lb:
        # A plain 2-D product: a transposed 2-D operand stays a view (BLAS reads it transposed), not a copy.
        a = np.transpose(lhs, lf + list(lc)).reshape(size(lhs, lf), size(lhs, lc))
        b = np.transpose(rhs, list(rc) + rf).reshape(size(rhs, rc), size(rhs, rf))
        return [np.matmul(a, b).reshape(out_shape)]
    a = np.transpose(lhs, list(lb) + lf + list(lc)).reshape(size(lhs, lb), size(lhs, lf), size(lhs, lc))
    b = np.transpose(rhs, list(rb) + list(rc) + rf).reshape(size(rhs, rb), size(rhs, rc), size(rhs, rf))
    return [np.matmul(a, b).reshape(out_shape)]


def _ordered(b, product, axes_in_operand: list[int]):
    """Transpose ``product``, whose axis k is the operand's axis axes_in_operand[k],
    into the operand's own order (no equation when it already is)."""
    perm = tuple(int(a) for a in np.argsort(axes_in_operand))
    return product if perm == tuple(range(len(perm))) else b.transpose(product, permutation=perm)


def _lhs_cotangent(b, g, lhs, rhs, dimension_numbers):
    """g contracted with rhs over rhs's free dimensions (batch paired): the
    cotangent of lhs. For x @ w it is g @ w.T."""
    (lc, rc), (lb, rb) = dimension_numbers
    n_batch = len(lb)
    l_free = _free(b.type_of(lhs).ndim, lc, lb)
    r_free = _free(b.type_of(rhs).ndim, rc, rb)
    g_rfree = tuple(range(n_batch + len(l_free), n_batch + len(l_free) + len(r_free)))
    product = b.dot_general(g, rhs, dimension_numbers=((g_rfree, tuple(r_free)), (tuple(range(n_batch)), tuple(rb))))
    # product axes: batch, lhs free, then rhs's contracting dimensions in rhs order.
    return _ordered(b, product, list(lb) + l_free + [lc[list(rc).index(d)] for d in sorted(rc)])


def _rhs_cotangent(b, g, lhs, rhs, dimension_numbers):
    """lhs contracted with g over lhs's free dimensions (batch paired): the
    cotangent of rhs. For x @ w it is x.T @ g, with no transpose of the result."""
    (lc, rc), (lb, rb) = dimension_numbers
    n_batch = len(lb)
    l_free = _free(b.type_of(lhs).ndim, lc, lb)
    r_free = _free(b.type_of(rhs).ndim, rc, rb)
    g_lfree = tuple(range(n_batch, n_batch + len(l_free)))
    product = b.dot_general(lhs, g, dimension_numbers=((tuple(l_free), g_lfree), (tuple(lb), tuple(range(n_batch)))))
    # product axes: batch, lhs's contracting dimensions in lhs order, then rhs free.
    return _ordered(b, product, list(rb) + [rc[list(lc).index(d)] for d in sorted(lc)] + r_free)


def _dot_general_jvp(b, primals, tangents, outs, *, dimension_numbers):
    (lhs, rhs), (tl, tr) = primals, tangents
    terms = [None if tl is None else b.dot_general(tl, rhs, dimension_numbers=dimension_numbers),
             None if tr is None else b.dot_general(lhs, tr, dimension_numbers=dimension_numbers)]
    return [add_tangents(b, terms)]


def _dot_general_vjp(b, cts, primals, outs, *, dimension_numbers):
    (lhs, rhs), g = primals, cts[0]
    return [_lhs_cotangent(b, g, lhs, rhs, dimension_numbers) if wanted(b, 0) else None,
            _rhs_cotangent(b, g, lhs, rhs, dimension_numbers) if wanted(b, 1) else None]


dot_general = register(Primitive(
    "dot_general", _dot_general_rule, _dot_general_impl, "linalg",
    "sum over paired contracting dimensions, elementwise over paired batch dimensions; "
    "output axes are batch, then lhs free, then rhs free; "
    "dimension_numbers = ((lhs_contracting, rhs_contracting), (lhs_batch, rhs_batch))",
    jvp=_dot_general_jvp, vjp=_dot_general_vjp))
