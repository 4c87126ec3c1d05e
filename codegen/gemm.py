"""A generated single-threaded matrix multiply: ``C = (accumulate ? C : 0) + A @ B``.

``define_gemm(module, dtype)`` adds ``void @tg_gemm_<dtype>(i64 m, i64 n, i64 k, T* a,
i64 a_rs, i64 a_cs, T* b, i64 b_rs, i64 b_cs, T* c, i64 c_rs, i32 accumulate, i8* ws)``
to an llvmlite module: A[i,p] is ``a[i*a_rs + p*a_cs]``, B[p,j] is ``b[p*b_rs + j*b_cs]``,
C[i,j] is ``c[i*c_rs + j]`` (strides in elements, any sign; C must not overlap A or B).
``ws`` is a caller-owned, 64-byte aligned scratch buffer of ``workspace_bytes(dtype)``
bytes. Nothing global is written, so threads may run it at once on disjoint rows of C
with separate workspaces.

Why a generated kernel instead of NumPy's BLAS
----------------------------------------------
Called from generated code it needs no trip through Python and NumPy, takes any strides
(the transposed operands of a backward pass are just other strides, absorbed by
packing, so ``x.T @ g`` needs no copy), accumulates into C in place (a gradient sum
needs no temporary), and lets the caller split rows between threads. It does not depend
on which BLAS a NumPy wheel carries or how it threads. On this machine NumPy's OpenBLAS
picks its AVX-512 (SkylakeX) kernels, so it is no slouch: ``benchmarks/gemm.py``
compares the two (and XLA) shape by shape; this kernel is ahead on most shapes.

The micro-kernel: a register tile of C
--------------------------------------
Vectors run along the rows of C, which are contiguous. A tile of ``MR = 6`` rows by
``NV = 4`` vectors (``NR = 64`` floats or 32 doubles) lives in 24 zmm accumulators; each
k step loads 4 aligned vectors of packed B, broadcasts 6 elements of A and issues 24
independent ``llvm.fma`` -- 29 of the 32 zmm registers, at least the 2 FMA ports x 4
cycles of latency in flight, and 10 loads per 24 FMAs, well under the load ports' rate.
(Measured against 14x2, 12x2, 8x3, 5x5 and 4x6 tiles: 6x4 and 8x3 were fastest, 14x2,
with 16 loads per 28 FMAs, slowest; 6x4 also divides NR evenly into power-of-two n.)
The k loop is unrolled 4 times and nothing is spilled. The kernel reads A[i, p] at
``a[i*a_rs + p*a_ks]`` through one pointer per row, so one kernel serves both layouts the
driver gives it: *by rows* (``a_ks = 1``: A as stored, read in place or packed into row
panels by plain copies) and *k-major* (``a_rs = 1, a_ks = MR``: a transposed A, packed
by plain copies). Two kernels per width, one per layout with constant offsets, measured
the same on rows and 0-2 % (float32) or 2-5 % (float64) faster on a transposed A; one
kernel halves what the library compiles (see library.py).

The cache blocking (Goto/BLIS loop nest)
----------------------------------------
::

    for jc in N by NC:                  columns of C and B
      for pc in K by KC:                one k block
        for ic in M by MC:              pack an MC x KC block of A            -> L2
          for jr in NC by NR:           (first ic) pack a KC x NR panel of B  -> L1
            for ir in MC by MR:         micro-kernel on an MR x NR tile of C

* ``KC = 256``: K (and M) are cut into equal blocks no longer than KC (MC), so no block
  is a sliver whose C update is not amortised. The B micro-panel, ``KC x NR`` = 64 KB,
  is larger than the L1 (32 KB on the project's Zen 4, 48 KB on the Intel cores it was
  first tuned on) and is streamed from L2 with the A micro-panels. Measured on the Zen 4
  against KC = 128 (a panel in L1) and 192, interleaved, process time: 256 was fastest
  or level on every benchmarked shape, 2-3 % ahead on 512^3 and 1024^3 (which put it
  ahead of XLA's), level on the 128-row MLP shapes. (On the Intel machine KC from 64 to
  512 measured within a few per cent of each other.)
* ``MC`` (360 rows float32, 192 float64) sizes the packed A block, about 370 KB, to
  stay in the 1 MB L2 while every B panel of the ``jc`` block passes it.
* ``NC = 1024`` bounds the packed B block (1 MB / 2 MB, L2 or L3) and so the
  workspace (``workspace_bytes``: about 1.4 MB float32, 2.4 MB float64).
* B is packed one panel at a time just before the first ``ir`` loop that uses it, so
  the first tile reads it from L1. While a panel's tiles run, each micro-kernel
  prefetches (``prefetcht1``) one row of the *next* panel's source per iteration, so
  that packing reads L2 instead of waiting on memory: the packing traffic overlaps the
  FMAs. The C tile is prefetched for writing 64 k steps before the k loop ends: at the
  start the A and B streams would evict it (C rows 4 KB apart share L1 sets).
* With a single B panel (``n <= NR``) and contiguous A rows, A is read in place -- each A
  tile would be used once, so packing it would only add a pass -- and k blocks may be
  1024 long.

Packing copies B into ``NR``-column panels stored k-major (``NR`` elements per k step,
zero past the last column) and A into ``MR``-row panels in whichever layout is a plain
copy of it (a k-major panel zero past the last row; a row panel just shorter). The B packer
picks one of three loops at run time: a
(masked) vector copy when B's rows are contiguous, an in-register transpose of 16x16
(8x8) blocks when its columns are (a transposed B), and an element loop otherwise.

Tails: a tile of ``nv < NV`` vectors has its own kernel, and the last vector of a tile
row is read and written under a lane mask; a row tile short of MR rows still computes
MR (the missing rows repeat row 0, or are zero) but stores only its own. So nothing
outside C is touched. A one-vector tile
(6 accumulators, fewer than the FMA latency hides) alternates k steps between two
accumulator sets. ``k == 0`` zeroes C, or leaves it when accumulating.

The driver calls the micro-kernel for each tile through a table of function pointers
(``tg_gemm_<dtype>.kernels``, entry ``kernel_slot``), so that the library (library.py) can
compile the driver and each micro-kernel apart and load only those a program runs
(``micro_kernels``: they depend on ``n`` only). ``define_gemm`` with
``with_kernels`` (the default) makes the whole GEMM in one module, table included.

Floating point: explicit ``llvm.fma`` in k order within a k block (two interleaved
partial sums for one-vector tiles), the block's sum then added to C; no fast-math flags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from llvmlite import ir

from .llvmtypes import I1, I8, I32, I64, VOID, counted_loop


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
    "float32": Blocking("float32", lanes=16, mr=6, nv=4, kc=256, mc=360, nc=1024),
    "float64": Blocking("float64", lanes=8, mr=6, nv=4, kc=256, mc=192, nc=1024),
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


PARAMETERS = ("m", "n", "k", "a", "a_rs", "a_cs", "b", "b_rs", "b_cs", "c", "c_rs", "accumulate", "workspace")


def function_type(dtype: str) -> ir.FunctionType:
    """The signature of ``tg_gemm_<dtype>``, as ``define_gemm`` defines it and a caller declares it."""
    ptr = (ir.FloatType() if dtype == "float32" else ir.DoubleType()).as_pointer()
    return ir.FunctionType(VOID, [I64, I64, I64, ptr, I64, I64, ptr, I64, I64, ptr, I64, I32, I8.as_pointer()])


def define_gemm(module: ir.Module, dtype: str, with_kernels: bool = True) -> ir.Function:
    """Define ``void @tg_gemm_<dtype>(i64 m, i64 n, i64 k, T* a, i64 a_rs, i64 a_cs,
    T* b, i64 b_rs, i64 b_cs, T* c, i64 c_rs, i32 accumulate, i8* workspace)`` in
    ``module`` (or return it if it is already there).

    The driver calls its micro-kernels through a table, ``@tg_gemm_<dtype>.kernels``
    (``kernel_slot`` says which entry is which). With ``with_kernels`` every micro-kernel is
    defined in ``module`` too and the table is a constant holding them: a self-contained
    GEMM. Without, the table starts empty (null) and the micro-kernels are pieces compiled
    apart (``define_microkernel``), whose addresses the library writes into it when it
    loads them, on demand: a program needs only those ``micro_kernels`` names."""
    name = function_name(dtype)
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    return _GemmGenerator(module, BLOCKINGS[dtype]).define(name, with_kernels)


def define_microkernel(module: ir.Module, dtype: str, nv: int) -> ir.Function:
    """Define the micro-kernel ``tg_gemm_<dtype>.ukr.<nv>`` alone in ``module``, with
    external linkage: a piece of the library that the driver's table points to."""
    fn = _GemmGenerator(module, BLOCKINGS[dtype]).define_microkernel(nv)
    fn.linkage = ""
    return fn


def microkernel_name(dtype: str, nv: int) -> str:
    return f"{function_name(dtype)}.ukr.{nv}"


def table_name(dtype: str) -> str:
    return f"{function_name(dtype)}.kernels"


def kernel_slot(nv: int) -> int:
    """The entry of the driver's table for the micro-kernel of ``nv`` vectors."""
    return nv - 1


def micro_kernels(dtype: str, n: int) -> set[str]:
    """The micro-kernels a call with ``n`` columns of C runs: what the driver's loop nest picks
    for each NR-wide panel of each NC-wide block (a call with ``n <= 0`` runs none). Which
    kernels run depends on nothing else, so a program whose matmul shapes are known when it
    is compiled names the pieces it needs."""
    bl = BLOCKINGS[dtype]
    found = set()
    for jc in range(0, max(n, 0), bl.nc):
        nc = min(bl.nc, n - jc)
        for jr in range(0, nc, bl.nr):
            found.add(microkernel_name(dtype, -(-min(bl.nr, nc - jr) // bl.lanes)))
    return found


def every_microkernel(dtype: str) -> list[str]:
    return [microkernel_name(dtype, nv) for nv in range(1, BLOCKINGS[dtype].nv + 1)]


# --------------------------------------------------------------------------- IR helpers
def _opaque(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """``value``, through an empty inline-asm statement the optimisers cannot see into. The
    micro-kernel's row pointers and k offsets go through it: seeing them as one base plus
    ``i*a_rs + u*a_ks``, loop strength reduction makes 24 loop-invariant addresses of the 6
    rows and 4 k steps, more than the registers, and reloads them from the stack in the
    hot loop; opaque, they stay 6 pointers and 4 offsets, in registers."""
    asm = ir.InlineAsm(ir.FunctionType(value.type, [value.type]), "", "=r,0")
    return b.call(asm, [value])


def _const(n: int, t: ir.IntType = I64) -> ir.Constant:
    return ir.Constant(t, n)


def _loop(b: ir.IRBuilder, start: ir.Value, stop: ir.Value, step: int | ir.Value, name: str):
    """``for i in range(start, stop, step)`` (step > 0); the body is emitted inside the ``with``."""
    return counted_loop(b, stop, name, start=start, step=step)


@contextmanager
def _if(b: ir.IRBuilder, cond: ir.Value, name: str) -> Iterator[None]:
    then = b.append_basic_block(f"{name}.then")
    end = b.append_basic_block(f"{name}.end")
    b.cbranch(cond, then, end)
    b.position_at_end(then)
    yield
    b.branch(end)
    b.position_at_end(end)


@contextmanager
def _if_else(b: ir.IRBuilder, cond: ir.Value, name: str) -> Iterator[Callable[[], None]]:
    """``with _if_else(b, cond, name) as otherwise:`` then-code, ``otherwise()``, else-code."""
    then = b.append_basic_block(f"{name}.then")
    other = b.append_basic_block(f"{name}.else")
    end = b.append_basic_block(f"{name}.end")
    b.cbranch(cond, then, other)
    b.position_at_end(then)

    def otherwise() -> None:
        b.branch(end)
        b.position_at_end(other)

    yield otherwise
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

    def define_microkernel(self, nv: int) -> ir.Function:
        """``ukr(kc, a, a_rs, a_ks, bp, c, c_rs, rows, beta, last_mask, pf, pf_step)``:
        C[:rows, :nv*lanes] = (beta ? C : 0) + A[:rows, :kc] @ Bp, A[i, p] at
        ``a[i*a_rs + p*a_ks]``.

        The driver passes MR rows with contiguous k steps (``a_ks = 1``: A in place, or a row
        panel packed with ``a_rs = kc``) or a k-major packed panel (``a_rs = 1, a_ks = MR``:
        kc groups of ``MR`` elements, padding rows zero). ``bp`` holds kc rows of
        ``NR`` elements, 64-byte aligned, of which the first ``nv`` vectors are read.
        Only the first ``rows`` rows of C are touched, and the last vector of each row
        only under ``last_mask``. The kernel prefetches one row of ``NR`` elements at
        ``pf + i * pf_step`` in main-loop iteration i (see ``prefetch_plan``)."""
        bl = self.bl
        mr, lanes = bl.mr, bl.lanes
        fn = self.new_function(f"{self.prefix}.ukr.{nv}", [
            ("kc", I64), ("a", self.ptr), ("a_rs", I64), ("a_ks", I64), ("bp", self.ptr),
            ("c", self.ptr), ("c_rs", I64), ("rows", I64), ("beta", I32), ("last_mask", self.mask_int),
            ("pf", I8.as_pointer()), ("pf_step", I64)])
        kc, a, a_rs, a_ks, bp, c, c_rs, nrows, beta, last_mask_int, pf, pf_step = fn.args
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

        # Where the k loop reads A: one pointer per row, a row past `rows` aliasing row 0 (its
        # sums are never stored), stepping a_ks elements per k step: one kernel for both layouts
        # the driver packs (see the module docstring for what that costs and saves).
        a_start = [_opaque(b, b.select(b.icmp_signed("<", _const(i), nrows), b.gep(a, [b.mul(a_rs, _const(i))]), a))
                   for i in range(mr)]
        k_offsets = {u: _opaque(b, b.mul(a_ks, _const(u))) for u in range(1, bl.unroll + 1)}  # u k steps on

        def a_element(b: ir.IRBuilder, pointers: list[ir.Value], u: int, i: int) -> ir.Value:
            """A[i, p + u] for the k step p the pointers are at."""
            return b.load(b.gep(pointers[i], [k_offsets[u]]) if u else pointers[i])

        def a_advance(b: ir.IRBuilder, pointers: list[ir.Value], steps: int) -> list[ir.Value]:
            return [_opaque(b, b.gep(ptr, [k_offsets[steps]])) for ptr in pointers]

        def step(b: ir.IRBuilder, a_ptrs: list[ir.Value], u: int, b_row: ir.Value,
                 accs: list[list[ir.Value]]) -> list[list[ir.Value]]:
            """One k step: NV vectors of a packed B row times MR broadcast elements of A."""
            bvecs = [self.load_vec(b, self.at(b, b_row, v * lanes), _ALIGN) for v in range(nv)]
            out = []
            for i in range(mr):
                ai = self.splat(b, a_element(b, a_ptrs, u, i))
                out.append([b.call(self.fma, [ai, bvecs[v], accs[i][v]]) for v in range(nv)])
            return out

        Grid = list[list[ir.Value]]

        def k_loop(b: ir.IRBuilder, start: ir.Value, a_from: list[ir.Value], b_start: ir.Value,
                   sets: list[Grid], unroll: int, name: str, prefetch: bool):
            """``while p + unroll <= kc``: ``unroll`` k steps, step u adding into accumulator set
            ``u % len(sets)``, walking the A pointers and a pointer to the current B row;
            returns the final p, pointers and accumulator sets."""
            pre = b.block
            head = b.append_basic_block(f"{name}.head")
            body = b.append_basic_block(f"{name}.body")
            end = b.append_basic_block(f"{name}.end")
            b.branch(head)
            b.position_at_end(head)
            p = b.phi(I64, "p")
            a_ptrs = [b.phi(self.ptr, "a") for _ in a_from]
            b_row = b.phi(self.ptr, "b_row")
            pf_row = b.phi(I8.as_pointer(), "pf_row")
            for phi, value in ((p, start), (b_row, b_start), (pf_row, pf), *zip(a_ptrs, a_from)):
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
                # One row of the next B panel's source per iteration (see `prefetch_plan`).
                for line in range(0, bl.nr * bl.itemsize, 64):
                    b.call(self.prefetch, [b.gep(pf_row, [_const(line)]), _const(0, I32), _const(2, I32),
                                           _const(1, I32)])
            new = list(phis)
            for u in range(unroll):
                which = u % len(sets)
                new[which] = step(b, a_ptrs, u, self.at(b, b_row, u * bl.nr), new[which])
            p.add_incoming(b.add(p, _const(unroll)), b.block)
            for phi, value in zip(a_ptrs, a_advance(b, a_ptrs, unroll)):
                phi.add_incoming(value, b.block)
            b_row.add_incoming(self.at(b, b_row, unroll * bl.nr), b.block)
            pf_row.add_incoming(b.gep(pf_row, [pf_step]) if prefetch else pf_row, b.block)
            for grid, values in zip(phis, new):
                for i in range(mr):
                    for v in range(nv):
                        grid[i][v].add_incoming(values[i][v], b.block)
            b.branch(head)
            b.position_at_end(end)
            return p, a_ptrs, b_row, phis

        # A one-vector tile has only MR accumulators, fewer than the FMA latency times the FMA
        # ports: alternate k steps between two sets and add them at the end.
        n_sets = 2 if nv == 1 else 1
        zero = [[[self.zero_vec() for _ in range(nv)] for _ in range(mr)] for _ in range(n_sets)]
        p, a_ptrs, b_row, sets = k_loop(b, _const(0), a_start, bp, zero, bl.unroll, "main", True)
        if bl.unroll > 1:
            p, a_ptrs, b_row, sets = k_loop(b, p, a_ptrs, b_row, sets, 1, "rest", False)
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

    def define_packer(self, width: int, name: str, transpose: bool = True) -> ir.Function:
        """``pack(valid, kc, src, s_w, s_p, dst)``: dst[p*width + w] = src[w*s_w + p*s_p]
        for p < kc, w < valid (<= width), and zero for valid <= w < width. ``dst`` is
        64-byte aligned when ``width`` fills whole vectors. Without ``transpose`` the caller
        never has ``s_p == 1`` (and ``s_w != 1``), which then takes the element loop."""
        bl = self.bl
        lanes = bl.lanes
        fn = self.new_function(f"{self.prefix}.{name}", [
            ("valid", I64), ("kc", I64), ("src", self.ptr), ("s_w", I64), ("s_p", I64), ("dst", self.ptr)])
        valid, kc, src, s_w, s_p, dst = fn.args
        src.attributes.add("noalias")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        nchunks = -(-width // lanes)
        assert width <= lanes or width % lanes == 0, "a panel is narrower than a vector or whole vectors"

        copy_block = b.append_basic_block("copy")
        not_copy = b.append_basic_block("not_copy")
        scalar_block = b.append_basic_block("scalar")
        b.cbranch(b.icmp_signed("==", s_w, _const(1)), copy_block, not_copy)
        b.position_at_end(not_copy)
        if transpose:
            transpose_block = b.append_basic_block("transpose")
            b.cbranch(b.icmp_signed("==", s_p, _const(1)), transpose_block, scalar_block)
        else:
            b.branch(scalar_block)

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

        if transpose:
            # 2. The k side is contiguous: transpose lanes x lanes blocks in registers.
            b.position_at_end(transpose_block)
            full_k = self.transpose_pack(b, valid, kc, src, s_w, dst, width)
            self.scalar_pack(b, valid, full_k, kc, src, s_w, s_p, dst, width)
            b.ret_void()

        # 3. Neither side is contiguous: element by element.
        b.position_at_end(scalar_block)
        self.scalar_pack(b, valid, _const(0), kc, src, s_w, s_p, dst, width)
        b.ret_void()
        return fn

    def define_row_packer(self, name: str) -> ir.Function:
        """``pack_rows(valid, kc, src, s_w, dst)``: dst[w*kc + p] = src[w*s_w + p] for w < valid,
        p < kc -- MR rows of A whose k steps are contiguous, copied into one contiguous
        panel (no transposing: the "rows" kernels read it with a_rs = kc)."""
        lanes = self.bl.lanes
        fn = self.new_function(f"{self.prefix}.{name}", [
            ("valid", I64), ("kc", I64), ("src", self.ptr), ("s_w", I64), ("dst", self.ptr)])
        valid, kc, src, s_w, dst = fn.args
        src.attributes.add("noalias")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        with _loop(b, _const(0), valid, 1, "w") as w:
            row = b.gep(src, [b.mul(w, s_w)])
            out = b.gep(dst, [b.mul(w, kc)])
            with _loop(b, _const(0), kc, lanes, "p") as p0:
                mask = self.lane_mask(b, b.sub(kc, p0))
                self.mstore(b, self.mload(b, b.gep(row, [p0]), mask), b.gep(out, [p0]), mask)
        b.ret_void()
        return fn

    def transpose_pack(self, b: ir.IRBuilder, valid: ir.Value, kc: ir.Value, src: ir.Value, s_w: ir.Value,
                       dst: ir.Value, width: int) -> ir.Value:
        """The packer's loop for a contiguous k side, over whole blocks of ``lanes`` k steps:
        a chunk of ``lanes`` consecutive w is loaded as rows (rows past ``valid`` are zero),
        transposed and stored k step by k step. Returns where the whole blocks end."""
        bl = self.bl
        lanes = bl.lanes
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
                cols = self.transpose(b, rows + [ir.Constant(self.vec, ir.Undefined)] * (lanes - store_lanes))
                for q in range(lanes):
                    out = self.at(b, dst, b.add(b.mul(b.add(p0, _const(q)), _const(width)), w0))
                    if store_lanes == lanes:
                        self.store_vec(b, cols[q], out, bl.itemsize)
                    else:
                        self.mstore(b, cols[q], out, self.const_mask(store_lanes))
        return full_k

    def scalar_pack(self, b: ir.IRBuilder, valid: ir.Value, p_start: ir.Value, p_stop: ir.Value,
                    src: ir.Value, s_w: ir.Value, s_p: ir.Value, dst: ir.Value, width: int) -> None:
        """The packer's element loop over k steps ``p_start <= p < p_stop``."""
        with _loop(b, p_start, p_stop, 1, "sp") as p:
            row = b.gep(src, [b.mul(p, s_p)])
            out = self.at(b, dst, b.mul(p, _const(width)))
            with _loop(b, _const(0), valid, 1, "sw") as w:
                b.store(b.load(b.gep(row, [b.mul(w, s_w)])), b.gep(out, [w]))
            with _loop(b, valid, _const(width), 1, "sz") as w:
                b.store(ir.Constant(self.t, 0.0), b.gep(out, [w]))

    # ---- the driver

    def define(self, name: str, with_kernels: bool) -> ir.Function:
        """The exported driver: the loop nest of the module docstring around the packers it
        defines first, calling the micro-kernels through its table (see ``define_gemm``)."""
        bl = self.bl
        table_type = ir.ArrayType(I8.as_pointer(), bl.nv)
        table = ir.GlobalVariable(self.module, table_type, table_name(bl.dtype))
        table.align = 8
        if with_kernels:
            kernels = [self.define_microkernel(nv) for nv in range(1, bl.nv + 1)]
            table.initializer = ir.Constant(table_type, [k.bitcast(I8.as_pointer()) for k in kernels])
            table.global_constant = True
            table.linkage = "internal"
        else:  # filled by the library as it loads the pieces (a slot no program needs stays null)
            table.initializer = ir.Constant(table_type, None)
        self.table = table
        pack_a_rows = self.define_row_packer("pack_a_rows")
        pack_a_kmajor = self.define_packer(bl.mr, "pack_a_kmajor", transpose=False)
        pack_b = self.define_packer(bl.nr, "pack_b")

        fn = self.new_function(name, list(zip(PARAMETERS, function_type(self.bl.dtype).args)), internal=False)
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

        # How the kernels read A. If A's k steps are contiguous (A as stored, row-major), by
        # rows: in place when there is a single B panel (n <= NR, each A tile is used once),
        # else from row panels packed by plain copies. Otherwise (A transposed, or other
        # strides) from k-major panels, which a transposed A packs by plain copies too.
        a_rows = b.icmp_signed("==", a_cs, _const(1))
        direct_a = b.and_(a_rows, b.icmp_signed("<=", n, _const(bl.nr)))
        # K and M in equal blocks of at most KC and MC (rounded up to the unroll and to MR), so
        # that no block is a sliver; with no A block to keep in cache, k blocks can be longer.
        assert bl.kc_direct * bl.nr <= bl.kc * _round_up(bl.nc, bl.nr), "the B panel fits the workspace"
        kcb = b.select(direct_a, _balanced_block(b, k, bl.kc_direct, bl.unroll),
                       _balanced_block(b, k, bl.kc, bl.unroll))
        mcb = _balanced_block(b, m, bl.mc, bl.mr)
        tile_ks = b.select(a_rows, _const(1), _const(bl.mr))  # k steps of a row panel or of a k-major one

        with _loop(b, _const(0), n, bl.nc, "jc") as jc:
            nc = _min(b, _const(bl.nc), b.sub(n, jc))
            with _loop(b, _const(0), k, kcb, "pc") as pc:
                kc = _min(b, kcb, b.sub(k, pc))
                beta = b.select(b.icmp_signed(">", pc, _const(0)), _const(1, I32), accumulate)
                with _loop(b, _const(0), m, mcb, "ic") as ic:
                    mc = _min(b, mcb, b.sub(m, ic))
                    a_block = b.gep(a, [b.add(b.mul(ic, a_rs), b.mul(pc, a_cs))])
                    with _if(b, b.not_(direct_a), "packa"):
                        with _loop(b, _const(0), mc, bl.mr, "pa") as ir_:
                            rows = _min(b, _const(bl.mr), b.sub(mc, ir_))
                            src = b.gep(a_block, [b.mul(ir_, a_rs)])
                            dst = b.gep(apack, [b.mul(ir_, kc)])
                            with _if_else(b, a_rows, "packa.rows") as otherwise:
                                b.call(pack_a_rows, [rows, kc, src, a_rs, dst])
                                otherwise()
                                b.call(pack_a_kmajor, [rows, kc, src, a_rs, a_cs, dst])
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
                        pf_plan = self.prefetch_plan(b, ic, jr, nc, kc, k, bmat, b_rs, b_cs, pc, jc, bpanel)
                        with _loop(b, _const(0), mc, bl.mr, "ir") as ir_:
                            mr = _min(b, _const(bl.mr), b.sub(mc, ir_))
                            pf, pf_step = pf_plan(b, b.sdiv(ir_, _const(bl.mr)))
                            tile_a = b.select(direct_a, b.gep(a_block, [b.mul(ir_, a_rs)]),
                                              b.gep(apack, [b.mul(ir_, kc)]))
                            # A's rows: as stored, a row panel's (kc apart) or a k-major panel's.
                            tile_rs = b.select(a_rows, b.select(direct_a, a_rs, kc), _const(1))
                            args = [kc, tile_a, tile_rs, tile_ks, bpanel,
                                    b.gep(c_col, [b.mul(b.add(ic, ir_), c_rs)]), c_rs, mr, beta, last_mask,
                                    pf, pf_step]
                            self.dispatch(b, nvec, args)
        b.ret_void()
        return fn

    def prefetch_plan(self, b: ir.IRBuilder, ic: ir.Value, jr: ir.Value, nc: ir.Value, kc: ir.Value,
                      k: ir.Value, bmat: ir.Value, b_rs: ir.Value, b_cs: ir.Value, pc: ir.Value,
                      jc: ir.Value, bpanel: ir.Value):
        """Where the micro-kernels of this B panel prefetch: the source of the next B panel,
        which is packed right after them (only while B is being packed, ``ic == 0``): the
        next panel of this k block, or after the last one the first panel of the next k
        block.

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
        last_panel = b.icmp_signed(">=", b.add(jr, _const(bl.nr)), nc)
        next_row = b.select(last_panel, b.add(pc, kc), pc)
        next_col = b.select(last_panel, jc, b.add(b.add(jc, jr), _const(bl.nr)))
        next_src = b.bitcast(b.gep(bmat, [b.add(b.mul(next_row, b_rs), b.mul(next_col, b_cs))]), I8.as_pointer())
        active = b.and_(b.icmp_signed("==", ic, _const(0)), b.icmp_signed("<", next_row, k))
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

    def dispatch(self, b: ir.IRBuilder, nvec: ir.Value, args: list[ir.Value]) -> None:
        """Call the kernel for ``nvec`` vectors per row: entry ``nvec - 1`` of the table, an
        indirect call (once per tile of at least kc x MR x NR multiply-adds, so its cost does
        not show)."""
        slot = b.sub(nvec, _const(1))
        kernel = b.load(b.gep(self.table, [_const(0), slot]), align=8)
        kernel_type = ir.FunctionType(VOID, [a.type for a in args])
        b.call(b.bitcast(kernel, kernel_type.as_pointer()), args)
