"""A whole program (the fused graph) as one LLVM module with one entry point.

``tg_main(i8** args, i8* arena, i64 threads) -> i32`` calls the kernels in order and
returns a status: 0, or a negative code for an input NumPy refuses (see
``elementwise.py``). ``args`` holds the NumPy array objects of the program's
inputs, its constants and its output buffers (allocated by the runtime, so
results are arrays the caller owns); every intermediate lives in ``arena``,
one block per executable, at an offset chosen by the memory plan: two buffers
share bytes when their lifetimes (from the kernel that writes them to the last
kernel that reads them) do not overlap. Python calls it through ``tg_call``, a
builtin function defined in the same module (see ``_caller``).

The runtime stores what calling a program takes beside its object (the
shapes, the constants, the arena's size: ``runtime.Interface``), so a program
loaded from the disk cache needs neither code generation nor its graph. In a
checked build (``debug_nans``), every kernel holds one equation and the entry
point returns the 1-based number of the first equation whose float output
holds a NaN or an Inf.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

from ir.builder import GraphBuilder
from ir.graph import Eqn, Graph, Var
from ir.types import ShapedType

from . import control
from .kernel import Kernel, KernelSignature
from .llvmtypes import I8, I32, I64, counted_loop, int64, intrinsic, memory_type

ALIGN = 64
LONG_ROW = 64  # elements: see Program.unroll
ENTRY = "tg_main"
ENTRY_TYPE = ir.FunctionType(I32, [I8.as_pointer().as_pointer(), I8.as_pointer(), I64])
# Where objects hold what native code reads (checked against NumPy and Python by the runtime on import):
DATA_OFFSET = 16  # a NumPy array's data pointer
FLAGS_OFFSET = 64  # a NumPy array's flags (an int)
TUPLE_ITEMS = 24  # a tuple's item pointers
READABLE = 0x0001 | 0x0100  # NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED: the flags every input must have
CALLER = "tg_call"
NOT_READABLE = 1  # tg_call's status when an input lacks READABLE (nothing ran); a checked build's codes are >= 2
# The C API functions the caller uses (the runtime gives LLVM their addresses), by the types it declares.
_OBJECT = I8.as_pointer()
PYTHON_API = {
    "PyLong_AsVoidPtr": ir.FunctionType(_OBJECT, [_OBJECT]),
    "PyLong_AsSsize_t": ir.FunctionType(I64, [_OBJECT]),
    "PyLong_FromLong": ir.FunctionType(_OBJECT, [I64]),
    "PyEval_SaveThread": ir.FunctionType(_OBJECT, []),
    "PyEval_RestoreThread": ir.FunctionType(ir.VoidType(), [_OBJECT]),
}


def flatten_calls(graph: Graph) -> Graph:
    """Inline the bodies of call primitives other than kernels (a checkpoint
    runs its body once in the forward program; native code needs no boundary),
    inside the bodies of control flow too."""
    if not _has_calls(graph):
        return graph
    b = GraphBuilder(hash_cons=False)
    inputs = [b.new_input(v.type) for v in graph.inputs]
    env = {v.id: x for v, x in zip(graph.inputs, inputs)}
    for eqn in graph.eqns:
        ins = [b.read(env, a) for a in eqn.inputs]
        with b.at(eqn.source):
            if eqn.prim.family == "call" and eqn.prim.name != "fused":
                name = {"custom_jvp_call": "fun", "custom_vjp_call": "fwd"}.get(eqn.prim.name, "body")
                outs, _ = b.inline(flatten_calls(eqn.params[name]), ins)
                outs = outs[:len(eqn.outputs)]
            else:
                outs = b.bind(eqn.prim, *ins, **_flat_bodies(eqn))
                b.eqns[-1].derivative_of = eqn.derivative_of
        env.update({v.id: o for v, o in zip(eqn.outputs, outs)})
    return b.build(inputs, [b.read(env, a) for a in graph.outputs], graph.name)


def _has_calls(graph: Graph) -> bool:
    return any((e.prim.family == "call" and e.prim.name != "fused") or
               (e.prim.family == "control" and any(_has_calls(g) for _, g in e.subgraphs())) for e in graph.eqns)


def _flat_bodies(eqn: Eqn) -> dict:
    """A control-flow equation's params with its bodies' calls inlined; others' as they are."""
    if eqn.prim.family != "control":
        return eqn.params
    return {k: flatten_calls(v) if isinstance(v, Graph) else
            tuple(map(flatten_calls, v)) if isinstance(v, tuple) and v and isinstance(v[0], Graph) else v
            for k, v in eqn.params.items()}


@dataclass
class Plan:
    """Where each buffer lives. ``args`` order: inputs, constants, outputs."""
    inputs: list[Var]
    constants: list[tuple[Var, np.ndarray]]
    outputs: list[Var]                       # the distinct output Vars that kernels write
    offsets: dict[int, int] = field(default_factory=dict)   # arena var id -> byte offset
    arena_bytes: int = 0
    unplanned_bytes: int = 0                 # what the intermediates would take without reuse

    @functools.cached_property
    def arg_indices(self) -> dict[int, int]:
        """Var id -> its place in ``args``; the Vars not there live in the arena."""
        args = self.inputs + [c for c, _ in self.constants] + self.outputs
        return {v.id: i for i, v in enumerate(args)}


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def plan_memory(graph: Graph, kernels: list[KernelSignature]) -> Plan:
    """Lifetimes in kernel steps, then first-fit placement, largest buffers first."""
    constants = [(e.outputs[0], e.params["value"].array) for e in graph.eqns if e.prim.name == "constant"]
    outputs: list[Var] = []
    input_ids = {v.id for v in graph.inputs} | {c.id for c, _ in constants}
    for a in graph.outputs:
        if isinstance(a, Var) and a.id not in input_ids and all(o.id != a.id for o in outputs):
            outputs.append(a)
    plan = Plan(list(graph.inputs), constants, outputs)
    fixed = input_ids | {v.id for v in outputs}
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    size: dict[int, int] = {}
    for step, sig in enumerate(kernels):
        for v in sig.writes + sig.scratch:
            if v.id not in fixed:
                first.setdefault(v.id, step)
                last[v.id] = max(last.get(v.id, step), step)
                size[v.id] = _aligned(v.type.nbytes)
        for v in sig.reads:
            if v.id in first:
                last[v.id] = step
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    for vid in sorted(size, key=lambda i: (-size[i], first[i])):
        offset = 0
        for o, s, f, l_ in sorted((p for p in placed if not (p[3] < first[vid] or last[vid] < p[2]))):
            if offset + size[vid] <= o:
                break
            offset = max(offset, o + s)
        placed.append((offset, size[vid], first[vid], last[vid]))
        plan.offsets[vid] = offset
    plan.arena_bytes = max((o + s for o, s, _, _ in placed), default=0)
    plan.unplanned_bytes = sum(size.values())
    return plan


def _steps(graph: Graph, prefix: str) -> list[Step]:
    """A Step for every equation that computes (constants are buffers, not code):
    a Kernel, or a control-flow equation with its bodies prepared as sub-programs."""
    out = []
    for i, eqn in enumerate(graph.eqns):
        name = f"{prefix}k{i}_{eqn.prim.name}"
        if eqn.prim.name == "constant":
            continue
        if eqn.prim.family == "control":
            bodies = [_prepare(g, f"{name}.{label}.") for label, g in eqn.subgraphs()]
            code = control.LOWERINGS[eqn.prim.name](name, eqn, bodies)
            region = Var(ShapedType((code.region.size,), np.bool_))  # the region's bytes
            signature = KernelSignature(name, _distinct_vars(eqn.inputs), list(eqn.outputs), [region])
            out.append(Step(eqn, code, signature))
            continue
        if eqn.prim.name == "fused":
            body, kind = eqn.params["body"], eqn.params["kind"]
        else:
            body, kind = Graph(_distinct_vars(eqn.inputs), [eqn], list(eqn.outputs), f"{graph.name}_{eqn.prim.name}"), \
                "other"
        kernel = Kernel(name, body, kind)
        outer = _outer(eqn, kernel.signature)
        n = len(kernel.signature.reads)
        out.append(Step(eqn, kernel, KernelSignature(name, outer[:n], outer[n:], kernel.signature.scratch)))
    return out


def _distinct_vars(atoms) -> list[Var]:
    found: dict[int, Var] = {}
    for a in atoms:
        if isinstance(a, Var):
            found.setdefault(a.id, a)
    return list(found.values())


def _outer(eqn: Eqn, sig: KernelSignature) -> list[Var]:
    """The program's Vars behind a kernel's reads and writes (a fused body has its own)."""
    if eqn.prim.name != "fused":
        return sig.reads + sig.writes
    body = eqn.params["body"]
    by_body = {v.id: a for v, a in zip(body.inputs, eqn.inputs)}
    by_body.update({v.id: o for v, o in zip(body.outputs, eqn.outputs)})
    return [by_body[v.id] for v in sig.reads + sig.writes]


@dataclass
class Step:
    """One equation of a program as code: a kernel, or a control-flow equation (control.py).
    ``signature`` holds its buffers as the program's Vars (a control-flow equation's
    scratch is its region), for the memory plan."""
    eqn: Eqn
    code: Kernel | control.Control
    signature: KernelSignature


@dataclass
class Program:
    """A graph ready to emit: its steps (scheduled, not yet emitted) and its memory plan.
    A control-flow body is a Program too, whose inputs and outputs the enclosing
    equation binds when it runs, and whose arena is laid out inside that equation's region."""
    graph: Graph                  # calls inlined; a checked build's codes number its equations
    steps: list[Step]
    plan: Plan

    def kernels(self):
        """Every Kernel, those of control-flow bodies included."""
        for step in self.steps:
            if isinstance(step.code, Kernel):
                yield step.code
            else:
                for body in step.code.bodies:
                    yield from body.kernels()

    def library_routines(self) -> set[str]:
        return set().union(*(kernel.library_routines() for kernel in self.kernels()))

    @property
    def unroll(self) -> bool:
        """Whether LLVM should unroll loops (target.optimize): for a row kernel over rows of
        LONG_ROW elements or more, which runs each of its stages as one short loop per row.
        Unrolled, those loops lose their entries and exits, and a softmax cross-entropy's
        gradient over rows of 1000 ran 5 % faster. Elsewhere (elementwise loops, reductions,
        matmul epilogues) unrolling changed no run time measurably and took a third of the
        compile time."""
        return any(kernel.rows is not None and
                   max((math.prod(s.shape[len(kernel.rows):]) for s in kernel.row_stages), default=0) >= LONG_ROW
                   for kernel in self.kernels())

    def nested_constants(self):
        """The constants of control-flow bodies, at any depth: the entry point receives them all."""
        for step in self.steps:
            if isinstance(step.code, control.Control):
                for body in step.code.bodies:
                    yield from body.plan.constants
                    yield from body.nested_constants()


def _prepare(graph: Graph, prefix: str) -> Program:
    steps = _steps(graph, prefix)
    return Program(graph, steps, plan_memory(graph, [step.signature for step in steps]))


def prepare(graph: Graph) -> Program:
    """Schedule every kernel and plan the memory; cheap, and all a cached object needs."""
    program = _prepare(flatten_calls(graph), "")
    known = {v.id for v, _ in program.plan.constants}
    for v, value in program.nested_constants():
        if v.id not in known:
            known.add(v.id)
            program.plan.constants.append((v, value))
    return program


def equation_numbers(graph: Graph) -> list[Eqn]:
    """The equations a checked build numbers (from 1), those of control-flow bodies included."""
    return list(graph.walk_eqns())


class Emitter:
    """Emits programs' steps into the entry point: kernels are called with pointers
    to their buffers, control-flow equations become branches and loops (control.py)."""

    def __init__(self, module: ir.Module, b: ir.IRBuilder, arena: ir.Value, threads: ir.Value,
                 constants: dict[int, ir.Value], checked: bool, numbers: dict[int, int]):
        self.module, self.b, self.arena, self.threads = module, b, arena, threads
        self.constants = constants  # constant Var id -> its data (i8*), at every depth
        self.checked, self.numbers = checked, numbers
        with b.goto_entry_block():
            self.status = b.alloca(I32, name="status")
        b.store(ir.Constant(I32, 0), self.status)

    def arena_at(self, offset: int) -> ir.Value:
        return self.b.gep(self.arena, [int64(offset)])

    def run(self, program: Program, base: int, bound: dict[int, ir.Value]) -> None:
        """Emit ``program``'s steps; its buffers are at ``bound`` (Var id -> i8*: its inputs
        and outputs), among the constants, or in the arena at ``base`` plus their offset."""
        b, plan = self.b, program.plan

        def pointer(v: Var) -> ir.Value:
            found = bound.get(v.id) or self.constants.get(v.id)
            return found if found is not None else self.arena_at(base + plan.offsets[v.id])

        def typed(v: Var) -> ir.Value:
            return b.bitcast(pointer(v), memory_type(v.type.dtype).as_pointer())

        for step in program.steps:
            sig = step.signature
            if isinstance(step.code, Kernel):
                fn = step.code.emit(self.module)
                b.call(fn, [typed(v) for v in sig.reads + sig.writes + sig.scratch] + [self.status, self.threads])
            else:
                step.code.emit(self, pointer, base + plan.offsets[sig.scratch[0].id])
            if self.checked:
                floats = [v for v in sig.writes if v.type.dtype.kind == "f"]
                _check_finite(b, [typed(v) for v in floats], floats, self.numbers[id(step.eqn)])


def emit(program: Program, checked: bool = False) -> str:
    """The LLVM IR text of the module: the kernels and the entry point. ``args[i]``
    points at the i-th buffer's data pointer, found ``DATA_OFFSET`` bytes in (the
    runtime passes NumPy array objects themselves, whose data pointer sits there)."""
    module = ir.Module(name=program.graph.name)
    plan = program.plan
    entry = ir.Function(module, ENTRY_TYPE, name=ENTRY)
    args, arena, threads = entry.args
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    data = {}
    for v, index in plan.arg_indices.items():
        holder = b.gep(b.load(b.gep(args, [int64(index)])), [int64(DATA_OFFSET)])
        data[v] = b.load(b.bitcast(holder, I8.as_pointer().as_pointer()))
    constants = {v.id: data.pop(v.id) for v, _ in plan.constants}
    numbers = {id(eqn): i + 1 for i, eqn in enumerate(equation_numbers(program.graph))}
    em = Emitter(module, b, arena, threads, constants, checked, numbers)
    em.run(program, 0, data)
    b.ret(b.load(em.status))
    _caller(module, entry, len(plan.inputs))
    return str(module)


def _caller(module: ir.Module, entry: ir.Function, inputs: int) -> None:
    """``tg_call(self, args, nargs)``, the bridge from Python: a CPython builtin function
    (``METH_FASTCALL``) called as ``tg_call(held, arena, threads)``. It passes the items of
    the tuple ``held`` to the entry point as ``args``, lets other Python threads run while
    the program does, and returns its status as a Python int; or, without running anything,
    ``NOT_READABLE`` if one of the first ``inputs`` arrays is not C-contiguous and aligned.
    Such a call costs about 1,600 instructions, the GIL's release and return included; a
    ctypes call, which makes a C object of each argument, about 4,700."""
    api = {name: ir.Function(module, ftype, name=name) for name, ftype in PYTHON_API.items()}
    fn = ir.Function(module, ir.FunctionType(_OBJECT, [_OBJECT, _OBJECT.as_pointer(), I64]), name=CALLER)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    held, arena, threads = (b.load(b.gep(fn.args[1], [int64(i)])) for i in range(3))
    items = b.bitcast(b.gep(held, [int64(TUPLE_ITEMS)]), _OBJECT.as_pointer())
    readable = ir.Constant(ir.IntType(1), 1)
    for i in range(inputs):
        flags = b.load(b.bitcast(b.gep(b.load(b.gep(items, [int64(i)])), [int64(FLAGS_OFFSET)]), I32.as_pointer()))
        readable = b.and_(readable, b.icmp_unsigned("==", b.and_(flags, ir.Constant(I32, READABLE)),
                                                    ir.Constant(I32, READABLE)))
    with b.if_then(b.not_(readable), likely=False):
        b.ret(b.call(api["PyLong_FromLong"], [int64(NOT_READABLE)]))
    arena = b.call(api["PyLong_AsVoidPtr"], [arena])
    threads = b.call(api["PyLong_AsSsize_t"], [threads])
    state = b.call(api["PyEval_SaveThread"], [])
    status = b.call(entry, [items, arena, threads])
    b.call(api["PyEval_RestoreThread"], [state])
    b.ret(b.call(api["PyLong_FromLong"], [b.sext(status, I64)]))


def _check_finite(b: ir.IRBuilder, pointers: list, vars_: list[Var], number: int) -> None:
    """Return ``2 * number`` from the entry point at the first NaN, ``2 * number + 1`` at the first Inf."""
    for ptr, v in zip(pointers, vars_):
        fn = b.function
        bad_block = fn.append_basic_block(f"nonfinite{number}")
        with counted_loop(b, int64(v.type.size), "check") as i:
            x = b.load(b.gep(ptr, [i]))
            finite = b.fcmp_ordered("<", intrinsic(b, "fabs", [x]), ir.Constant(x.type, float("inf")))
            status = b.select(b.fcmp_unordered("uno", x, x), ir.Constant(I32, 2 * number),
                              ir.Constant(I32, 2 * number + 1))
            ok_block = fn.append_basic_block(f"finite{number}")
            b.cbranch(finite, ok_block, bad_block)
            b.position_at_end(ok_block)
        after = b.block
        b.position_at_end(bad_block)
        code = b.phi(I32)
        code.add_incoming(status, status.parent)
        b.ret(code)
        b.position_at_end(after)

