"""Reductions over a set of axes, and arg-reductions over one axis.

The accumulator dtype is the operand's (the front end promotes int32 sums to
int64 first, as NumPy does); reduced axes are removed from the shape.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..types import ShapedType
from .core import Primitive, check_axes, check_kinds, register

FAMILY = "reduction"


def _reduced_shape(x: ShapedType, axes) -> tuple[int, ...]:
    return tuple(d for i, d in enumerate(x.shape) if i not in axes)


def _reduce(name: str, fn, kinds: str, doc: str, needs_identity: bool = False) -> Primitive:
    def shape_rule(x: ShapedType, *, axes: tuple[int, ...]):
        check_kinds(name, x, kinds)
        check_axes(name, axes, x.ndim)
        if needs_identity and any(x.shape[a] == 0 for a in axes):
            raise ShapeError(f"{name}: cannot reduce a size-0 axis of {x}: the operation has no identity")
        return [ShapedType(_reduced_shape(x, axes), x.dtype)]

    return register(Primitive(name, shape_rule, lambda x, *, axes: [np.asarray(fn(x, axes))], FAMILY, doc))


reduce_sum = _reduce("reduce_sum", lambda x, axes: np.sum(x, axis=axes, dtype=x.dtype), "fi", "sum over `axes` (0 for an empty axis)")
reduce_prod = _reduce("reduce_prod", lambda x, axes: np.prod(x, axis=axes, dtype=x.dtype), "fi", "product over `axes` (1 for an empty axis)")
reduce_max = _reduce("reduce_max", lambda x, axes: np.max(x, axis=axes), "fib", "maximum over `axes`; nan if any is nan", needs_identity=True)
reduce_min = _reduce("reduce_min", lambda x, axes: np.min(x, axis=axes), "fib", "minimum over `axes`; nan if any is nan", needs_identity=True)


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
