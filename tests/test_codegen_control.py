"""Native code for structured control flow (``cond``, ``while``, ``scan``) against
the reference interpreter, and NumPy where natural.

Every program is run twice, ``tg.jit(f)`` (llvm) and ``tg.jit(f,
backend="interpret")``, and the results compared leaf by leaf: integers and
bools exactly, floats to 1e-5 (float32) or 1e-12 (float64) relative. Then the
properties of the lowering itself: loops stay loops (the LLVM IR of a scan of
1000 steps is the size of a scan of 10 steps, and 100,000 steps run in a few
milliseconds), bodies with and without fusion, debug_nans inside a loop body,
the disk cache's key, and no leak over repeated calls.
"""

from __future__ import annotations

import inspect
import os
import re
import time

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from codegen.runtime import Executable, source_key
from ir import evaluate
from tracegrad import lax, tree

F32, F64, I32 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32)
RTOL = {F32: 1e-5, F64: 1e-12}


def assert_same(got, want, rtol: float | None = None) -> None:
    got_leaves, got_tree = tree.flatten(got)
    want_leaves, want_tree = tree.flatten(want)
    assert got_tree == want_tree
    for g, w in zip(got_leaves, want_leaves):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.dtype, g.shape) == (w.dtype, w.shape)
        if w.dtype.kind == "f":
            tol = rtol or RTOL[w.dtype]
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol * (np.abs(w).max(initial=0) + 1e-30))
        else:
            np.testing.assert_array_equal(g, w)


def check(fn, *args, rtol: float | None = None):
    """Compiled against interpreted; returns the compiled result."""
    got = tg.jit(fn)(*args)
    assert_same(got, tg.jit(fn, backend="interpret")(*args), rtol)
    return got


def rand(*shape, dtype=F32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------------ cond
def test_cond_takes_each_branch_and_closes_over_outer_values():
    def f(p, x, w):
        scale = tnp.sum(w)  # closed over by one branch only
        return lax.cond(p > 0, lambda a: (a * scale, tnp.sum(a)), lambda a: (a - w, a[0] * 2.0), x)

    x, w = rand(4), rand(4, seed=1)
    for p in (1.0, -1.0):
        got = check(f, np.float32(p), x, w)
        np.testing.assert_allclose(got[0], x * w.sum() if p > 0 else x - w, rtol=1e-6)


def test_switch_clamps_the_index():
    branches = [lambda x: x + 1.0, lambda x: x * 10.0, lambda x: -x]
    f = lambda i, x: lax.switch(i, branches, x)
    x = rand(3, 2)
    for i, want in ((-7, x + 1.0), (0, x + 1.0), (1, x * 10.0), (2, -x), (99, -x)):
        np.testing.assert_allclose(check(f, np.int32(i), x), want, rtol=1e-6)


def test_cond_branches_may_return_operands_literals_and_repeats():
    """Outputs that are no kernel's: an operand passed through, a Python scalar,
    one value twice, and an integer and a boolean output."""
    def f(p, x, n):
        def yes(x, n):
            return x, 1.5, x, n, n > 2

        def no(x, n):
            y = x * 3.0
            return y, tnp.sum(x), y, n + 1, n < 0

        return lax.cond(p, yes, no, x, n)

    for p in (True, False):
        check(f, np.bool_(p), rand(2, 3), np.int32(4))


# ------------------------------------------------------------------ while_loop
def test_while_loop_with_zero_and_many_iterations_and_int_carries():
    def f(x, n):
        return lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 1.5 + 1.0), (np.int32(0), x))

    x = rand(5)
    for n in (0, 1, 7):
        i, y = check(f, x, np.int32(n))
        assert i == n
        want = x.copy()
        for _ in range(n):
            want = want * np.float32(1.5) + np.float32(1.0)
        np.testing.assert_allclose(y, want, rtol=1e-6)


def test_nested_while_loops_with_a_bool_carry():
    def f(x):
        def outer(c):
            i, total, _ = c
            _, inner = lax.while_loop(lambda d: d[0] < i, lambda d: (d[0] + 1, d[1] + x), (np.int32(0), total))
            return i + 1, inner, tnp.sum(inner) > 100.0

        return lax.while_loop(lambda c: (c[0] < 6) & ~c[2], outer, (np.int32(0), tnp.zeros_like(x), False))

    check(f, np.abs(rand(3)) + 1.0)


def test_fori_loop_with_static_and_traced_bounds():
    def body(i, v):
        return v * 0.5 + tnp.astype(i, F64)

    x = rand(4, dtype=F64)
    static = check(lambda x: lax.fori_loop(2, 9, body, x), x)
    traced = check(lambda lo, hi, x: lax.fori_loop(lo, hi, body, x), np.int32(2), np.int32(9), x)
    np.testing.assert_allclose(static, traced, rtol=1e-14)
    np.testing.assert_array_equal(check(lambda lo, hi, x: lax.fori_loop(lo, hi, body, x),
                                        np.int32(5), np.int32(3), x), x)


# ------------------------------------------------------------------------ scan
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_scan_with_several_carries_and_ys(dtype, reverse):
    def f(h, c, xs, w):
        def step(carry, x):
            h, c = carry
            h2 = tnp.tanh(h @ w + x)
            return (h2, c + tnp.sum(h2)), (h2 * 2.0, tnp.sum(x, axis=1))

        return lax.scan(step, (h, c), xs, reverse=reverse)

    check(f, rand(3, 4, dtype=dtype), dtype.type(0), rand(6, 3, 4, dtype=dtype, seed=1),
          rand(4, 4, dtype=dtype, seed=2))


def test_scan_over_pytrees_and_with_xs_none():
    def f(state, xs):
        def step(s, x):
            total = s["total"] + x["a"] * x["b"][0]
            return {"total": total, "count": s["count"] + 1}, (total, {"twice": x["b"] * 2.0})

        return lax.scan(step, state, xs)

    state = {"total": np.zeros(2, F32), "count": np.int32(0)}
    check(f, state, {"a": rand(5, 2), "b": rand(5, 3, seed=1)})
    counter = lambda x: lax.scan(lambda c, _: (c + x, c), x, None, length=4)
    got = check(counter, rand(2))
    assert got[1].shape == (4, 2)


def test_scan_of_length_zero_and_size_zero_and_size_one_dims():
    step = lambda c, x: (c + tnp.sum(x), x * 2.0)
    for xs in (np.zeros((0, 3), F32), rand(4, 0, 2), rand(4, 1, 1), rand(1, 3)):
        _, ys = check(lambda xs: lax.scan(step, np.float32(1.0), xs), xs)
        assert ys.shape == xs.shape
    empty_carry = lambda c, xs: lax.scan(lambda c, x: (c * 2.0, tnp.sum(x)), c, xs)
    check(empty_carry, np.zeros((0, 5), F32), rand(3, 2))


def test_scan_reads_non_contiguous_inputs():
    base = rand(8, 6, 4)
    xs, w = base[::-2], rand(4, 4).T  # reversed and strided; transposed
    f = lambda h, xs, w: lax.scan(lambda h, x: (tnp.tanh(h @ w + x), h), h, xs)
    check(f, rand(6, 4)[::-1], xs, w)


def test_scan_carries_passed_through_swapped_and_taken_from_constants():
    def step(c, x):
        a, b, keep, _ = c  # the last carry is replaced by a closed-over value
        return (b, a + x, keep, w_outer), a

    w_outer = None

    def f(a, b, keep, k, xs, w):
        nonlocal w_outer
        w_outer = w
        return lax.scan(step, (a, b, keep, k), xs)

    check(f, rand(3), rand(3, seed=1), rand(2), np.zeros(3, F32), rand(5, 3, seed=2), rand(3, seed=3))


def test_scan_with_a_big_body_kernel_split_across_threads():
    big = rand(1 << 21)
    f = lambda x, xs: lax.scan(lambda c, s: (c * s + 1.0, tnp.sum(c)), x, xs)
    threads = tg.config.threads
    try:
        tg.config.threads = 2
        check(f, big, np.array([0.5, -1.0, 2.0], F32), rtol=1e-4)
    finally:
        tg.config.threads = threads


# ---------------------------------------------------------------------- nested
def test_cond_inside_scan():
    def f(h, xs):
        def step(h, x):
            h = lax.cond(tnp.sum(x) > 0, lambda h: h * x, lambda h: h - x, h)
            return h, tnp.sum(h)

        return lax.scan(step, h, xs)

    check(f, rand(3), rand(7, 3, seed=1))


def test_scan_inside_scan():
    def f(h, xss):
        def outer(h, xs):
            h, ys = lax.scan(lambda g, x: (g * 0.9 + x, g), h, xs, reverse=True)
            return h, ys.sum(axis=0)

        return lax.scan(outer, h, xss)

    check(f, rand(2), rand(4, 5, 2, seed=1))


def test_while_inside_cond_inside_fori_loop():
    def f(x, n):
        def body(i, v):
            def grow(v):
                return lax.while_loop(lambda c: tnp.sum(c[1]) < n, lambda c: (c[0] + 1, c[1] * 2.0),
                                      (np.int32(0), v))[1]

            return lax.cond(i % 2 == 0, grow, lambda v: v - 1.0, v)

        return lax.fori_loop(0, 5, body, x)

    check(f, np.abs(rand(3)) + 0.5, np.float32(40.0))


# ------------------------------------------------------------------- gradients
def rnn_loss(w, u, b, h, xs):
    def step(h, x):
        h = tnp.tanh(h @ w + x @ u + b)
        return h, h

    h, hs = lax.scan(step, h, xs)
    return tnp.sum(h) + tnp.mean(hs * hs)


def test_gradients_of_a_scan_compile():
    args = [rand(8, 8, seed=0) * 0.3, rand(5, 8, seed=1) * 0.3, rand(8, seed=2), rand(4, 8, seed=3),
            rand(6, 4, 5, seed=4)]
    check(tg.value_and_grad(rnn_loss, argnums=(0, 1, 2, 3)), *args, rtol=1e-4)
    check(tg.grad(tg.grad(lambda s: rnn_loss(args[0] * s, *args[1:]))), np.float32(1.0), rtol=1e-3)


def test_gradients_of_a_checkpointed_scan_body_and_of_a_cond_compile():
    def f(w, xs):
        body = tg.checkpoint(lambda h, x: (tnp.sin(h * w + x), tnp.sum(h)))
        h, ys = lax.scan(body, tnp.zeros(3, F64), xs)
        return tnp.sum(h) + tnp.sum(ys * ys)

    check(tg.grad(f), rand(3, dtype=F64), rand(5, 3, dtype=F64, seed=1))
    g = lambda x, p: lax.cond(p, lambda x: tnp.sum(tnp.sin(x)), lambda x: tnp.sum(x * x), x)
    for p in (True, False):
        check(tg.grad(g), rand(4), np.bool_(p))


def test_fused_and_unfused_bodies_agree():
    args = [rand(8, 8) * 0.3, rand(5, 8, seed=1), rand(8, seed=2), rand(4, 8, seed=3), rand(6, 4, 5, seed=4)]
    fn = tg.value_and_grad(rnn_loss, argnums=(0, 1, 2))
    passes = tg.jit(fn).lower(*args).compile().passes
    assert any(e.prim.name == "fused" for e in passes.fused.walk_eqns())
    want = evaluate(passes.traced, args)
    for graph in (passes.optimized, passes.fused):
        outs, _ = Executable(graph, use_disk_cache=False)(args)
        assert_same(list(outs), want, rtol=1e-4)


# ------------------------------------------------------ loops stay native loops
def _scan_program(length: int):
    def f(c, xs):
        return lax.scan(lambda c, x: (c * 0.5 + tnp.sin(x), tnp.sum(c)), c, xs)

    return tg.jit(f).lower(rand(16), rand(length, 16))


def test_a_long_scan_is_a_loop_not_unrolled_code():
    short, long = _scan_program(10), _scan_program(1000)
    sizes = [len(p.as_text("llvm")) for p in (short, long)]
    assert sizes[1] < 1.1 * sizes[0] + 200, sizes
    assert "tg_main" in long.as_text("asm")
    check(lambda c, xs: lax.scan(lambda c, x: (c * 0.5 + tnp.sin(x), tnp.sum(c)), c, xs), rand(16), rand(1000, 16))


def test_a_hundred_thousand_steps_run_without_python_per_step():
    n = 100_000
    f = tg.jit(lambda x: lax.fori_loop(0, n, lambda i, c: c + tnp.astype(i, F64), x))
    assert f(np.float64(0.0)) == n * (n - 1) / 2  # compiled, and the first call
    start = time.perf_counter()
    f(np.float64(0.0))
    assert time.perf_counter() - start < 0.05  # the interpreter takes seconds


# ------------------------------------------------------------------ debug_nans
def logs(xs):
    def step(c, x):
        y = tnp.log(x)
        return c + y, y

    return lax.scan(step, np.float32(0.0), xs)


LOG_LINE = inspect.getsourcelines(logs)[1] + 2


def test_debug_nans_inside_a_loop_body_names_the_equation_and_line():
    xs = np.array([1.0, 2.0, -1.0, 3.0], F32)
    messages = {}
    for backend in ("interpret", "llvm"):
        with tg.debug_nans(), pytest.raises(FloatingPointError) as error:
            tg.jit(logs, backend=backend)(xs)
        messages[backend] = str(error.value)
    assert "'log' produced nan" in messages["llvm"] and f"{__file__}:{LOG_LINE}" in messages["llvm"]
    # The same message but for the variable's name: native code names it as the whole program's dump
    # does, the interpreter as the body's own.
    unnamed = {k: re.sub(r"\b[a-z]+\b(?=: f32)|(?<== log )[a-z]+\b", "_", m) for k, m in messages.items()}
    assert unnamed["llvm"] == unnamed["interpret"]
    with tg.debug_nans():
        check(logs, np.abs(xs) + 1.0)


# ----------------------------------------------------------- cache and calls
def test_programs_that_differ_only_inside_a_body_are_not_confused():
    f1 = lambda x: lax.scan(lambda c, x: (c + x, c), x[0], x)
    f2 = lambda x: lax.scan(lambda c, x: (c * x, c), x[0], x)
    x = rand(3, 2)
    assert source_key(tg.make_ir(f1)(x)) != source_key(tg.make_ir(f2)(x))
    a, b = tg.jit(f1)(x), tg.jit(f2)(x)
    assert not np.allclose(a[0], b[0])
    check(f2, x)


TABLE = np.linspace(-1.0, 1.0, 6).reshape(2, 3)


def body_constants(x, xs):
    """Constants inside bodies: a closed-over array read and returned as a y, at two depths."""
    def step(c, x):
        inner = lax.cond(tnp.sum(x) > 0, lambda: TABLE * 2.0, lambda: TABLE - 1.0)
        return c * TABLE + x + inner, TABLE

    return lax.scan(step, x, xs)


def test_constants_inside_bodies_survive_the_disk_cache(monkeypatch):
    from codegen import runtime

    x, xs = rand(2, 3, dtype=F64), rand(4, 2, 3, dtype=F64, seed=1)
    check(body_constants, x, xs)
    monkeypatch.setattr(runtime, "_LOADED", runtime._Loaded())  # as in a new process
    jf = tg.jit(body_constants)
    assert_same(jf(x, xs), tg.jit(body_constants, backend="interpret")(x, xs))
    assert jf.lower(x, xs).compile()._native.from_disk


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_repeated_calls_do_not_leak():
    f = tg.jit(lambda h, xs: lax.scan(lambda h, x: (tnp.tanh(h + x), h * 2.0), h, xs))
    h, xs = rand(8, 8), rand(20, 8, 8)
    for _ in range(300):
        f(h, xs)
    before = _rss_bytes()
    for _ in range(3000):
        f(h, xs)
    grown = _rss_bytes() - before
    assert grown < 4 * 2 ** 20, f"the resident set grew by {grown / 2 ** 20:.1f} MB over 3,000 calls"
