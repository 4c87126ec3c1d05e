"""Products: every one becomes a single ``dot_general`` (plus layout moves)."""

from __future__ import annotations

import numpy as np

from ir import dtypes

from ..core import Tensor, bind1
from ..errors import ShapeError
from ..source import at_user_line
from ._base import astype, broadcast_shapes, broadcast_to, dtype_of, operands, result_type, shape_of
from ._elementwise import multiply
from ._reductions import any as _any, sum as _sum
from ._shape import ravel, reshape, transpose


def _promoted(a, b):
    dt, _ = result_type(a, b)
    return astype(a, dt), astype(b, dt)


def _dot_general(a, b, contract, batch=((), ())):
    return bind1("dot_general", a, b, dimension_numbers=(tuple(map(tuple, contract)), tuple(map(tuple, batch))))


def _check_contract(name, a, b, ia: int, ib: int):
    sa, sb = shape_of(a), shape_of(b)
    if sa[ia] != sb[ib]:
        raise ShapeError(f"{name}: shapes {sa} and {sb} not aligned: {sa[ia]} (dim {ia}) != {sb[ib]} (dim {ib})"
                         f"{at_user_line()}")


def dot(a, b):
    """NumPy's dot: a sum over the last axis of a and the second-to-last of b."""
    a, b = _promoted(*operands(a, b))
    na, nb = len(shape_of(a)), len(shape_of(b))
    if na == 0 or nb == 0:
        return multiply(a, b)
    ib = max(nb - 2, 0)
    _check_contract("dot", a, b, na - 1, ib)
    return _dot_general(a, b, ((na - 1,), (ib,)))


def matmul(a, b):
    """The @ operator: matrices in the last two axes, leading axes broadcast."""
    if type(a) is Tensor and type(b) is Tensor:  # eager (..., n, k) @ (k, m) of one dtype: nothing to promote
        sa, sb = a.data.shape, b.data.shape
        if len(sb) == 2 and len(sa) >= 2 and sa[-1] == sb[0] and a.data.dtype == b.data.dtype:
            return _dot_general(a, b, ((len(sa) - 1,), (0,)))
    a, b = _promoted(*operands(a, b))
    sa, sb = shape_of(a), shape_of(b)
    for i, s in enumerate((sa, sb)):
        if len(s) == 0:
            raise ValueError(f"matmul: Input operand {i} does not have enough dimensions (it is 0-d; use * for "
                             f"scalars){at_user_line()}")
    vec_a, vec_b = len(sa) == 1, len(sb) == 1
    if vec_a:
        a = reshape(a, (1,) + sa)
    if vec_b:
        b = reshape(b, sb + (1,))
    sa, sb = shape_of(a), shape_of(b)
    if sa[-1] != sb[-2]:
        raise ShapeError(f"matmul: the last axis of the first operand (shape {shape_of(a) if not vec_a else sa[1:]}, "
                         f"size {sa[-1]}) must match the second-to-last axis of the second (shape "
                         f"{sb if not vec_b else sb[:-1]}, size {sb[-2]}){at_user_line()}")
    if len(sb) == 2:  # (..., n, k) @ (k, m): no batch needed
        out = _dot_general(a, b, ((len(sa) - 1,), (0,)))
    else:
        batch = broadcast_shapes(sa[:-2], sb[:-2], what="matmul batch dimensions")
        a, b = broadcast_to(a, batch + sa[-2:]), broadcast_to(b, batch + sb[-2:])
        nb = len(batch)
        out = _dot_general(a, b, ((nb + 1,), (nb,)), (tuple(range(nb)), tuple(range(nb))))
    so = shape_of(out)
    if vec_a and vec_b:
        return reshape(out, so[:-2])
    if vec_a:
        return reshape(out, so[:-2] + so[-1:])
    if vec_b:
        return reshape(out, so[:-1])
    return out


def outer(a, b):
    a, b = ravel(operands(a)[0]), ravel(operands(b)[0])
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def inner(a, b):
    a, b = _promoted(*operands(a, b))
    na, nb = len(shape_of(a)), len(shape_of(b))
    if na == 0 or nb == 0:
        return multiply(a, b)
    _check_contract("inner", a, b, na - 1, nb - 1)
    return _dot_general(a, b, ((na - 1,), (nb - 1,)))


def tensordot(a, b, axes=2):
    a, b = _promoted(*operands(a, b))
    na, nb = len(shape_of(a)), len(shape_of(b))
    if np.ndim(axes) == 0:
        n = int(axes)
        if n > min(na, nb) or n < 0:
            raise ShapeError(f"tensordot: cannot contract {n} axes of shapes {shape_of(a)} and {shape_of(b)}"
                             f"{at_user_line()}")
        ia, ib = list(range(na - n, na)), list(range(n))
    else:
        ia, ib = [list(np.atleast_1d(x)) for x in axes]
        ia, ib = [int(i) % na for i in ia], [int(i) % nb for i in ib]
    if len(ia) != len(ib):
        raise ShapeError(f"tensordot: axes {axes} do not pair up{at_user_line()}")
    for i, j in zip(ia, ib):
        _check_contract("tensordot", a, b, i, j)
    return _dot_general(a, b, (ia, ib))


def _sum_in_own_dtype(x, axes):
    """einsum sums in its operands' dtype, unlike np.sum: int32 stays int32, and a
    sum of bools is their logical or."""
    if dtype_of(x) == dtypes.bool_:
        return _any(x, axis=axes)
    return _sum(x, axis=axes, dtype=dtype_of(x))


def einsum(subscripts: str, *operands_):
    """One- and two-operand einsum without ellipses or repeated indices in one
    operand: sums, transposes, inner/outer/batched products."""
    ops = operands(*operands_)
    if len(ops) == 2:
        ops = list(_promoted(*ops))  # NumPy promotes first, so a sum over one operand's index is in the result dtype
    spec = subscripts.replace(" ", "")
    lhs, arrow, out = spec.partition("->")
    ins = lhs.split(",")
    if "." in spec:
        raise NotImplementedError(f"einsum: ellipses ('...') are not supported; name every axis{at_user_line()}")
    if len(ins) != len(ops) or len(ops) not in (1, 2):
        raise ValueError(f"einsum: {subscripts!r} needs {len(ins)} operands, got {len(ops)}; tracegrad supports one "
                         f"or two{at_user_line()}")
    counts = {}
    for term, op in zip(ins, ops):
        if len(term) != len(shape_of(op)):
            raise ValueError(f"einsum: operand with shape {shape_of(op)} has {len(shape_of(op))} axes but "
                             f"subscripts {term!r}{at_user_line()}")
        if len(set(term)) != len(term):
            raise NotImplementedError(f"einsum: repeated index in {term!r} (a diagonal) is not supported"
                                      f"{at_user_line()}")
        for c in term:
            counts[c] = counts.get(c, 0) + 1
    if not arrow:
        out = "".join(sorted(c for c, k in counts.items() if k == 1))
    sizes = {}
    for term, op in zip(ins, ops):
        for c, d in zip(term, shape_of(op)):
            if sizes.setdefault(c, d) != d:
                raise ShapeError(f"einsum: index {c!r} has sizes {sizes[c]} and {d}{at_user_line()}")
    if set(out) - set(sizes):
        raise ValueError(f"einsum: output index {sorted(set(out) - set(sizes))} appears in no operand{at_user_line()}")
    # Sum away indices that only one operand has and the output does not keep.
    terms, arrays = [], []
    for k, (term, op) in enumerate(zip(ins, ops)):
        others = set().union(*[set(t) for j, t in enumerate(ins) if j != k])
        drop = [i for i, c in enumerate(term) if c not in out and c not in others]
        arrays.append(_sum_in_own_dtype(op, tuple(drop)) if drop else op)
        terms.append("".join(c for i, c in enumerate(term) if i not in drop))
    if len(arrays) == 1:
        (term,), (a,) = terms, arrays
        return transpose(a, [term.index(c) for c in out])
    (ta, tb), (a, b) = terms, _promoted(*arrays)
    shared = [c for c in ta if c in tb]
    batch = [c for c in shared if c in out]
    contract = [c for c in shared if c not in out]
    res = _dot_general(a, b, ([ta.index(c) for c in contract], [tb.index(c) for c in contract]),
                       ([ta.index(c) for c in batch], [tb.index(c) for c in batch]))
    order = batch + [c for c in ta if c not in shared] + [c for c in tb if c not in shared]
    return transpose(res, [order.index(c) for c in out])
