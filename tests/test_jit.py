"""jit: the cache and its explanations, static arguments, pytrees, result
ownership, decorator forms, nesting, lower / compile and backends."""

import functools
import sys
import warnings

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp

f32, f64, i32 = np.float32, np.float64, np.int32


class Counting:
    """A function that counts how often it is traced."""

    def __init__(self, fn):
        self.fn = fn
        self.traces = 0
        functools.update_wrapper(self, fn)  # the same name and signature

    def __call__(self, *args, **kwargs):
        self.traces += 1
        return self.fn(*args, **kwargs)


def scale(x, y):
    return x * 2.0 + y


@pytest.fixture
def explain(monkeypatch):
    monkeypatch.setattr(tg.config, "explain_cache_misses", True)


# ------------------------------------------------------------------- cache
def test_first_call_misses_then_same_signature_hits_without_retracing():
    counted = Counting(scale)
    jf = tg.jit(counted)
    x, y = np.ones((3, 4), f32), np.ones((3, 4), f32)
    np.testing.assert_allclose(jf(x, y), 3.0)
    np.testing.assert_allclose(jf(x * 5, y), 11.0)  # new values, same signature
    np.testing.assert_allclose(jf(x, -y), 1.0)
    info = jf.cache_info()
    assert (info.hits, info.misses, info.size) == (2, 1, 1)
    assert counted.traces == 1
    assert info.compile_seconds > 0
    assert info.miss_reasons == []


def test_cache_info_is_a_snapshot():
    jf = tg.jit(scale)
    x = np.ones(3, f32)
    before = jf.cache_info()
    jf(x, x)
    jf(x, x)
    after = jf.cache_info()
    assert (before.hits, before.misses) == (0, 0)
    assert (after.hits, after.misses) == (1, 1)


class Subclass(np.ndarray):
    pass


def test_the_fast_path_serves_plain_arrays_of_a_cached_shape_and_dtype_and_nothing_else():
    """A call on NumPy arrays is looked up by their shapes and dtypes alone; a subclass or a
    Python scalar takes the full route, and each is still counted as the hit or miss it is."""
    counted = Counting(lambda x: x * 2.0)
    jf = tg.jit(counted)
    x = np.arange(3.0)
    for arg in (x, x + 1.0, x.view(Subclass), 1.5, x[::-1].copy()[::-1]):
        got = jf(arg)
        assert type(got) is np.ndarray and got.dtype == f64
        np.testing.assert_array_equal(got, np.asarray(arg) * 2.0)
    assert counted.traces == 2  # the Python scalar is another signature
    np.testing.assert_array_equal(jf(x.astype(f32)), x * 2.0)
    assert jf(x.astype(f32)).dtype == f32
    info = jf.cache_info()
    assert (info.hits, info.misses, counted.traces) == (4, 3, 3)


def test_numpy_scalars_take_the_fast_path_with_their_own_dtype(monkeypatch):
    """np.float32(0) is typed as the 0-d float32 array it equals (not weakly, as
    the Python float 0.0 is): it shares that array's trace and, once traced, its
    calls skip the argument checks as arrays' do, with the same results and dtypes."""
    jit_module = sys.modules["tracegrad.jit"]  # tracegrad.jit, the attribute, is the function
    counted = Counting(lambda x, y: x * y + 1.0)
    jf = tg.jit(counted)
    y = np.ones(3, f32)
    for scalar, dtype in ((np.float32(2), f32), (np.float64(2), f64), (np.int32(2), f64), (np.bool_(True), f32)):
        as_array = np.asarray(scalar)
        expected = jf(as_array, y)
        got = jf(scalar, y)
        assert got.dtype == expected.dtype == dtype and type(got) is np.ndarray
        np.testing.assert_array_equal(got, expected)
    assert counted.traces == 4  # each scalar shared the trace of its 0-d array
    assert jf(2.0, y).dtype == f32 and counted.traces == 5  # a Python float is weak: another signature

    splits = []
    real_split = jit_module.split_args
    monkeypatch.setattr(jit_module, "split_args", lambda *a, **k: splits.append(a) or real_split(*a, **k))
    np.testing.assert_array_equal(jf(np.float32(3), y), np.full(3, 4.0, f32))
    assert splits == []
    pytree = tg.jit(lambda p: p["a"] * p["b"])
    pytree({"a": np.float32(2), "b": y})
    assert len(splits) == 1  # the first call traces
    splits.clear()
    assert pytree({"a": np.float32(3), "b": y}).dtype == f32
    assert splits == []  # neither call went through the full argument checks


@pytest.mark.parametrize("first, second, reason", [
    ((np.ones((3, 4), f32),), (np.ones((5, 4), f32),), "argument 'x': shape changed from f32[3,4] to f32[5,4]"),
    ((np.ones(3, f32),), (np.ones(3, f64),), "argument 'x': dtype changed from f32[3] to f64[3]"),
    ((np.ones(3, f32),), (np.ones(2, i32),), "argument 'x': shape and dtype changed from f32[3] to i32[2]"),
    ((1.0,), (np.float64(1.0),), "argument 'x': weak type changed from f64[] (a Python scalar) to f64[]"),
])
def test_a_new_shape_or_dtype_retraces_and_says_why(first, second, reason):
    counted = Counting(lambda x: x + 1)
    jf = tg.jit(counted)
    jf(*first)
    jf(*second)
    jf(*first)  # both signatures stay cached
    info = jf.cache_info()
    assert (info.hits, info.misses, counted.traces) == (1, 2, 2)
    (why,) = info.miss_reasons
    assert "<lambda>() is traced again" in why
    assert reason in why


def test_a_new_static_value_retraces_and_says_why():
    counted = Counting(lambda x, n: x * n)
    jf = tg.jit(counted, static_argnums=1)
    jf(np.ones(3), 2)
    jf(np.ones(3), 2)
    jf(np.ones(3), 3)
    info = jf.cache_info()
    assert (info.hits, info.misses, counted.traces) == (1, 2, 2)
    assert "static argument 'n' changed from 2 to 3" in info.miss_reasons[0]


def test_a_new_pytree_structure_retraces_and_says_why():
    jf = tg.jit(lambda p: p["w"] * 2)
    jf({"w": np.ones(3)})
    jf({"w": np.ones(3), "b": np.ones(3)})
    jf({"w": (np.ones(3))})
    info = jf.cache_info()
    assert (info.hits, info.misses) == (1, 2)
    assert "argument 'p': structure changed from {'w': *} to {'b': *, 'w': *}" in info.miss_reasons[0]


def test_a_changed_container_type_or_keyword_argument_is_named():
    jf = tg.jit(lambda x, **kw: x)
    jf((np.ones(2), np.ones(2)))
    jf([np.ones(2), np.ones(2)])
    jf([np.ones(2), np.ones(2)], extra=np.ones(1))
    first, second = jf.cache_info().miss_reasons
    assert "argument 'x': structure changed from (*, *) to [*, *]" in first
    assert "argument 'extra': structure changed from (not given) to *" in second


def test_the_reason_compares_with_the_closest_cached_signature():
    jf = tg.jit(lambda x, y: x + y)
    jf(np.ones(3), np.ones(3))
    jf(np.ones(4), np.ones(4))
    jf(np.ones(4), np.ones(1))  # differs from the second trace in y only
    why = jf.cache_info().miss_reasons[-1]
    assert "cache of 2 traces missed" in why
    assert "argument 'y': shape changed from f64[4] to f64[1]" in why
    assert "'x'" not in why


def test_explain_cache_misses_warns_at_the_callers_line_naming_the_leaf_path(explain):
    jf = tg.jit(lambda params, x: params["w"] @ x)
    x = np.ones(4, f32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jf({"w": np.ones((3, 4), f32)}, x)
        jf({"w": np.ones((3, 4), f32)}, x)
        jf({"w": np.ones((5, 4), f32)}, x)
    (w,) = caught
    assert issubclass(w.category, tg.CacheMissWarning)
    assert "argument 'params['w']': shape changed from f32[3,4] to f32[5,4]" in str(w.message)
    assert w.filename == __file__


def test_explain_cache_misses_warns_for_static_values(explain):
    jf = tg.jit(lambda x, mode: x if mode == "id" else -x, static_argnames="mode")
    jf(np.ones(2), mode="id")
    with pytest.warns(tg.CacheMissWarning, match=r"static argument 'mode' changed from 'id' to 'neg'"):
        jf(np.ones(2), mode="neg")


def test_no_warning_when_explanations_are_off(monkeypatch):
    monkeypatch.setattr(tg.config, "explain_cache_misses", False)
    jf = tg.jit(lambda x: x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jf(np.ones(2))
        jf(np.ones(3))
    assert len(jf.cache_info().miss_reasons) == 1


def test_a_partial_function_can_be_jitted_and_retraced():
    jf = tg.jit(functools.partial(lambda x, a: x * a, a=2.0))
    np.testing.assert_allclose(jf(np.ones(2)), 2.0)
    np.testing.assert_allclose(jf(np.ones(3)), 2.0)
    assert "partial() is traced again" in jf.cache_info().miss_reasons[0]


def test_clear_cache_forgets_traces_and_counts():
    counted = Counting(lambda x: x)
    jf = tg.jit(counted)
    jf(np.ones(2))
    jf.clear_cache()
    jf(np.ones(2))
    assert counted.traces == 2
    assert (jf.cache_info().hits, jf.cache_info().misses) == (0, 1)


# --------------------------------------------------------- static arguments
def test_static_argnums_are_passed_as_python_values():
    def f(x, n, flag):
        assert isinstance(n, int) and isinstance(flag, bool)  # not tracers
        for _ in range(n):
            x = x * 2
        return x if flag else -x

    jf = tg.jit(f, static_argnums=(1, 2))
    np.testing.assert_allclose(jf(np.ones(2), 3, True), 8.0)
    np.testing.assert_allclose(jf(np.ones(2), 1, False), -2.0)


def test_negative_static_argnums_count_from_the_last_parameter():
    jf = tg.jit(lambda x, n=2: x * n, static_argnums=-1)
    np.testing.assert_allclose(jf(np.ones(2), 5), 5.0)
    np.testing.assert_allclose(jf(np.ones(2)), 2.0)  # the default: not a static (or any) argument
    assert jf.cache_info().misses == 2


def test_a_static_argnum_may_be_passed_by_keyword_or_left_to_its_default():
    counted = Counting(lambda x, n=2: x * n)
    jf = tg.jit(counted, static_argnums=1)
    np.testing.assert_allclose(jf(np.ones(2), 3), 3.0)
    np.testing.assert_allclose(jf(np.ones(2), n=3), 3.0)  # the same static value, by name: a hit
    np.testing.assert_allclose(jf(np.ones(2)), 2.0)
    assert counted.traces == 2


def test_static_argnames_by_position_and_by_keyword():
    jf = tg.jit(lambda x, axis: tnp.sum(x, axis=axis), static_argnames=("axis",))
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(jf(x, 0), x.sum(0))
    np.testing.assert_allclose(jf(x, axis=1), x.sum(1))
    np.testing.assert_allclose(jf(x, axis=0), x.sum(0))
    assert jf.cache_info().hits == 1


def test_a_static_argnum_out_of_range_is_an_argument_error():
    jf = tg.jit(lambda x: x, static_argnums=3)
    with pytest.raises(tg.ArgumentError, match="static_argnums contains 3"):
        jf(np.ones(2))


# ------------------------------------------------------------------ pytrees
def test_pytree_arguments_and_results_keep_their_structure():
    def f(params, batch):
        (x, y) = batch
        pred = x @ params["w"] + params["b"]
        return {"loss": tnp.mean((pred - y) ** 2), "parts": [pred, None, (params["b"],)]}

    params = {"w": np.ones((3, 2), f32), "b": np.full(2, 0.5, f32)}
    batch = (np.ones((4, 3), f32), np.zeros((4, 2), f32))
    out = tg.jit(f)(params, batch)
    assert set(out) == {"loss", "parts"}
    assert isinstance(out["parts"], list) and out["parts"][1] is None and isinstance(out["parts"][2], tuple)
    for leaf in (out["loss"], out["parts"][0], out["parts"][2][0]):
        assert type(leaf) is np.ndarray
    np.testing.assert_allclose(out["loss"], 3.5 ** 2)
    assert out["loss"].shape == () and out["loss"].dtype == f32
    np.testing.assert_allclose(out["parts"][0], np.full((4, 2), 3.5))


def test_python_scalar_results_and_arguments_come_back_as_numpy_arrays():
    out = tg.jit(lambda x, s: (x, s * 2, 3.0, x.sum()))(np.ones(2, f32), 2)
    assert all(type(o) is np.ndarray for o in out)
    assert out[1] == 4 and out[1].dtype == np.int64
    assert out[2] == 3.0 and out[3].dtype == f32


def test_a_python_scalar_argument_promotes_weakly():
    jf = tg.jit(lambda x, s: x * s)
    assert jf(np.ones(3, f32), 2.0).dtype == f32
    assert jf(np.ones(3, f32), 2).dtype == f32
    assert jf(np.ones(3, f32), np.float64(2.0)).dtype == f64  # a NumPy scalar is not weak


def test_keyword_arguments_are_dynamic_leaves():
    jf = tg.jit(lambda x, *, scale: x * scale)
    np.testing.assert_allclose(jf(np.ones(2), scale=np.float64(3.0)), 3.0)
    np.testing.assert_allclose(jf(np.ones(2), scale=np.float64(4.0)), 4.0)
    assert jf.cache_info().hits == 1


# ------------------------------------------------------------- ownership
def test_returning_an_argument_unchanged_gives_a_copy():
    x = np.arange(3.0)
    out = tg.jit(lambda x: x)(x)
    assert out is not x and not np.shares_memory(out, x)
    out[0] = 100.0
    assert x[0] == 0.0


def test_outputs_are_writable_and_never_views_of_inputs_or_constants():
    x = np.arange(6.0).reshape(2, 3)
    const = np.arange(3.0) + 10
    outs = tg.jit(lambda x: (x.reshape(6), x.T, x[0], const + 0 * x[0], tnp.zeros(4),
                             tnp.broadcast_to(x[0], (2, 3))))(x)
    for o in outs:
        assert o.flags.writeable and o.flags.owndata
        assert not np.shares_memory(o, x) and not np.shares_memory(o, const)
    outs[4][0] = 1.0  # a broadcast constant comes back as a real array
    np.testing.assert_array_equal(outs[4], [1.0, 0.0, 0.0, 0.0])


def test_mutating_a_result_does_not_change_later_results():
    closed_over = np.arange(3.0)
    jf = tg.jit(lambda x: (x + 0, 3.0, closed_over, tnp.ones(2)))
    first = jf(np.zeros(3))
    for out in first:
        out[...] = 99.0
    again = jf(np.zeros(3))
    np.testing.assert_array_equal(again[0], np.zeros(3))
    assert again[1] == 3.0
    np.testing.assert_array_equal(again[2], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(again[3], [1.0, 1.0])
    np.testing.assert_array_equal(closed_over, [0.0, 1.0, 2.0])


# ------------------------------------------------------------- decorator
def test_jit_as_a_decorator_with_and_without_arguments():
    @tg.jit
    def plain(x):
        """docstring kept"""
        return x + 1

    @tg.jit(static_argnums=1)
    def with_args(x, n):
        return x * n

    assert isinstance(plain, tg.JitFunction) and isinstance(with_args, tg.JitFunction)
    assert plain.__name__ == "plain" and plain.__doc__ == "docstring kept"
    np.testing.assert_allclose(plain(np.ones(2)), 2.0)
    np.testing.assert_allclose(with_args(np.ones(2), 3), 3.0)


def test_nested_jit_is_inlined_into_the_outer_trace():
    inner_fn = Counting(lambda x: tnp.exp(x) * 3.0)
    inner = tg.jit(inner_fn)
    outer = tg.jit(lambda x: inner(x) + inner(x * 2))
    x = np.array([0.0, 1.0], f32)
    np.testing.assert_allclose(outer(x), np.exp(x) * 3 + np.exp(2 * x) * 3, rtol=1e-6)
    text = outer.lower(x).as_text()
    assert text.count("exp") == 2 and "call" not in text
    assert inner.cache_info().misses == 0  # never compiled on its own
    assert inner_fn.traces == 2


# --------------------------------------------------------- lower / compile
def loss(w, x):
    return tnp.sum(tnp.tanh(x @ w) ** 2)


def test_lower_as_text_traced_is_the_make_ir_dump():
    w, x = np.ones((4, 2), f32), np.ones((3, 4), f32)
    lowered = tg.jit(loss).lower(w, x)
    assert isinstance(lowered, tg.Lowered)
    assert lowered.as_text("traced") == str(tg.make_ir(loss)(w, x))
    assert lowered.as_text() == lowered.as_text("traced")
    assert lowered.as_text("traced", source=True) == tg.make_ir(loss)(w, x).format(source=True)


def test_lower_with_static_arguments_matches_make_ir():
    f = lambda x, n: x ** n
    assert (tg.jit(f, static_argnums=1).lower(np.ones(2), 3).as_text()
            == str(tg.make_ir(f, static_argnums=1)(np.ones(2), 3)))


def test_an_unknown_stage_raises_value_error_listing_the_stages():
    lowered = tg.jit(loss).lower(np.ones((4, 2)), np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"stage 'bogus' .*stages: .*traced"):
        lowered.as_text("bogus")


def test_compile_returns_a_callable_for_that_signature_only():
    jf = tg.jit(loss)
    w, x = np.ones((4, 2), f32), np.ones((3, 4), f32)
    compiled = jf.lower(w, x).compile()
    assert callable(compiled)
    np.testing.assert_allclose(compiled(w, x), jf(w, x))
    np.testing.assert_allclose(compiled(w * 0, x), 0.0)
    with pytest.raises(TypeError, match=r"built for \('w': f32\[4,2\], 'x': f32\[3,4\]\).*'x': f32\[5,4\]"):
        compiled(w, np.ones((5, 4), f32))
    with pytest.raises(TypeError):
        compiled(w, x.astype(f64))


def test_the_interpret_backend_runs_and_an_unknown_backend_is_refused():
    jf = tg.jit(loss, backend="interpret")
    np.testing.assert_allclose(jf(np.eye(2, dtype=f32), np.zeros((3, 2), f32)), 0.0)
    with pytest.raises(ValueError, match=r"unknown backend 'tpu9000'; available: .*interpret"):
        tg.jit(loss, backend="tpu9000")
    with pytest.raises(ValueError, match="unknown backend"):
        tg.jit(backend="tpu9000")(loss)


def test_the_result_agrees_with_numpy():
    rng = np.random.default_rng(1)
    w, x = rng.standard_normal((4, 2)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(tg.jit(loss)(w, x), np.sum(np.tanh(x @ w) ** 2))
    assert loss(w, x).dtype == f64  # the undecorated function runs on NumPy directly
