"""One kernel (a ``fused`` equation's body, or a lone equation) as one LLVM function.

Values are generated *at an index*: ``value(v, idx)`` emits the scalar code
that computes element ``idx`` of ``v``, recursing through elementwise
primitives and index maps (broadcast, reshape, transpose, slice, pad, ...)
down to loads of the kernel's inputs. So a chain of elementwise work costs
no memory traffic: it is recomputed where it is read, in registers.

Some values must be *materialised* in memory: the kernel's outputs, and the
results of reductions, matmuls, arg-reductions and scatters, which need a
whole loop before any element is known. These are the kernel's *roots*. The
roots are grouped into *stages*, each one loop nest over an iteration shape,
in program order: a root joins the current stage when it iterates over the
same shape and reads no reduction that the stage is still accumulating.

A reduction whose reduced axes are the innermost loops keeps its running
value in a register (the only place ``reassoc`` is allowed, so the vectoriser
may split it into lanes); others accumulate into their output in memory.

Row kernels (``fused[kind='row']``, e.g. a softmax) put the stages of each
row inside one loop over the leading row shape, so a row stays in cache
between its passes; reductions across rows accumulate over that loop, and
work that needs the whole result runs after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

from ir.graph import Eqn, Graph, Literal, Var
from ir.passes.fusion import REDUCTIONS, role, row_kernel

from .elementwise import RULES, combine, convert, identity_of
from . import library
from .gemm import function_name, micro_kernels, workspace_bytes
from .llvmtypes import I1, I8, I32, I64, VOID, constant, counted_loop, int64, memory_type
from .parallel import MAX_THREADS, WORKER, parallel_for

ARG_REDUCTIONS = {"argmax", "argmin"}
# Work (loop iterations times equations in the kernel; multiply-adds / 8 for a matmul) before a stage
# is split across threads: starting a thread costs tens of microseconds.
PARALLEL_MIN_WORK = 1 << 21
MAX_PARTIAL_ELEMENTS = 1024  # a reduction across the split axis keeps a copy per thread: on the stack, so small
MATERIALISED = REDUCTIONS | ARG_REDUCTIONS | {"dot_general", "scatter_add"}


class LoweringError(NotImplementedError):
    """A primitive this backend has no lowering for."""


@dataclass
class Stage:
    shape: tuple
    roots: list[Var] = field(default_factory=list)
    special: str | None = None  # 'dot_general', 'argmax', 'argmin', 'scatter_add': emitted by their own code


@dataclass
class KernelSignature:
    """What the caller passes: pointers to the reads, the writes and the scratch buffers, in this order."""
    name: str
    reads: list[Var]
    writes: list[Var]
    scratch: list[Var]


@dataclass
class GemmLayout:
    """A dot_general as batched C[m, n] = A[m, k] @ B[k, n] on row-major operands:
    the free and contracting axes of each side merge into one axis with one stride."""
    batch: tuple
    lhs_batch: list[int]
    rhs_batch: list[int]
    out_batch: list[int]
    m: int
    n: int
    k: int
    a_rs: int
    a_cs: int
    b_rs: int
    b_cs: int


def _merged(shape: tuple, dims: list[int]) -> tuple[int, int] | None:
    """(size, stride) of ``dims`` taken together in a row-major array, or None if they do not merge."""
    strides = strides_of(shape)
    dims = [d for d in dims if shape[d] != 1]
    if not dims:
        return 1, 1
    for a, c in zip(dims, dims[1:]):
        if strides[a] != strides[c] * shape[c]:
            return None
    return int(np.prod([shape[d] for d in dims])), strides[dims[-1]]


def gemm_layout(e: Eqn) -> GemmLayout | None:
    lhs, rhs = e.inputs
    if lhs.type.dtype.kind != "f" or not isinstance(lhs, Var) or not isinstance(rhs, Var):
        return None
    (lc, rc), (lb, rb) = e.params["dimension_numbers"]
    ls, rs = lhs.type.shape, rhs.type.shape
    lfree = [d for d in range(len(ls)) if d not in lc and d not in lb]
    rfree = [d for d in range(len(rs)) if d not in rc and d not in rb]
    m, k_l, k_r, n = _merged(ls, lfree), _merged(ls, list(lc)), _merged(rs, list(rc)), _merged(rs, rfree)
    if None in (m, k_l, k_r, n):
        return None
    out_shape = e.outputs[0].type.shape
    return GemmLayout(tuple(ls[d] for d in lb), [strides_of(ls)[d] for d in lb], [strides_of(rs)[d] for d in rb],
                      strides_of(out_shape)[:len(lb)], m[0], n[0], k_l[0], m[1], k_l[1], k_r[1], n[1])


def strides_of(shape: tuple) -> list[int]:
    out, acc = [], 1
    for n in reversed(shape):
        out.append(acc)
        acc *= n
    return out[::-1]


class Kernel:
    def __init__(self, name: str, body: Graph, kind: str):
        self.name, self.body = name, body
        self.producer = {v.id: e for e in body.eqns for v in e.outputs}
        writes = []
        for a in body.outputs:
            if isinstance(a, Var) and a.id in self.producer and all(w.id != a.id for w in writes):
                writes.append(a)
        roots = {v.id for v in writes}
        for e in body.eqns:
            if e.prim.name in MATERIALISED:
                roots.add(e.outputs[0].id)
            if e.prim.name == "dot_general":  # a matmul reads its operands from memory
                roots.update(a.id for a in e.inputs if isinstance(a, Var) and a.id in self.producer)
        self.roots = [v for e in body.eqns for v in e.outputs if v.id in roots]
        scratch = [v for v in self.roots if v.id not in {w.id for w in writes}]
        self.signature = KernelSignature(name, list(body.inputs), writes, scratch)
        self.rows = row_kernel(body.eqns) if kind == "row" else None
        self._plan_stages()

    # ------------------------------------------------------------ scheduling
    def _loop_shape(self, v: Var) -> tuple:
        e = self.producer[v.id]
        if e.prim.name in REDUCTIONS:
            return e.inputs[0].type.shape
        return v.type.shape

    def _roots_read(self, v: Var) -> set[int]:
        """The roots that computing v at an index reads, through non-root values."""
        found, seen, stack = set(), set(), [a for a in self.producer[v.id].inputs if isinstance(a, Var)]
        root_ids = {r.id for r in self.roots}
        while stack:
            a = stack.pop()
            if a.id in seen or a.id not in self.producer:
                continue
            seen.add(a.id)
            if a.id in root_ids:
                found.add(a.id)
            else:
                stack.extend(x for x in self.producer[a.id].inputs if isinstance(x, Var))
        return found

    def _group(self, roots: list[Var]) -> list[Stage]:
        stages: list[Stage] = []
        for r in roots:
            name = self.producer[r.id].prim.name
            if name in MATERIALISED - REDUCTIONS:
                stages.append(Stage(r.type.shape, [r], special=name))
                continue
            shape, last = self._loop_shape(r), stages[-1] if stages else None
            accumulating = {x.id for x in last.roots if self.producer[x.id].prim.name in REDUCTIONS} if last else set()
            if last is not None and last.special is None and last.shape == shape and \
                    not (self._roots_read(r) & accumulating):
                last.roots.append(r)
            else:
                stages.append(Stage(shape, [r]))
        return stages

    def library_routines(self) -> set[str]:
        """The shared routines (library.py) this kernel calls."""
        found = set()
        for e in self.body.eqns:
            layout = gemm_layout(e) if e.prim.name == "dot_general" else None
            if layout is not None:
                dtype = e.outputs[0].type.dtype.name
                found |= {function_name(dtype)} | micro_kernels(dtype, layout.n)
        return found

    def _plan_stages(self) -> None:
        if self.rows is None:
            self.row_stages, self.after_stages, self.across_rows = [], self._group(self.roots), []
            return
        roles = {r.id: role(self.producer[r.id], self.rows) for r in self.roots}
        self.row_stages = self._group([r for r in self.roots if roles[r.id] in ("row", "accumulate")])
        self.after_stages = self._group([r for r in self.roots if roles[r.id] == "after"])
        self.across_rows = [r for r in self.roots if roles[r.id] == "accumulate"]

    # -------------------------------------------------------------- emission
    def emit(self, module: ir.Module) -> ir.Function:
        """The kernel function: ``(buffers..., i32* status, i64 threads)``."""
        self.module = module
        sig = self.signature
        fn = self._function(self.name, [I64])
        self._enter(fn, fn.args[:-1])
        self.threads = fn.args[-1]
        self.inputs = {v.id for v in sig.reads}
        self.complete: set[int] = set()
        self.partials: dict[int, ir.Value] = {}  # reduction id -> this chunk's slot, in a split stage
        self._parts = 0
        if self.rows is not None:
            small = sum(r.type.size for r in self.across_rows) <= MAX_PARTIAL_ELEMENTS
            if small and self.rows[0] > 1 and self._big(np.prod(self.rows) * self._row_work()):
                self._split(self.rows[0], self._row_loop, self.across_rows)
            else:
                for r in self.across_rows:
                    self._fill(r, ())
                self._row_loop(int64(0), int64(self.rows[0]))
            self.complete.update(r.id for s in self.row_stages for r in s.roots)
        for stage in self.after_stages:
            self._stage(stage, [])
        self.b.ret_void()
        return fn

    def _function(self, name: str, extra: list) -> ir.Function:
        """A function taking pointers to the kernel's buffers and the status word, then ``extra``."""
        sig = self.signature
        params = [memory_type(v.type.dtype).as_pointer() for v in sig.reads + sig.writes + sig.scratch]
        fn = ir.Function(self.module, ir.FunctionType(VOID, params + [I32.as_pointer()] + extra), name=name)
        fn.attributes.add("noinline")
        fn.attributes.add("nounwind")
        for arg in fn.args[:len(params) + 1]:
            arg.add_attribute("noalias")
        return fn

    def _enter(self, fn: ir.Function, pointers) -> None:
        """Emit into ``fn`` from now on, with the kernel's buffers at ``pointers`` (status last)."""
        sig = self.signature
        self.fn = fn
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.b.status = pointers[-1]
        self.mem = {v.id: arg for v, arg in zip(sig.reads + sig.writes + sig.scratch, pointers)}
        self.slots: dict[int, ir.Value] = {}

    # ------------------------------------------------------------- threads
    def _big(self, iterations, per_iteration: int | None = None) -> bool:
        return int(iterations) * (per_iteration or len(self.body.eqns)) >= PARALLEL_MIN_WORK

    def _row_work(self) -> int:
        return sum(int(np.prod(s.shape[len(self.rows):])) for s in self.row_stages)

    def _row_loop(self, lo: ir.Value, hi: ir.Value) -> None:
        with self._nest(self.rows, first=(lo, hi)) as row:
            for stage in self.row_stages:
                self._stage(stage, row)

    def _split(self, n: int, emit_range, partial: list[Var]) -> None:
        """Emit ``emit_range(lo, hi)`` as a function of its own and run it over
        ``range(n)`` in chunks, one per thread (parallel.py). A reduction in
        ``partial`` runs across the split axis: each chunk accumulates a whole
        copy of its result of its own, and the copies are combined in chunk order."""
        b = self.b
        slot_types = [memory_type(r.type.dtype) for r in partial]
        with b.goto_entry_block():
            slots = [b.alloca(t, size=int64(MAX_THREADS * r.type.size), name="partials")
                     for r, t in zip(partial, slot_types)]
        for r, slot in zip(partial, slots):
            with counted_loop(b, int64(MAX_THREADS * r.type.size), "clear") as i:
                b.store(self._to_memory(identity_of(self.producer[r.id].prim.name, r.type.dtype), r), b.gep(slot, [i]))
        caller = (self.fn, self.b, self.mem, self.slots)
        pointers = list(self.fn.args[:len(self.mem) + 1]) + slots
        self._parts += 1
        n_buffers = len(self.mem) + 1
        part = self._function(f"{self.name}.part{self._parts}", [I64, I64, I64] + [t.as_pointer() for t in slot_types])
        self._enter(part, part.args[:n_buffers])
        lo, hi, chunk = part.args[n_buffers:n_buffers + 3]
        for r, slot in zip(partial, part.args[n_buffers + 3:]):  # this chunk's copy stands in for the result
            self.partials[r.id] = self.mem[r.id] = self.b.gep(slot, [self.b.mul(chunk, int64(r.type.size))])
        emit_range(lo, hi)
        self.b.ret_void()
        self.partials = {}
        # the worker: (ctx, lo, hi, chunk) -> part(pointers from ctx..., lo, hi, chunk, partial copies from ctx...)
        worker = ir.Function(self.module, WORKER, name=f"{self.name}.worker{self._parts}")
        worker.linkage = "internal"
        wb = ir.IRBuilder(worker.append_basic_block("entry"))
        ctx, w_lo, w_hi, w_chunk = worker.args
        loaded = [wb.bitcast(wb.load(wb.gep(ctx, [int64(i)])), p.type) for i, p in enumerate(pointers)]
        wb.call(part, loaded[:n_buffers] + [w_lo, w_hi, w_chunk] + loaded[n_buffers:])
        wb.ret_void()
        self.fn, self.b, self.mem, self.slots = caller
        with b.goto_entry_block():
            frame = b.alloca(I8.as_pointer(), size=int64(len(pointers)), name="ctx")
        for i, p in enumerate(pointers):
            b.store(b.bitcast(p, I8.as_pointer()), b.gep(frame, [int64(i)]))
        b.call(parallel_for(self.module), [worker, frame, int64(n), self.threads])
        for r, slot in zip(partial, slots):
            name, size = self.producer[r.id].prim.name, r.type.size
            acc = self._slot(r)
            with counted_loop(b, int64(size), "element") as e:
                b.store(self._to_memory(identity_of(name, r.type.dtype), r), acc)
                with counted_loop(b, int64(MAX_THREADS), "combine") as i:
                    part_value = b.load(b.gep(slot, [b.add(b.mul(i, int64(size)), e)]))
                    total = combine(b, name, self._from_memory(b.load(acc), r), self._from_memory(part_value, r), False)
                    b.store(self._to_memory(total, r), acc)
                b.store(b.load(acc), b.gep(self.mem[r.id], [e]))

    def _nest(self, shape: tuple, prefix=(), first=None):
        """Nested counted loops over ``shape``; yields the list of indices.
        ``first``: the (lo, hi) range of the outermost loop, when it is split across threads."""
        b = self.b

        class Nest:
            def __enter__(nest):
                nest.loops = [counted_loop(b, first[1] if first and d == 0 else int64(n), f"d{len(prefix) + d}",
                                           start=first[0] if first and d == 0 else None)
                              for d, n in enumerate(shape)]
                return list(prefix) + [loop.__enter__() for loop in nest.loops]

            def __exit__(nest, *exc):
                for loop in reversed(nest.loops):
                    loop.__exit__(None, None, None)

        return Nest()

    def _slot(self, v: Var) -> ir.Value:
        """A stack slot for a register accumulator (promoted to a register by the optimiser)."""
        if v.id not in self.slots:
            with self.b.goto_entry_block():
                self.slots[v.id] = self.b.alloca(memory_type(v.type.dtype), name=f"acc{v.id}")
        return self.slots[v.id]

    def _across_first_axis(self, stage: Stage) -> list[Var]:
        return [r for r in stage.roots if self.producer[r.id].prim.name in REDUCTIONS
                and 0 in self.producer[r.id].params["axes"]]

    def _splittable(self, stage: Stage, prefix: list) -> bool:
        """A stage outside a row loop, with enough work, whose reductions either
        keep its first loop axis or reduce every axis (those combine partial results)."""
        if prefix or not stage.shape or stage.shape[0] < 2:
            return False
        if stage.special == "dot_general":
            e = self.producer[stage.roots[0].id]
            layout = gemm_layout(e)
            if layout is not None and not layout.batch and layout.m % stage.shape[0]:
                return False  # the output's first axis is not rows of A
            contract = int(np.prod([e.inputs[0].type.shape[d] for d in e.params["dimension_numbers"][0][0]]))
            return self._big(int(np.prod(stage.shape)) * contract // 8, 1)
        if stage.special is not None:
            return False
        for r in self._across_first_axis(stage):
            if set(self.producer[r.id].params["axes"]) != set(range(len(stage.shape))):
                return False
        return self._big(np.prod(stage.shape))

    def _stage(self, stage: Stage, prefix: list) -> None:
        emit = getattr(self, "_" + stage.special) if stage.special else self._loop_stage
        if self._splittable(stage, prefix):
            self._split(stage.shape[0], lambda lo, hi: emit(stage, prefix, (lo, hi)), self._across_first_axis(stage))
        else:
            emit(stage, prefix)
        if self.rows is None or not prefix:
            self.complete.update(r.id for r in stage.roots)
        else:  # inside the row loop: this row's part is complete for the stages after it
            self.complete.update(r.id for r in stage.roots if r not in self.across_rows)

    def _loop_stage(self, stage: Stage, prefix: list, first=None) -> None:
        shape, k = stage.shape, len(prefix)
        in_register: dict[int, int] = {}  # reduction root id -> the loop level its accumulator lives at
        for r in stage.roots:
            e = self.producer[r.id]
            if e.prim.name not in REDUCTIONS or r in self.across_rows:
                continue
            axes = set(e.params["axes"])
            level = min(axes) if axes else len(shape)
            if axes == set(range(level, len(shape))) and level >= k:
                in_register[r.id] = level
            else:
                self._fill(r, prefix, first)
        b = self.b

        def level(d: int, idx: list) -> None:
            for r in stage.roots:
                if in_register.get(r.id) == d:
                    b.store(self._to_memory(identity_of(self.producer[r.id].prim.name, r.type.dtype), r),
                            self._slot(r))
            if d == len(shape):
                self._body(stage, idx, in_register)
            else:
                lo, hi = first if first is not None and d == 0 else (None, int64(shape[d]))
                with counted_loop(b, hi, f"d{d}", start=lo) as i:
                    level(d + 1, idx + [i])
            for r in stage.roots:
                if in_register.get(r.id) == d:  # a chunk of a split stage leaves a partial result
                    b.store(b.load(self._slot(r)), self.partials.get(r.id) or self._address(r, idx[:d]))

        level(k, list(prefix))

    def _body(self, stage: Stage, idx: list, in_register: dict) -> None:
        self.memo: dict = {}
        b = self.b
        for r in stage.roots:
            e = self.producer[r.id]
            if e.prim.name in REDUCTIONS:
                x = self.value(e.inputs[0], idx)
                if r.id in in_register:
                    slot = self._slot(r)
                    acc = self._from_memory(b.load(slot), r)
                    b.store(self._to_memory(combine(b, e.prim.name, acc, x, True), r), slot)
                else:
                    axes = set(e.params["axes"])
                    where = self._address(r, [i for d, i in enumerate(idx) if d not in axes])
                    acc = self._from_memory(b.load(where), r)
                    b.store(self._to_memory(combine(b, e.prim.name, acc, x, False), r), where)
            else:
                v = self._compute(e, idx)
                self.memo[(r.id, self._key(idx))] = v
                b.store(self._to_memory(v, r), self._address(r, idx))

    def _fill(self, r: Var, prefix, first=None) -> None:
        """Set a memory accumulator to the reduction's identity: inside a row loop,
        this row's part; in a stage split across threads, this thread's rows."""
        init = self._to_memory(identity_of(self.producer[r.id].prim.name, r.type.dtype), r)
        with self._nest(r.type.shape[len(prefix):], prefix, first) as idx:
            self.b.store(init, self._address(r, idx))

    # ---------------------------------------------------------- memory access
    def _address(self, v: Var, idx) -> ir.Value:
        offset = None
        for i, stride, n in zip(idx, strides_of(v.type.shape), v.type.shape):
            if n == 1:
                continue
            term = i if stride == 1 else self.b.mul(i, int64(stride), flags=["nsw"])
            offset = term if offset is None else self.b.add(offset, term, flags=["nsw"])
        ptr = self.mem[v.id]
        return ptr if offset is None else self.b.gep(ptr, [offset], inbounds=True)

    def _from_memory(self, x: ir.Value, v) -> ir.Value:
        return self.b.icmp_unsigned("!=", x, ir.Constant(x.type, 0)) if v.type.dtype == np.bool_ else x

    def _to_memory(self, x: ir.Value, v) -> ir.Value:
        return self.b.zext(x, memory_type(v.type.dtype)) if x.type == I1 else x

    def _key(self, idx) -> tuple:
        return tuple(id(i) for i in idx)

    # ------------------------------------------------------- values at an index
    def value(self, a, idx: list) -> ir.Value:
        if isinstance(a, Literal):
            return constant(a.type.dtype, a.value)
        if a.type.ndim == 0:
            idx = []
        key = (a.id, self._key(idx))
        found = self.memo.get(key)
        if found is None:
            if a.id in self.inputs or a.id in self.complete:
                found = self._from_memory(self.b.load(self._address(a, idx)), a)
            else:
                found = self._compute(self.producer[a.id], idx)
            self.memo[key] = found
        return found

    def _compute(self, e: Eqn, idx: list) -> ir.Value:
        name = e.prim.name
        rule = RULES.get(name)
        if rule is not None:
            return rule(self.b, e, *[self.value(a, idx) for a in e.inputs])
        index_map = getattr(self, "_at_" + name, None)
        if index_map is None:
            raise LoweringError(f"the llvm backend cannot lower {name!r} inside a kernel")
        return index_map(e, idx)

    def _at_broadcast_in_dim(self, e: Eqn, idx):
        x = e.inputs[0]
        zero = int64(0)
        dims = e.params["broadcast_dimensions"]
        return self.value(x, [zero if n == 1 else idx[d] for n, d in zip(x.type.shape, dims)])

    def _at_reshape(self, e: Eqn, idx):
        x = e.inputs[0]
        src, dst = x.type.shape, e.outputs[0].type.shape
        zero = int64(0)
        if [n for n in src if n != 1] == [n for n in dst if n != 1]:  # only unit axes come or go
            kept = iter([i for i, n in zip(idx, dst) if n != 1])
            return self.value(x, [zero if n == 1 else next(kept) for n in src])
        b = self.b
        linear = None
        for i, stride, n in zip(idx, strides_of(dst), dst):
            if n != 1:
                term = b.mul(i, int64(stride), flags=["nsw"])
                linear = term if linear is None else b.add(linear, term, flags=["nsw"])
        linear = linear if linear is not None else zero
        out = []
        for n in reversed(src):
            out.append(b.urem(linear, int64(n)) if n != 1 else zero)
            linear = b.udiv(linear, int64(n)) if n != 1 else linear
        return self.value(x, out[::-1])

    def _at_transpose(self, e: Eqn, idx):
        perm = e.params["permutation"]
        src = [None] * len(perm)
        for d, p in enumerate(perm):
            src[p] = idx[d]
        return self.value(e.inputs[0], src)

    def _at_slice(self, e: Eqn, idx):
        b = self.b
        src = []
        for i, start, stride in zip(idx, e.params["start_indices"], e.params["strides"]):
            j = i if stride == 1 else b.mul(i, int64(stride), flags=["nsw"])
            src.append(j if start == 0 else b.add(j, int64(start), flags=["nsw"]))
        return self.value(e.inputs[0], src)

    def _at_rev(self, e: Eqn, idx):
        shape, dims = e.inputs[0].type.shape, set(e.params["dimensions"])
        return self.value(e.inputs[0], [self.b.sub(int64(n - 1), i) if d in dims else i
                                        for d, (i, n) in enumerate(zip(idx, shape))])

    def _at_pad(self, e: Eqn, idx):
        x, pad_value = e.inputs
        b = self.b
        padding = self.value(pad_value, [])
        if x.type.size == 0:
            return padding
        inside, src = ir.Constant(I1, 1), []
        for i, n, (lo, _, mid) in zip(idx, x.type.shape, e.params["padding_config"]):
            t = b.sub(i, int64(lo))
            step = int64(mid + 1)
            q = b.sdiv(t, step) if mid else t
            ok = b.and_(b.icmp_signed(">=", t, int64(0)), b.icmp_signed("<", q, int64(n)))
            if mid:
                ok = b.and_(ok, b.icmp_signed("==", b.srem(t, step), int64(0)))
            inside = b.and_(inside, ok)
            src.append(b.select(ok, q, int64(0)))
        return b.select(inside, self.value(x, src), padding)

    def _at_concatenate(self, e: Eqn, idx):
        b, dim = self.b, e.params["dimension"]
        parts, offset = [], 0
        for x in e.inputs:
            n = x.type.shape[dim]
            if n:
                parts.append((x, offset, n))
            offset += n
        i = idx[dim]
        result = constant(e.outputs[0].type.dtype, 0)  # only when every part is empty: then never read
        for x, start, n in reversed(parts):
            local = b.sub(i, int64(start)) if start else i
            local = b.select(b.icmp_signed("<", local, int64(n)), local, int64(n - 1))
            local = b.select(b.icmp_signed("<", local, int64(0)), int64(0), local)
            v = self.value(x, idx[:dim] + [local] + idx[dim + 1:])
            result = v if start + n == offset else b.select(b.icmp_signed("<", i, int64(start + n)), v, result)
        return result

    def _at_gather(self, e: Eqn, idx):
        x, *indices = e.inputs
        k = len(indices)
        if any(x.type.shape[a] == 0 for a in range(k)):
            return constant(x.type.dtype, 0)
        n_idx = indices[0].type.ndim
        return self.value(x, self._indexed(x, indices, idx[:n_idx]) + idx[n_idx:])

    def _indexed(self, x: Var, indices: list, at: list) -> list:
        """The leading indices of x that integer arrays ``indices`` hold at ``at``, clamped into range."""
        b, out = self.b, []
        for a, ind in enumerate(indices):
            j = self.value(ind, at)
            j = b.sext(j, I64) if j.type != I64 else j
            j = b.select(b.icmp_signed("<", j, int64(0)), int64(0), j)
            hi = int64(x.type.shape[a] - 1)
            out.append(b.select(b.icmp_signed(">", j, hi), hi, j))
        return out

    def _at_iota(self, e: Eqn, idx):
        return convert(self.b, idx[e.params["dimension"]], np.int64, e.params["dtype"])

    # ---------------------------------------------------- materialising stages
    def _dot_general(self, stage: Stage, prefix, first=None) -> None:
        out = stage.roots[0]
        layout = gemm_layout(self.producer[out.id])
        if layout is not None:
            self._gemm(out, layout, first)
        else:
            self._contraction_loops(out, first)

    def _gemm(self, out: Var, layout: "GemmLayout", first) -> None:
        """Floating-point matmuls: the generated blocked kernel (gemm.py), once per batch element."""
        e = self.producer[out.id]
        lhs, rhs = e.inputs
        b = self.b
        gemm = library.declare(self.module, function_name(out.type.dtype.name))
        with b.goto_entry_block():
            workspace = b.alloca(ir.ArrayType(I8, workspace_bytes(out.type.dtype.name)), name="gemm_workspace")
            workspace.align = 64
        m_lo, m_hi = int64(0), int64(layout.m)
        batch_first = None
        if first is not None and layout.batch:
            batch_first = first
        elif first is not None:  # rows of the output are split: rows of A and C go with them
            rows_per = layout.m // out.type.shape[0]
            m_lo, m_hi = (b.mul(x, int64(rows_per)) for x in first)
        with self._nest(layout.batch, first=batch_first) as bidx:
            offsets = [None, None, None]
            for which, strides in enumerate((layout.lhs_batch, layout.rhs_batch, layout.out_batch)):
                for i, stride in zip(bidx, strides):
                    term = b.mul(i, int64(stride))
                    offsets[which] = term if offsets[which] is None else b.add(offsets[which], term)
            lo_a = b.mul(m_lo, int64(layout.a_rs))
            lo_c = b.mul(m_lo, int64(layout.n))
            pa = b.gep(self.mem[lhs.id], [b.add(offsets[0], lo_a) if offsets[0] is not None else lo_a])
            pb = self.mem[rhs.id] if offsets[1] is None else b.gep(self.mem[rhs.id], [offsets[1]])
            pc = b.gep(self.mem[out.id], [b.add(offsets[2], lo_c) if offsets[2] is not None else lo_c])
            b.call(gemm, [b.sub(m_hi, m_lo), int64(layout.n), int64(layout.k), pa, int64(layout.a_rs),
                          int64(layout.a_cs), pb, int64(layout.b_rs), int64(layout.b_cs), pc, int64(layout.n),
                          ir.Constant(I32, 0), b.bitcast(workspace, I8.as_pointer())])

    def _contraction_loops(self, out: Var, first) -> None:
        """Any dot_general: out[batch, lhs free, rhs free] = sum over the contracting
        axes, the contraction innermost and accumulated in a register."""
        e = self.producer[out.id]
        lhs, rhs = e.inputs
        (lc, rc), (lb, rbatch) = e.params["dimension_numbers"]
        lfree = [d for d in range(lhs.type.ndim) if d not in lc and d not in lb]
        rfree = [d for d in range(rhs.type.ndim) if d not in rc and d not in rbatch]
        contract = [lhs.type.shape[d] for d in lc]
        b = self.b
        with self._nest(out.type.shape, first=first) as idx:
            batch, li, ri = idx[:len(lb)], idx[len(lb):len(lb) + len(lfree)], idx[len(lb) + len(lfree):]
            slot = self._slot(out)
            b.store(self._to_memory(constant(out.type.dtype, 0), out), slot)
            with self._nest(tuple(contract)) as k:
                lidx, ridx = [None] * lhs.type.ndim, [None] * rhs.type.ndim
                for dims, vals, target in ((lb, batch, lidx), (lc, k, lidx), (lfree, li, lidx),
                                           (rbatch, batch, ridx), (rc, k, ridx), (rfree, ri, ridx)):
                    for d, v in zip(dims, vals):
                        target[d] = v
                self.memo = {}
                x, y = self.value(lhs, lidx), self.value(rhs, ridx)
                acc = b.load(slot)
                if x.type == I1:
                    b.store(self._to_memory(b.or_(self._from_memory(acc, out), b.and_(x, y)), out), slot)
                elif isinstance(x.type, ir.IntType):
                    b.store(b.add(acc, b.mul(x, y)), slot)
                else:
                    b.store(b.fadd(acc, b.fmul(x, y, flags=("contract",)), flags=("reassoc", "contract")), slot)
            b.store(b.load(slot), self._address(out, idx))

    def _arg_reduction(self, out: Var, maximum: bool) -> None:
        """The index of the first extreme along one axis; a NaN counts as the extreme (the first one wins)."""
        e = self.producer[out.id]
        x, axis = e.inputs[0], e.params["axis"]
        b = self.b
        with self.b.goto_entry_block():
            best_slot = b.alloca(memory_type(x.type.dtype), name="best")
            at_slot = b.alloca(I64, name="best_at")
        with self._nest(out.type.shape) as idx:
            b.store(self._to_memory(identity_of("reduce_max" if maximum else "reduce_min", x.type.dtype), x),
                    best_slot)
            b.store(int64(0), at_slot)
            with counted_loop(b, int64(x.type.shape[axis]), "r") as r:
                self.memo = {}
                v = self.value(x, idx[:axis] + [r] + idx[axis:])
                best = self._from_memory(b.load(best_slot), x)
                if isinstance(v.type, ir.IntType):
                    op = ">" if maximum else "<"
                    better = b.icmp_unsigned(op, v, best) if v.type == I1 else b.icmp_signed(op, v, best)
                else:
                    better = b.and_(b.fcmp_ordered("==", best, best),  # once a NaN is held, nothing replaces it
                                    b.fcmp_unordered(">" if maximum else "<", v, best))
                b.store(self._to_memory(b.select(better, v, best), x), best_slot)
                b.store(b.select(better, r, b.load(at_slot)), at_slot)
            at = b.load(at_slot)
            b.store(convert(b, at, np.int64, out.type.dtype), self._address(out, idx))

    def _argmax(self, stage: Stage, prefix) -> None:
        self._arg_reduction(stage.roots[0], True)

    def _argmin(self, stage: Stage, prefix) -> None:
        self._arg_reduction(stage.roots[0], False)

    def _scatter_add(self, stage: Stage, prefix) -> None:
        """Copy the operand, then add each update at its (clamped) index, in order."""
        out = stage.roots[0]
        e = self.producer[out.id]
        x, updates, *indices = e.inputs
        b = self.b
        with self._nest(out.type.shape) as idx:
            self.memo = {}
            b.store(self._to_memory(self.value(x, idx), out), self._address(out, idx))
        if updates.type.size == 0:
            return
        n_idx = indices[0].type.ndim
        with self._nest(updates.type.shape) as idx:
            self.memo = {}
            where = self._address(out, self._indexed(x, indices, idx[:n_idx]) + idx[n_idx:])
            u = self.value(updates, idx)
            acc = self._from_memory(b.load(where), out)
            b.store(self._to_memory(combine(b, "reduce_sum", acc, u, False), out), where)
