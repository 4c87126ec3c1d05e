"""Routines compiled once per machine, apart from any program: the matmul
kernels. A generated GEMM is a large function that takes LLVM a good part of a
second to compile; compiling it into every program would make each first call
that slow. Instead it is compiled once (and cached on disk like a program), its
address is registered with LLVM's symbol table, and programs call it by name.

The library is built in pieces, each compiled on demand and cached on disk on its
own: per dtype, the driver with its packers (``tg_gemm_<dtype>``, what programs
call), and each micro-kernel (``tg_gemm_<dtype>.ukr.<nv>``), which the
driver calls through a table the library fills as it loads them. A program
names the micro-kernels its matmul shapes run (``gemm.micro_kernels``): the MLP
step needs 2 of the 4 float32 ones.

The GEMM is vectorised and scheduled by hand, so it is compiled with the light
pipeline (``target.tidy``), not O3: the same hot loops, in a third of the time.

A program that needs a routine not yet in this process starts building it on a
thread (``start``) before it generates its own code, and waits for it
(``Pending.wait``) only when its own machine code must be linked: generating
IR is Python work and compiling it is LLVM work (which releases the GIL), so
the two builds overlap. llvmlite serialises LLVM calls, so only the Python
parts of one build overlap the LLVM parts of the other (see docs/codegen.md,
"The first call").
"""

from __future__ import annotations

import ctypes
import threading

import llvmlite.binding as llvm
from llvmlite import ir

from . import gemm, target
from .cache import digest, load_cached, store_cached

_LOADED: dict[str, target.Engine] = {}  # routine name -> the engine holding its code
_BUILDING: dict[str, threading.Event] = {}  # routine name -> set when its build (in any thread) ends
_LOCK = threading.Lock()


def _parse(routine: str) -> tuple[str, int | None]:
    """(dtype, nv) of a micro-kernel's name; (dtype, None) of a driver's."""
    driver, _, nv = routine.partition(".ukr.")
    return driver.rsplit("_", 1)[1], int(nv) if nv else None


def declare(module: ir.Module, routine: str) -> ir.Function:
    """A declaration of the driver ``routine`` in ``module``, to be resolved when the program is loaded."""
    fn = module.globals.get(routine)
    return fn if fn is not None else ir.Function(module, gemm.function_type(_parse(routine)[0]), name=routine)


def every_routine(dtype: str) -> list[str]:
    """The whole library for ``dtype``: its driver and every micro-kernel."""
    return [gemm.function_name(dtype), *gemm.every_microkernel(dtype)]


def _key(routine: str) -> str:
    return digest(f"library|{routine}")


def _build(routine: str) -> target.Engine:
    """The routine's machine code: from the disk cache, or compiled (and cached)."""
    key = _key(routine)
    obj = load_cached(key)
    if obj is not None:
        return target.Engine(objects=(obj,))
    module = ir.Module(name=routine)
    dtype, nv = _parse(routine)
    if nv is None:
        gemm.define_gemm(module, dtype, with_kernels=False)
    else:
        gemm.define_microkernel(module, dtype, nv)
    engine, _ = target.compile_module(str(module), tuned=True)
    if engine.object_code is not None:
        store_cached(key, engine.object_code)
    return engine


def _link(routine: str) -> None:
    """Publish a loaded routine: a driver's symbol to LLVM (programs call it by name), a
    micro-kernel's address into its driver's table (the driver calls it from there). Both
    orders of loading end with every loaded micro-kernel in its table."""
    dtype, nv = _parse(routine)
    driver = gemm.function_name(dtype)
    if nv is None:
        llvm.add_symbol(routine, _LOADED[routine].address(routine))
        kernels = [name for name in gemm.every_microkernel(dtype) if name in _LOADED]
    else:
        kernels = [routine]
    if driver not in _LOADED:
        return
    table = _LOADED[driver].global_address(gemm.table_name(dtype))
    for name in kernels:
        slot = gemm.kernel_slot(_parse(name)[1])
        ctypes.c_void_p.from_address(table + 8 * slot).value = _LOADED[name].address(name)


def load(routines) -> None:
    """Make sure every routine in ``routines`` is compiled and its symbol known to LLVM. A
    routine another thread is building is waited for, not built twice. Drivers go first, so
    that each micro-kernel goes into its table as soon as it is loaded."""
    wanted = sorted((r for r in set(routines) if r not in _LOADED), key=lambda r: (".ukr." in r, r))
    _load_cached(wanted)
    for routine in wanted:
        while True:
            with _LOCK:
                if routine in _LOADED:
                    break
                building = _BUILDING.get(routine)
                if building is None:
                    building = _BUILDING[routine] = threading.Event()
                    mine = True
                else:
                    mine = False
            if not mine:
                building.wait()  # then look again: the builder may have failed
                continue
            try:
                engine = _build(routine)
                with _LOCK:
                    if routine not in _LOADED:  # a routine once published is never replaced
                        _LOADED[routine] = engine
                        _link(routine)
            finally:
                with _LOCK:
                    del _BUILDING[routine]
                building.set()
            break


def _load_cached(routines: list[str]) -> None:
    """Load those of ``routines`` the disk cache holds (and no thread is building) into one
    engine: an engine costs about 2 ms, and a program loaded from the cache needs several pieces."""
    found = {}
    for routine in routines:
        obj = None if routine in _BUILDING else load_cached(_key(routine))
        if obj is not None:
            found[routine] = obj
    if not found:
        return
    engine = target.Engine(objects=tuple(found.values()))
    with _LOCK:
        for routine in found:  # in the caller's order: drivers first
            if routine not in _LOADED:  # (unless another thread got there first)
                _LOADED[routine] = engine
                _link(routine)


class Pending:
    """Routines being loaded on a thread; ``wait`` returns once they are (or raises what failed)."""

    def __init__(self, routines):
        self._error: BaseException | None = None
        missing = [r for r in routines if r not in _LOADED]
        self._thread = None
        if missing:
            target.target_machine()  # LLVM's targets initialised here, not raced for
            self._thread = threading.Thread(target=self._run, args=(missing,), name="tracegrad-library",
                                            daemon=True)
            self._thread.start()

    def _run(self, routines) -> None:
        try:
            load(routines)
        except BaseException as error:  # handed to the waiting caller
            self._error = error

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error


def start(routines) -> Pending:
    """Begin loading ``routines`` (those not yet loaded) on a thread; ``wait`` on the result."""
    return Pending(routines)
