"""The scalar lowering of every elementwise primitive: one rule per primitive,
``rule(b, eqn, *operands) -> value``, on register values (the loop nest
around it is the kernel's business; ``b.status`` points at the program's
status word, where a rule reports an input NumPy would refuse). Rules follow NumPy's semantics exactly:
integer division by zero gives 0 instead of trapping, a float converted to an
integer out of range gives the minimum integer as NumPy on x86 does, NaN
compares unequal.

Floating-point instructions carry only the ``contract`` flag (a multiply and
an add may become one FMA); transcendental functions come from ``mathlib``,
written as straight-line IR so that loops around them vectorise."""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from ir.graph import Eqn, Literal

from . import mathlib
from .llvmtypes import F64, I1, I32, constant, intrinsic, is_float_type, register_type

CONTRACT = ("contract",)
NEGATIVE_INTEGER_POWER = -1  # a status the entry point returns: the runtime raises NumPy's error for it


def _is_float(x: ir.Value) -> bool:
    return is_float_type(x.type)


def _arith(fop: str, iop: str, bool_op: str | None = None):
    def rule(b: ir.IRBuilder, eqn: Eqn, x, y):
        if _is_float(x):
            return getattr(b, fop)(x, y, flags=CONTRACT)
        if x.type == I1 and bool_op is not None:
            return getattr(b, bool_op)(x, y)
        return getattr(b, iop)(x, y)
    return rule


def _math(name: str):
    return lambda b, eqn, *xs: mathlib.call(b, name, list(xs))


def _compare(op: str):
    def rule(b: ir.IRBuilder, eqn: Eqn, x, y):
        if _is_float(x):  # != is the unordered comparison: NaN != NaN holds
            return b.fcmp_unordered(op, x, y) if op == "!=" else b.fcmp_ordered(op, x, y)
        return b.icmp_unsigned(op, x, y) if x.type == I1 else b.icmp_signed(op, x, y)
    return rule


def _extremum(op: str, iname: str, bool_op: str):
    """maximum / minimum as np.maximum / np.minimum: a NaN in x wins, then x if
    strictly greater (less), else y — so a NaN in y wins too, and of two equal
    zeros the second is returned, sign included."""
    def rule(b: ir.IRBuilder, eqn: Eqn, x, y):
        if _is_float(x):
            return b.select(b.fcmp_unordered("uno", x, x), x, b.select(b.fcmp_ordered(op, x, y), x, y))
        if x.type == I1:
            return getattr(b, bool_op)(x, y)
        return intrinsic(b, iname, [x, y])
    return rule


def _neg(b, eqn, x):
    return b.fneg(x) if _is_float(x) else b.neg(x)


def _abs(b, eqn, x):
    if _is_float(x):
        return intrinsic(b, "fabs", [x])
    return b.select(b.icmp_signed("<", x, ir.Constant(x.type, 0)), b.neg(x), x)


def _sign(b, eqn, x):
    one, minus_one, zero = (ir.Constant(x.type, v) for v in ((1.0, -1.0, 0.0) if _is_float(x) else (1, -1, 0)))
    if _is_float(x):
        neg = b.select(b.fcmp_ordered("<", x, zero), minus_one, b.select(b.fcmp_ordered("==", x, zero), zero, x))
        return b.select(b.fcmp_ordered(">", x, zero), one, neg)
    return b.select(b.icmp_signed(">", x, zero), one, b.select(b.icmp_signed("<", x, zero), minus_one, zero))


def _is_finite(b, eqn, x):
    return b.fcmp_ordered("<", intrinsic(b, "fabs", [x]), ir.Constant(x.type, float("inf")))


def _not(b, eqn, x):
    return b.not_(x)


def _integer_pow(b, eqn, x):
    """Square-and-multiply in the order the reference implementation uses, so both round alike."""
    y = eqn.params["y"]
    result, base, n = None, x, abs(y)
    mul = (lambda p, q: b.fmul(p, q, flags=CONTRACT)) if _is_float(x) else b.mul
    while n:
        if n & 1:
            result = base if result is None else mul(result, base)
        n >>= 1
        if n:
            base = mul(base, base)
    if result is None:
        result = ir.Constant(x.type, 1.0 if _is_float(x) else 1)
    return b.fdiv(ir.Constant(x.type, 1.0), result) if y < 0 else result


def _pow(b, eqn, x, y):
    if _is_float(x):
        exponent = eqn.inputs[1]
        if isinstance(exponent, Literal) and exponent.value == 0.5:  # NumPy computes x ** 0.5 as sqrt(x)
            return intrinsic(b, "sqrt", [x])
        return mathlib.call(b, "pow", [x, y])
    # NumPy refuses integers to negative integer powers: flag it, the runtime raises its ValueError.
    negative = b.icmp_signed("<", y, ir.Constant(y.type, 0))
    b.store(b.select(negative, ir.Constant(I32, NEGATIVE_INTEGER_POWER), b.load(b.status)), b.status)
    return b.call(_integer_power_function(b.module, x.type), [x, y])


def _integer_power_function(module: ir.Module, t: ir.IntType) -> ir.Function:
    """x**y on integers by square-and-multiply; a negative y gives 1/x**-y truncated (0 unless x is +-1)."""
    name = f"tg_ipow_i{t.width}"
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    fn = ir.Function(module, ir.FunctionType(t, [t, t]), name=name)
    fn.linkage = "internal"
    x, y = fn.args
    entry, loop, done = (fn.append_basic_block(n) for n in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    zero, one, minus_one = ir.Constant(t, 0), ir.Constant(t, 1), ir.Constant(t, -1)
    # y <= 0: 1 for y == 0 or x == 1, (-1)**y for x == -1, else 0.
    even = b.icmp_signed("==", b.and_(y, one), zero)
    negative = b.select(b.icmp_signed("==", x, one), one,
                        b.select(b.icmp_signed("==", x, minus_one), b.select(even, one, minus_one), zero))
    not_positive = b.select(b.icmp_signed("==", y, zero), one, negative)
    b.cbranch(b.icmp_signed(">", y, zero), loop, done)
    b.position_at_end(loop)
    acc, base, n = b.phi(t), b.phi(t), b.phi(t)
    acc.add_incoming(one, entry)
    base.add_incoming(x, entry)
    n.add_incoming(y, entry)
    odd = b.icmp_signed("!=", b.and_(n, one), zero)
    acc2 = b.select(odd, b.mul(acc, base), acc)
    base2, n2 = b.mul(base, base), b.ashr(n, one)
    acc.add_incoming(acc2, loop)
    base.add_incoming(base2, loop)
    n.add_incoming(n2, loop)
    b.cbranch(b.icmp_signed(">", n2, zero), loop, done)
    b.position_at_end(done)
    result = b.phi(t)
    result.add_incoming(acc2, loop)
    result.add_incoming(not_positive, entry)
    b.ret(result)
    return fn


def _float_floor_divide(b, x, y):
    """NumPy's floor division of floats, which rounds fmod's quotient to the nearest integer."""
    zero, one, half = (ir.Constant(x.type, v) for v in (0.0, 1.0, 0.5))
    mod = b.frem(x, y)
    div = b.fdiv(b.fsub(x, mod), y)
    adjust = b.and_(b.fcmp_ordered("!=", mod, zero),
                    b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero)))
    div = b.select(adjust, b.fsub(div, one), div)
    floor = intrinsic(b, "floor", [div])
    floor = b.select(b.fcmp_ordered(">", b.fsub(div, floor), half), b.fadd(floor, one), floor)
    floor = b.select(b.fcmp_ordered("==", div, zero), intrinsic(b, "copysign", [zero, b.fdiv(x, y)]), floor)
    return b.select(b.fcmp_ordered("==", y, zero), b.fdiv(x, y), floor)


def _float_remainder(b, x, y):
    zero = ir.Constant(x.type, 0.0)
    mod = b.frem(x, y)
    adjust = b.and_(b.fcmp_ordered("!=", mod, zero),
                    b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero)))
    fixed = b.select(adjust, b.fadd(mod, y), mod)
    return b.select(b.fcmp_ordered("==", mod, zero), intrinsic(b, "copysign", [zero, y]), fixed)


def _safe_divisor(b, x, y):
    """y, or 1 where dividing would trap (by zero, or the minimum integer by -1)."""
    t = x.type
    minimum = ir.Constant(t, -(1 << (t.width - 1)))
    traps = b.or_(b.icmp_signed("==", y, ir.Constant(t, 0)),
                  b.and_(b.icmp_signed("==", x, minimum), b.icmp_signed("==", y, ir.Constant(t, -1))))
    return b.select(traps, ir.Constant(t, 1), y)


def _floor_divide(b, eqn, x, y):
    if _is_float(x):
        return _float_floor_divide(b, x, y)
    zero = ir.Constant(x.type, 0)
    d = _safe_divisor(b, x, y)
    q, r = b.sdiv(x, d), b.srem(x, d)
    adjust = b.and_(b.icmp_signed("!=", r, zero), b.xor(b.icmp_signed("<", r, zero), b.icmp_signed("<", d, zero)))
    q = b.select(adjust, b.sub(q, ir.Constant(x.type, 1)), q)
    return b.select(b.icmp_signed("==", y, zero), zero, q)


def _remainder(b, eqn, x, y):
    if _is_float(x):
        return _float_remainder(b, x, y)
    zero = ir.Constant(x.type, 0)
    d = _safe_divisor(b, x, y)
    r = b.srem(x, d)
    adjust = b.and_(b.icmp_signed("!=", r, zero), b.xor(b.icmp_signed("<", r, zero), b.icmp_signed("<", d, zero)))
    r = b.select(adjust, b.add(r, d), r)
    return b.select(b.icmp_signed("==", y, zero), zero, r)


def _select(b, eqn, p, t, f):
    return b.select(p, t, f)


def convert(b: ir.IRBuilder, x: ir.Value, src: np.dtype, dst: np.dtype) -> ir.Value:
    """x.astype(dst) as NumPy does it on this CPU."""
    src, dst = np.dtype(src), np.dtype(dst)
    target = register_type(dst)
    if src == dst:
        return x
    if dst == np.bool_:
        if src.kind == "f":
            return b.fcmp_unordered("!=", x, ir.Constant(x.type, 0.0))  # NaN is True
        return b.icmp_signed("!=", x, ir.Constant(x.type, 0))
    if dst.kind == "f":
        if src.kind == "f":
            return b.fpext(x, target) if target == F64 else b.fptrunc(x, target)
        return b.uitofp(x, target) if src == np.bool_ else b.sitofp(x, target)
    if src.kind == "f":  # out of range or NaN: the minimum integer, without fptosi's undefined result
        bits = target.width
        limit = ir.Constant(x.type, float(2 ** (bits - 1)))
        inside = b.and_(b.fcmp_ordered("<", x, limit), b.fcmp_ordered(">", x, b.fneg(limit)))
        safe = b.select(inside, x, ir.Constant(x.type, 0.0))
        return b.select(inside, b.fptosi(safe, target), ir.Constant(target, -(1 << (bits - 1))))
    if src == np.bool_:
        return b.zext(x, target)
    return b.sext(x, target) if target.width > x.type.width else b.trunc(x, target)


def _convert(b, eqn, x):
    return convert(b, x, eqn.inputs[0].type.dtype, eqn.params["dtype"])


def _identity(b, eqn, x):
    return x


def _round(b, eqn, x):
    return intrinsic(b, "roundeven", [x])


RULES = {
    "neg": _neg, "abs": _abs, "sign": _sign, "not": _not, "is_finite": _is_finite, "stop_gradient": _identity,
    "floor": lambda b, eqn, x: intrinsic(b, "floor", [x]),
    "ceil": lambda b, eqn, x: intrinsic(b, "ceil", [x]),
    "round": _round,
    "sqrt": lambda b, eqn, x: intrinsic(b, "sqrt", [x]),
    **{name: _math(name) for name in ("exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sinh", "cosh",
                                       "atan")},
    "integer_pow": _integer_pow,
    "add": _arith("fadd", "add", "or_"), "sub": _arith("fsub", "sub"), "mul": _arith("fmul", "mul", "and_"),
    "div": _arith("fdiv", "sdiv"), "pow": _pow,
    "max": _extremum(">", "smax", "or_"), "min": _extremum("<", "smin", "and_"),
    "floor_divide": _floor_divide, "remainder": _remainder,
    "and": lambda b, eqn, x, y: b.and_(x, y), "or": lambda b, eqn, x, y: b.or_(x, y),
    "xor": lambda b, eqn, x, y: b.xor(x, y),
    "eq": _compare("=="), "ne": _compare("!="), "lt": _compare("<"), "le": _compare("<="),
    "gt": _compare(">"), "ge": _compare(">="),
    "select": _select, "convert_element_type": _convert,
}


def identity_of(name: str, dtype: np.dtype) -> ir.Constant:
    """The value a reduction starts from."""
    dtype = np.dtype(dtype)
    if name == "reduce_sum":
        return constant(dtype, 0)
    if name == "reduce_prod":
        return constant(dtype, 1)
    biggest = name == "reduce_min"
    if dtype.kind == "f":
        return constant(dtype, np.inf if biggest else -np.inf)
    if dtype == np.bool_:
        return constant(dtype, biggest)
    info = np.iinfo(dtype)
    return constant(dtype, info.max if biggest else info.min)


def combine(b: ir.IRBuilder, name: str, acc: ir.Value, x: ir.Value, reassociate: bool) -> ir.Value:
    """One step of a reduction. ``reassociate`` lets a register accumulator be
    split into vector lanes: the only place the ``reassoc`` flag is used."""
    flags = ("reassoc", "contract") if reassociate else CONTRACT
    if name == "reduce_sum":
        if _is_float(x):
            return b.fadd(acc, x, flags=flags)
        return b.or_(acc, x) if x.type == I1 else b.add(acc, x)
    if name == "reduce_prod":
        if _is_float(x):
            return b.fmul(acc, x, flags=flags)
        return b.and_(acc, x) if x.type == I1 else b.mul(acc, x)
    maximum = name == "reduce_max"
    if _is_float(x):
        return intrinsic(b, "maximum" if maximum else "minimum", [acc, x])
    if x.type == I1:
        return b.or_(acc, x) if maximum else b.and_(acc, x)
    return intrinsic(b, "smax" if maximum else "smin", [acc, x])

