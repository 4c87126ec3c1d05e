"""LLVM types and constants for the IR's dtypes, and the few instruction
patterns every lowering needs: counted loops, intrinsics, typed constants.

A bool lives in memory as one byte (as in NumPy) and in registers as ``i1``."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from llvmlite import ir

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
VOID = ir.VoidType()

_MEMORY = {"float32": F32, "float64": F64, "int32": I32, "int64": I64, "bool": I8}
_SUFFIX = {F32: "f32", F64: "f64", I32: "i32", I64: "i64", I8: "i8", I1: "i1"}


_MEMORY_OF = {np.dtype(name): t for name, t in _MEMORY.items()}  # by dtype object: no name lookup per call


def memory_type(dtype: np.dtype) -> ir.Type:
    found = _MEMORY_OF.get(dtype) if isinstance(dtype, np.dtype) else None
    return found if found is not None else _MEMORY[np.dtype(dtype).name]


def register_type(dtype: np.dtype) -> ir.Type:
    return I1 if np.dtype(dtype) == np.bool_ else memory_type(dtype)


def is_float_type(t: ir.Type) -> bool:
    return isinstance(t, (ir.FloatType, ir.DoubleType))


def constant(dtype: np.dtype, value) -> ir.Constant:
    """A register constant of ``dtype`` holding ``value`` exactly (NaN and -0.0 included)."""
    dtype = np.dtype(dtype)
    t = register_type(dtype)
    if dtype.kind == "f":
        return ir.Constant(t, float(np.asarray(value, dtype)))
    return ir.Constant(t, int(np.asarray(value, dtype)))


def int64(n: int) -> ir.Constant:
    return ir.Constant(I64, n)


def intrinsic(builder: ir.IRBuilder, name: str, args: list, ret: ir.Type | None = None) -> ir.Value:
    """Call ``llvm.<name>.<type>`` on args (the overload is named by the first argument's type)."""
    module = builder.module
    t = args[0].type
    full = f"llvm.{name}.{_SUFFIX[t]}"
    fn = module.globals.get(full)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret or t, [a.type for a in args]), name=full)
    return builder.call(fn, args)


@contextmanager
def counted_loop(b: ir.IRBuilder, stop: ir.Value, name: str = "i", start: ir.Value | None = None,
                 step: ir.Value | int = 1):
    """``for i in range(start, stop, step)`` (step > 0): yields i; the code emitted in the block runs per iteration."""
    pre = b.block
    fn = pre.function
    head = fn.append_basic_block(f"{name}.head")
    body = fn.append_basic_block(f"{name}.body")
    done = fn.append_basic_block(f"{name}.done")
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64, name=name)
    i.add_incoming(start if start is not None else int64(0), pre)
    b.cbranch(b.icmp_signed("<", i, stop), body, done)
    b.position_at_end(body)
    yield i
    following = b.add(i, int64(step) if isinstance(step, int) else step, name=f"{name}.next", flags=["nsw"])
    i.add_incoming(following, b.block)
    b.branch(head)
    b.position_at_end(done)
