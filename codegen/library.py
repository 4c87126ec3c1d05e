"""Routines compiled once per machine, apart from any program: the matmul
kernels. A generated GEMM is a large function that takes LLVM seconds to
optimise; compiling it into every program would make each first call that
slow. Instead it is compiled once (and cached on disk like a program), its
address is registered with LLVM's symbol table, and programs call it by name.
"""

from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir

from . import gemm, target
from .cache import digest, load_cached, store_cached

_LOADED: dict[str, target.Engine] = {}  # routine name -> the engine holding its code


def _dtype_of(routine: str) -> str:
    return routine.rsplit("_", 1)[1]


def declare(module: ir.Module, routine: str) -> ir.Function:
    """A declaration of ``routine`` in ``module``, to be resolved when the program is loaded."""
    fn = module.globals.get(routine)
    return fn if fn is not None else ir.Function(module, gemm.function_type(_dtype_of(routine)), name=routine)


def load(routines) -> None:
    """Make sure every routine in ``routines`` is compiled and its symbol known to LLVM."""
    for routine in routines:
        if routine in _LOADED:
            continue
        key = digest(f"library|{routine}")
        obj = load_cached(key)
        if obj is None:
            module = ir.Module(name=routine)
            gemm.define_gemm(module, _dtype_of(routine))
            engine, _ = target.compile_module(str(module))
            if engine.object_code is not None:
                store_cached(key, engine.object_code)
        else:
            engine = target.Engine(obj=obj)
        llvm.add_symbol(routine, engine.address(routine))
        _LOADED[routine] = engine
