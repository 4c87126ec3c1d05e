"""Structured control flow (``cond``, ``while``, ``scan``) as native branches and loops.

A control-flow equation is not a kernel: it is emitted inline in the entry
point as LLVM control flow around its bodies. Each body is a sub-program
(program.py prepares it like the whole program: its own kernels and its own
memory plan), emitted once, whose inputs and outputs are *bound* to pointers
computed as the loop runs: a scan's slice of ``xs`` is ``xs + t * slice_bytes``
and the body writes its ``y`` straight into ``ys + t * slice_bytes``. So a
scan of 1000 steps is one loop that calls the body's kernels 1000 times, with
no allocation and no Python per step, and its code does not grow with the
length.

Everything an equation needs besides its operands and outputs lives in one
*region* of the arena that the outer plan reserves for the equation, like a
kernel's scratch buffer (the outer planner so handles its lifetime): the
intermediates of its bodies (each body's plan is laid out from the region's
start plus an offset, so all addresses are constants), the second buffer of
each loop carry, the boolean a ``while``'s cond writes, and one slot per
literal operand.

Loop carries are double-buffered: the body reads the carry from one buffer
and writes the next carry into the other, then the two swap, so a carry is
never copied per step and the body can never overwrite a carry it still
reads. The equation's output buffer is one of the two; after the loop the
final carry is copied into it if it ended in the other. A carry the body
passes through unchanged stays in the output buffer. A body output that is
one of the body's inputs, a constant, a literal, or a value already written
to another output, is copied (or filled) into place after the body runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llvmlite import ir

from ir.graph import Eqn, Literal, Var

from .llvmtypes import I1, I8, I64, VOID, constant, counted_loop, int64, memory_type

ALIGN = 64
_BYTE_PTR = I8.as_pointer()


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass
class Region:
    """A bump allocator for the bytes an equation reserves in the arena; offsets from the region's start."""
    size: int = 0

    def take(self, nbytes: int) -> int:
        offset, self.size = self.size, self.size + _aligned(nbytes)
        return offset


@dataclass
class Control:
    """One control-flow equation, ready to emit: its bodies (prepared sub-programs)
    and where its literal operands and other private buffers sit in its region."""
    name: str
    eqn: Eqn
    bodies: list                 # program.Program per sub-graph, in the order of ``eqn.subgraphs()``
    region: Region = field(default_factory=Region)
    literal_slots: dict[int, int] = field(default_factory=dict)   # operand position -> offset

    def __post_init__(self):
        for k, a in enumerate(self.eqn.inputs):
            if isinstance(a, Literal):
                self.literal_slots[k] = self.region.take(a.type.nbytes)
        self._layout()

    def _layout(self) -> None:
        """Reserve the equation's own buffers, then room for its bodies."""
        self.bodies_at = self.region.take(max((body.plan.arena_bytes for body in self.bodies), default=0))

    def operands(self, em, pointer, base: int) -> list[ir.Value]:
        """A pointer (i8*) per operand; a literal is stored into its slot first."""
        out = []
        for k, a in enumerate(self.eqn.inputs):
            if isinstance(a, Literal):
                slot = em.arena_at(base + self.literal_slots[k])
                fill(em.b, slot, a, 1)
                out.append(slot)
            else:
                out.append(pointer(a))
        return out

    def emit(self, em, pointer, base: int) -> None:
        raise NotImplementedError


class Cond(Control):
    """``switch`` on the clamped index to one block per branch; each branch's
    sub-program writes the equation's outputs directly."""

    def emit(self, em, pointer, base: int) -> None:
        b = em.b
        index, *operands = self.operands(em, pointer, base)
        outputs = [pointer(v) for v in self.eqn.outputs]
        t = self.eqn.inputs[0].type
        k = b.load(b.bitcast(index, memory_type(t.dtype).as_pointer()))
        k = b.sext(k, I64) if k.type != I64 else k
        last = int64(len(self.bodies) - 1)
        k = b.select(b.icmp_signed("<", k, int64(0)), int64(0), b.select(b.icmp_signed(">", k, last), last, k))
        done = b.append_basic_block(f"{self.name}.done")
        switch = b.switch(k, done)
        for i, body in enumerate(self.bodies):
            block = b.append_basic_block(f"{self.name}.branch{i}")
            switch.add_case(int64(i), block)
            b.position_at_end(block)
            run_body(em, body, base + self.bodies_at, operands, outputs)
            b.branch(done)
        b.position_at_end(done)


class _Loop(Control):
    """What ``while`` and ``scan`` share: double-buffered carries. Subclasses say how
    many carries there are, where they start among the operands (``first_carry``) and
    among the loop body's inputs (``body_carry``), and which of ``bodies`` is the loop body."""
    body_index = 0

    def _layout(self) -> None:
        body = self.bodies[self.body_index].graph
        carried = body.inputs[self.body_carry:self.body_carry + self.num_carry]
        # A carry the body returns unchanged keeps one buffer; every other carry gets a second.
        self.swapped = [body.outputs[j] is not v for j, v in enumerate(carried)]
        self.spare = [self.region.take(v.type.nbytes) if s else None for v, s in zip(carried, self.swapped)]
        super()._layout()

    def start(self, em, operands: list, outputs: list, base: int) -> list:
        """Copy the initial carry into the output buffers; returns a pair of stack
        slots per carry, (current, next), holding the buffers' addresses."""
        b = em.b
        slots = []
        for j, (init, out, spare) in enumerate(zip(operands[self.first_carry:], outputs, self.spare)):
            copy(b, out, init, self.eqn.outputs[j].type.nbytes)
            with b.goto_entry_block():
                pair = b.alloca(_BYTE_PTR, name=f"{self.name}.carry{j}"), b.alloca(_BYTE_PTR, name=f"{self.name}.next{j}")
            b.store(out, pair[0])
            b.store(em.arena_at(base + spare) if spare is not None else out, pair[1])
            slots.append(pair)
        return slots

    @staticmethod
    def current(b, slots) -> tuple[list, list]:
        return [b.load(c) for c, _ in slots], [b.load(n) for _, n in slots]

    def destinations(self, current, following) -> list:
        """Where this step's body writes each carry: the next buffer, or the one it has if unchanged."""
        return [n if s else c for c, n, s in zip(current, following, self.swapped)]

    def swap(self, b, slots, current, following) -> None:
        for (c, n), cur, nxt, s in zip(slots, current, following, self.swapped):
            if s:
                b.store(nxt, c)
                b.store(cur, n)

    def finish(self, em, slots, outputs) -> None:
        """Copy each final carry that ended in the spare buffer into the output buffer."""
        b = em.b
        for (c, _), out, s, v in zip(slots, outputs, self.swapped, self.eqn.outputs):
            if s:
                cur = b.load(c)
                with b.if_then(b.icmp_unsigned("!=", cur, out)):
                    copy(b, out, cur, v.type.nbytes)


class While(_Loop):
    """``head: run cond -> flag; if flag: run body, swap, goto head``."""
    body_index = 1

    @property
    def first_carry(self) -> int:
        p = self.eqn.params
        return p["cond_nconsts"] + p["body_nconsts"]

    @property
    def body_carry(self) -> int:
        return self.eqn.params["body_nconsts"]

    @property
    def num_carry(self) -> int:
        return len(self.eqn.outputs)

    def _layout(self) -> None:
        self.flag = self.region.take(1)  # the cond's answer
        super()._layout()

    def emit(self, em, pointer, base: int) -> None:
        b = em.b
        nc, nb = self.eqn.params["cond_nconsts"], self.eqn.params["body_nconsts"]
        operands = self.operands(em, pointer, base)
        outputs = [pointer(v) for v in self.eqn.outputs]
        slots = self.start(em, operands, outputs, base)
        flag = em.arena_at(base + self.flag)
        head = b.append_basic_block(f"{self.name}.head")
        step = b.append_basic_block(f"{self.name}.step")
        done = b.append_basic_block(f"{self.name}.done")
        b.branch(head)
        b.position_at_end(head)
        current, following = self.current(b, slots)
        at = base + self.bodies_at
        run_body(em, self.bodies[0], at, operands[:nc] + current, [flag])
        b.cbranch(b.icmp_unsigned("!=", b.load(flag), ir.Constant(I8, 0)), step, done)
        b.position_at_end(step)
        run_body(em, self.bodies[1], at, operands[nc:nc + nb] + current, self.destinations(current, following))
        self.swap(b, slots, current, following)
        b.branch(head)
        b.position_at_end(done)
        self.finish(em, slots, outputs)


class Scan(_Loop):
    """``for i in range(length)``: the body on slice ``t`` of the xs (``t = i``, or
    ``length - 1 - i`` when reversed), writing slice ``t`` of the ys."""
    @property
    def first_carry(self) -> int:
        return self.eqn.params["num_consts"]

    body_carry = first_carry

    @property
    def num_carry(self) -> int:
        return self.eqn.params["num_carry"]

    def emit(self, em, pointer, base: int) -> None:
        b = em.b
        p = self.eqn.params
        nc, k, length = p["num_consts"], p["num_carry"], p["length"]
        operands = self.operands(em, pointer, base)
        outputs = [pointer(v) for v in self.eqn.outputs]
        slots = self.start(em, operands, outputs, base)
        xs, ys = operands[nc + k:], outputs[k:]
        x_bytes = [a.type.nbytes // length if length else 0 for a in self.eqn.inputs[nc + k:]]
        y_bytes = [v.type.nbytes // length if length else 0 for v in self.eqn.outputs[k:]]
        with counted_loop(b, int64(length), f"{self.name}.step") as i:
            t = b.sub(int64(length - 1), i) if p["reverse"] else i
            current, following = self.current(b, slots)
            slices = [b.gep(x, [b.mul(t, int64(n))]) for x, n in zip(xs, x_bytes)]
            written = [b.gep(y, [b.mul(t, int64(n))]) for y, n in zip(ys, y_bytes)]
            run_body(em, self.bodies[0], base + self.bodies_at, operands[:nc] + current + slices,
                     self.destinations(current, following) + written)
            self.swap(b, slots, current, following)
        self.finish(em, slots, outputs)


LOWERINGS = {"cond": Cond, "while": While, "scan": Scan}


def run_body(em, body, base: int, inputs: list, destinations: list) -> None:
    """Emit ``body`` with its inputs at ``inputs`` and its outputs written to
    ``destinations``: the first output a kernel computes is written in place;
    a repeat, an input, a constant or a literal is copied or filled afterwards."""
    graph = body.graph
    bound = {v.id: p for v, p in zip(graph.inputs, inputs)}
    computed = {v.id for v in body.plan.outputs}
    for a, dest in zip(graph.outputs, destinations):
        if isinstance(a, Var) and a.id in computed and a.id not in bound:
            bound[a.id] = dest
    em.run(body, base, bound)
    for a, dest in zip(graph.outputs, destinations):
        if isinstance(a, Literal):
            fill(em.b, dest, a, a.type.size)
            continue
        source = bound.get(a.id) or em.constants[a.id]
        if source is not dest:
            copy(em.b, dest, source, a.type.nbytes)


def copy(b: ir.IRBuilder, dest: ir.Value, source: ir.Value, nbytes: int) -> None:
    """``memcpy`` of ``nbytes`` (the two never overlap: distinct buffers)."""
    if nbytes == 0:
        return
    module = b.module
    name = "llvm.memcpy.p0.p0.i64"
    fn = module.globals.get(name) or ir.Function(
        module, ir.FunctionType(VOID, [_BYTE_PTR, _BYTE_PTR, I64, I1]), name=name)
    b.call(fn, [dest, source, int64(nbytes), ir.Constant(I1, 0)])


def fill(b: ir.IRBuilder, dest: ir.Value, literal: Literal, count: int) -> None:
    """Store ``count`` copies of a literal's value (in its memory type: a bool is a byte)."""
    t = memory_type(literal.type.dtype)
    value = constant(literal.type.dtype, literal.value)
    value = b.zext(value, t) if value.type == I1 else value
    typed = b.bitcast(dest, t.as_pointer())
    if count == 1:
        b.store(value, typed)
        return
    with counted_loop(b, int64(count), "fill") as i:
        b.store(value, b.gep(typed, [i]))
