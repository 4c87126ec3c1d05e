"""The runtime: an ``Executable`` is one compiled program with one native
entry point, called on NumPy arrays.

The call path is short: the arguments' shapes and dtypes are checked (by jit's
cache key, or by ``Executable.__call__``), the outputs allocated as fresh arrays
the caller owns, and native code entered once, through the module's own
``tg_call`` made a builtin function (program.py), a third of the cost of a
ctypes call. ``tg_call`` looks at each input's flags and runs nothing if one is
not C-contiguous and aligned (a negative-stride view, a misaligned buffer): the
runtime copies it and calls again, so nothing is ever read with the wrong
layout. Native code receives the array objects themselves, as the items of one
Python tuple, and reads their flags and data pointers; these object layouts
(``program.TUPLE_ITEMS``, ``FLAGS_OFFSET``, ``DATA_OFFSET``) are verified below
on import.

Compiled objects are cached in memory and on disk (cache.py), each with its
``Interface``: what calling it takes, so a program found in the cache is
called without its graph. The matmul kernels are compiled once, apart from
any program (library.py).
"""

from __future__ import annotations

import ctypes
import functools
import json
import math
from dataclasses import dataclass
from typing import Callable

import llvmlite.binding as llvm
import numpy as np
from numpy import empty  # a global: NumPy's module __getattr__ keeps Python from caching np.empty

from ir.builder import graph_key
from ir.graph import Constant, Graph, Literal

from . import library, target
from . import program as _program
from .cache import COMPILER, digest, load_cached, store_cached
from .elementwise import NEGATIVE_INTEGER_POWER
from .program import Program, emit, prepare

ERRORS = {NEGATIVE_INTEGER_POWER: (ValueError, "Integers to negative integer powers are not allowed.")}
METH_FASTCALL = 0x80


class _MethodDef(ctypes.Structure):
    """CPython's PyMethodDef: how a builtin function is called."""
    _fields_ = [("name", ctypes.c_char_p), ("meth", ctypes.c_void_p), ("flags", ctypes.c_int),
                ("doc", ctypes.c_char_p)]


# PyCFunction_NewEx(method, self, module) -> a builtin function object
_new_builtin = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.py_object, ctypes.py_object)(
    ("PyCFunction_NewEx", ctypes.pythonapi))
for _name in _program.PYTHON_API:  # what tg_call calls, found by LLVM when it loads a program
    llvm.add_symbol(_name, ctypes.cast(getattr(ctypes.pythonapi, _name), ctypes.c_void_p).value)


def _layouts_hold() -> bool:
    probe = np.arange(6.0)[::2]
    held = (probe,)
    return (ctypes.c_void_p.from_address(id(probe) + _program.DATA_OFFSET).value == probe.ctypes.data and
            ctypes.c_int.from_address(id(probe) + _program.FLAGS_OFFSET).value == probe.flags.num and
            ctypes.c_void_p.from_address(id(held) + _program.TUPLE_ITEMS).value == id(probe))


if not _layouts_hold():  # pragma: no cover - a NumPy or a Python with other object layouts
    raise ImportError("tracegrad's native runtime does not recognise this Python's tuple or NumPy's array "
                      "layout; use jit(..., backend='interpret')")


def cache_key(graph: Graph, checked: bool) -> str:
    """The key of a program (after the passes)."""
    return digest(_key_text((graph_key(graph), checked, _program.DATA_OFFSET)))


def source_key(graph: Graph) -> str:
    """The key of the program the passes make from ``graph`` (a traced graph): the graph
    with the source of every pass and of the code generator, and NumPy, which folds constants."""
    return digest(_key_text(("source", graph_key(graph), _program.DATA_OFFSET, np.__version__)), COMPILER)


def _key_text(key) -> str:
    """A graph key as text: its repr, but a constant by its content's digest (its repr abridges it)."""
    if isinstance(key, tuple):
        return "(" + ",".join(map(_key_text, key)) + ")"
    if isinstance(key, Constant):
        return f"Constant({key.digest.hex()})"
    return repr(key)


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


@dataclass(frozen=True)
class Interface:
    """What calling a compiled program takes besides its machine code: computed
    from the program, or read from the disk cache beside the object."""
    inputs: tuple       # ((shape, dtype), ...)
    outputs: tuple      # the buffers the kernels write: ((shape, dtype), ...)
    constants: tuple    # arrays, passed after the inputs
    results: tuple      # per program output: (its place among inputs, constants and output buffers,
    #                     whether the caller needs a copy of it), or (None, a literal's 0-d array)
    arena_bytes: int
    unplanned_bytes: int
    routines: tuple     # the library routines (library.py) the object calls

    @classmethod
    def of(cls, program: Program) -> Interface:
        plan = program.plan
        held = len(plan.inputs) + len(plan.constants)
        results, seen = [], set()
        for a in program.graph.outputs:
            if isinstance(a, Literal):
                results.append((None, a.value))
                continue
            i = plan.arg_indices[a.id]
            # a kernel's buffer is the caller's the first time; an input, a constant or a repeat is copied
            results.append((i, i < held or a.id in seen))
            seen.add(a.id)
        specs = lambda vs: tuple((v.type.shape, v.type.dtype) for v in vs)
        return cls(specs(plan.inputs), specs(plan.outputs), tuple(np.ascontiguousarray(a) for _, a in plan.constants),
                   tuple(results), plan.arena_bytes, plan.unplanned_bytes, tuple(sorted(program.library_routines())))

    def pack(self, obj: bytes) -> bytes:
        """This interface and the object as one payload: a line of JSON, the arrays' bytes, the object."""
        literals = [value for i, value in self.results if i is None]
        arrays = list(self.constants) + literals
        numbered = iter(range(len(self.constants), len(arrays)))
        specs = lambda pairs: [[list(shape), np.dtype(dtype).str] for shape, dtype in pairs]
        head = dict(inputs=specs(self.inputs), outputs=specs(self.outputs),
                    arrays=specs((a.shape, a.dtype) for a in arrays), constants=len(self.constants),
                    results=[[i, detail] if i is not None else [None, next(numbered)] for i, detail in self.results],
                    arena_bytes=self.arena_bytes, unplanned_bytes=self.unplanned_bytes, routines=list(self.routines))
        return json.dumps(head).encode() + b"\n" + b"".join(a.tobytes() for a in arrays) + obj

    @classmethod
    def unpack(cls, payload: bytes) -> tuple[Interface, bytes]:
        """(the interface, the object) from ``pack``'s payload."""
        line, _, rest = payload.partition(b"\n")
        head = json.loads(line)
        arrays, offset = [], 0
        for shape, dtype in head["arrays"]:
            count = math.prod(shape)
            arrays.append(np.frombuffer(rest, dtype, count, offset).reshape(shape).copy())
            offset += count * arrays[-1].itemsize
        specs = lambda pairs: tuple((tuple(shape), np.dtype(dtype)) for shape, dtype in pairs)
        n = head["constants"]
        results = tuple((i, detail) if i is not None else (None, arrays[detail]) for i, detail in head["results"])
        interface = cls(specs(head["inputs"]), specs(head["outputs"]), tuple(arrays[:n]), results,
                        head["arena_bytes"], head["unplanned_bytes"], tuple(head["routines"]))
        return interface, rest[offset:]


class Executable:
    """One compiled program. ``checked``: the debug_nans build (see program.py)."""

    def __init__(self, graph: Graph | Callable[[], Graph], checked: bool = False, use_disk_cache: bool = True,
                 key: str | None = None):
        """Compile ``graph``, a program after the passes, or find it in a cache under ``key`` (by
        default, ``cache_key`` of the graph). ``graph`` may be a function that makes the program: jit
        passes the pass pipeline with ``source_key`` of the traced graph, so that a program found
        in a cache is loaded without running the passes at all."""
        self._graph = graph
        self.checked = checked
        self.key = key or cache_key(graph, checked)
        found = _LOADED.get(self.key)
        self.from_disk = False
        if found is None and use_disk_cache:
            found = _read(self.key)
            self.from_disk = found is not None
        if found is None:
            found = self._compile(use_disk_cache)
        _LOADED[self.key] = found
        self._engine, self.interface = found
        iface = self.interface
        # tg_call as a builtin: call(held, arena address, threads) -> status. Its self is its method
        # definition, which a builtin needs alive as long as itself.
        method = _MethodDef(_program.CALLER.encode(), self._engine.address(_program.CALLER), METH_FASTCALL)
        self._call = _new_builtin(ctypes.addressof(method), method, None)
        held = len(iface.inputs) + len(iface.constants)
        self._outputs_in_order = iface.results == tuple((held + i, False) for i in range(len(iface.outputs)))
        self._constants, self._out_specs = iface.constants, iface.outputs
        self._arenas: list[np.ndarray] = []  # every arena this executable made, alive as long as it is
        self._free_arenas = [self._new_arena()]  # the addresses of those no call is using

    @functools.cached_property
    def program(self) -> Program:
        """The program's kernels and memory plan (made again when the object came from a cache)."""
        return prepare(self._graph() if callable(self._graph) else self._graph)

    def _compile(self, store: bool) -> tuple[target.Engine, Interface]:
        interface = Interface.of(self.program)
        # The library routines this program calls are built on a thread meanwhile (library.py);
        # its machine code is linked against them, so they must be there before the Engine.
        pending = library.start(interface.routines)
        try:
            module = target.optimized(emit(self.program, self.checked), self.program.unroll)
        finally:
            pending.wait()
        engine = target.Engine(module=module)
        if store and engine.object_code is not None:
            store_cached(self.key, interface.pack(engine.object_code))
        return engine, interface

    def _new_arena(self) -> int:
        arena = _aligned_empty(self.interface.arena_bytes)
        self._arenas.append(arena)
        return arena.ctypes.data

    def memory_stats(self) -> MemoryStats:
        iface = self.interface
        out = sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in iface.outputs)
        return MemoryStats(iface.arena_bytes, out, iface.unplanned_bytes)

    def __call__(self, args, threads: int = 1) -> tuple[tuple[np.ndarray, ...], int]:
        """Run on the inputs (arrays, or values NumPy makes arrays of) with up to ``threads``
        threads after checking their shapes and dtypes; see ``run``."""
        specs = self.interface.inputs
        if len(args) != len(specs):
            raise TypeError(f"the compiled program takes {len(specs)} arrays, got {len(args)}")
        return self.run(tuple(_checked(i, a, shape, dtype) for i, (a, (shape, dtype)) in enumerate(zip(args, specs))),
                        threads)

    def run(self, args: tuple, threads: int = 1) -> tuple[tuple[np.ndarray, ...], int]:
        """The call itself, on a tuple of arrays known to have the program's shapes and dtypes (jit's
        cache key holds them): returns the outputs and the entry point's status (0, or a checked
        build's code). An array that is not C-contiguous and aligned (which native code checks) is
        copied, and the program run on the copy."""
        specs = self._out_specs
        outs = (empty(*specs[0]),) if len(specs) == 1 else tuple([empty(*spec) for spec in specs])
        free = self._free_arenas
        try:
            arena = free.pop()
        except IndexError:  # other threads are inside this executable: this call gets an arena of its own
            arena = self._new_arena()
        try:
            held = args + self._constants + outs  # alive until native code returns
            status = self._call(held, arena, threads)
            if status == _program.NOT_READABLE:  # tg_call checked the inputs' flags and ran nothing
                held = tuple(map(_readable, args)) + self._constants + outs
                status = self._call(held, arena, threads)
        finally:
            free.append(arena)
        if status < 0:
            kind, message = ERRORS[status]
            raise kind(message)
        return (outs if self._outputs_in_order else self._collect(held)), status

    def _collect(self, held: tuple) -> tuple[np.ndarray, ...]:
        results = []
        for i, detail in self.interface.results:
            if i is None:
                results.append(np.array(detail))  # a literal's value
            else:
                results.append(held[i].copy() if detail else held[i])  # detail: whether to copy
        return tuple(results)

    def llvm_ir(self) -> str:
        """The optimised LLVM IR of this program (generated again)."""
        _, module = target.compile_module(emit(self.program, self.checked), self.program.unroll)
        return str(module)

    def assembly(self) -> str:
        _, module = target.compile_module(emit(self.program, self.checked), self.program.unroll)
        return target.assembly(module)


class _Loaded(dict):
    """Machine code already in this process, with its interface, by cache key (the most recent few hundred)."""
    LIMIT = 256

    def __setitem__(self, key, value) -> None:
        if len(self) >= self.LIMIT:
            del self[next(iter(self))]
        super().__setitem__(key, value)


_LOADED = _Loaded()


def _read(key: str) -> tuple[target.Engine, Interface] | None:
    payload = load_cached(key)
    if payload is None:
        return None
    interface, obj = Interface.unpack(payload)
    library.load(interface.routines)  # the object calls them by name: their symbols first
    return target.Engine(objects=(obj,)), interface


def _aligned_empty(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + nbytes] if nbytes else raw[:0]


def _checked(i: int, a, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """Argument i as an array of the program's shape and dtype, or a clear error."""
    a = np.asarray(a)
    if a.shape != shape or a.dtype != dtype:
        expected = f"{np.dtype(dtype).name}{list(shape)}"
        raise TypeError(f"argument {i} of the compiled program is {a.dtype.name}{list(a.shape)}, expected "
                        f"{expected}; the program was compiled for that signature")
    return a


def _readable(a: np.ndarray) -> np.ndarray:
    """``a``, or a C-contiguous, aligned copy: a strided, reversed or misaligned array is
    never read with the wrong layout (``ascontiguousarray`` would keep a misaligned one)."""
    flags = a.flags
    return a if flags.c_contiguous and flags.aligned else np.array(a, order="C")


def nonfinite_equation(executable: Executable, status: int) -> tuple[str, object]:
    """A checked build's status as ("nan" or "inf", the equation that produced it: one of
    the program's, or one inside a control-flow body)."""
    eqn = _program.equation_numbers(executable.program.graph)[status // 2 - 1]
    return ("inf" if status % 2 else "nan"), eqn
