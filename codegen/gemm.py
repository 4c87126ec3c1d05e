"""A generated single-threaded matrix multiply: C = (accumulate ? C : 0) + A @ B.

Why generate one instead of calling NumPy's BLAS
------------------------------------------------
The NumPy wheel's OpenBLAS picks its AVX2 kernel on this CPU (about 130
GFLOP/s float32 on one core), leaving half of each AVX-512 FMA unit idle, and
calling it means leaving compiled code for Python. A kernel emitted into the
same LLVM module runs at the 512-bit width, takes any strides (a transposed
operand is just another pair of strides, absorbed by packing), accumulates
into C in place (so a gradient sum needs no extra pass), and is re-entrant, so
the caller can split the rows of C between threads.

The blocking (Goto/BLIS scheme, written for a row-major C)
----------------------------------------------------------
Vectors run along the columns of C, which are contiguous. The micro-kernel
holds an ``MR x NR`` block of C in ``MR * NV`` zmm accumulators (``NR = NV``
vectors of 16 floats or 8 doubles). Each step along k loads ``NV`` vectors of
a packed row of B and, for each of the ``MR`` rows, broadcasts one element of
packed A from memory (the broadcast folds into the FMA's ``{1toN}`` memory
operand) and issues ``NV`` FMAs. With ``MR = 14, NV = 2`` that is 28
accumulators plus 2 B vectors, 30 of the 32 zmm registers, and 28 independent
FMAs per step: more than the 2 ports x 4 cycles of latency that keep both FMA
units busy, and only 16 loads per 28 FMAs.

Around it, the classic five loops::

    for jc in N by NC:                 C and B column block
      for pc in K by KC:               one packed KC x NC block of B (L2/L3)
        for ic in M by MC:             one packed MC x KC block of A (L2)
          for jr in NC by NR:          one KC x NR micro-panel of B (L1)
            for ir in MC by MR:        micro-kernel on an MR x NR tile of C

* ``KC`` sizes the B micro-panel that stays in the 48 KB L1 while the ``ir``
  loop streams A micro-panels past it: float32 ``256 x 32 x 4 B = 32 KB``
  (float64 ``128 x 16 x 8 B = 16 KB``... see ``BLOCKINGS`` for the tuned
  values) plus one ``MR x KC`` A micro-panel leaves room in L1. K is split into
  equal blocks no larger than ``KC`` so that no block is a sliver whose C
  load/store would not be amortised.
* ``MC`` sizes the packed A block (``MC x KC``) to sit in the 2 MB L2 next to
  the B block it is multiplied with.
* ``NC`` bounds the packed B block (``KC x NC``) and so the workspace; B is
  packed one micro-panel at a time just before its first use (in the first
  ``ic`` iteration), so the freshly written panel is still in L1 when the
  kernel reads it, and later ``ic`` iterations re-read it from L2/L3.

Packing copies A into ``MR``-row panels stored k-major (``MR`` elements per
k) and B into ``NR``-column panels stored k-major (``NR`` elements per k,
zero-padded past the last column), so the kernel's loads are sequential
whatever the operands' strides. Each packer picks one of three loops at run
time: a vector copy when the panel's short side is contiguous (B normally, A
transposed), an in-register transpose of 16x16 (8x8) blocks when the k side
is contiguous (A normally, B transposed), and a scalar loop otherwise.

Tails: rows (``mr < MR``) and vector counts (``nv < NV``) get their own
unrolled kernels (one per pair, chosen by a switch), and the last vector of
a tile is loaded and stored under a lane mask, so no element outside C is
touched and no FMA is spent on a padding row. k not a multiple of the unroll
runs a one-step remainder loop; ``k == 0`` zeroes C (or leaves it).

Floating point: products are accumulated with explicit ``llvm.fma`` in k
order within a k block, then added to C; no fast-math flags are used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from llvmlite import ir

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
VOID = ir.VoidType()


@dataclass(frozen=True)
class Blocking:
    """Register and cache blocking for one element type (sizes in elements)."""

    dtype: str
    lanes: int  # elements per 512-bit vector
    mr: int  # rows of C per micro-kernel tile
    nv: int  # vectors of C per micro-kernel tile row
    kc: int  # largest k block
    mc: int  # rows of the packed A block (a multiple of mr)
    nc: int  # columns of the packed B block (a multiple of nr)
    unroll: int = 4  # k steps per iteration of the micro-kernel's main loop
    kc_direct: int = 1024  # largest k block when A is read in place (n <= nr)

    @property
    def nr(self) -> int:
        return self.nv * self.lanes

    @property
    def itemsize(self) -> int:
        return 64 // self.lanes


BLOCKINGS: dict[str, Blocking] = {
    "float32": Blocking("float32", lanes=16, mr=6, nv=4, kc=128, mc=720, nc=1024),
    "float64": Blocking("float64", lanes=8, mr=6, nv=4, kc=128, mc=384, nc=1024),
}

_ALIGN = 64  # bytes; the workspace is this aligned and so is every packed B panel
_C_PREFETCH_STEPS = 64  # k steps before the end of the k loop at which the C tile is prefetched


def _round_up(x: int, to: int) -> int:
    return -(-x // to) * to


def workspace_bytes(dtype: str) -> int:
    """Bytes of packing buffer one call of ``tg_gemm_<dtype>`` needs (64-byte aligned)."""
    bl = BLOCKINGS[dtype]
    b_block = bl.kc * _round_up(bl.nc, bl.nr) * bl.itemsize
    a_block = _round_up(bl.mc, bl.mr) * bl.kc * bl.itemsize
    return _round_up(b_block, _ALIGN) + _round_up(a_block, _ALIGN)


def function_name(dtype: str) -> str:
    return f"tg_gemm_{dtype}"


def define_gemm(module: ir.Module, dtype: str) -> ir.Function:
    """Define ``void @tg_gemm_<dtype>(i64 m, i64 n, i64 k, T* a, i64 a_rs, i64 a_cs,
    T* b, i64 b_rs, i64 b_cs, T* c, i64 c_rs, i32 accumulate, i8* workspace)`` in
    ``module`` (or return it if it is already there)."""
    name = function_name(dtype)
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    return _GemmGenerator(module, BLOCKINGS[dtype]).define(name)


# --------------------------------------------------------------------------- IR helpers


def _const(n: int, t: ir.IntType = I64) -> ir.Constant:
    return ir.Constant(t, n)


@contextmanager
def _loop(b: ir.IRBuilder, start: ir.Value, stop: ir.Value, step: int | ir.Value,
          name: str) -> Iterator[ir.Value]:
    """``for i in range(start, stop, step)`` (step > 0); the body is emitted inside the ``with``."""
    step_value = _const(step) if isinstance(step, int) else step
    pre = b.block
    head = b.append_basic_block(f"{name}.head")
    body = b.append_basic_block(f"{name}.body")
    end = b.append_basic_block(f"{name}.end")
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64, name)
    i.add_incoming(start, pre)
    b.cbranch(b.icmp_signed("<", i, stop), body, end)
    b.position_at_end(body)
    yield i
    i.add_incoming(b.add(i, step_value, name=f"{name}.next"), b.block)
    b.branch(head)
    b.position_at_end(end)


@contextmanager
def _if(b: ir.IRBuilder, cond: ir.Value, name: str) -> Iterator[None]:
    then = b.append_basic_block(f"{name}.then")
    end = b.append_basic_block(f"{name}.end")
    b.cbranch(cond, then, end)
    b.position_at_end(then)
    yield
    b.branch(end)
    b.position_at_end(end)


def _min(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def _balanced_block(b: ir.IRBuilder, extent: ir.Value, most: int, multiple: int) -> ir.Value:
    """The block size that splits ``extent`` (> 0) into ceil(extent / most) nearly equal
    blocks, rounded up to ``multiple`` (``most`` is a multiple of ``multiple``)."""
    count = b.sdiv(b.add(extent, _const(most - 1)), _const(most))
    size = b.sdiv(b.add(extent, b.sub(count, _const(1))), count)
    size = b.mul(b.sdiv(b.add(size, _const(multiple - 1)), _const(multiple)), _const(multiple))
    return _min(b, size, _const(most))


def _declare(module: ir.Module, name: str, fnty: ir.FunctionType) -> ir.Value:
    """A function declaration; reuses one already in the module (cast if its pointer types differ)."""
    existing = module.globals.get(name)
    if existing is None:
        return ir.Function(module, fnty, name)
    if existing.function_type == fnty:
        return existing
    return existing.bitcast(fnty.as_pointer())


# --------------------------------------------------------------------------- the generator


class _GemmGenerator:
    """Emits the driver, the packers and the micro-kernels for one ``Blocking``."""

    def __init__(self, module: ir.Module, blocking: Blocking):
        self.module = module
        self.bl = blocking
        self.t = ir.FloatType() if blocking.dtype == "float32" else ir.DoubleType()
        self.ptr = self.t.as_pointer()
        self.vec = ir.VectorType(self.t, blocking.lanes)
        self.vecptr = self.vec.as_pointer()
        self.mask_int = ir.IntType(blocking.lanes)  # one bit per lane
        self.mask_vec = ir.VectorType(I1, blocking.lanes)
        self.prefix = f"tg_gemm_{blocking.dtype}"
        vs = f"v{blocking.lanes}{'f32' if blocking.dtype == 'float32' else 'f64'}"
        self.fma = _declare(module, f"llvm.fma.{vs}", ir.FunctionType(self.vec, [self.vec] * 3))
        self.masked_load = _declare(module, f"llvm.masked.load.{vs}.p0", ir.FunctionType(
            self.vec, [self.vecptr, I32, self.mask_vec, self.vec]))
        self.masked_store = _declare(module, f"llvm.masked.store.{vs}.p0", ir.FunctionType(
            VOID, [self.vec, self.vecptr, I32, self.mask_vec]))
        self.prefetch = _declare(module, "llvm.prefetch.p0", ir.FunctionType(
            VOID, [I8.as_pointer(), I32, I32, I32]))

    # ---- small emitters

    def zero_vec(self) -> ir.Constant:
        return ir.Constant(self.vec, [0.0] * self.bl.lanes)

    def splat(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        v = b.insert_element(ir.Constant(self.vec, ir.Undefined), x, _const(0, I32))
        return b.shuffle_vector(v, ir.Constant(self.vec, ir.Undefined),
                                ir.Constant(ir.VectorType(I32, self.bl.lanes), [0] * self.bl.lanes))

    def at(self, b: ir.IRBuilder, base: ir.Value, index: ir.Value | int) -> ir.Value:
        return b.gep(base, [_const(index) if isinstance(index, int) else index])

    def load_vec(self, b: ir.IRBuilder, p: ir.Value, align: int) -> ir.Value:
        return b.load(b.bitcast(p, self.vecptr), align=align)

    def store_vec(self, b: ir.IRBuilder, v: ir.Value, p: ir.Value, align: int) -> None:
        b.store(v, b.bitcast(p, self.vecptr), align=align)

    def lane_mask(self, b: ir.IRBuilder, count: ir.Value) -> ir.Value:
        """``<lanes x i1>`` with the first ``clamp(count, 0, lanes)`` lanes set."""
        lanes = self.bl.lanes
        c = b.select(b.icmp_signed("<", count, _const(0)), _const(0), _min(b, count, _const(lanes)))
        bits = b.sub(b.shl(_const(1), c), _const(1))  # c <= lanes < 64, so no overflow
        return b.bitcast(b.trunc(bits, self.mask_int), self.mask_vec)

    def const_mask(self, count: int) -> ir.Constant:
        return ir.Constant(self.mask_vec, [1 if i < count else 0 for i in range(self.bl.lanes)])

    def mload(self, b: ir.IRBuilder, p: ir.Value, mask: ir.Value) -> ir.Value:
        return b.call(self.masked_load, [b.bitcast(p, self.vecptr), _const(self.bl.itemsize, I32),
                                         mask, self.zero_vec()])

    def mstore(self, b: ir.IRBuilder, v: ir.Value, p: ir.Value, mask: ir.Value) -> None:
        b.call(self.masked_store, [v, b.bitcast(p, self.vecptr), _const(self.bl.itemsize, I32), mask])

    def transpose(self, b: ir.IRBuilder, rows: Sequence[ir.Value]) -> list[ir.Value]:
        """Transpose ``lanes`` vectors of ``lanes`` elements: out[q][t] = rows[t][q].

        Stage ``d`` swaps bit ``d`` of the row index with bit ``d`` of the lane
        index through two-source shuffles of row pairs; after log2(lanes)
        stages every bit is swapped."""
        n = self.bl.lanes
        cur = list(rows)
        d = n // 2
        while d:
            nxt = list(cur)
            lo = [lane if not lane & d else n + (lane ^ d) for lane in range(n)]
            hi = [lane ^ d if not lane & d else n + lane for lane in range(n)]
            for r in range(n):
                if r & d:
                    continue
                nxt[r] = b.shuffle_vector(cur[r], cur[r | d], ir.Constant(ir.VectorType(I32, n), lo))
                nxt[r | d] = b.shuffle_vector(cur[r], cur[r | d], ir.Constant(ir.VectorType(I32, n), hi))
            cur = nxt
            d //= 2
        return cur

    def new_function(self, name: str, args: list[tuple[str, ir.Type]], internal: bool = True) -> ir.Function:
        fn = ir.Function(self.module, ir.FunctionType(VOID, [t for _, t in args]), name)
        for arg, (arg_name, _) in zip(fn.args, args):
            arg.name = arg_name
        if internal:
            fn.linkage = "internal"
        fn.attributes.add("nounwind")
        if internal:
            fn.attributes.add("noinline")  # one copy of each kernel, not one per call site
        return fn

    # ---- the micro-kernel

    def define_microkernel(self, nv: int, packed: bool) -> ir.Function:
        """``ukr(kc, ap, bp, c, c_rs, rows, beta, last_mask)``: C[:rows, :nv*lanes] (=|+=) Ap^T Bp.

        ``ap`` holds kc groups of ``MR`` elements (rows past ``rows`` are zero
        padding), ``bp`` kc groups of ``NR`` (the first ``nv`` vectors are read,
        64-byte aligned). Only the first ``rows`` rows of C are touched, and the
        last vector of each row only under ``last_mask``."""
        bl = self.bl
        mr, lanes = bl.mr, bl.lanes
        fn = self.new_function(f"{self.prefix}.ukr.{'packed' if packed else 'direct'}.{nv}", [
            ("kc", I64), ("a", self.ptr), ("a_rs", I64), ("a_cs", I64), ("bp", self.ptr),
            ("c", self.ptr), ("c_rs", I64), ("rows", I64), ("beta", I32), ("last_mask", self.mask_int),
            ("pf", I8.as_pointer()), ("pf_step", I64)])
        kc, a, a_rs, a_cs, bp, c, c_rs, nrows, beta, last_mask_int, pf, pf_step = fn.args
        for arg in (a, bp, c):
            arg.attributes.add("noalias")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        last_mask = b.bitcast(last_mask_int, self.mask_vec)

        rows = [b.gep(c, [b.mul(c_rs, _const(i))]) for i in range(mr)]

        def prefetch_c(b: ir.IRBuilder) -> None:
            """Bring the C tile into L1 for writing; a row past `rows` prefetches row 0 again."""
            for i, row in enumerate(rows):
                row = b.select(b.icmp_signed("<", _const(i), nrows), row, c)
                for v in range(nv):
                    b.call(self.prefetch, [b.bitcast(self.at(b, row, v * lanes), I8.as_pointer()),
                                           _const(1, I32), _const(3, I32), _const(1, I32)])

        # The C tile is read and written after the k loop. Prefetched at the start it would be
        # evicted by the A and B streams on the way (its rows are often 4 KB apart, all in
        # the same L1 sets), so it is prefetched _C_PREFETCH_STEPS k steps before the end.
        c_prefetch_at = b.mul(b.sdiv(b.sub(kc, _const(_C_PREFETCH_STEPS)), _const(bl.unroll)),
                              _const(bl.unroll))
        c_prefetch_at = b.select(b.icmp_signed("<", c_prefetch_at, _const(0)), _const(0), c_prefetch_at)

        # Row i of the A tile is `row_offsets[i]` elements from its column pointer; a row
        # past `rows` reads row 0 again (its sums are never stored).
        if packed:  # a packed A panel: rows adjacent, k steps MR apart, padding rows zero
            a_rs, a_cs = _const(1), _const(mr)
            row_offsets = [_const(i) for i in range(mr)]
        else:
            row_offsets = [b.select(b.icmp_signed("<", _const(i), nrows), b.mul(a_rs, _const(i)), _const(0))
                           for i in range(mr)]

        def step(b: ir.IRBuilder, a_col: ir.Value, b_row: ir.Value,
                 accs: list[list[ir.Value]]) -> list[list[ir.Value]]:
            """One k step: NV vectors of a packed B row times MR broadcast elements of an A column."""
            bvecs = [self.load_vec(b, self.at(b, b_row, v * lanes), _ALIGN) for v in range(nv)]
            out = []
            for i in range(mr):
                ai = self.splat(b, b.load(b.gep(a_col, [row_offsets[i]])))
                out.append([b.call(self.fma, [ai, bvecs[v], accs[i][v]]) for v in range(nv)])
            return out

        Grid = list[list[ir.Value]]

        def k_loop(b: ir.IRBuilder, start: ir.Value, a_start: ir.Value, b_start: ir.Value,
                   sets: list[Grid], unroll: int, name: str, prefetch: bool):
            """``while p + unroll <= kc``: ``unroll`` k steps, step u adding into accumulator set
            ``u % len(sets)``, walking pointers to the current A column and B row; returns the
            final p, pointers and accumulator sets."""
            pre = b.block
            head = b.append_basic_block(f"{name}.head")
            body = b.append_basic_block(f"{name}.body")
            end = b.append_basic_block(f"{name}.end")
            b.branch(head)
            b.position_at_end(head)
            p = b.phi(I64, "p")
            a_col = b.phi(self.ptr, "a_col")
            b_row = b.phi(self.ptr, "b_row")
            pf_row = b.phi(I8.as_pointer(), "pf_row")
            for phi, value in ((p, start), (a_col, a_start), (b_row, b_start), (pf_row, pf)):
                phi.add_incoming(value, pre)
            phis = [[[b.phi(self.vec) for _ in range(nv)] for _ in range(mr)] for _ in sets]
            for grid, values in zip(phis, sets):
                for i in range(mr):
                    for v in range(nv):
                        grid[i][v].add_incoming(values[i][v], pre)
            b.cbranch(b.icmp_signed("<=", b.add(p, _const(unroll)), kc), body, end)
            b.position_at_end(body)
            if prefetch:
                with _if(b, b.icmp_signed("==", p, c_prefetch_at), f"{name}.prefetch_c"):
                    prefetch_c(b)
                # One 256-byte row of the next B panel's source per iteration (see `prefetch_plan`).
                for line in range(0, bl.nr * bl.itemsize, 64):
                    b.call(self.prefetch, [b.gep(pf_row, [_const(line)]), _const(0, I32), _const(2, I32),
                                           _const(1, I32)])
            new = list(phis)
            a_u = a_col
            for u in range(unroll):
                which = u % len(sets)
                new[which] = step(b, a_u, self.at(b, b_row, u * bl.nr), new[which])
                a_u = b.gep(a_u, [a_cs])
            p.add_incoming(b.add(p, _const(unroll)), b.block)
            a_col.add_incoming(a_u, b.block)
            b_row.add_incoming(self.at(b, b_row, unroll * bl.nr), b.block)
            pf_row.add_incoming(b.gep(pf_row, [pf_step]) if prefetch else pf_row, b.block)
            for grid, values in zip(phis, new):
                for i in range(mr):
                    for v in range(nv):
                        grid[i][v].add_incoming(values[i][v], b.block)
            b.branch(head)
            b.position_at_end(end)
            return p, a_col, b_row, phis

        # A one-vector tile has only MR accumulators, fewer than the FMA latency times the FMA
        # ports: alternate k steps between two sets and add them at the end.
        n_sets = 2 if nv == 1 else 1
        zero = [[[self.zero_vec() for _ in range(nv)] for _ in range(mr)] for _ in range(n_sets)]
        # Direct A is only read when B is a single panel: nothing to prefetch, and the k loop
        # is left rolled (its strides are not constants) to keep the code small.
        unroll = bl.unroll if packed else n_sets
        if not packed:
            prefetch_c(b)
        p, a_col, b_row, sets = k_loop(b, _const(0), a, bp, zero, unroll, "main", packed)
        if unroll > 1:
            p, a_col, b_row, sets = k_loop(b, p, a_col, b_row, sets, 1, "rest", False)
        accs = sets[0]
        for other in sets[1:]:
            accs = [[b.fadd(x, y) for x, y in zip(row, other_row)] for row, other_row in zip(accs, other)]

        def write_row(b: ir.IRBuilder, i: int, add: bool) -> None:
            for v in range(nv):
                ptr = self.at(b, rows[i], v * lanes)
                value = accs[i][v]
                if v == nv - 1:
                    if add:
                        value = b.fadd(self.mload(b, ptr, last_mask), value)
                    self.mstore(b, value, ptr, last_mask)
                else:
                    if add:
                        value = b.fadd(self.load_vec(b, ptr, bl.itemsize), value)
                    self.store_vec(b, value, ptr, bl.itemsize)

        def write(b: ir.IRBuilder, add: bool) -> None:
            write_row(b, 0, add)  # a tile has at least one row
            for i in range(1, mr):
                with _if(b, b.icmp_signed("<", _const(i), nrows), f"row{i}"):
                    write_row(b, i, add)

        add_block = b.append_basic_block("add")
        set_block = b.append_basic_block("set")
        done = b.append_basic_block("done")
        b.cbranch(b.icmp_signed("!=", beta, _const(0, I32)), add_block, set_block)
        b.position_at_end(add_block)
        write(b, True)
        b.branch(done)
        b.position_at_end(set_block)
        write(b, False)
        b.branch(done)
        b.position_at_end(done)
        b.ret_void()
        return fn

    # ---- packing

    def define_packer(self, width: int, zero_fill: bool, name: str) -> ir.Function:
        """``pack(valid, kc, src, s_w, s_p, dst)``: dst[p*width + w] = src[w*s_w + p*s_p]
        for p < kc, w < valid (<= width); with ``zero_fill`` the lanes valid <= w < width
        are zeroed. ``dst`` is 64-byte aligned when ``width`` fills whole vectors."""
        bl = self.bl
        lanes = bl.lanes
        fn = self.new_function(f"{self.prefix}.{name}", [
            ("valid", I64), ("kc", I64), ("src", self.ptr), ("s_w", I64), ("s_p", I64), ("dst", self.ptr)])
        valid, kc, src, s_w, s_p, dst = fn.args
        src.attributes.add("noalias")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        nchunks = -(-width // lanes)
        fill = width if zero_fill else None
        assert width <= lanes or width % lanes == 0, "a panel is narrower than a vector or whole vectors"

        copy_block = b.append_basic_block("copy")
        not_copy = b.append_basic_block("not_copy")
        transpose_block = b.append_basic_block("transpose")
        scalar_block = b.append_basic_block("scalar")
        b.cbranch(b.icmp_signed("==", s_w, _const(1)), copy_block, not_copy)
        b.position_at_end(not_copy)
        b.cbranch(b.icmp_signed("==", s_p, _const(1)), transpose_block, scalar_block)

        # 1. The w side is contiguous: each k step is a (masked) vector copy.
        b.position_at_end(copy_block)
        load_masks = [self.lane_mask(b, b.sub(valid, _const(ch * lanes))) for ch in range(nchunks)]
        # A chunk wholly past `valid` loads nothing, from the row's start: a masked-off lane that
        # would reach an unmapped page costs a microcode assist even though it cannot fault.
        chunk_offsets = [b.select(b.icmp_signed("<", _const(ch * lanes), valid), _const(ch * lanes), _const(0))
                         for ch in range(nchunks)]
        with _loop(b, _const(0), kc, 1, "cp") as p:
            row = b.gep(src, [b.mul(p, s_p)])
            out = self.at(b, dst, b.mul(p, _const(width)))
            for ch in range(nchunks):
                v = self.mload(b, b.gep(row, [chunk_offsets[ch]]), load_masks[ch])
                if (ch + 1) * lanes <= width:
                    self.store_vec(b, v, self.at(b, out, ch * lanes), bl.itemsize)
                else:
                    self.mstore(b, v, self.at(b, out, ch * lanes), self.const_mask(width - ch * lanes))
        b.ret_void()

        # 2. The k side is contiguous: transpose lanes x lanes blocks in registers
        #    (a chunk is `lanes` consecutive w; rows past `valid` are zero).
        b.position_at_end(transpose_block)
        full_k = b.mul(b.sdiv(kc, _const(lanes)), _const(lanes))
        all_lanes = self.const_mask(lanes)
        none = self.const_mask(0)
        store_lanes = min(lanes, width)  # a narrow panel stores part of each transposed vector
        with _loop(b, _const(0), full_k, lanes, "tr") as p0:
            with _loop(b, _const(0), _const(width), lanes, "ch") as w0:
                rows = []
                for t in range(store_lanes):
                    w = b.add(w0, _const(t))
                    ok = b.icmp_signed("<", w, valid)
                    # A row past `valid` is masked off entirely (zero in registers) and
                    # addressed at row 0, so that no lane even points outside the operand.
                    ptr = b.gep(src, [b.add(b.mul(b.select(ok, w, _const(0)), s_w), p0)])
                    rows.append(self.mload(b, ptr, b.select(ok, all_lanes, none)))
                cols = self.transpose(b, rows + [self.zero_vec()] * (lanes - store_lanes))
                for q in range(lanes):
                    out = self.at(b, dst, b.add(b.mul(b.add(p0, _const(q)), _const(width)), w0))
                    if store_lanes == lanes:
                        self.store_vec(b, cols[q], out, bl.itemsize)
                    else:
                        self.mstore(b, cols[q], out, self.const_mask(store_lanes))
        self.scalar_pack(b, valid, full_k, kc, src, s_w, s_p, dst, width, fill)
        b.ret_void()

        # 3. Neither side is contiguous: element by element.
        b.position_at_end(scalar_block)
        self.scalar_pack(b, valid, _const(0), kc, src, s_w, s_p, dst, width, fill)
        b.ret_void()
        return fn

    def scalar_pack(self, b: ir.IRBuilder, valid: ir.Value, p_start: ir.Value, p_stop: ir.Value,
                    src: ir.Value, s_w: ir.Value, s_p: ir.Value, dst: ir.Value, width: int,
                    fill: int | None) -> None:
        with _loop(b, p_start, p_stop, 1, "sp") as p:
            row = b.gep(src, [b.mul(p, s_p)])
            out = self.at(b, dst, b.mul(p, _const(width)))
            with _loop(b, _const(0), valid, 1, "sw") as w:
                b.store(b.load(b.gep(row, [b.mul(w, s_w)])), b.gep(out, [w]))
            if fill is not None:
                with _loop(b, valid, _const(fill), 1, "sz") as w:
                    b.store(ir.Constant(self.t, 0.0), b.gep(out, [w]))

    # ---- the driver

    def define(self, name: str) -> ir.Function:
        bl = self.bl
        packed = [self.define_microkernel(nv, packed=True) for nv in range(1, bl.nv + 1)]
        direct = [self.define_microkernel(nv, packed=False) for nv in range(1, bl.nv + 1)]
        pack_a = self.define_packer(bl.mr, zero_fill=True, name="pack_a")
        pack_b = self.define_packer(bl.nr, zero_fill=True, name="pack_b")

        fn = self.new_function(name, [
            ("m", I64), ("n", I64), ("k", I64), ("a", self.ptr), ("a_rs", I64), ("a_cs", I64),
            ("b", self.ptr), ("b_rs", I64), ("b_cs", I64), ("c", self.ptr), ("c_rs", I64),
            ("accumulate", I32), ("workspace", I8.as_pointer())], internal=False)
        m, n, k, a, a_rs, a_cs, bmat, b_rs, b_cs, c, c_rs, accumulate, workspace = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        ret = fn.append_basic_block("return")
        work = fn.append_basic_block("work")
        empty = b.or_(b.icmp_signed("<=", m, _const(0)), b.icmp_signed("<=", n, _const(0)))
        b.cbranch(empty, ret, work)
        b.position_at_end(ret)
        b.ret_void()
        b.position_at_end(work)

        # k == 0: the sum is empty.
        no_k = b.append_basic_block("no_k")
        has_k = b.append_basic_block("has_k")
        b.cbranch(b.icmp_signed("<=", k, _const(0)), no_k, has_k)
        b.position_at_end(no_k)
        with _if(b, b.icmp_signed("==", accumulate, _const(0, I32)), "zero"):
            with _loop(b, _const(0), m, 1, "zi") as i:
                row = b.gep(c, [b.mul(i, c_rs)])
                with _loop(b, _const(0), n, 1, "zj") as j:
                    b.store(ir.Constant(self.t, 0.0), b.gep(row, [j]))
        b.ret_void()
        b.position_at_end(has_k)

        ws = b.bitcast(workspace, self.ptr)
        b_block_elems = _round_up(bl.kc * _round_up(bl.nc, bl.nr) * bl.itemsize, _ALIGN) // bl.itemsize
        bpack = ws
        apack = self.at(b, ws, b_block_elems)

        # K and M in equal blocks of at most KC and MC (rounded up to the unroll and to MR),
        # so that no block is a sliver.
        # With a single B panel (n <= NR) each A tile is used once: read A where it is
        # instead of packing it; otherwise the kernels read packed A (rows 1 apart, k MR apart).
        # Reading A in place there is no A block to keep in cache, so k blocks can be longer.
        direct_a = b.icmp_signed("<=", n, _const(bl.nr))
        assert bl.kc_direct * bl.nr <= bl.kc * _round_up(bl.nc, bl.nr), "the B panel fits the workspace"
        kcb = b.select(direct_a, _balanced_block(b, k, bl.kc_direct, bl.unroll),
                       _balanced_block(b, k, bl.kc, bl.unroll))
        mcb = _balanced_block(b, m, bl.mc, bl.mr)

        tile_a_rs = b.select(direct_a, a_rs, _const(1))
        tile_a_cs = b.select(direct_a, a_cs, _const(bl.mr))

        with _loop(b, _const(0), n, bl.nc, "jc") as jc:
            nc = _min(b, _const(bl.nc), b.sub(n, jc))
            with _loop(b, _const(0), k, kcb, "pc") as pc:
                kc = _min(b, kcb, b.sub(k, pc))
                beta = b.select(b.icmp_signed(">", pc, _const(0)), _const(1, I32), accumulate)
                with _loop(b, _const(0), m, mcb, "ic") as ic:
                    mc = _min(b, mcb, b.sub(m, ic))
                    a_block = b.gep(a, [b.add(b.mul(ic, a_rs), b.mul(pc, a_cs))])
                    with _if(b, b.icmp_signed(">", n, _const(bl.nr)), "packa"):
                        with _loop(b, _const(0), mc, bl.mr, "pa") as ir_:
                            b.call(pack_a, [_min(b, _const(bl.mr), b.sub(mc, ir_)), kc,
                                            b.gep(a_block, [b.mul(ir_, a_rs)]), a_rs, a_cs,
                                            b.gep(apack, [b.mul(ir_, kc)])])
                    with _loop(b, _const(0), nc, bl.nr, "jr") as jr:
                        nr = _min(b, _const(bl.nr), b.sub(nc, jr))
                        bpanel = b.gep(bpack, [b.mul(jr, kc)])
                        with _if(b, b.icmp_signed("==", ic, _const(0)), "packb"):
                            col = b.add(jc, jr)
                            b.call(pack_b, [nr, kc, b.gep(bmat, [b.add(b.mul(pc, b_rs), b.mul(col, b_cs))]),
                                            b_cs, b_rs, bpanel])
                        nvec = b.sdiv(b.add(nr, _const(bl.lanes - 1)), _const(bl.lanes))
                        last = b.sub(nr, b.mul(b.sub(nvec, _const(1)), _const(bl.lanes)))
                        last_mask = b.trunc(b.sub(b.shl(_const(1), last), _const(1)), self.mask_int)
                        c_col = b.gep(c, [b.add(jc, jr)])
                        pf_plan = self.prefetch_plan(b, ic, jr, nc, kc, bmat, b_rs, b_cs, pc, jc, bpanel)
                        with _loop(b, _const(0), mc, bl.mr, "ir") as ir_:
                            mr = _min(b, _const(bl.mr), b.sub(mc, ir_))
                            pf, pf_step = pf_plan(b, b.sdiv(ir_, _const(bl.mr)))
                            tile_a = b.select(direct_a, b.gep(a_block, [b.mul(ir_, a_rs)]),
                                              b.gep(apack, [b.mul(ir_, kc)]))
                            args = [kc, tile_a, tile_a_rs, tile_a_cs, bpanel,
                                    b.gep(c_col, [b.mul(b.add(ic, ir_), c_rs)]), c_rs, mr, beta, last_mask,
                                    pf, pf_step]
                            self.dispatch(b, packed, direct, direct_a, nvec, args)
        b.ret_void()
        return fn

    def prefetch_plan(self, b: ir.IRBuilder, ic: ir.Value, jr: ir.Value, nc: ir.Value, kc: ir.Value,
                      bmat: ir.Value, b_rs: ir.Value, b_cs: ir.Value, pc: ir.Value, jc: ir.Value,
                      bpanel: ir.Value):
        """Where the micro-kernels of this B panel prefetch: the source of the next B panel,
        which is packed right after them (only while B is being packed, ``ic == 0``).

        Each kernel prefetches ``kc // unroll`` rows of ``NR`` elements, ``pf_step``
        bytes apart, so tile ``t`` is given a share of the next panel:

        * B rows contiguous (``b_cs == 1``): a panel is ``kc`` rows of ``NR`` elements
          each; tile t takes rows from ``t * (kc // unroll)`` on.
        * B columns contiguous (``b_rs == 1``): a panel is ``NR`` columns of ``kc``
          elements; tile t takes the ``t``-th ``NR * itemsize``-byte chunk of every column.
        * otherwise, or with no next panel: the current (packed, cached) panel, step 0.

        Addresses may run past the next panel (prefetches never fault)."""
        bl = self.bl
        size = bl.itemsize
        row_bytes = bl.nr * size
        per_tile = b.sdiv(kc, _const(bl.unroll))  # rows one kernel prefetches
        chunks = b.sdiv(b.add(b.mul(kc, _const(size)), _const(row_bytes - 1)), _const(row_bytes))
        next_src = b.bitcast(b.gep(bmat, [b.add(b.mul(pc, b_rs), b.mul(b.add(b.add(jc, jr), _const(bl.nr)),
                                                                         b_cs))]), I8.as_pointer())
        active = b.and_(b.icmp_signed("==", ic, _const(0)), b.icmp_signed("<", b.add(jr, _const(bl.nr)), nc))
        rows_contiguous = b.and_(active, b.icmp_signed("==", b_cs, _const(1)))
        cols_contiguous = b.and_(active, b.icmp_signed("==", b_rs, _const(1)))
        here = b.bitcast(bpanel, I8.as_pointer())

        def plan(b: ir.IRBuilder, tile: ir.Value) -> tuple[ir.Value, ir.Value]:
            row_start = b.srem(b.mul(tile, per_tile), kc)  # kc > 0 here
            by_rows = b.gep(next_src, [b.mul(row_start, b.mul(b_rs, _const(size)))])
            by_cols = b.gep(next_src, [b.mul(b.srem(tile, chunks), _const(row_bytes))])
            pf = b.select(rows_contiguous, by_rows, b.select(cols_contiguous, by_cols, here))
            step = b.select(rows_contiguous, b.mul(b_rs, _const(size)),
                            b.select(cols_contiguous, b.mul(b_cs, _const(size)), _const(0)))
            return pf, step

        return plan

    def dispatch(self, b: ir.IRBuilder, packed: list[ir.Function], direct: list[ir.Function],
                 direct_a: ir.Value, nvec: ir.Value, args: list[ir.Value]) -> None:
        """Call the kernel for ``nvec`` vectors per row reading packed or direct A."""
        after = b.append_basic_block("ukr.after")
        full = b.append_basic_block("ukr.full")
        key = b.add(nvec, b.select(direct_a, _const(self.bl.nv), _const(0)))
        switch = b.switch(key, full)
        for index, kernel in enumerate(packed[:-1] + direct, start=1):
            case = b.append_basic_block(f"ukr.{index}")
            switch.add_case(_const(index if index < self.bl.nv else index + 1), case)
            b.position_at_end(case)
            b.call(kernel, args)
            b.branch(after)
        b.position_at_end(full)
        b.call(packed[-1], args)
        b.branch(after)
        b.position_at_end(after)
