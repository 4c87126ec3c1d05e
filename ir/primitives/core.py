"""The primitive record and the registry.

A primitive is a name plus everything it means, kept together in one record:
its shape/dtype rule, its NumPy reference implementation, and (beside them)
its derivative rules. Backends add a lowering keyed by the same name. The
families of primitives live in the sibling modules, one file per family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..types import ShapedType

REGISTRY: dict[str, "Primitive"] = {}


@dataclass(eq=False)
class Primitive:
    """One row of the primitive table.

    ``shape_rule(*in_types, **params)`` returns the output types (a list) and
    raises ShapeError / DTypeError for operands the primitive does not accept;
    ``impl(*arrays, **params)`` computes the outputs with NumPy (a list).
    ``family`` groups primitives in docs; ``doc`` states the semantics.

    Derivative rules are written against a builder ``b`` (ir.builder), so the
    graph autodiff pass and the eager tape share them; ``None`` stands for a
    zero tangent or cotangent:

    ``jvp(b, primals, tangents, outs, **params) -> tangents of outs``
    ``vjp(b, cotangents, primals, outs, **params) -> cotangents of primals``

    A primitive with ``differentiable=False`` has a zero derivative (as JAX's
    comparisons, floor or argmax) and no rules."""

    name: str
    shape_rule: Callable
    impl: Callable
    family: str
    doc: str
    differentiable: bool = True
    jvp: Callable | None = None
    vjp: Callable | None = None

    def __repr__(self) -> str:
        return self.name


def register(prim: Primitive) -> Primitive:
    if prim.name in REGISTRY:
        raise ValueError(f"primitive {prim.name!r} registered twice")
    REGISTRY[prim.name] = prim
    return prim


# ---------------------------------------------------------------- shared checks

KIND_NAMES = {"f": "floating", "i": "integer", "b": "bool"}


def check_kinds(prim: str, t: ShapedType, kinds: str, which: str = "operand") -> None:
    """Reject a dtype whose kind ('f', 'i', 'b') the primitive does not accept."""
    kind = "i" if dtypes.is_int(t.dtype) else t.dtype.kind
    if kind not in kinds:
        allowed = " or ".join(KIND_NAMES[k] for k in kinds)
        raise DTypeError(f"{prim}: {which} has dtype {t.dtype}, but {prim} takes {allowed} values")


def check_same_dtype(prim: str, types) -> np.dtype:
    found = {t.dtype for t in types}
    if len(found) > 1:
        listed = ", ".join(str(t) for t in types)
        raise DTypeError(f"{prim}: operands must share one dtype, got {listed}; convert with convert_element_type")
    return types[0].dtype


def elementwise_shape(prim: str, types) -> tuple[int, ...]:
    """Elementwise primitives take operands of one shape; a 0-d operand is
    broadcast (so ``mul a 2.0:f32`` needs no explicit broadcast)."""
    shapes = {t.shape for t in types if t.ndim > 0}
    if len(shapes) > 1:
        listed = ", ".join(str(t) for t in types)
        raise ShapeError(f"{prim}: operand shapes differ ({listed}); broadcast them with broadcast_in_dim first")
    return shapes.pop() if shapes else ()


def check_axes(prim: str, axes, ndim: int, what: str = "axes") -> None:
    if len(set(axes)) != len(axes) or any(not 0 <= a < ndim for a in axes):
        raise ShapeError(f"{prim}: {what} {tuple(axes)} must be distinct and in [0, {ndim}) for a rank-{ndim} operand")


# ------------------------------------------------------ shared derivative rules
def add_tangents(b, xs):
    """The sum of the non-zero terms, or None when every term is zero."""
    xs = [x for x in xs if x is not None]
    total = xs[0] if xs else None
    for x in xs[1:]:
        total = b.add(total, x)
    return total


def elementwise_rules(*lins):
    """JVP and VJP of an elementwise primitive from one linear map per operand.

    ``lin(b, t, *primals, out)`` is the operand's partial derivative applied to
    t. An elementwise Jacobian is diagonal, hence self-adjoint, so the same map
    serves forward (applied to a tangent, then summed over operands) and
    reverse (applied to the cotangent, then summed down to a 0-d operand's
    shape). ``None`` marks an operand with no derivative."""

    def jvp(b, primals, tangents, outs, **params):
        out = outs[0]
        total = add_tangents(b, [lin(b, t, *primals, out, **params) for lin, t in zip(lins, tangents)
                                 if lin is not None and t is not None])
        return [None if total is None else b.broadcast_to(total, b.type_of(out).shape)]

    def vjp(b, cts, primals, outs, **params):
        g = cts[0]
        return [None if lin is None or not wanted(b, i) else
                b.sum_to_shape(lin(b, g, *primals, outs[0], **params), b.type_of(x).shape)
                for i, (lin, x) in enumerate(zip(lins, primals))]

    return dict(jvp=jvp, vjp=vjp)


def wanted(b, i: int) -> bool:
    """Whether operand i of the equation being differentiated needs a
    cotangent (reverse mode says so on the builder): a rule emits nothing for
    the others, such as the input data of a layer or a literal."""
    return b.wanted is None or b.wanted[i]


def linear_rules(apply, transpose):
    """Rules of a primitive linear in its single operand: ``apply(b, t, x, **params)``
    is the primitive itself on a tangent, ``transpose(b, g, x, **params)`` its adjoint."""

    def jvp(b, primals, tangents, outs, **params):
        return [None if tangents[0] is None else apply(b, tangents[0], primals[0], **params)]

    def vjp(b, cts, primals, outs, **params):
        return [transpose(b, cts[0], primals[0], **params)]

    return dict(jvp=jvp, vjp=vjp)
