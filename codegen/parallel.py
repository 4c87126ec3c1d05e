"""Splitting a loop across threads, in the generated code itself.

``parallel_for(module)`` defines ``tg_parallel_for(worker, ctx, n, threads)``:
it cuts ``range(n)`` into one contiguous chunk per thread, starts a POSIX
thread per chunk but the first, runs the first chunk on the calling thread,
and joins. ``worker(ctx, lo, hi, chunk)`` is an outlined loop stage (see kernel.py);
``ctx`` holds the kernel's buffer pointers, and a reduction over the split
axis keeps its chunk's partial result in slot ``chunk``. A thread that cannot be started
runs its chunk on the calling thread instead, so the result never depends on
how many threads there were, only the speed.

Threads are started per call rather than kept in a pool: starting one costs
tens of microseconds, so only stages with enough work are split (the
threshold is in kernel.py) and the runtime stays free of shared state.
"""

from __future__ import annotations

from llvmlite import ir

from .llvmtypes import I8, I32, I64, VOID, counted_loop, int64

MAX_THREADS = 64
WORKER = ir.FunctionType(VOID, [I8.as_pointer().as_pointer(), I64, I64, I64])  # (ctx, lo, hi, chunk number)
_TASK = ir.LiteralStructType([WORKER.as_pointer(), I8.as_pointer().as_pointer(), I64, I64, I64])


def _declare(module: ir.Module, name: str, ftype: ir.FunctionType) -> ir.Function:
    return module.globals.get(name) or ir.Function(module, ftype, name=name)


def _trampoline(module: ir.Module) -> ir.Function:
    """The thread start routine: run one task {worker, ctx, lo, hi, chunk number}."""
    fn = module.globals.get("tg_trampoline")
    if fn is not None:
        return fn
    fn = ir.Function(module, ir.FunctionType(I8.as_pointer(), [I8.as_pointer()]), name="tg_trampoline")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    task = b.bitcast(fn.args[0], _TASK.as_pointer())
    fields = [b.load(b.gep(task, [ir.Constant(I32, 0), ir.Constant(I32, i)])) for i in range(5)]
    b.call(fields[0], fields[1:])
    b.ret(ir.Constant(I8.as_pointer(), None))
    return fn


def parallel_for(module: ir.Module) -> ir.Function:
    fn = module.globals.get("tg_parallel_for")
    if fn is not None:
        return fn
    fn = ir.Function(module, ir.FunctionType(VOID, [WORKER.as_pointer(), I8.as_pointer().as_pointer(), I64, I64]),
                     name="tg_parallel_for")
    fn.linkage = "internal"
    fn.attributes.add("noinline")  # optimised once per module, not once in every kernel that splits a stage
    worker, ctx, n, threads = fn.args
    pthread_create = _declare(module, "pthread_create", ir.FunctionType(
        I32, [I64.as_pointer(), I8.as_pointer(), ir.FunctionType(I8.as_pointer(), [I8.as_pointer()]).as_pointer(),
              I8.as_pointer()]))
    pthread_join = _declare(module, "pthread_join", ir.FunctionType(I32, [I64, I8.as_pointer().as_pointer()]))
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    tasks = b.alloca(ir.ArrayType(_TASK, MAX_THREADS), name="tasks")
    tids = b.alloca(ir.ArrayType(I64, MAX_THREADS), name="tids")
    started = b.alloca(ir.ArrayType(I8, MAX_THREADS), name="started")
    t = b.select(b.icmp_signed("<", threads, n), threads, n)
    t = b.select(b.icmp_signed("<", t, int64(MAX_THREADS)), t, int64(MAX_THREADS))
    t = b.select(b.icmp_signed("<", t, int64(1)), int64(1), t)
    chunk = b.sdiv(b.add(n, b.sub(t, int64(1))), t)
    chunks = b.sdiv(b.add(n, b.sub(chunk, int64(1))), b.select(b.icmp_signed(">", chunk, int64(0)), chunk, int64(1)))
    zero = ir.Constant(I32, 0)
    with counted_loop(b, chunks, "t", start=int64(1)) as j:
        lo = b.mul(j, chunk)
        hi = b.add(lo, chunk)
        hi = b.select(b.icmp_signed("<", hi, n), hi, n)
        task = b.gep(tasks, [zero, j])
        for i, value in enumerate((worker, ctx, lo, hi, j)):
            b.store(value, b.gep(task, [zero, ir.Constant(I32, i)]))
        rc = b.call(pthread_create, [b.gep(tids, [zero, j]), ir.Constant(I8.as_pointer(), None), _trampoline(module),
                                     b.bitcast(task, I8.as_pointer())])
        ok = b.icmp_signed("==", rc, zero)
        b.store(b.zext(ok, I8), b.gep(started, [zero, j]))
        with b.if_then(b.not_(ok)):  # no thread to be had: do the chunk here
            b.call(worker, [ctx, lo, hi, j])
    first = b.select(b.icmp_signed("<", chunk, n), chunk, n)
    b.call(worker, [ctx, int64(0), first, int64(0)])
    with counted_loop(b, chunks, "join", start=int64(1)) as j:
        with b.if_then(b.icmp_unsigned("!=", b.load(b.gep(started, [zero, j])), ir.Constant(I8, 0))):
            b.call(pthread_join, [b.load(b.gep(tids, [zero, j])), ir.Constant(I8.as_pointer().as_pointer(), None)])
    b.ret_void()
    return fn
