"""The runtime: an ``Executable`` is one compiled program with one native
entry point, called on NumPy arrays.

The call path is short: check each argument's shape, dtype and layout (an
array that is not C-contiguous and aligned, a negative-stride view for
instance, is copied first, never read wrongly), allocate the outputs as fresh
arrays the caller owns, and enter native code once. The entry point receives
the array objects themselves and reads their data pointers (at
``program.DATA_OFFSET``, verified below against NumPy on import), which is
several times cheaper than asking each array for ``ctypes.data``.

Compiled objects are cached on disk, keyed by a hash of the program's
structure, the code generator's own source, the compiler version and the CPU
(``TRACEGRAD_CACHE_DIR``, default ``~/.cache/tracegrad``). An entry is
checked (magic, CPU fingerprint, checksum of its bytes) before it is loaded;
a corrupt or foreign one is ignored and rebuilt.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import pathlib
import tempfile
import threading
from dataclasses import dataclass

import numpy as np

from ir.builder import graph_key
from ir.graph import Graph, Literal

from . import program as _program
from .elementwise import NEGATIVE_INTEGER_POWER
from . import target
from .program import Program, emit, prepare

MAGIC = b"tracegrad-object-1\n"
ERRORS = {NEGATIVE_INTEGER_POWER: (ValueError, "Integers to negative integer powers are not allowed.")}


def _data_offset_holds() -> bool:
    probe = np.arange(3.0)
    return ctypes.c_void_p.from_address(id(probe) + _program.DATA_OFFSET).value == probe.ctypes.data


if not _data_offset_holds():  # pragma: no cover - a NumPy with another object layout
    raise ImportError("tracegrad's native runtime does not recognise this NumPy's array layout; "
                      "use jit(..., backend='interpret')")


@functools.cache
def _generator_digest() -> str:
    """The code generator's own source: a change to it invalidates every cached object."""
    h = hashlib.sha256()
    here = pathlib.Path(__file__).parent
    for path in sorted(here.glob("*.py")) + [here.parent / "ir" / "passes" / "fusion.py"]:
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_dir() -> pathlib.Path:
    configured = os.environ.get("TRACEGRAD_CACHE_DIR")
    if configured:
        return pathlib.Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "tracegrad"


def cache_key(graph: Graph, checked: bool) -> str:
    text = repr((graph_key(graph), checked, _program.DATA_OFFSET))
    return hashlib.sha256(f"{text}|{_generator_digest()}|{target.fingerprint()}".encode()).hexdigest()


def load_cached(key: str) -> bytes | None:
    """The object stored under ``key``, or None when absent, corrupt or built for another machine."""
    try:
        blob = (cache_dir() / f"{key}.o").read_bytes()
    except OSError:
        return None
    head, _, rest = blob.partition(b"\n")
    header = head + b"\n"
    fingerprint, _, rest = rest.partition(b"\n")
    digest, _, payload = rest.partition(b"\n")
    if header != MAGIC or fingerprint.decode(errors="replace") != target.fingerprint() or \
            hashlib.sha256(payload).hexdigest().encode() != digest:
        return None
    return payload


def store_cached(key: str, obj: bytes) -> None:
    """Write atomically; a cache that cannot be written is skipped, never an error."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        blob = MAGIC + target.fingerprint().encode() + b"\n" + hashlib.sha256(obj).hexdigest().encode() + b"\n" + obj
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, directory / f"{key}.o")
    except OSError:
        pass


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
        self._n_args = len(plan.inputs) + len(plan.constants) + len(plan.outputs)
        self._arena = _aligned_empty(plan.arena_bytes)
        self._arena_address = self._arena.ctypes.data
        self._arena_lock = threading.Lock()
        self._results = self._result_recipe(graph)
        self._outputs_in_order = self._results == [("output", i) for i in range(len(plan.outputs))]
        self._pointers = (ctypes.c_void_p * max(self._n_args, 1))()

    def _result_recipe(self, graph: Graph) -> list[tuple[str, object]]:
        """How each graph output is obtained: a kernel's output buffer, or a copy of an input, constant or literal."""
        plan, recipe, seen = self.program.plan, [], set()
        by_id = {v.id: i for i, v in enumerate(plan.outputs)}
        inputs = {v.id: i for i, v in enumerate(plan.inputs)}
        consts = {v.id: i for i, (v, _) in enumerate(plan.constants)}
        for a in self.program.graph.outputs:
            if isinstance(a, Literal):
                recipe.append(("literal", a.value))
            elif a.id in inputs:
                recipe.append(("input", inputs[a.id]))
            elif a.id in consts:
                recipe.append(("constant", consts[a.id]))
            elif a.id in seen:  # the same value returned twice: each result is its own array
                recipe.append(("copy", by_id[a.id]))
            else:
                seen.add(a.id)
                recipe.append(("output", by_id[a.id]))
        return recipe

    def memory_stats(self) -> MemoryStats:
        plan = self.program.plan
        out = sum(v.type.size * np.dtype(v.type.dtype).itemsize for v in plan.outputs)
        return MemoryStats(plan.arena_bytes, out, plan.unplanned_bytes)

    def __call__(self, args: list[np.ndarray], threads: int = 1) -> tuple[list[np.ndarray], int]:
        """Run on the inputs with up to ``threads`` threads; returns the outputs
        and the entry point's status (0, or a checked build's code)."""
        if len(args) != len(self._in_specs):
            raise TypeError(f"the compiled program takes {len(self._in_specs)} arrays, got {len(args)}")
        arrays = []
        for i, (a, (shape, dtype)) in enumerate(zip(args, self._in_specs)):
            if type(a) is not np.ndarray:
                a = np.asarray(a)
            if a.shape != shape or a.dtype != dtype:
                raise _mismatch(i, a, shape, dtype)
            flags = a.flags
            if not (flags.c_contiguous and flags.aligned):
                a = np.ascontiguousarray(a)  # strided, reversed or misaligned: copied, never read wrongly
            arrays.append(a)
        outs = [np.empty(shape, dtype) for shape, dtype in self._out_specs]
        objects = list(map(id, arrays + self._constants + outs))
        if self._arena_lock.acquire(blocking=False):
            try:
                self._pointers[:self._n_args] = objects
                status = self._entry(self._pointers, self._arena_address, threads)
            finally:
                self._arena_lock.release()
        else:  # another thread is inside this executable: this call gets buffers of its own
            pointers = (ctypes.c_void_p * max(self._n_args, 1))(*objects)
            status = self._entry(pointers, _aligned_empty(self.program.plan.arena_bytes).ctypes.data, threads)
        if status < 0:
            kind, message = ERRORS[status]
            raise kind(message)
        return (outs if self._outputs_in_order else self._collect(arrays, outs)), status

    def _collect(self, arrays: list, outs: list) -> list[np.ndarray]:
        results = []
        for how, what in self._results:
            if how == "output":
                results.append(outs[what])
            elif how == "copy":
                results.append(outs[what].copy())
            elif how == "input":
                results.append(arrays[what].copy())
            elif how == "constant":
                results.append(self._constants[what].copy())
            else:
                results.append(np.array(what))
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


def _mismatch(i: int, a: np.ndarray, shape: tuple, dtype: np.dtype) -> TypeError:
    expected = f"{np.dtype(dtype).name}{list(shape)}"
    return TypeError(f"argument {i} of the compiled program is {a.dtype.name}{list(a.shape)}, expected {expected}; "
                     f"the program was compiled for that signature")


def nonfinite_equation(executable: Executable, status: int) -> tuple[str, object]:
    """A checked build's status as ("nan" or "inf", the equation that produced it)."""
    eqn = executable.program.graph.eqns[status // 2 - 1]
    return ("inf" if status % 2 else "nan"), eqn
