"""The runtime: an ``Executable`` is one compiled program with one native
entry point, called on NumPy arrays.

The call path is short: check each argument's shape, dtype and layout (an
array that is not C-contiguous and aligned, a negative-stride view for
instance, is copied first, never read wrongly), allocate the outputs as fresh
arrays the caller owns, and enter native code once. The entry point receives
the array objects themselves and reads their data pointers (at
``program.DATA_OFFSET``, verified below against NumPy on import), which is
several times cheaper than asking each array for ``ctypes.data``.

Compiled objects are cached in memory and on disk (cache.py); the matmul
kernels are compiled once, apart from any program (library.py).
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from ir.builder import graph_key
from ir.graph import Graph, Literal

from . import library, target
from . import program as _program
from .cache import digest, load_cached, store_cached
from .elementwise import NEGATIVE_INTEGER_POWER
from .program import Program, emit, prepare

ERRORS = {NEGATIVE_INTEGER_POWER: (ValueError, "Integers to negative integer powers are not allowed.")}


def _data_offset_holds() -> bool:
    probe = np.arange(3.0)
    return ctypes.c_void_p.from_address(id(probe) + _program.DATA_OFFSET).value == probe.ctypes.data


if not _data_offset_holds():  # pragma: no cover - a NumPy with another object layout
    raise ImportError("tracegrad's native runtime does not recognise this NumPy's array layout; "
                      "use jit(..., backend='interpret')")


def cache_key(graph: Graph, checked: bool) -> str:
    return digest(repr((graph_key(graph), checked, _program.DATA_OFFSET)))


@dataclass
class MemoryStats:
    """Bytes an executable holds: its arena of intermediates (planned), its
    outputs per call, and what the intermediates would take without reuse."""
    arena_bytes: int
    output_bytes: int
    unplanned_intermediate_bytes: int

    @property
    def peak_bytes(self) -> int:
        return self.arena_bytes + self.output_bytes


class Executable:
    """One compiled program. ``checked``: the debug_nans build (see program.py)."""

    def __init__(self, graph: Graph, checked: bool = False, use_disk_cache: bool = True):
        self.program: Program = prepare(graph)
        self.checked = checked
        self.key = cache_key(graph, checked)
        library.load(self.program.library_routines())
        engine = _LOADED.get(self.key)
        obj = load_cached(self.key) if use_disk_cache and engine is None else None
        self.from_disk = obj is not None
        if engine is None:
            if obj is None:
                engine, _ = target.compile_module(emit(self.program, checked))
                if use_disk_cache and engine.object_code is not None:
                    store_cached(self.key, engine.object_code)
            else:
                engine = target.Engine(obj=obj)
            _LOADED[self.key] = engine
        self._engine = engine
        self._entry = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(
            engine.address(_program.ENTRY))
        plan = self.program.plan
        self._in_specs = [(v.type.shape, v.type.dtype) for v in plan.inputs]
        self._out_specs = [(v.type.shape, v.type.dtype) for v in plan.outputs]
        self._constants = [np.ascontiguousarray(a) for _, a in plan.constants]
        self._constant_ids = [id(a) for a in self._constants]
        self._n_args = len(plan.inputs) + len(plan.constants) + len(plan.outputs)
        self._arena = _aligned_empty(plan.arena_bytes)
        self._arena_address = self._arena.ctypes.data
        self._arena_lock = threading.Lock()
        self._n_held = len(plan.inputs) + len(plan.constants)
        self._results = self._result_recipe()
        self._outputs_in_order = self._results == [(self._n_held + i, False) for i in range(len(plan.outputs))]
        self._pointers = (ctypes.c_void_p * max(self._n_args, 1))()

    def _result_recipe(self) -> list[tuple[int | None, object]]:
        """Each graph output as (its place among inputs, constants and output buffers,
        whether the caller needs a copy of it), or (None, a literal's value)."""
        recipe, seen = [], set()
        for a in self.program.graph.outputs:
            if isinstance(a, Literal):
                recipe.append((None, a.value))
                continue
            i = self.program.plan.arg_indices[a.id]
            # a kernel's buffer is the caller's the first time; an input, a constant or a repeat is copied
            recipe.append((i, i < self._n_held or a.id in seen))
            seen.add(a.id)
        return recipe

    def memory_stats(self) -> MemoryStats:
        plan = self.program.plan
        out = sum(v.type.nbytes for v in plan.outputs)
        return MemoryStats(plan.arena_bytes, out, plan.unplanned_bytes)

    def __call__(self, args: list[np.ndarray], threads: int = 1) -> tuple[list[np.ndarray], int]:
        """Run on the inputs with up to ``threads`` threads; returns the outputs
        and the entry point's status (0, or a checked build's code)."""
        specs = self._in_specs
        if len(args) != len(specs):
            raise TypeError(f"the compiled program takes {len(specs)} arrays, got {len(args)}")
        arrays = list(args)
        i = 0
        for shape, dtype in specs:
            a = arrays[i]
            if type(a) is not np.ndarray or a.shape != shape or a.dtype != dtype or not a.flags.carray:
                arrays[i] = _prepared(i, a, shape, dtype)
            i += 1
        out_specs = self._out_specs
        outs = [np.empty(*out_specs[0])] if len(out_specs) == 1 else [np.empty(*spec) for spec in out_specs]
        objects = [*map(id, arrays), *self._constant_ids, *map(id, outs)]
        lock = self._arena_lock
        if lock.acquire(False):
            try:
                pointers = self._pointers
                pointers[:self._n_args] = objects
                status = self._entry(pointers, self._arena_address, threads)
            finally:
                lock.release()
        else:  # another thread is inside this executable: this call gets buffers of its own
            pointers = (ctypes.c_void_p * max(self._n_args, 1))(*objects)
            arena = _aligned_empty(self.program.plan.arena_bytes)  # held here until native code returns
            status = self._entry(pointers, arena.ctypes.data, threads)
        if status < 0:
            kind, message = ERRORS[status]
            raise kind(message)
        return (outs if self._outputs_in_order else self._collect(arrays, outs)), status

    def _collect(self, arrays: list, outs: list) -> list[np.ndarray]:
        held, results = arrays + self._constants + outs, []
        for i, detail in self._results:
            if i is None:
                results.append(np.array(detail))  # a literal's value
            else:
                results.append(held[i].copy() if detail else held[i])  # detail: whether to copy
        return results

    def llvm_ir(self) -> str:
        """The optimised LLVM IR of this program (generated again if it came from the disk cache)."""
        _, module = target.compile_module(emit(self.program, self.checked))
        return str(module)

    def assembly(self) -> str:
        _, module = target.compile_module(emit(self.program, self.checked))
        return target.assembly(module)


class _Loaded(dict):
    """Machine code already in this process, by cache key (the most recent few hundred programs)."""
    LIMIT = 256

    def __setitem__(self, key, value) -> None:
        if len(self) >= self.LIMIT:
            del self[next(iter(self))]
        super().__setitem__(key, value)


_LOADED = _Loaded()


def _aligned_empty(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + nbytes] if nbytes else raw[:0]


def _prepared(i: int, a, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """Argument i as an array native code can read, or a clear error: a strided,
    reversed or misaligned array is copied, never read with the wrong layout."""
    a = np.asarray(a)
    if a.shape != shape or a.dtype != dtype:
        expected = f"{np.dtype(dtype).name}{list(shape)}"
        raise TypeError(f"argument {i} of the compiled program is {a.dtype.name}{list(a.shape)}, expected "
                        f"{expected}; the program was compiled for that signature")
    flags = a.flags
    return a if flags.c_contiguous and flags.aligned else np.ascontiguousarray(a)


def nonfinite_equation(executable: Executable, status: int) -> tuple[str, object]:
    """A checked build's status as ("nan" or "inf", the equation that produced it)."""
    eqn = executable.program.graph.eqns[status // 2 - 1]
    return ("inf" if status % 2 else "nan"), eqn
