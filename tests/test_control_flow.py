"""Structured control flow -- lax.cond, switch, while_loop, fori_loop and
scan -- at the IR and front-end level: semantics against Python-unrolled
NumPy equivalents (outside jit on NumPy arrays and under
``jit(backend="interpret")``), derivatives (finite differences and the
unrolled program's gradients), closures, the eager tape, weak-typed carries,
errors, the IR dump and verifier, and the passes that see into bodies (DCE,
CSE, folding, inlining a known branch, loop merging, invariant hoisting,
fusion). Native code for loops is tested in test_codegen_control.py; each
primitive's derivative rules in test_autodiff_rules.py's CASES table."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import ir
import tracegrad as tg
import tracegrad.numpy as tnp
from ir import REGISTRY, GraphBuilder, Literal, ShapedType
from ir.passes import jvp_graph, vjp_graph
from ir.passes.cleanup import cse, dce
from ir.passes.loops import dedupe_scan_outputs, hoist_invariants, inline_known_branch, merge_loops
from ir.passes.pipeline import optimize
from ir.passes.rewrite import NamedRule, rewrite
from ir.passes.simplify import ALGEBRA_RULES, FOLD_RULES
from tnp_helpers import make
from tracegrad import lax

F32, F64, I32 = np.float32, np.float64, np.int32
Pair = collections.namedtuple("Pair", "count value")


def N(*shape, seed=0, dtype=F64):
    """Normal data, mixed signs."""
    return make(shape, dtype, kind="any", seed=("CF", seed)) / 2


def interpret(f, **kwargs):
    return tg.jit(f, backend="interpret", **kwargs)


def assert_same(actual, expected, rtol=1e-12, atol=1e-12, where="result"):
    """The same pytree (containers' types included), dtypes and values."""
    if expected is None:
        assert actual is None, f"{where}: expected None, got {actual!r}"
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), f"{where}: {actual!r}"
        for k in expected:
            assert_same(actual[k], expected[k], rtol, atol, f"{where}[{k!r}]")
        return
    if isinstance(expected, (tuple, list)):
        assert type(actual) is type(expected) and len(actual) == len(expected), \
            f"{where}: {type(actual).__name__} of {len(actual)}, expected {type(expected).__name__}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, rtol, atol, f"{where}[{i}]")
        return
    expected, actual = np.asarray(expected), np.asarray(actual)
    assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype}, expected {expected.dtype}"
    assert actual.shape == expected.shape, f"{where}: shape {actual.shape}, expected {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=where)


def check_both(f, expected, *args, rtol=1e-12, atol=1e-12):
    """``f`` outside jit on NumPy arrays and under the interpreting jit gives ``expected``."""
    assert_same(f(*args), expected, rtol, atol, "outside jit")
    assert_same(interpret(f)(*args), expected, rtol, atol, "under jit")


def top_level(graph, name):
    return [e for e in graph.eqns if e.prim.name == name]


def prims(graph):
    return [e.prim.name for e in graph.walk_eqns()]


def the(graph, name):
    (eqn,) = top_level(graph, name)
    return eqn


def evaluates_alike(graph, other, args, rtol=1e-12):
    for got, want in zip(ir.evaluate(other, list(args)), ir.evaluate(graph, list(args)), strict=True):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12)


# ====================================================================== cond
def test_cond_runs_true_fun_when_the_predicate_holds_and_false_fun_otherwise():
    x, y = N(3), N(3, seed=1)
    f = lambda p, x, y: lax.cond(p, lambda a, b: (tnp.sin(a) * b, a), lambda a, b: (a - b, b * 2.0), x, y)
    check_both(f, (np.sin(x) * y, x), True, x, y)
    check_both(f, (x - y, y * 2.0), False, x, y)
    traced_pred = lambda x, y: f(tnp.sum(x) > tnp.sum(y), x, y)
    expected = (np.sin(x) * y, x) if x.sum() > y.sum() else (x - y, y * 2.0)
    check_both(traced_pred, expected, x, y)
    check_both(traced_pred, (np.sin(y) * x, y) if y.sum() > x.sum() else (y - x, x * 2.0), y, x)


@pytest.mark.parametrize("pred,chosen", [(True, "true"), (False, "false"), (np.bool_(True), "true"),
                                         (np.bool_(False), "false"), (np.array(True), "true")],
                         ids=["py_true", "py_false", "np_true", "np_false", "0d_array"])
def test_cond_accepts_python_and_numpy_bool_predicates(pred, chosen):
    x = N(2)
    expected = x + 1.0 if chosen == "true" else x - 1.0
    assert_same(lax.cond(pred, lambda a: a + 1.0, lambda a: a - 1.0, x), expected)
    assert_same(interpret(lambda a: lax.cond(pred, lambda a: a + 1.0, lambda a: a - 1.0, a))(x), expected)
    assert_same(interpret(lambda p, a: lax.cond(p, lambda a: a + 1.0, lambda a: a - 1.0, a))(pred, x), expected)


@pytest.mark.parametrize("pred", [0.0, 2.0, -1.0, np.nan, np.float32(0.5), np.int32(0), np.int32(3), np.int64(-2),
                                  0, 7],
                         ids=repr)
def test_cond_treats_a_nonzero_numeric_predicate_as_true(pred):
    expected = np.float64(10.0 if pred != 0 or np.isnan(pred) else -10.0)
    f = lambda p: lax.cond(p, lambda: 10.0, lambda: -10.0)
    assert_same(f(pred), expected)
    assert_same(interpret(f)(pred), expected)


def test_cond_returns_the_branches_pytree_and_only_runs_the_chosen_branch():
    x = N(2)
    f = lambda p, x: lax.cond(p, lambda a: {"y": tnp.log(a), "n": (a.shape[0], a)},
                              lambda a: {"y": a * 0.0, "n": (2, -a)}, x)
    # the log of a negative number in the branch not taken is never computed: debug_nans stays quiet
    with tg.debug_nans():
        check_both(f, {"y": np.zeros(2), "n": (np.int64(2), np.abs(x))}, False, -np.abs(x))
    check_both(f, {"y": np.log(np.abs(x)), "n": (np.int64(2), np.abs(x))}, True, np.abs(x))


def test_cond_and_scan_whose_bodies_return_nothing_run_under_jit():
    assert interpret(lambda p, x: lax.cond(p, lambda a: None, lambda a: None, x))(True, N(2)) is None
    assert interpret(lambda xs: lax.scan(lambda c, x: (c, None), None, xs))(N(3)) == (None, None)


def test_cond_and_scan_whose_bodies_return_nothing_run_outside_jit():
    assert lax.cond(True, lambda a: None, lambda a: None, N(2)) is None
    assert lax.scan(lambda c, x: (c, None), None, N(3)) == (None, None)


@pytest.mark.parametrize("index", [-5, -1, 0, 1, 2, 3, 100])
def test_switch_clamps_the_index_below_zero_and_above_the_last_branch(index):
    branches = [lambda a: a, lambda a: a * 2.0, lambda a: a * 3.0]
    x = N(2)
    expected = x * (min(max(index, 0), 2) + 1)
    assert_same(lax.switch(index, branches, x), expected)
    assert_same(interpret(lambda i, a: lax.switch(i, branches, a))(np.int32(index), x), expected)
    assert_same(interpret(lambda i, a: lax.switch(i, branches, a))(np.int64(index), x), expected)
    assert_same(interpret(lambda a: lax.switch(index, branches, a))(x), expected)


def test_switch_with_one_branch_and_a_bool_index():
    x = N(2)
    check_both(lambda i, a: lax.switch(i, [tnp.sin], a), np.sin(x), np.int32(4), x)
    check_both(lambda p, a: lax.switch(p, [tnp.sin, tnp.cos], a), np.cos(x), np.bool_(True), x)


# ================================================================ while_loop
def collatz_steps(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def test_while_loop_with_int_carries_matches_a_python_while():
    def steps(n):
        def body(s):
            m, k = s
            return tnp.where(m % 2 == 0, m // 2, 3 * m + 1), k + 1
        return lax.while_loop(lambda s: s[0] != 1, body, (n, np.int32(0)))[1]

    for n in (1, 6, 27):
        check_both(steps, np.int32(collatz_steps(n)), np.int32(n))


def test_while_loop_with_zero_iterations_returns_init_unchanged():
    init = {"n": np.int32(5), "v": (N(3), N(2, 2, seed=1).astype(F32))}
    f = lambda init: lax.while_loop(lambda s: s["n"] < 0, lambda s: {"n": s["n"] + 1,
                                                                      "v": (tnp.exp(s["v"][0]), s["v"][1] * 2)}, init)
    check_both(f, init, init)


def test_while_loop_carries_tuples_dicts_and_namedtuples():
    x = N(2)
    check_both(lambda x: lax.while_loop(lambda s: s.count < 4, lambda s: Pair(s.count + 1, s.value * 2.0),
                                        Pair(np.int32(0), x)), Pair(np.int32(4), x * 16.0), x)
    result = lax.while_loop(lambda s: s.count < 4, lambda s: Pair(s.count + 1, s.value), Pair(0, x))
    assert type(result) is Pair
    check_both(lambda x: lax.while_loop(lambda s: s[0]["i"] < 3,
                                        lambda s: ({"i": s[0]["i"] + 1}, [s[1][0] + 1.0, s[1][1] * s[1][0]]),
                                        ({"i": np.int64(0)}, [x, x])),
               ({"i": np.int64(3)}, [x + 3.0, x * x * (x + 1.0) * (x + 2.0)]), x)


def test_while_loop_cond_and_body_close_over_traced_values():
    x, limit = N(3), np.float64(40.0)

    def f(x, limit):
        return lax.while_loop(lambda s: tnp.sum(s ** 2) < limit, lambda s: s * 1.5 + x, x)

    v = x
    while np.sum(v ** 2) < limit:
        v = v * 1.5 + x
    check_both(f, v, x, limit)


# ================================================================= fori_loop
def test_fori_loop_with_static_bounds_is_a_scan_matching_a_python_for():
    x = N(3)
    f = lambda x: lax.fori_loop(1, 4, lambda i, v: tnp.sin(v) * i + v, x)
    v = x
    for i in range(1, 4):
        v = np.sin(v) * i + v
    check_both(f, v, x)
    graph = tg.make_ir(f)(x)
    assert top_level(graph, "scan") and not top_level(graph, "while")
    check_both(lambda x: lax.fori_loop(np.int64(1), np.int32(4), lambda i, v: tnp.sin(v) * i + v, x), v, x)


def test_fori_loop_with_traced_bounds_is_a_while_loop_matching_a_python_for():
    x = N(3)
    f = lambda x, lo, hi: lax.fori_loop(lo, hi, lambda i, v: v * 2.0 + i, x)
    for lo, hi in ((0, 3), (2, 5), (4, 4)):
        v = x
        for i in range(lo, hi):
            v = v * 2.0 + i
        check_both(f, v, x, np.int32(lo), np.int32(hi))
    assert top_level(tg.make_ir(f)(x, np.int32(0), np.int32(3)), "while")


@pytest.mark.parametrize("bounds", ["static", "traced"])
def test_fori_loop_with_lower_above_upper_runs_no_iterations(bounds):
    x = N(3)
    if bounds == "static":
        f = lambda x: lax.fori_loop(5, 2, lambda i, v: v * 2.0 + i, x)
        check_both(f, x, x)
    else:
        f = lambda x, lo, hi: lax.fori_loop(lo, hi, lambda i, v: v * 2.0 + i, x)
        check_both(f, x, x, np.int32(5), np.int32(2))


def test_fori_loop_index_takes_the_dtype_of_a_traced_bound():
    f = lambda hi: lax.fori_loop(0, hi, lambda i, total: total + i, np.int32(0))
    assert_same(interpret(f)(np.int32(4)), np.int32(6))


# ====================================================================== scan
def python_scan(f, init, xs, reverse=False):
    """The Python loop lax.scan stands for (carry and a single array of xs; ys a tuple)."""
    carry, ys = init, []
    steps = range(len(xs))
    for i in (reversed(steps) if reverse else steps):
        carry, y = f(carry, xs[i])
        ys.append(y)
    if reverse:
        ys = ys[::-1]
    return carry, tuple(np.stack(parts) for parts in zip(*ys))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
def test_scan_with_several_carries_and_ys_matches_a_python_loop(reverse, dtype):
    h, xs = N(3, dtype=dtype), N(4, 3, seed=1, dtype=dtype)
    half = dtype(0.5)

    def step(module):
        def body(c, x):
            a, b = c
            a2 = module.tanh(a * x + b)
            return (a2, b * half + x), (a2 * b, module.sum(x * a))
        return body

    expected = python_scan(step(np), (h, h * 2), xs, reverse)
    rtol = 1e-6 if dtype == F32 else 1e-12
    check_both(lambda h, xs: lax.scan(step(tnp), (h, h * 2), xs, reverse=reverse), expected, h, xs, rtol=rtol,
               atol=rtol)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_scan_without_xs_runs_length_steps(reverse):
    ys = [2.0 ** k for k in range(4)]
    check_both(lambda h: lax.scan(lambda c, _: (c * 2.0, c), h, None, length=4, reverse=reverse),
               (np.float64(16.0), np.array(ys[::-1] if reverse else ys)), np.float64(1.0))


def test_scan_with_ys_none_returns_none_for_the_ys():
    xs = N(4)
    check_both(lambda xs: lax.scan(lambda c, x: (c + x, None), 0.0, xs), (np.float64(xs.sum()), None), xs)
    check_both(lambda xs: lax.scan(lambda c, x: (c + x, (None, {"z": x * 2})), 0.0, xs),
               (np.float64(xs.sum()), (None, {"z": xs * 2})), xs)


def test_scan_over_a_pytree_of_xs_slices_every_leaf():
    a, b = N(3, 2), N(3, seed=1)
    f = lambda a, b: lax.scan(lambda c, x: (c + x["a"] * x["pair"][1], {"o": x["pair"][0] * 2, "s": tnp.sum(x["a"])}),
                              tnp.zeros(2), {"a": a, "pair": (b, b * 3)})
    carry, ys = np.zeros(2), {"o": [], "s": []}
    for i in range(3):
        carry = carry + a[i] * (b[i] * 3)
        ys["o"].append(b[i] * 2)
        ys["s"].append(a[i].sum())
    check_both(f, (carry, {"o": np.array(ys["o"]), "s": np.array(ys["s"])}), a, b)


def test_scan_with_an_empty_carry_is_a_map():
    xs = N(3, 2)
    check_both(lambda xs: lax.scan(lambda c, x: (c, tnp.sin(x)), (), xs), ((), np.sin(xs)), xs)
    check_both(lambda xs: lax.scan(lambda c, x: (c, tnp.sin(x)), None, xs), (None, np.sin(xs)), xs)


def test_scan_of_length_zero_returns_init_and_empty_ys():
    h = N(2)
    f = lambda h, xs: lax.scan(lambda c, x: (tnp.tanh(c * x), (c * x, tnp.sum(c))), h, xs)
    check_both(f, (h, (np.zeros((0, 2)), np.zeros((0,)))), h, np.zeros((0, 2)))
    grads = tg.grad(lambda h, xs: tnp.sum(f(h, xs)[0]), argnums=(0, 1))(h, np.zeros((0, 2)))
    assert_same(grads, (np.ones(2), np.zeros((0, 2))))
    assert_same(tg.jvp(lambda h: f(h, np.zeros((0, 2)))[0], (h,), (np.ones(2),)), (h, np.ones(2)))


def test_scan_handles_size_zero_and_size_one_dimensions():
    f = lambda h, xs: lax.scan(lambda c, x: (c * 2.0 + x, tnp.sum(x) + c), h, xs)
    check_both(f, (np.zeros(0), np.zeros((3, 0))), np.zeros(0), np.zeros((3, 0)))
    h, xs = N(1), N(1, 1, seed=1)
    check_both(f, (h * 2.0 + xs[0], (xs[0].sum() + h)[None]), h, xs)
    grads = tg.grad(lambda h, xs: tnp.sum(f(h, xs)[1]), argnums=(0, 1))(np.zeros(0), np.zeros((3, 0)))
    assert_same(grads, (np.zeros(0), np.zeros((3, 0))))
    tg.check_grads(lambda h, xs: lax.scan(lambda c, x: (tnp.sin(c * x), c), h, xs), (N(1, 1), N(1, 1, 1, seed=1)),
                   order=2)


def test_scan_accepts_a_length_that_agrees_with_xs():
    xs = N(3)
    check_both(lambda xs: lax.scan(lambda c, x: (c + x, c), 0.0, xs, length=3),
               python_scan(lambda c, x: (c + x, (c,)), np.float64(0.0), xs)[0:1] + (np.cumsum(xs) - xs,), xs)


# ============================================================== weak types
def test_python_scalar_initial_carry_takes_the_bodys_float32_dtype():
    """A Python int or float initial carry is weakly typed (as in JAX): when the
    body makes it float32 the loop carries float32, rather than an error."""
    xs = np.arange(1, 5, dtype=F32)
    check_both(lambda xs: lax.scan(lambda c, x: (c + x, c * 2), 0, xs),
               (F32(10.0), np.array([0, 2, 6, 12], F32)), xs)
    check_both(lambda xs: lax.scan(lambda c, x: ((c[0] * x, c[1] + 1), c[0]), (1.0, 0), xs),
               ((F32(24.0), np.int64(4)), np.array([1, 1, 2, 6], F32)), xs)
    check_both(lambda v: lax.fori_loop(0, 3, lambda i, c: c * v, 1.0), F32(27.0), F32(3.0))
    check_both(lambda v: lax.while_loop(lambda c: c < 10, lambda c: c + v, 0), F32(12.0), F32(3.0))


def test_python_scalar_returned_by_a_body_takes_the_carrys_dtype():
    xs = N(3, dtype=F32)
    check_both(lambda xs: lax.scan(lambda c, x: (0.0, x + c), F32(1.0), xs),
               (F32(0.0), xs + np.array([1, 0, 0], F32)), xs)
    check_both(lambda v: lax.fori_loop(0, 2, lambda i, c: 2, v), np.int32(2), np.int32(7))


def test_a_python_int_carry_stays_int_when_the_body_keeps_it_int():
    check_both(lambda: lax.fori_loop(0, 5, lambda i, c: c + i, 0), np.int64(10))
    check_both(lambda: lax.while_loop(lambda c: c < 10, lambda c: c * 2, 1), np.int64(16))


@pytest.mark.parametrize("weak_branch", [
    "true_fun",
    "false_fun",
])
def test_python_scalar_branch_output_takes_the_other_branchs_dtype(weak_branch):
    v = F32(2.5)
    if weak_branch == "true_fun":
        f = lambda p, v: lax.cond(p, lambda: 0.0, lambda: v)
    else:
        f = lambda p, v: lax.cond(p, lambda: v, lambda: 0.0)
    zero_when = weak_branch == "true_fun"
    assert_same(interpret(f)(zero_when, v), F32(0.0))
    assert_same(interpret(f)(not zero_when, v), v)


# ========================================================== differentiation
def rnn_data(batch, hidden, inputs, steps, dtype=F64):
    r = np.random.default_rng(7)
    return [np.asarray(a, dtype) for a in (
        r.normal(size=(hidden, hidden)) / np.sqrt(hidden), r.normal(size=(inputs, hidden)) / np.sqrt(inputs),
        r.normal(size=hidden) * 0.1, r.normal(size=(batch, hidden)) * 0.5, r.normal(size=(steps, batch, inputs)))]


def rnn_loss(W, U, b, h0, xs):
    def step(h, x):
        h = tnp.tanh(h @ W + x @ U + b)
        return h, tnp.mean(h ** 2)

    h, ys = lax.scan(step, h0, xs)
    return tnp.mean(h) + tnp.sum(ys)


def rnn_loss_unrolled(W, U, b, h0, xs):
    h, total = h0, 0.0
    for t in range(xs.shape[0]):
        h = tnp.tanh(h @ W + xs[t] @ U + b)
        total = total + tnp.mean(h ** 2)
    return tnp.mean(h) + total


def test_tanh_rnn_gradients_equal_the_unrolled_versions():
    """Hidden 128, input 64, 50 steps, batch 32: the scan's gradients with respect
    to W, U, b, h0 and xs are the Python-unrolled program's, outside and under jit."""
    args = rnn_data(32, 128, 64, 50)
    argnums = (0, 1, 2, 3, 4)
    expected = tg.value_and_grad(rnn_loss_unrolled, argnums=argnums)(*args)
    for how, got in (("outside jit", tg.value_and_grad(rnn_loss, argnums=argnums)(*args)),
                     ("under jit", interpret(tg.value_and_grad(rnn_loss, argnums=argnums))(*args))):
        assert_same(got, expected, rtol=1e-10, atol=1e-13, where=how)


def test_float32_rnn_gradients_match_the_unrolled_version_to_float32_precision():
    args = rnn_data(4, 8, 5, 6, F32)
    got = tg.grad(rnn_loss, argnums=(0, 1, 2, 3, 4))(*args)
    expected = tg.grad(rnn_loss_unrolled, argnums=(0, 1, 2, 3, 4))(*args)
    assert_same(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("how", ["grad", "vjp", "grad under jit", "traced-bound fori_loop", "nested in cond",
                                 "eager backward"])
def test_reverse_mode_through_while_loop_raises_a_value_error_suggesting_fori_loop_or_scan(how):
    x = N(3)
    loop = lambda x: lax.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, tnp.sin(s[1])), (0, x))[1]
    with pytest.raises(ValueError, match="reverse-mode differentiation of a while_loop") as info:
        if how == "grad":
            tg.grad(lambda x: tnp.sum(loop(x)))(x)
        elif how == "vjp":
            tg.vjp(loop, x)[1](np.ones(3))
        elif how == "grad under jit":
            interpret(tg.grad(lambda x: tnp.sum(loop(x))))(x)
        elif how == "traced-bound fori_loop":
            interpret(tg.grad(lambda x, n: tnp.sum(lax.fori_loop(0, n, lambda i, v: tnp.sin(v), x))))(x, np.int32(3))
        elif how == "nested in cond":
            tg.grad(lambda x: tnp.sum(lax.cond(tnp.sum(x) > 0, loop, lambda a: a, x)))(np.abs(x))
        else:
            t = tg.tensor(x, requires_grad=True)
            loop(t).sum().backward()
    assert "fori_loop" in str(info.value) and "scan" in str(info.value)


def test_forward_mode_through_while_loop_matches_the_unrolled_derivative():
    x, t = N(3), N(3, seed=1)
    loop = lambda x, n: lax.while_loop(lambda s: s[0] < n, lambda s: (s[0] + 1, tnp.sin(s[1]) * x), (0, x))[1]
    v, dv = x, t
    for _ in range(3):
        v, dv = np.sin(v) * x, np.cos(v) * dv * x + np.sin(v) * t
    assert_same(tg.jvp(lambda x: loop(x, 3), (x,), (t,)), (v, dv))
    assert_same(interpret(lambda x, t, n: tg.jvp(lambda x: loop(x, n), (x,), (t,)))(x, t, np.int32(3)), (v, dv))
    tg.check_grads(lambda x: loop(x, 3), (x,), order=2, modes=("fwd",))
    jac = tg.jacfwd(lambda x: loop(x, 3))(x)
    np.testing.assert_allclose(jac @ t, dv, rtol=1e-12)


def test_fori_loop_with_static_bounds_is_reverse_differentiable():
    x, w = N(3), N(3, seed=1)
    f = lambda x, w: tnp.sum(lax.fori_loop(0, 4, lambda i, v: tnp.sin(v) * w + i, x) ** 2)

    def unrolled(x, w):
        for i in range(4):
            x = tnp.sin(x) * w + i
        return tnp.sum(x ** 2)

    expected = tg.grad(unrolled, argnums=(0, 1))(x, w)
    assert_same(tg.grad(f, argnums=(0, 1))(x, w), expected)
    assert_same(interpret(tg.grad(f, argnums=(0, 1)))(x, w), expected)
    tg.check_grads(f, (x, w), order=2)


def test_a_checkpointed_scan_body_gives_the_same_gradients():
    """tg.checkpoint around the body recomputes its residuals in the backward loop: same values."""
    body = lambda c, xi: (tnp.tanh(c * xi) + c, tnp.sum(tnp.sin(c)))
    loss = lambda f: lambda x, xs: tnp.sum(lax.scan(f, x, xs)[1]) + tnp.sum(lax.scan(f, x, xs)[0])
    x, xs = N(2), N(3, 2, seed=1)
    expected = tg.grad(loss(body), argnums=(0, 1))(x, xs)
    assert_same(tg.grad(loss(tg.checkpoint(body)), argnums=(0, 1))(x, xs), expected)
    assert_same(interpret(tg.grad(loss(tg.checkpoint(body)), argnums=(0, 1)))(x, xs), expected)


def test_reverse_mode_stacks_a_scans_residuals_per_step_and_checkpoint_stacks_only_the_carry():
    """By default the forward loop stores, per step, the body values the backward
    loop reads (here the carry entering the step and both tanh outputs); with
    tg.checkpoint around the body it stores only the carry and the backward loop
    recomputes the rest."""
    def loss(checkpointed: bool):
        def f(w, h, xs):
            def step(h, x):
                return tnp.tanh(tnp.tanh(h @ w + x) * 2.0), None

            return tnp.sum(lax.scan(tg.checkpoint(step) if checkpointed else step, h, xs)[0])

        return f

    w, h, xs = N(4, 4), N(3, 4, seed=1), N(6, 3, 4, seed=2)

    def stacked(f):
        graph = optimize(tg.make_ir(tg.grad(f))(w, h, xs)).optimized
        forward = [e for e in graph.eqns if e.prim.name == "scan" and not e.params["reverse"]]
        assert len(forward) == 1  # the original scan and the VJP's forward scan merged
        return [v.type for v in forward[0].outputs[forward[0].params["num_carry"]:]]

    assert len(stacked(loss(False))) == 3
    assert stacked(loss(True)) == [ShapedType((6, 3, 4), np.float64)]
    np.testing.assert_allclose(tg.jit(tg.grad(loss(True)))(w, h, xs), tg.grad(loss(False))(w, h, xs), rtol=1e-12)


# nested control flow, each with its Python-unrolled twin
def cond_in_scan(x, w, xs):
    def body(c, xi):
        c = lax.cond(tnp.sum(xi) > 0, lambda a: tnp.sin(a * w) + xi, lambda a: a * xi - w, c)
        return c, tnp.sum(c * c)
    c, ys = lax.scan(body, x, xs)
    return tnp.sum(c) + tnp.sum(ys)


def cond_in_scan_unrolled(x, w, xs):
    c, total = x, 0.0
    for i in range(xs.shape[0]):
        c = tnp.sin(c * w) + xs[i] if np.sum(xs[i]) > 0 else c * xs[i] - w
        total = total + tnp.sum(c * c)
    return tnp.sum(c) + total


def scan_in_scan(x, w, xs):
    def outer(c, row):  # the inner body closes over the outer body's carry c and over w
        d, ds = lax.scan(lambda d, e: (d * tnp.tanh(e * w + c), d), c, row)
        return d + tnp.sum(ds, axis=0), tnp.sum(d)
    c, ys = lax.scan(outer, x, xs)
    return tnp.sum(c) + tnp.sum(ys)


def scan_in_scan_unrolled(x, w, xs):
    c, total = x, 0.0
    for i in range(xs.shape[0]):
        d, acc = c, 0.0
        for j in range(xs.shape[1]):
            acc = acc + d
            d = d * tnp.tanh(xs[i, j] * w + c)
        c = d + acc
        total = total + tnp.sum(d)
    return tnp.sum(c) + total


NESTED = [("cond_in_scan", cond_in_scan, cond_in_scan_unrolled),
          ("scan_in_scan", scan_in_scan, scan_in_scan_unrolled)]


def nested_args():
    return N(2), N(2, seed=1), N(3, 2, 2, seed=2)


@pytest.mark.parametrize("name,f,unrolled", NESTED, ids=[n for n, _, _ in NESTED])
def test_grad_and_jvp_of_nested_control_flow_match_the_unrolled_program(name, f, unrolled):
    x, w, xs = nested_args()
    if name == "cond_in_scan":
        xs = xs[:, 0, :]
    tangents = (N(2, seed=3), N(2, seed=4), N(*xs.shape, seed=5))
    assert_same(f(x, w, xs), np.float64(unrolled(x, w, xs)), rtol=1e-12)
    expected = tg.grad(unrolled, argnums=(0, 1, 2))(x, w, xs)
    assert_same(tg.grad(f, argnums=(0, 1, 2))(x, w, xs), expected, rtol=1e-11)
    assert_same(interpret(tg.grad(f, argnums=(0, 1, 2)))(x, w, xs), expected, rtol=1e-11)
    assert_same(tg.jvp(f, (x, w, xs), tangents), tg.jvp(unrolled, (x, w, xs), tangents), rtol=1e-11)
    tg.check_grads(f, (x, w, xs), order=2)


def test_jvp_of_while_inside_cond_matches_finite_differences():
    def f(x):
        loop = lambda a: lax.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, tnp.sin(s[1]) * a), (0, a))[1]
        return lax.cond(tnp.sum(x) > 0, loop, lambda a: a * 2.0, x)

    x = N(3)
    for sign in (1, -1):
        tg.check_grads(f, (sign * np.abs(x),), order=2, modes=("fwd",))
    v = np.abs(x)
    for _ in range(3):
        v = np.sin(v) * np.abs(x)
    assert_same(f(np.abs(x)), v)


def test_second_derivatives_through_scan_match_the_unrolled_program():
    def f(x):
        c, ys = lax.scan(lambda c, xi: (tnp.sin(c * xi), c * c), x[0], x)
        return c + tnp.sum(ys)

    def unrolled(x):
        c, total = x[0], 0.0
        for i in range(x.shape[0]):
            total = total + c * c
            c = tnp.sin(c * x[i])
        return c + total

    x = N(4)
    assert_same(tg.hessian(f)(x), tg.hessian(unrolled)(x), rtol=1e-11)
    assert_same(interpret(tg.hessian(f))(x), tg.hessian(unrolled)(x), rtol=1e-11)
    gg = lambda g: tg.grad(lambda x: tnp.sum(tg.grad(g)(x) ** 2))
    assert_same(gg(f)(x), gg(unrolled)(x), rtol=1e-11)
    assert_same(tg.jacfwd(tg.grad(f))(x), tg.hessian(unrolled)(x), rtol=1e-11)


@pytest.mark.parametrize("name", ["switch_with_closures", "scan_pytree_carry_reverse", "scan_xs_none",
                                  "fori_in_scan", "cond_on_closed_over_pred"])
def test_end_to_end_derivatives_agree_with_finite_differences(name):
    x, w, xs = N(3), N(3, seed=1), N(4, 3, seed=2)
    f = {
        "switch_with_closures": lambda x, w: lax.switch(2, [lambda a: a * w, tnp.tanh, lambda a: tnp.sin(a) * w * w],
                                                        x),
        "scan_pytree_carry_reverse": lambda x, w, xs: lax.scan(
            lambda c, xi: ({"a": tnp.sin(c["a"]) * xi, "b": c["b"] + c["a"] * w}, (c["b"] * xi, tnp.sum(c["a"]))),
            {"a": x, "b": w}, xs, reverse=True),
        "scan_xs_none": lambda x, w: lax.scan(lambda c, _: (tnp.tanh(c * w), c), x, None, length=3),
        "fori_in_scan": lambda x, xs: lax.scan(
            lambda c, xi: (lax.fori_loop(0, 2, lambda i, d: tnp.sin(d * xi) + c, c), None), x, xs)[0],
        "cond_on_closed_over_pred": lambda x, w: lax.cond(tnp.sum(w) > 0, lambda: x * w, lambda: x - w * x),
    }[name]
    args = {"scan_pytree_carry_reverse": (x, w, xs), "fori_in_scan": (x, xs)}.get(name, (x, w))
    tg.check_grads(f, args, order=2)


# =================================================================== closures
def test_bodies_closing_over_traced_values_get_their_values_and_gradients():
    x, w, b, xs = N(3), N(3, seed=1), N(3, seed=2), N(4, 3, seed=3)

    def f(x, w, b, xs):
        carry, ys = lax.scan(lambda c, xi: (tnp.tanh(c * w + xi) + b, tnp.sum(c * b)), x, xs)
        picked = lax.cond(tnp.sum(carry) > 0, lambda: carry * w, lambda: carry - b)
        looped = lax.fori_loop(0, 2, lambda i, v: v * w + b, picked)
        return tnp.sum(looped) + tnp.sum(ys)

    def unrolled(x, w, b, xs):
        c, total = x, 0.0
        for i in range(xs.shape[0]):
            total = total + tnp.sum(c * b)
            c = tnp.tanh(c * w + xs[i]) + b
        v = c * w if np.sum(np.asarray(c)) > 0 else c - b
        for _ in range(2):
            v = v * w + b
        return tnp.sum(v) + total

    args = (x, w, b, xs)
    assert_same(f(*args), np.float64(unrolled(*args)))
    assert_same(interpret(f)(*args), np.float64(unrolled(*args)))
    expected = tg.grad(unrolled, argnums=(0, 1, 2, 3))(*args)
    assert_same(tg.grad(f, argnums=(0, 1, 2, 3))(*args), expected, rtol=1e-11)
    assert_same(interpret(tg.grad(f, argnums=(0, 1, 2, 3)))(*args), expected, rtol=1e-11)


def test_nested_bodies_close_over_the_enclosing_bodys_values():
    """A while_loop's cond inside a scan reads the scan's x slice; a fori_loop's body reads the scan's carry."""
    xs = np.array([1.0, 2.5, 4.0])

    def f(h, xs):
        def body(c, xi):
            n = lax.while_loop(lambda k: k < xi, lambda k: k + 1.0, 0.0)  # ceil(xi) from the outer slice
            d = lax.fori_loop(0, 2, lambda i, v: v * c + xi, c)  # closes over the outer carry and slice
            return d, n
        return lax.scan(body, h, xs)

    h, ns = 0.5, []
    for xi in xs:
        ns.append(np.ceil(xi))
        c = h
        for _ in range(2):
            c = c * h + xi
        h = c
    check_both(f, (np.float64(h), np.array(ns)), np.float64(0.5), xs)
    tg.check_grads(lambda h, xs: f(h, xs)[0], (np.float64(0.5), xs), order=1, modes=("fwd",))


def test_work_on_closed_over_values_alone_runs_once_outside_the_body():
    """By design: the exp of the closed-over w is recorded in the enclosing trace."""
    graph = tg.make_ir(lambda w, xs: lax.scan(lambda c, x: (c + tnp.exp(w) * x, None), tnp.zeros(2), xs)[0])(
        N(2), N(3, 2, seed=1))
    assert "exp" in [e.prim.name for e in graph.eqns]
    assert "exp" not in prims(the(graph, "scan").params["body"])


# ============================================================ outside of jit
def test_control_flow_on_numpy_arrays_runs_without_jit_and_returns_numpy_arrays():
    x, xs = N(3), N(4, 3, seed=1)
    carry, ys = lax.scan(lambda c, xi: (c + xi, c * xi), x, xs)
    assert isinstance(carry, np.ndarray) and isinstance(ys, np.ndarray) and ys.shape == (4, 3)
    assert isinstance(lax.cond(True, lambda a: a * 2, lambda a: a, x), np.ndarray)
    assert isinstance(lax.fori_loop(0, 3, lambda i, v: v + i, x), np.ndarray)
    assert isinstance(lax.while_loop(lambda v: tnp.sum(v) < 100, lambda v: v + 1.0, x), np.ndarray)


def test_grad_without_jit_of_a_function_using_control_flow_matches_the_unrolled_gradient():
    x, xs = np.abs(N(3)) + 0.1, N(4, 3, seed=1)

    def f(x, xs):
        c = lax.cond(tnp.sum(x) > 0, lambda a: a ** 3, lambda a: -a, x)
        c = lax.fori_loop(0, 2, lambda i, v: tnp.sin(v) + i, c)
        c, ys = lax.scan(lambda c, xi: (c * xi, tnp.sum(c)), c, xs)
        return tnp.sum(c) + tnp.sum(ys)

    def unrolled(x, xs):
        c = x ** 3
        for i in range(2):
            c = tnp.sin(c) + i
        total = 0.0
        for i in range(4):
            total = total + tnp.sum(c)
            c = c * xs[i]
        return tnp.sum(c) + total

    assert_same(tg.grad(f, argnums=(0, 1))(x, xs), tg.grad(unrolled, argnums=(0, 1))(x, xs), rtol=1e-12)
    value, pullback = tg.vjp(f, x, xs)
    assert_same(value, np.float64(unrolled(x, xs)))
    assert_same(pullback(np.float64(1.0)), tg.grad(unrolled, argnums=(0, 1))(x, xs), rtol=1e-12)


# ===================================================================== eager
def test_eager_scan_records_on_the_tape_and_backward_matches_grad():
    W, U, b, h0, xs = rnn_data(3, 4, 2, 5)
    tensors = [tg.tensor(a, requires_grad=True) for a in (W, U, b, h0, xs)]
    Wt, Ut, bt, ht, xt = tensors

    def step(h, x):  # W, U and b are closed over: Tensors that require grad
        h = tnp.tanh(h @ Wt + x @ Ut + bt)
        return h, tnp.mean(h ** 2)

    h, ys = lax.scan(step, ht, xt)
    assert isinstance(h, tg.Tensor) and h.requires_grad and h.grad_fn is not None
    loss = tnp.mean(h) + tnp.sum(ys)
    np.testing.assert_allclose(loss.item(), rnn_loss(W, U, b, h0, xs), rtol=1e-12)
    loss.backward()
    expected = tg.grad(rnn_loss, argnums=(0, 1, 2, 3, 4))(W, U, b, h0, xs)
    for t, g in zip(tensors, expected):
        assert_same(t.grad.data, g, rtol=1e-12)


def test_eager_cond_and_fori_loop_backward_match_grad():
    W, x = N(2, 2), N(2, seed=1)

    def f(W, x):
        y = lax.cond(tnp.sum(x) < 0, lambda a: tnp.tanh(a @ W), lambda a: a * 2.0, x)
        return tnp.sum(lax.fori_loop(0, 3, lambda i, v: tnp.sin(v @ W) + v, y))

    for sign in (1, -1):
        xv = sign * np.abs(x)
        Wt, xt = tg.tensor(W, requires_grad=True), tg.tensor(xv, requires_grad=True)
        out = f(Wt, xt)
        assert isinstance(out, tg.Tensor)
        out.backward()
        gW, gx = tg.grad(f, argnums=(0, 1))(W, xv)
        assert_same(Wt.grad.data, gW, rtol=1e-12)
        assert_same(xt.grad.data, gx, rtol=1e-12)


def test_eager_nested_loops_give_closed_over_weights_their_gradients():
    W, x, xs = N(3, 3), N(3, seed=1), N(4, 3, seed=2)

    def f(W, x, xs):
        def body(c, xi):
            inner = lax.fori_loop(0, 2, lambda i, d: tnp.tanh(d @ W) + xi, c)
            return inner, tnp.sum(inner)
        c, ys = lax.scan(body, x, xs)
        return tnp.sum(c) + tnp.sum(ys)

    Wt, xt = tg.tensor(W, requires_grad=True), tg.tensor(x, requires_grad=True)
    f(Wt, xt, xs).backward()
    gW, gx = tg.grad(f, argnums=(0, 1))(W, x, xs)
    assert_same(Wt.grad.data, gW, rtol=1e-12)
    assert_same(xt.grad.data, gx, rtol=1e-12)


def test_eager_gradients_through_a_loop_accumulate_across_backward_calls():
    x = N(3)
    xt = tg.tensor(x, requires_grad=True)
    for _ in range(2):
        lax.fori_loop(0, 3, lambda i, v: v * xt, xt).sum().backward()
    assert_same(xt.grad.data, 2 * 4 * x ** 3)


def test_eager_control_flow_without_requires_grad_returns_tensors_without_history():
    xt = tg.tensor(N(3))
    carry, ys = lax.scan(lambda c, x: (c + x, c), 0.0, xt)
    assert isinstance(carry, tg.Tensor) and isinstance(ys, tg.Tensor)
    assert not carry.requires_grad
    assert_same(carry.data, np.float64(xt.data.sum()))


# ==================================================================== errors
RUNNERS = [("outside_jit", lambda f, *a: f(*a)), ("under_jit", lambda f, *a: interpret(f)(*a))]
runners = pytest.mark.parametrize("run", [r for _, r in RUNNERS], ids=[n for n, _ in RUNNERS])


@runners
def test_branches_returning_different_structures_raise_naming_both(run):
    with pytest.raises(tg.ShapeError, match=r"cond: false_fun and true_fun must return the same structure.*"
                                            r"false_fun returned \(\*, \*\) and true_fun returned \*"):
        run(lambda x: lax.cond(True, lambda a: a, lambda a: (a, a), x), N(2))
    with pytest.raises(tg.ShapeError, match=r"switch: branch0 and branch2 must return the same structure"):
        run(lambda x: lax.switch(0, [lambda a: a, lambda a: a, lambda a: {"k": a}], x), N(2))


@runners
@pytest.mark.parametrize("other,got", [(lambda a: a[:1], r"f64\[1\]"), (lambda a: a.astype(F32), r"f32\[2\]"),
                                       (lambda a: a > 0, r"bool\[2\]")], ids=["shape", "float_dtype", "bool"])
def test_branch_outputs_with_different_types_raise_naming_the_leaf_path_and_both_types(run, other, got):
    f = lambda x: lax.cond(True, lambda a: {"w": (a * 2, a)}, lambda a: {"w": (a, other(a))}, x)
    with pytest.raises(tg.ShapeError, match=rf"true_fun\(\) returns output\['w'\]\[1\] as f64\[2\], but false_fun\(\) "
                                            rf"returns it as {got}") as info:
        run(f, N(2))
    assert "test_control_flow.py" in str(info.value)  # the user's line
    with pytest.raises(tg.ShapeError, match=rf"branch1\(\) returns output\[1\] as {got}, but branch0\(\) returns it "
                                            rf"as f64\[2\]"):
        run(lambda x: lax.switch(0, [lambda a: (a, a), lambda a: (a, other(a))], x), N(2))


@runners
@pytest.mark.parametrize("loop", ["scan", "fori_loop", "while_loop"])
@pytest.mark.parametrize("change,got", [(lambda v: v[:1], r"f64\[1\]"), (lambda v: v.astype(F32), r"f32\[2\]")],
                         ids=["shape", "dtype"])
def test_a_body_changing_a_carrys_type_raises_naming_the_leaf_and_both_types(run, loop, change, got):
    if loop == "scan":
        f = lambda x: lax.scan(lambda c, _: ({"h": change(c["h"]), "n": c["n"]}, None), {"h": x, "n": 0}, None,
                               length=2)
        where = r"scan: body\(\) returns the carry init\['h'\]"
    elif loop == "fori_loop":
        f = lambda x: lax.fori_loop(0, 2, lambda i, c: (c[0], change(c[1])), (1, x))
        where = r"scan: body_fun\(\) returns the carry \(i, init_val\)\[1\]\[1\]"
    else:
        f = lambda x: lax.while_loop(lambda c: c[0] < 2, lambda c: (c[0] + 1, change(c[1])), (0, x))
        where = r"while_loop: body\(\) returns the carry init_val\[1\]"
    with pytest.raises(tg.ShapeError, match=where + rf" as {got}, but its initial value is f64\[2\]") as info:
        run(f, N(2))
    assert "test_control_flow.py" in str(info.value)


@runners
def test_a_body_returning_a_different_carry_structure_raises(run):
    with pytest.raises(tg.ShapeError, match="must return the carry with the structure of init"):
        run(lambda x: lax.scan(lambda c, xi: ((c, c), None), x, None, length=2), N(2))
    with pytest.raises(tg.ShapeError, match="must return the carry with the structure of init_val"):
        run(lambda x: lax.while_loop(lambda c: tnp.sum(c[0]) < 1, lambda c: c[0], (x, x)), N(2))


@runners
def test_a_strongly_typed_int_carry_that_the_body_makes_float_raises(run):
    """Only Python scalars are weak: an int32 array carry turned float64 is an error."""
    with pytest.raises(tg.ShapeError, match=r"as f64\[\], but its initial value is i32\[\]"):
        run(lambda c0: lax.fori_loop(0, 3, lambda i, c: c * 1.5, c0), np.int32(1))


@runners
def test_cond_with_a_non_scalar_predicate_raises(run):
    with pytest.raises(tg.ShapeError, match=r"cond: the predicate must be a scalar, got bool\[2\].*tnp.where"):
        run(lambda p, x: lax.cond(p, lambda a: a, lambda a: -a, x), np.array([True, False]), N(2))


@runners
def test_switch_with_a_non_integer_or_non_scalar_index_raises(run):
    with pytest.raises(tg.DTypeError, match=r"switch: the index must be an integer scalar, got f64\[\]"):
        run(lambda i, x: lax.switch(i, [lambda a: a, lambda a: -a], x), np.float64(1), N(2))
    with pytest.raises(tg.DTypeError, match=r"switch: the index must be an integer scalar, got i32\[2\]"):
        run(lambda i, x: lax.switch(i, [lambda a: a, lambda a: -a], x), np.array([0, 1], I32), N(2))
    with pytest.raises(tg.ArgumentError, match="switch: needs at least one branch"):
        run(lambda x: lax.switch(0, [], x), N(2))


@runners
def test_scan_xs_with_inconsistent_leading_lengths_raise(run):
    with pytest.raises(tg.ShapeError, match=r"scan: the xs leaves and length disagree on the number of steps: "
                                            r"\[3, 4\]"):
        run(lambda a, b: lax.scan(lambda c, x: (c, x), 0.0, (a, b)), np.ones(3), np.ones((4, 2)))
    with pytest.raises(tg.ShapeError, match=r"disagree on the number of steps: \[3, 5\]"):
        run(lambda a: lax.scan(lambda c, x: (c, x), 0.0, a, length=5), np.ones(3))
    with pytest.raises(tg.ShapeError, match=r"every leaf of xs needs a leading axis"):
        run(lambda a: lax.scan(lambda c, x: (c, x), 0.0, a), np.float64(1.0))


@runners
def test_scan_without_xs_and_without_length_raises(run):
    with pytest.raises(tg.ShapeError, match=r"scan: xs is None: pass length="):
        run(lambda h: lax.scan(lambda c, x: (c, c), h, None), N(2))


@runners
def test_scan_body_that_does_not_return_a_pair_raises(run):
    with pytest.raises(tg.ArgumentError, match=r"scan: body\(\) must return a pair \(carry, y\)"):
        run(lambda h, xs: lax.scan(lambda c, x: c + x, h, xs), N(2), N(3, 2))


@runners
@pytest.mark.parametrize("cond_fun,got", [(lambda c: c[1], r"f64\[\]"), (lambda c: c[0], r"i32\[\]"),
                                          (lambda c: c[2] > 0, r"bool\[2\]")],
                         ids=["float", "int", "non_scalar_bool"])
def test_while_cond_fun_returning_a_non_boolean_or_non_scalar_raises(run, cond_fun, got):
    with pytest.raises(tg.DTypeError,
                       match=rf"while_loop: cond_fun\(\) must return a boolean scalar, it returned {got}"):
        run(lambda x: lax.while_loop(cond_fun, lambda c: c, (np.int32(1), np.float64(1.0), x)), N(2))


def test_control_flow_errors_are_the_builtin_exception_kinds():
    assert issubclass(tg.ShapeError, ValueError) and issubclass(tg.DTypeError, TypeError)


def test_shape_rules_of_the_primitives_name_the_first_mismatching_leaf():
    """Hand-built equations are checked by the primitives' shape rules too."""
    t2, t3 = ShapedType((2,), F64), ShapedType((3,), F64)

    def graph(in_types, out_fn):
        b = GraphBuilder()
        ins = [b.new_input(t) for t in in_types]
        return b.build(ins, out_fn(b, ins))

    identity = graph([t2], lambda b, ins: ins)
    shrink = graph([t2], lambda b, ins: [b.slice(ins[0], start_indices=(0,), limit_indices=(1,), strides=(1,))])
    b = GraphBuilder()
    x, i = b.new_input(t2), b.new_input(ShapedType((), I32))
    with pytest.raises(ir.ShapeError, match=r"cond: branch 1's outputs differ from branch 0's outputs at leaf 0"):
        b.bind(REGISTRY["cond"], i, x, branches=(identity, shrink))
    with pytest.raises(ir.ShapeError, match=r"scan: the body's carry outputs differ from the carry it receives"):
        b.bind(REGISTRY["scan"], x, body=shrink, length=2, reverse=False, num_consts=0, num_carry=1)
    with pytest.raises(ir.ShapeError, match=r"scan: xs leaf 0 has type f64\[2\].*leading axis of the scan's length, 3"):
        b.bind(REGISTRY["scan"], x, body=graph([], lambda b, ins: []), length=3, reverse=False, num_consts=0,
               num_carry=0)
    with pytest.raises(ir.ShapeError, match=r"while: the body's inputs"):
        b.bind(REGISTRY["while"], x, cond=graph([t2], lambda b, ins: [b.gt(b.reduce_sum(ins[0], axes=(0,)),
                                                                           Literal(0.0, F64))]),
               body=graph([t3], lambda b, ins: ins), cond_nconsts=0, body_nconsts=0)


# ======================================================================== IR
def test_make_ir_prints_the_bodies_indented_under_their_equation():
    def f(x, n):
        def outer(c, row):
            d, _ = lax.scan(lambda d, e: (d * e, None), c, row)
            return lax.cond(tnp.sum(d) > 0, lambda a: a, lambda a: -a, d), None
        c, _ = lax.scan(outer, x, np.ones((2, 3, 2)))
        return lax.while_loop(lambda s: s[0] < n, lambda s: (s[0] + 1, s[1] * 2.0), (0, c))

    lines = str(tg.make_ir(f)(N(2), 3)).splitlines()
    expected = ["        body(e: f64[2], f: f64[3,2]) -> f64[2]:",  # the outer scan's body under its equation
                "                body(h: f64[2], i: f64[2]) -> f64[2]:",  # the inner scan's, one level deeper
                "                branches[0](o: f64[2]) -> f64[2]:",
                "                branches[1](q: f64[2]) -> f64[2]:",
                "        cond(t: i64[], u: i64[], v: f64[2]) -> bool[]:",
                "        body(x: i64[], y: f64[2]) -> (i64[], f64[2]):"]
    for line in expected:
        assert line in lines, f"{line!r} missing from\n" + "\n".join(lines)
    # each signature line follows its equation (indented four fewer spaces) or a sibling body
    scan_eq = next(k for k, l in enumerate(lines) if "= scan[" in l and l.startswith("    d:"))
    assert lines[scan_eq + 1] == expected[0]
    assert any("= while[cond_nconsts=1, body_nconsts=0]" in l for l in lines)



def _graphs_to_verify():
    x, w, xs = nested_args()
    yield "cond_in_scan", cond_in_scan, (x, w, xs[:, 0, :]), True
    yield "scan_in_scan", scan_in_scan, (x, w, xs), True
    yield "rnn", rnn_loss, rnn_data(2, 3, 2, 4), True
    yield "switch", lambda x, w: lax.switch(1, [lambda a: a * w, tnp.sin], x), (x, w), True
    yield "fori_static", lambda x: lax.fori_loop(0, 3, lambda i, v: tnp.sin(v) * i, x), (x,), True
    yield "while", lambda x: lax.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, tnp.sin(s[1]) * x),
                                            (0, x))[1], (x,), False


VERIFY_CASES = list(_graphs_to_verify())


@pytest.mark.parametrize("name,f,args,reverse", VERIFY_CASES, ids=[c[0] for c in VERIFY_CASES])
def test_traced_and_differentiated_graphs_verify_and_compute_the_transformations_values(name, f, args, reverse):
    graph = ir.verify(tg.make_ir(f)(*args))
    n = len(args)
    tangents = [N(*np.shape(a), seed=9) for a in args]
    jg = ir.verify(jvp_graph(graph))
    out, tangent_out = tg.jvp(f, tuple(args), tuple(tangents))
    results = ir.evaluate(jg, list(args) + tangents)
    np.testing.assert_allclose(results[0], out, rtol=1e-12)
    np.testing.assert_allclose(results[-1], tangent_out, rtol=1e-12)
    if reverse:
        vg = ir.verify(vjp_graph(graph))
        ct = N(*np.shape(out), seed=10)
        results = ir.evaluate(vg, list(args) + [ct])
        for got, want in zip(results[1:], tg.vjp(f, *args)[1](ct), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        ir.verify(jvp_graph(vg, wrt=list(range(n))))  # a Hessian-vector product program through the loops
    else:
        with pytest.raises(ValueError, match="fori_loop"):
            vjp_graph(graph)


def test_make_ir_of_grad_through_a_scan_holding_a_cond_verifies():
    f = lambda h, xs: tnp.sum(lax.scan(lambda c, x: (lax.cond(tnp.sum(x) > 0, lambda a: a * 2.0, lambda a: -a, c),
                                                     None), h, xs)[0])
    ir.verify(tg.make_ir(tg.grad(f))(N(2), N(2, 2, seed=1)))


# ==================================================================== passes
@pytest.mark.parametrize("name,f,args,reverse", VERIFY_CASES, ids=[c[0] for c in VERIFY_CASES])
def test_optimized_graphs_compute_what_the_traced_graphs_compute(name, f, args, reverse):
    graph = tg.make_ir(f)(*args)
    graphs = [(graph, list(args))]
    if reverse:
        vg = vjp_graph(graph)
        graphs.append((vg, list(args) + [N(*t.shape, seed=11) for t in vg.in_types[len(args):]]))
    for g, inputs in graphs:
        result = optimize(g, verify=True)
        evaluates_alike(g, result.optimized, inputs)
        evaluates_alike(g, result.fused, inputs)


def test_dce_drops_unused_scan_ys_and_carries_but_keeps_carries_that_needed_ones_read():
    def f(a, xs):
        (c1, c2, c3), (y1, y2) = lax.scan(
            lambda c, x: ((c[0] + x, c[1] * c[0], c[2] + 1.0), (tnp.sin(x), c[0] * x)), (a, a, a), xs)
        return c2 + y2[0]

    args = (N(2), N(3, 2, seed=1))
    graph = tg.make_ir(f)(*args)
    assert len(the(graph, "scan").outputs) == 5
    pruned = ir.verify(dce(graph))
    scan = the(pruned, "scan")
    assert scan.params["num_carry"] == 2  # c2, and c1 which c2 reads; c3 dropped
    assert len(scan.outputs) == 3  # and of the ys only y2
    assert "sin" not in prims(scan.params["body"])
    evaluates_alike(graph, pruned, args)


def test_dce_drops_unused_cond_outputs_and_the_operands_only_they_read():
    def f(p, x, y, z):
        o1, o2 = lax.cond(p > 0, lambda x, y, z: (x * y, tnp.exp(z)), lambda x, y, z: (x - y, z), x, y, z)
        return o1

    args = (np.float64(1.0), N(2), N(2, seed=1), N(2, seed=2))
    graph = tg.make_ir(f)(*args)
    pruned = ir.verify(dce(graph))
    cond = the(pruned, "cond")
    assert len(cond.outputs) == 1 and len(cond.inputs) == 3  # index, x, y: z is gone
    assert all(len(g.inputs) == 2 and len(g.outputs) == 1 for g in cond.params["branches"])
    assert "exp" not in prims(pruned)
    evaluates_alike(graph, pruned, args)


def test_dce_drops_while_carries_nobody_reads_but_keeps_those_the_cond_reads():
    f = lambda h, n: lax.while_loop(lambda s: s[0] < n, lambda s: (s[0] + 1, s[1] * 2.0, s[2] + s[1]), (0, h, h))[1]
    args = (N(2), np.int64(3))
    graph = tg.make_ir(f)(*args)
    pruned = ir.verify(dce(graph))
    loop = the(pruned, "while")
    assert [v.type for v in loop.outputs] == [ShapedType((), np.int64), ShapedType((2,), F64)]  # counter kept
    assert "add" in prims(loop.params["body"]) and len(loop.params["body"].outputs) == 2
    evaluates_alike(graph, pruned, args)


def test_dce_drops_scan_xs_that_only_unused_ys_read():
    f = lambda h, xs, zs: lax.scan(lambda c, x: (c * x[0], tnp.exp(x[1])), h, (xs, zs))[0]
    args = (N(2), N(3, 2, seed=1), N(3, 2, seed=2))
    graph = tg.make_ir(f)(*args)
    pruned = ir.verify(dce(graph))
    scan = the(pruned, "scan")
    assert len(scan.inputs) == 2 and len(scan.outputs) == 1
    evaluates_alike(graph, pruned, args)


def test_dce_drops_operands_no_body_reads_even_when_every_output_is_used():
    cond_graph = tg.make_ir(lambda p, x, y: lax.cond(p, lambda a, b: a * 2.0, lambda a, b: a - 1.0, x, y))(
        True, N(2), N(2))
    scan_graph = tg.make_ir(lambda h, xs, zs: lax.scan(lambda c, x: (c + 1.0, c * x[0]), h, (xs, zs)))(
        N(2), N(3, 2), N(3, 2))
    assert len(the(dce(cond_graph), "cond").inputs) == 2  # the index and x
    assert len(the(dce(scan_graph), "scan").inputs) == 2  # h and xs
    hand_built, _ = _hand_built_scan()  # after hoisting, the body reads exp(c) but no longer c itself
    assert len(the(optimize(hand_built, verify=True).optimized, "scan").inputs) == 3


def _hand_built_scan(hash_cons=False):
    """scan(c; h; xs) with a body that computes exp(c) (invariant), twice (for
    CSE), exp of a constant (for folding), x * 1 (for simplification) and
    returns one value as two ys (for dedupe_scan_outputs)."""
    t = ShapedType((2,), F64)
    bb = GraphBuilder(hash_cons=hash_cons)
    c, h, x = bb.new_input(t), bb.new_input(t), bb.new_input(t)
    scaled = bb.mul(bb.exp(c), x)
    again = bb.mul(bb.exp(c), x)
    folded = bb.add(bb.exp(bb.full((2,), 2.0, F64)), bb.mul(x, Literal(1.0, F64)))
    body = bb.build([c, h, x], [bb.add(h, scaled), scaled, again, folded, scaled], "body")
    b = GraphBuilder()
    C, H, X = b.new_input(t), b.new_input(t), b.new_input(ShapedType((3, 2), F64))
    outs = b.bind(REGISTRY["scan"], C, H, X, body=body, length=3, reverse=False, num_consts=1, num_carry=1)
    args = [N(2), N(2, seed=1), N(3, 2, seed=2)]
    return ir.verify(b.build([C, H, X], outs, "hand_built")), args


def test_cse_merges_duplicate_equations_inside_a_loop_body():
    graph, args = _hand_built_scan()
    body = lambda g: the(g, "scan").params["body"]
    assert prims(body(graph)).count("exp") == 3
    merged = ir.verify(cse(graph))
    assert prims(body(merged)).count("exp") == 2 and prims(body(merged)).count("mul") == 2
    evaluates_alike(graph, merged, args)


def test_folding_and_simplification_work_inside_a_loop_body():
    graph, args = _hand_built_scan()
    folded = ir.verify(rewrite(graph, FOLD_RULES))
    body = the(folded, "scan").params["body"]
    assert prims(body).count("exp") == 2  # exp(full(2.0)) is now a literal
    assert any(isinstance(a, Literal) and np.isclose(a.value, np.exp(2.0)) for e in body.eqns for a in e.inputs)
    simplified = ir.verify(rewrite(graph, ALGEBRA_RULES))
    assert not any(e.prim.name == "mul" and Literal(1.0, F64).key in [getattr(a, "key", None) for a in e.inputs]
                   for e in simplified.walk_eqns())
    evaluates_alike(graph, folded, args)
    evaluates_alike(graph, simplified, args)


def test_dedupe_scan_outputs_stacks_a_value_returned_as_several_ys_once():
    graph, args = _hand_built_scan()
    deduped = ir.verify(rewrite(graph, [NamedRule("dedupe_scan_outputs", dedupe_scan_outputs)]))
    scan = the(deduped, "scan")
    assert len(scan.outputs) == 4 and deduped.outputs[1] is deduped.outputs[4]
    evaluates_alike(graph, deduped, args)


def test_the_pipeline_folds_dedupes_and_hoists_a_hand_built_loop_body():
    graph, args = _hand_built_scan()
    result = optimize(graph, verify=True)
    body = the(result.optimized, "scan").params["body"]
    assert "exp" not in prims(body)
    evaluates_alike(graph, result.optimized, args)
    evaluates_alike(graph, result.fused, args)


def test_hoist_invariants_moves_invariant_work_out_of_a_scan_body():
    graph, args = _hand_built_scan()
    hoisted = ir.verify(hoist_invariants(graph))
    assert [e.prim.name for e in hoisted.eqns].count("exp") == 3  # exp(c) twice and exp(full(2.0))
    scan = the(hoisted, "scan")
    assert "exp" not in prims(scan.params["body"])
    assert scan.params["num_consts"] > 1
    evaluates_alike(graph, hoisted, args)


def test_hoist_invariants_moves_invariant_work_out_of_a_while_body():
    t, i32 = ShapedType((2,), F64), ShapedType((), I32)
    cb = GraphBuilder()
    n, i, h = cb.new_input(i32), cb.new_input(i32), cb.new_input(t)
    cond = cb.build([n, i, h], [cb.lt(i, n)], "cond")
    bb = GraphBuilder()
    c, i, h = bb.new_input(t), bb.new_input(i32), bb.new_input(t)
    body = bb.build([c, i, h], [bb.add(i, Literal(1, I32)), bb.add(bb.mul(h, Literal(0.5, F64)), bb.exp(c))], "body")
    b = GraphBuilder()
    N_, C, H = b.new_input(i32), b.new_input(t), b.new_input(t)
    outs = b.bind(REGISTRY["while"], N_, C, Literal(0, I32), H, cond=cond, body=body, cond_nconsts=1, body_nconsts=1)
    graph = ir.verify(b.build([N_, C, H], outs))
    hoisted = ir.verify(hoist_invariants(graph))
    assert "exp" in [e.prim.name for e in hoisted.eqns]
    assert "exp" not in prims(the(hoisted, "while").params["body"])
    args = [np.int32(4), N(2), N(2, seed=1)]
    evaluates_alike(graph, hoisted, args)


def test_hoist_invariants_lifts_work_out_of_nested_loops():
    t = ShapedType((2,), F64)
    ib = GraphBuilder()
    c, d = ib.new_input(t), ib.new_input(t)
    inner = ib.build([c, d], [ib.add(d, ib.tanh(c))], "inner")  # tanh of the outermost constant
    ob = GraphBuilder()
    c, h, x = ob.new_input(t), ob.new_input(t), ob.new_input(t)
    (d,) = ob.bind(REGISTRY["scan"], c, h, body=inner, length=2, reverse=False, num_consts=1, num_carry=1)
    outer = ob.build([c, h, x], [ob.mul(d, x)], "outer")
    b = GraphBuilder()
    C, H, X = b.new_input(t), b.new_input(t), b.new_input(ShapedType((3, 2), F64))
    outs = b.bind(REGISTRY["scan"], C, H, X, body=outer, length=3, reverse=False, num_consts=1, num_carry=1)
    graph = ir.verify(b.build([C, H, X], outs))
    hoisted = ir.verify(hoist_invariants(graph))
    assert "tanh" in [e.prim.name for e in hoisted.eqns]
    assert "tanh" not in prims(the(hoisted, "scan").params["body"])
    evaluates_alike(graph, hoisted, [N(2), N(2, seed=1), N(3, 2, seed=2)])


@pytest.mark.parametrize("how", ["python_bool", "switch_above", "switch_below"])
def test_inline_known_branch_replaces_a_cond_with_a_literal_predicate(how):
    f = {"python_bool": lambda x: lax.cond(True, tnp.sin, lambda a: a * 2.0, x),
         "switch_above": lambda x: lax.switch(9, [lambda a: a * 2.0, tnp.cos, tnp.sin], x),
         "switch_below": lambda x: lax.switch(-3, [tnp.sin, tnp.cos, lambda a: a * 2.0], x)}[how]
    x = N(3)
    graph = tg.make_ir(f)(x)
    assert isinstance(the(graph, "cond").inputs[0], Literal)
    inlined = ir.verify(rewrite(graph, [NamedRule("inline_known_branch", inline_known_branch)]))
    assert [e.prim.name for e in inlined.eqns] == ["sin"]
    assert "inline_known_branch" in optimize(graph, verify=True).report()
    evaluates_alike(graph, inlined, [x])
    assert_same(interpret(f)(x), np.sin(x))


def test_inline_known_branch_leaves_a_cond_on_a_traced_predicate():
    graph = tg.make_ir(lambda p, x: lax.cond(p, tnp.sin, tnp.cos, x))(True, N(3))
    assert rewrite(graph, [NamedRule("inline_known_branch", inline_known_branch)]).eqns[-1].prim.name == "cond"


def scan_loss(h, xs, w):
    c, ys = lax.scan(lambda c, x: (tnp.tanh(c * x + w), tnp.sum(c * w)), h, xs)
    return tnp.sum(c) + tnp.sum(ys)


@pytest.mark.parametrize("name,f,args", [
    ("scan", scan_loss, (N(2), N(3, 2, seed=1), N(2, seed=2))),
    ("fori_loop", lambda x, w: tnp.sum(lax.fori_loop(0, 3, lambda i, v: tnp.sin(v) * w, x)), (N(2), N(2, seed=1))),
    ("rnn", rnn_loss, tuple(rnn_data(2, 3, 2, 4))),
])
def test_merge_loops_leaves_one_forward_scan_in_the_optimized_value_and_grad(name, f, args):
    argnums = tuple(range(len(args)))
    graph = tg.make_ir(tg.value_and_grad(f, argnums=argnums))(*args)
    forward = lambda g: [e for e in top_level(g, "scan") if not e.params["reverse"]]
    assert len(forward(graph)) == 2  # the original scan and the VJP's residual-stacking forward scan
    result = optimize(graph, verify=True)
    assert len(forward(result.optimized)) == 1
    assert len(top_level(result.optimized, "scan")) == 2  # that and the backward loop
    assert "merged_loops" in result.report()
    evaluates_alike(graph, result.optimized, list(args))
    merged = ir.verify(merge_loops(graph))
    assert len(forward(merged)) == 1
    evaluates_alike(graph, merged, list(args))


def test_merge_loops_keeps_scans_that_compute_different_things():
    graph = tg.make_ir(lambda xs: (lax.scan(lambda c, x: (c + tnp.sin(x), None), 0.0, xs)[0],
                                   lax.scan(lambda c, x: (c + tnp.cos(x), None), 0.0, xs)[0]))(N(3))
    assert len(top_level(merge_loops(graph), "scan")) == 2


def test_fusion_produces_fused_equations_inside_bodies():
    def f(h, xs, p):
        c, ys = lax.scan(lambda c, x: (tnp.tanh(c * x + 1.0) * 2.0, tnp.exp(c) - x), h, xs)
        return lax.cond(p, lambda a: tnp.sin(a) * a + 1.0, lambda a: a, c), ys

    args = (N(2), N(3, 2, seed=1), True)
    graph = tg.make_ir(f)(*args)
    fused = optimize(graph, verify=True).fused
    scan, cond = the(fused, "scan"), the(fused, "cond")
    assert "fused" in [e.prim.name for e in scan.params["body"].eqns]
    assert "fused" in [e.prim.name for e in cond.params["branches"][1].eqns]
    evaluates_alike(graph, fused, list(args))
