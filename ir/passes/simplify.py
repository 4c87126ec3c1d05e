"""Constant folding and algebraic simplification: rules that are exact
under IEEE arithmetic.

Every rewrite here gives bit-identical results for every input, NaN, Inf and
signed zeros included (a NaN's sign and payload aside, which IEEE 754 leaves
unspecified for arithmetic); each rule's docstring says why. Rules that are only
true of real numbers (x*0 -> 0 fails for inf and nan; x+0 -> x fails for -0.0;
reassociation changes rounding) are deliberately absent.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..builder import GraphBuilder, _uniform
from ..graph import Eqn, Literal, Var
from .rewrite import NamedRule, rebind

FOLD_LIMIT = 1 << 16  # evaluate non-elementwise equations on at most this many input elements
KEEP_LIMIT = 4096  # keep a non-uniform folded result as a constant only up to this many elements
# Moving, selecting or taking the extremum of equal elements gives that element again, whatever the size.
UNIFORM_KEEPING = {"reshape", "transpose", "rev", "slice", "reduce_max", "reduce_min"}


def uniform_value(b: GraphBuilder, a):
    """The scalar every element of ``a`` equals, if the graph says so (a literal,
    or a broadcast of one); else None."""
    if isinstance(a, Literal):
        return a.value
    eqn = b.producer.get(a.id)
    if eqn is not None and eqn.prim.name == "broadcast_in_dim" and isinstance(eqn.inputs[0], Literal):
        return eqn.inputs[0].value
    return None


def known_value(b: GraphBuilder, a):
    """The full value of ``a`` if it is a constant of the graph (materialising a uniform one)."""
    u = uniform_value(b, a)
    if u is not None:
        return np.broadcast_to(u, a.type.shape)
    eqn = b.producer.get(a.id)
    if eqn is not None and eqn.prim.name == "constant":
        return eqn.params["value"].array
    return None


def _as_atom(b: GraphBuilder, value: np.ndarray):
    """A folded value as an atom (a literal, a broadcast literal or a constant),
    or None for a large non-uniform array, which is not worth carrying in the graph."""
    value = np.asarray(value)
    if value.ndim == 0:
        return Literal(value)  # (np.ascontiguousarray would make it shape (1,))
    value = np.ascontiguousarray(value)
    if value.size > KEEP_LIMIT and not _uniform(value.reshape(-1)):
        return None
    return b.constant(value)


def fold(b: GraphBuilder, eqn: Eqn, ins: list):
    """Evaluate an equation whose inputs are all constants. Elementwise ones run
    on the scalars of uniform inputs, so a broadcast never becomes a large
    array, and layout moves and max/min of a uniform value stay uniform; others
    are evaluated when their inputs and outputs are small, and a large
    non-uniform result is left unfolded. The canonical forms themselves
    (a broadcast of a literal, iota, constant) are left alone."""
    if not ins or eqn.prim.name in ("broadcast_in_dim", "constant", "iota") or eqn.subgraphs():
        return None
    if eqn.prim.name in UNIFORM_KEEPING:
        u = uniform_value(b, ins[0])
        if u is not None:
            out = eqn.outputs[0].type
            return [b.full(out.shape, u, out.dtype)]
    if eqn.prim.family == "elementwise":
        scalars = [uniform_value(b, a) for a in ins]
        if all(s is not None for s in scalars):
            with np.errstate(all="ignore"):
                outs = eqn.prim.impl(*scalars, **eqn.params)
            # The result is uniform too: a literal, broadcast to the output's shape without materialising it.
            return [b.full(v.type.shape, np.asarray(o, v.type.dtype), v.type.dtype)
                    for o, v in zip(outs, eqn.outputs)]
    if sum(a.type.size for a in ins) > FOLD_LIMIT or sum(v.type.size for v in eqn.outputs) > FOLD_LIMIT:
        return None  # (an outer product of two small inputs can be huge)
    values = [known_value(b, a) for a in ins]
    if any(v is None for v in values):
        return None
    with np.errstate(all="ignore"):
        outs = eqn.prim.impl(*values, **eqn.params)
    atoms = [_as_atom(b, o) for o in outs]
    return atoms if all(a is not None for a in atoms) else None


# ---------------------------------------------------------------- algebra
def _is(b, a, value: float, sign_bit: bool | None = None) -> bool:
    """a is uniformly ``value`` (and, for zeros, has the given sign bit)."""
    u = uniform_value(b, a)
    if u is None or u.dtype == dtypes.bool_ or u != value:
        return False
    return sign_bit is None or bool(np.signbit(u)) == sign_bit


def _same_type(a, eqn: Eqn) -> bool:
    return len(eqn.outputs) == 1 and a.type == eqn.outputs[0].type


def mul_by_one(b, eqn, ins):
    """x * 1 is x, exactly, for every x (nan and inf included)."""
    if eqn.prim.name == "mul" and eqn.outputs[0].type.dtype != dtypes.bool_:
        for x, one in ((ins[0], ins[1]), (ins[1], ins[0])):
            if _is(b, one, 1) and _same_type(x, eqn):
                return [x]
    return None


def mul_by_minus_one(b, eqn, ins):
    """x * -1 is -x, exactly (IEEE multiplication by -1 only flips the sign;
    of a NaN, only the sign bit, which IEEE 754 leaves unspecified for
    multiplication, may differ). -y * -1 is y at once, so that one pass
    leaves no double negation behind."""
    if eqn.prim.name == "mul" and dtypes.is_float(eqn.outputs[0].type.dtype):
        for x, m in ((ins[0], ins[1]), (ins[1], ins[0])):
            if _is(b, m, -1) and _same_type(x, eqn):
                inner = _producer(b, x, "neg")
                return [inner.inputs[0]] if inner is not None else [b.neg(x)]
    return None


def divide_by_one(b, eqn, ins):
    """x / 1 is x, exactly."""
    if eqn.prim.name == "div" and _is(b, ins[1], 1) and _same_type(ins[0], eqn):
        return [ins[0]]
    return None


def add_negative_zero(b, eqn, ins):
    """x + (-0.0) is x for every x, signed zeros included (x + (+0.0) is not:
    it turns -0.0 into +0.0, so it stays)."""
    if eqn.prim.name == "add" and dtypes.is_float(eqn.outputs[0].type.dtype):
        for x, z in ((ins[0], ins[1]), (ins[1], ins[0])):
            if _is(b, z, 0, sign_bit=True) and _same_type(x, eqn):
                return [x]
    return None


def subtract_zero(b, eqn, ins):
    """x - (+0.0) is x for every x, signed zeros included."""
    if eqn.prim.name == "sub" and dtypes.is_float(eqn.outputs[0].type.dtype) and \
            _is(b, ins[1], 0, sign_bit=False) and _same_type(ins[0], eqn):
        return [ins[0]]
    return None


def _producer(b, a, name: str):
    eqn = b.producer.get(a.id) if isinstance(a, Var) else None
    return eqn if eqn is not None and eqn.prim.name == name else None


def double_negation(b, eqn, ins):
    """-(-x) is x: negation flips the sign bit only."""
    inner = _producer(b, ins[0], "neg") if eqn.prim.name == "neg" else None
    return [inner.inputs[0]] if inner is not None else None


def same_choice(b, eqn, ins):
    """select(p, x, x) is x whatever p is."""
    if eqn.prim.name == "select" and ins[1] is ins[2] and _same_type(ins[1], eqn):
        return [ins[1]]
    return None


def power_of_one(b, eqn, ins):
    """x ** 1 is x."""
    return [ins[0]] if eqn.prim.name == "integer_pow" and eqn.params["y"] == 1 else None


def no_op_layout(b, eqn, ins):
    """A reshape to the same shape, the identity permutation, a broadcast to the
    same shape with identity dimensions, a full unit-stride slice, a max, min
    or product over no axes (or an integer sum), a rev of no dimensions, a
    conversion to the same dtype: each returns its operand unchanged. (A float
    sum over no axes is 0.0 + x, as NumPy computes it: -0.0 becomes +0.0, so
    it stays.)"""
    name, p, x = eqn.prim.name, eqn.params, ins[0] if ins else None
    same = x is not None and isinstance(x, Var) and _same_type(x, eqn)
    if not same:
        return None
    if (name == "reshape" or name == "convert_element_type"
            or (name == "transpose" and tuple(p["permutation"]) == tuple(range(x.type.ndim)))
            or (name == "broadcast_in_dim" and tuple(p["broadcast_dimensions"]) == tuple(range(x.type.ndim)))
            or (name == "slice" and all(s == 0 for s in p["start_indices"]) and all(st == 1 for st in p["strides"]))
            or (name in ("reduce_max", "reduce_min", "reduce_prod") and not p["axes"])
            or (name == "reduce_sum" and not p["axes"] and not dtypes.is_float(x.type.dtype))
            or (name == "rev" and not p["dimensions"])):
        return [x]
    return None


def merge_reshapes(b, eqn, ins):
    """reshape(reshape(x)) is one reshape: both keep row-major order (and none
    when it gives x's own shape back)."""
    inner = _producer(b, ins[0], "reshape") if eqn.prim.name == "reshape" else None
    if inner is None:
        return None
    x = inner.inputs[0]
    return [x] if _same_type(x, eqn) else rebind(b, eqn, [x])


def merge_transposes(b, eqn, ins):
    """transpose(transpose(x, p), q) is transpose(x, p[q])."""
    inner = _producer(b, ins[0], "transpose") if eqn.prim.name == "transpose" else None
    if inner is None:
        return None
    p, q = inner.params["permutation"], eqn.params["permutation"]
    composed = tuple(p[i] for i in q)
    if composed == tuple(range(len(composed))):
        return [inner.inputs[0]]  # a permutation and its inverse
    return rebind(b, eqn, [inner.inputs[0]], permutation=composed)


def merge_broadcasts(b, eqn, ins):
    """broadcast_in_dim(broadcast_in_dim(x, d1), d2) is one broadcast, x's
    dimension i landing at d2[d1[i]]."""
    inner = _producer(b, ins[0], "broadcast_in_dim") if eqn.prim.name == "broadcast_in_dim" else None
    if inner is None:
        return None
    d1, d2 = inner.params["broadcast_dimensions"], eqn.params["broadcast_dimensions"]
    x, dims = inner.inputs[0], tuple(d2[d] for d in d1)
    if _same_type(x, eqn) and dims == tuple(range(x.type.ndim)):
        return [x]
    return rebind(b, eqn, [x], broadcast_dimensions=dims)


def round_trip_conversion(b, eqn, ins):
    """Converting to a wider type that holds every value exactly and back gives
    the original (f32 -> f64 -> f32, i32 -> i64 or f64 -> i32, bool -> any -> bool)."""
    inner = _producer(b, ins[0], "convert_element_type") if eqn.prim.name == "convert_element_type" else None
    if inner is None or inner.inputs[0].type.dtype != eqn.params["dtype"]:
        return None
    original, middle = inner.inputs[0].type.dtype, inner.params["dtype"]
    exact = {(dtypes.float32, dtypes.float64), (dtypes.int32, dtypes.int64), (dtypes.int32, dtypes.float64)}
    if (original, middle) in exact or original == dtypes.bool_:
        return [inner.inputs[0]]
    return None


FOLD_RULES = [NamedRule("fold_constants", fold, fold.__doc__)]
ALGEBRA_RULES = [NamedRule(f.__name__, f, f.__doc__) for f in (
    mul_by_one, mul_by_minus_one, divide_by_one, add_negative_zero, subtract_zero, double_negation, same_choice,
    power_of_one, no_op_layout, merge_reshapes, merge_transposes, merge_broadcasts, round_trip_conversion)]
