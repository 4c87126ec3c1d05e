"""Reductions over a set of axes, and arg-reductions over one axis.

The accumulator dtype is the operand's (the front end promotes int32 sums to
int64 first, as NumPy does); reduced axes are removed from the shape.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..types import ShapedType
from .core import Primitive, check_axes, check_kinds, linear_rules, register

FAMILY = "reduction"


def _reduced_shape(x: ShapedType, axes) -> tuple[int, ...]:
    return tuple(d for i, d in enumerate(x.shape) if i not in axes)


def _reduce(name: str, fn, kinds: str, doc: str, needs_identity: bool = False, **rules) -> Primitive:
    def shape_rule(x: ShapedType, *, axes: tuple[int, ...]):
        check_kinds(name, x, kinds)
        check_axes(name, axes, x.ndim)
        if needs_identity and any(x.shape[a] == 0 for a in axes):
            raise ShapeError(f"{name}: cannot reduce a size-0 axis of {x}: the operation has no identity")
        return [ShapedType(_reduced_shape(x, axes), x.dtype)]

    return register(Primitive(name, shape_rule, lambda x, *, axes: [np.asarray(fn(x, axes))], FAMILY, doc, **rules))


def _expand(b, y, x, axes):
    """y, reduced over ``axes`` of x, broadcast back to x's shape."""
    t = b.type_of(x)
    return b.broadcast_in_dim(y, shape=t.shape, broadcast_dimensions=tuple(i for i in range(t.ndim) if i not in axes))


def _location_rules():
    """max/min: the derivative flows to the positions that attain the extremum,
    shared equally between ties (as JAX)."""
    def weights(b, x, out, axes):
        t = b.type_of(x)
        mask = b.convert_element_type(b.eq(x, _expand(b, out, x, axes)), dtype=t.dtype)
        return mask, b.reduce_sum(mask, axes=axes)

    def jvp(b, primals, tangents, outs, *, axes):
        (x,), (t,), (out,) = primals, tangents, outs
        if t is None:
            return [None]
        mask, count = weights(b, x, out, axes)
        return [b.div(b.reduce_sum(b.mul(t, mask), axes=axes), count)]

    def vjp(b, cts, primals, outs, *, axes):
        (x,), (g,), (out,) = primals, cts, outs
        mask, count = weights(b, x, out, axes)
        return [b.mul(_expand(b, b.div(g, count), x, axes), mask)]

    return dict(jvp=jvp, vjp=vjp)


def _prod_tree(b, x, axes):
    """reduce_prod as a tree of pairwise products (JAX's formulation): the
    reduced axes are moved to the front and flattened, then halves are
    multiplied until one row is left. Made of mul, slice, concatenate and
    layout moves only, so its derivatives of every order are exact, zeros
    included (a rule that divides by x, or selects on x == 0, is right only to
    first order: the second derivative of x0*x1*x2 at x0 = x1 = 0 is not 0)."""
    t = b.type_of(x)
    rest = [d for d in range(t.ndim) if d not in axes]
    rest_shape = tuple(t.shape[d] for d in rest)
    n = int(np.prod([t.shape[a] for a in axes], dtype=np.int64))
    perm = tuple(axes) + tuple(rest)
    y = x if perm == tuple(range(t.ndim)) else b.transpose(x, permutation=perm)
    y = b.reshape(y, new_sizes=(n,) + rest_shape)
    tail = (0,) * len(rest_shape)
    while n > 1:
        half = n // 2
        cut = lambda lo, hi: b.slice(y, start_indices=(lo,) + tail, limit_indices=(hi,) + rest_shape,
                                     strides=(1,) * (1 + len(rest_shape)))
        paired = b.mul(cut(0, half), cut(half, 2 * half))
        y = b.concatenate(paired, cut(2 * half, n), dimension=0) if n % 2 else paired
        n = half + n % 2
    return b.reshape(y, new_sizes=rest_shape)


def _prod_tree_graph(b, x, axes):
    """The tree of :func:`_prod_tree` as a one-input graph, for the autodiff passes to differentiate."""
    from ..builder import GraphBuilder
    from ..graph import Var

    gb = GraphBuilder()
    v = Var(b.type_of(x))
    return gb.build([v], [_prod_tree(gb, v, axes)], "reduce_prod_tree")


def _prod_jvp(b, primals, tangents, outs, *, axes):
    from ..passes.autodiff import jvp_inline

    (x,), (t,) = primals, tangents
    if t is None:
        return [None]
    if b.type_of(x).size == 0:
        return [b.zeros_like(outs[0])]
    return jvp_inline(b, _prod_tree_graph(b, x, axes), [x], [t])[1]


def _prod_vjp(b, cts, primals, outs, *, axes):
    from ..passes.autodiff import vjp_inline

    (x,), (g,) = primals, cts
    if b.type_of(x).size == 0:
        return [b.zeros_like(x)]
    return vjp_inline(b, _prod_tree_graph(b, x, axes), [x], [g])[1]


reduce_sum = _reduce(
    "reduce_sum", lambda x, axes: np.add.reduce(x, axis=axes, dtype=x.dtype), "fi", "sum over `axes` (0 for an empty axis)",
    **linear_rules(lambda b, t, x, *, axes: b.reduce_sum(t, axes=axes),
                   lambda b, g, x, *, axes: _expand(b, g, x, axes)))
reduce_prod = _reduce(
    "reduce_prod", lambda x, axes: np.multiply.reduce(x, axis=axes, dtype=x.dtype), "fi",
    "product over `axes` (1 for an empty axis)", jvp=_prod_jvp, vjp=_prod_vjp)
reduce_max = _reduce(
    "reduce_max", lambda x, axes: np.max(x, axis=axes), "fib",
    "maximum over `axes`; nan if any is nan; ties share the derivative", needs_identity=True, **_location_rules())
reduce_min = _reduce(
    "reduce_min", lambda x, axes: np.min(x, axis=axes), "fib",
    "minimum over `axes`; nan if any is nan; ties share the derivative", needs_identity=True, **_location_rules())


def _argreduce(name: str, fn, doc: str) -> Primitive:
    def shape_rule(x: ShapedType, *, axis: int, index_dtype):
        check_kinds(name, x, "fib")
        check_axes(name, (axis,), x.ndim, "axis")
        if x.shape[axis] == 0:
            raise ShapeError(f"{name}: attempt to get {name} of an empty axis of {x}")
        if not dtypes.is_int(index_dtype):
            raise DTypeError(f"{name}: index_dtype must be an integer dtype, got {index_dtype}")
        return [ShapedType(_reduced_shape(x, (axis,)), index_dtype)]

    def impl(x, *, axis, index_dtype):
        return [np.asarray(fn(x, axis=axis)).astype(index_dtype)]

    return register(Primitive(name, shape_rule, impl, FAMILY, doc, differentiable=False))


argmax = _argreduce("argmax", np.argmax, "index of the first maximum along `axis` (the first nan if any)")
argmin = _argreduce("argmin", np.argmin, "index of the first minimum along `axis` (the first nan if any)")
