"""tg.nn and tg.optim: values against plain-Python references (and PyTorch /
JAX where importable), stability at extreme inputs, derivatives by finite
differences and against their analytic forms, float32 and float64, under jit
and on eager Tensors; optimiser steps against their formulas, convergence,
state through jit, and clipping."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad import nn, optim

FLOATS = [np.float32, np.float64]
RTOL = {np.float32: 2e-6, np.float64: 1e-13}


def gelu_ref(x):
    """x Phi(x), with Phi from erfc so that the reference itself does not cancel for x << 0."""
    return np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in np.ravel(x)]).reshape(np.shape(x))


def softmax_ref(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ------------------------------------------------------------ activation values
@pytest.mark.parametrize("dt", FLOATS)
def test_activations_match_their_formulas(dt):
    x = np.linspace(-6, 6, 49).astype(dt)
    x64 = x.astype(np.float64)
    refs = {
        nn.relu: np.maximum(x64, 0),
        nn.sigmoid: 1 / (1 + np.exp(-x64)),
        nn.softplus: np.log1p(np.exp(x64)),
        nn.gelu: gelu_ref(x64),
        lambda v: nn.gelu(v, approximate=True):  # 0.5 x (1 + tanh(u)) = x / (1 + e^(-2u)), without cancellation
            x64 / (1 + np.exp(-2 * math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3))),
    }
    for fn, ref in refs.items():
        out = fn(x)
        assert out.dtype == dt
        np.testing.assert_allclose(out, ref, rtol=RTOL[dt] * 4, atol=RTOL[dt] * 1e-3)


def test_exact_gelu_is_accurate_in_the_far_negative_tail():
    """gelu(x) = x Phi(x) is tiny for x << 0; computing Phi from erfc of a
    positive argument keeps its relative precision there."""
    x = np.array([-30.0, -20.0, -10.0, -5.0, -1e-8, 1e-8, 5.0])
    np.testing.assert_allclose(nn.gelu(x), gelu_ref(x), rtol=5e-13)


@pytest.mark.parametrize("dt", FLOATS)
def test_activations_and_their_gradients_stay_finite_at_extreme_inputs(dt):
    x = np.array([-1e4, -50.0, 50.0, 1e4], dt)
    tiny = math.exp(-50)  # sigmoid(-50) and softplus(-50), to 1e-22 relative
    np.testing.assert_allclose(nn.sigmoid(x), [0, tiny, 1, 1], rtol=RTOL[dt])
    np.testing.assert_allclose(nn.softplus(x), [0, tiny, 50, 1e4], rtol=RTOL[dt])
    np.testing.assert_array_equal(nn.gelu(x), [0, 0, 50, 1e4])
    np.testing.assert_array_equal(nn.gelu(x, approximate=True), [0, 0, 50, 1e4])
    for fn in (nn.sigmoid, nn.softplus, nn.gelu, lambda v: nn.gelu(v, approximate=True)):
        g = tg.grad(lambda v: tnp.sum(fn(v)))(x)
        assert np.all(np.isfinite(g)), g
    np.testing.assert_allclose(tg.grad(lambda v: tnp.sum(nn.softplus(v)))(x), [0, tiny, 1, 1], rtol=RTOL[dt])


def test_sigmoid_keeps_relative_precision_of_tiny_values():
    x = np.array([-30.0, -700.0])
    np.testing.assert_allclose(nn.sigmoid(x), np.exp(x) / (1 + np.exp(x)), rtol=1e-15)


def test_derivatives_at_zero_follow_the_usual_conventions():
    """relu'(0) = 0 (PyTorch and JAX); the smooth functions get their true slope,
    which an abs(x) or maximum(x, 0) inside the formula would break."""
    at0 = lambda fn: float(tg.grad(fn)(0.0))
    assert at0(nn.relu) == 0.0
    assert at0(nn.sigmoid) == pytest.approx(0.25, rel=1e-15)
    assert at0(nn.softplus) == pytest.approx(0.5, rel=1e-15)
    assert at0(nn.gelu) == pytest.approx(0.5, rel=1e-15)
    assert at0(lambda v: nn.gelu(v, approximate=True)) == pytest.approx(0.5, rel=1e-15)


def test_functions_accept_python_lists():
    for fn in (nn.relu, nn.sigmoid, nn.softplus, nn.gelu, nn.logsumexp, nn.softmax, nn.log_softmax):
        np.testing.assert_allclose(fn([0.5, -1.0]), fn(np.array([0.5, -1.0])))
    assert nn.cross_entropy([[0.0, 0.0]], [1]) == pytest.approx(math.log(2))
    assert nn.mse([1.0, 2.0], [1.0, 4.0]) == 2.0


def test_relu_propagates_nan_and_keeps_integer_dtype():
    assert np.isnan(nn.relu(np.array([np.nan])))[0]
    out = nn.relu(np.array([-2, 3], np.int32))
    assert out.dtype == np.int32 and out.tolist() == [0, 3]


# --------------------------------------------------- logsumexp and softmax family
@pytest.mark.parametrize("dt", FLOATS)
def test_logsumexp_softmax_and_log_softmax_values(dt):
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(dt)
    x64 = x.astype(np.float64)
    for axis in (None, 0, -1, (0, 2)):
        ref = np.log(np.exp(x64).sum(axis=axis))
        np.testing.assert_allclose(nn.logsumexp(x, axis=axis), ref, rtol=RTOL[dt] * 4)
        kept = nn.logsumexp(x, axis=axis, keepdims=True)
        assert kept.shape == np.log(np.exp(x64).sum(axis=axis, keepdims=True)).shape
    for axis in (0, 1, -1):
        sm = nn.softmax(x, axis=axis)
        assert sm.dtype == dt
        np.testing.assert_allclose(sm, softmax_ref(x64, axis), rtol=RTOL[dt] * 4)
        np.testing.assert_allclose(nn.log_softmax(x, axis=axis), np.log(softmax_ref(x64, axis)),
                                   rtol=RTOL[dt] * 8, atol=RTOL[dt])


@pytest.mark.parametrize("dt", FLOATS)
def test_softmax_family_is_stable_at_huge_and_infinite_logits(dt):
    inf = np.inf
    x = np.array([[1e4, 1e4 - 1, -inf], [-1e4, -1e4 + 2, -1e4], [-inf, -inf, -inf], [0, inf, 1]], dt)
    lse = nn.logsumexp(x, axis=-1)
    np.testing.assert_allclose(lse[:2], [1e4 + math.log1p(math.exp(-1)), -1e4 + 2 + math.log(1 + 2 * math.exp(-2))],
                               rtol=1e-7)
    assert lse[2] == -inf and lse[3] == inf
    sm, lsm = nn.softmax(x[:2]), nn.log_softmax(x[:2])
    np.testing.assert_allclose(sm[0], [1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1)), 0], rtol=1e-6)
    assert lsm[0, 2] == -inf
    np.testing.assert_allclose(lsm[1], [-2 - math.log(1 + 2 * math.exp(-2)), -math.log(1 + 2 * math.exp(-2)),
                                        -2 - math.log(1 + 2 * math.exp(-2))], rtol=1e-6)
    with np.errstate(invalid="ignore"):  # an all -inf row has no distribution (PyTorch gives NaN too)
        assert np.all(np.isnan(nn.softmax(x[2])))


def test_grad_of_logsumexp_is_softmax_at_ties_and_minus_inf_entries():
    """The max shift is a constant: a tie in the max must not split or double
    the gradient, and a -inf entry gets exactly zero (not NaN)."""
    x = np.array([[3.0, 3.0, 1.0, -np.inf], [-2.0, 5.0, 5.0, 5.0]])
    g = tg.grad(lambda v: tnp.sum(nn.logsumexp(v, axis=1)))(x)
    np.testing.assert_allclose(g, nn.softmax(x), rtol=1e-15)
    np.testing.assert_allclose(g.sum(axis=1), 1, rtol=1e-15)
    assert g[0, 3] == 0
    np.testing.assert_allclose(tg.grad(nn.logsumexp)(np.array([1e4, 1e4, -1e4])), [0.5, 0.5, 0], rtol=1e-15)


def test_grad_of_log_softmax_is_finite_with_minus_inf_logits():
    x = np.array([2.0, 0.5, -np.inf])
    g = tg.grad(lambda v: nn.log_softmax(v)[0])(x)
    np.testing.assert_allclose(g, np.array([1, 0, 0]) - softmax_ref(x), rtol=1e-15)


# ---------------------------------------------------------------------- losses
def test_one_hot_rows_dtypes_and_out_of_range_labels():
    oh = nn.one_hot(np.array([0, 2, 3, -1]), 3)
    assert oh.dtype == np.float32
    np.testing.assert_array_equal(oh, [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    assert nn.one_hot(np.array([[1]], np.int32), 2, dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("dt", FLOATS)
def test_cross_entropy_takes_integer_labels_or_probabilities(dt):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((6, 5)).astype(dt)
    labels = rng.integers(0, 5, 6)
    ref = -np.mean(np.log(softmax_ref(logits.astype(np.float64)))[np.arange(6), labels])
    by_index = nn.cross_entropy(logits, labels)
    assert by_index.dtype == dt
    np.testing.assert_allclose(by_index, ref, rtol=RTOL[dt] * 4)
    np.testing.assert_allclose(nn.cross_entropy(logits, nn.one_hot(labels, 5, dt)), ref, rtol=RTOL[dt] * 4)
    # soft targets, and leading batch axes are all averaged over
    probs = softmax_ref(rng.standard_normal((6, 5)))
    soft_ref = -np.mean(np.sum(probs * np.log(softmax_ref(logits.astype(np.float64))), axis=-1))
    np.testing.assert_allclose(nn.cross_entropy(logits.reshape(2, 3, 5), probs.reshape(2, 3, 5)), soft_ref,
                               rtol=RTOL[dt] * 4)


@pytest.mark.parametrize("dt", FLOATS)
def test_grad_of_cross_entropy_is_softmax_minus_one_hot_over_batch(dt):
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal((4, 3)) * 3).astype(dt)
    labels = np.array([0, 2, 1, 2])
    g = tg.grad(nn.cross_entropy)(logits, labels)
    assert g.dtype == dt
    want = (softmax_ref(logits.astype(np.float64)) - np.eye(3)[labels]) / 4
    np.testing.assert_allclose(g, want, rtol=RTOL[dt] * 8, atol=RTOL[dt] * 1e-2)


def test_cross_entropy_with_minus_inf_logits_and_huge_logits():
    logits = np.array([[0.0, -np.inf, 1e4], [5.0, -np.inf, 5.0]])
    labels = np.array([2, 0])
    loss, g = tg.value_and_grad(nn.cross_entropy)(logits, labels)
    assert loss == pytest.approx(math.log(2) / 2, rel=1e-15)
    np.testing.assert_allclose(g, [[0, 0, 0], [-0.25, 0, 0.25]], atol=1e-300)
    assert nn.cross_entropy(np.array([[0.0, -np.inf]]), np.array([1])) == np.inf


def test_cross_entropy_names_the_label_shape_it_expects():
    with pytest.raises(tg.ShapeError, match=r"logits.shape\[:-1\]"):
        nn.cross_entropy(np.zeros((4, 3)), np.zeros((3,), np.int64))
    with pytest.raises(tg.ShapeError, match="probability labels"):
        nn.cross_entropy(np.zeros((4, 3)), np.zeros((4,)))


def test_mse_value_and_gradient():
    pred, target = np.array([1.0, 2.0, 4.0]), np.array([0.0, 2.0, 1.0])
    assert nn.mse(pred, target) == pytest.approx(10 / 3)
    np.testing.assert_allclose(tg.grad(nn.mse)(pred, target), 2 * (pred - target) / 3)


# ----------------------------------------------------- derivatives by differences
LABELS = np.array([1, 0, 2])
SMOOTH = {
    "sigmoid": lambda x: nn.sigmoid(x),
    "softplus": lambda x: nn.softplus(x),
    "gelu": lambda x: nn.gelu(x),
    "gelu_tanh": lambda x: nn.gelu(x, approximate=True),
    "relu": lambda x: nn.relu(x),  # away from 0
    "logsumexp": lambda x: nn.logsumexp(x, axis=0),
    "softmax": lambda x: nn.softmax(x, axis=0),
    "log_softmax": lambda x: nn.log_softmax(x),
    "cross_entropy": lambda x: nn.cross_entropy(x, LABELS),
    "soft_cross_entropy": lambda x: nn.cross_entropy(x, nn.softmax(x[::-1] * 0.5)),
    "mse": lambda x: nn.mse(x, np.ones(x.shape)),
}


@pytest.mark.parametrize("name", SMOOTH)
def test_derivatives_agree_with_finite_differences(name):
    x = np.array([[0.3, -1.2, 2.1], [1.4, 0.7, -0.4], [-2.3, 0.2, 0.9]])
    tg.check_grads(SMOOTH[name], (x,), order=2)
    tg.check_grads(SMOOTH[name], (x.astype(np.float32),), order=1)


# ----------------------------------------------------------- jit and eager Tensors
def _all_nn(x, logits, labels):
    return (nn.relu(x), nn.sigmoid(x), nn.softplus(x), nn.gelu(x), nn.gelu(x, approximate=True),
            nn.logsumexp(logits, axis=-1), nn.softmax(logits), nn.log_softmax(logits),
            nn.one_hot(labels, 3, x.dtype), nn.cross_entropy(logits, labels), nn.mse(x, x * 0.5))


@pytest.mark.parametrize("dt", FLOATS)
def test_compiled_nn_agrees_with_numpy(dt):
    x = np.array([[-1e4, 0.0, 1e4], [0.5, -7.0, 2.0], [-30.0, 1.0, 30.0]], dt)
    logits = np.array([[-1e4, 0.0, 1e4], [0.5, -np.inf, 2.0], [-30.0, 1.0, 30.0]], dt)
    labels = np.array([2, 0, 1], np.int32)
    compiled, eager = tg.jit(_all_nn)(x, logits, labels), _all_nn(x, logits, labels)
    for got, want in zip(compiled, eager):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=RTOL[dt] * 4, atol=1e-30)


@pytest.mark.parametrize("dt", FLOATS)
def test_compiled_gradient_of_a_small_network(dt):
    rng = np.random.default_rng(3)
    params = {"w": nn.glorot_uniform(rng, (4, 3), dt), "b": nn.zeros(rng, (3,), dt)}
    x, y = rng.standard_normal((5, 4)).astype(dt), rng.integers(0, 3, 5)

    def loss(p, x, y):
        h = nn.gelu(x @ p["w"] + p["b"])
        return nn.cross_entropy(h, y) + 0.1 * tnp.sum(nn.softplus(h)) + nn.mse(nn.sigmoid(h), 0.5 * h)

    compiled = tg.jit(tg.value_and_grad(loss))(params, x, y)
    interpreted = tg.value_and_grad(loss)(params, x, y)
    for got, want in zip(tg.tree.flatten(compiled)[0], tg.tree.flatten(interpreted)[0]):
        assert got.dtype == dt
        np.testing.assert_allclose(got, want, rtol=RTOL[dt] * 20, atol=RTOL[dt] * 1e-2)


def test_eager_backward_matches_traced_gradients():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    labels = np.array([3, 0, 1])
    fns = [lambda v: tnp.sum(nn.relu(v) + nn.sigmoid(v) + nn.softplus(v) + nn.gelu(v)),
           lambda v: tnp.sum(nn.logsumexp(v, axis=1) * np.arange(3)) + tnp.sum(nn.softmax(v) * v),
           lambda v: nn.cross_entropy(v, labels) + tnp.sum(nn.log_softmax(v)[:, 0])]
    for fn in fns:
        t = tg.tensor(x, requires_grad=True)
        out = fn(t)
        assert isinstance(out, tg.Tensor)
        out.backward()
        np.testing.assert_allclose(t.grad.numpy(), tg.grad(fn)(x), rtol=1e-6, atol=1e-7)


def test_eager_max_shift_is_detached_so_ties_do_not_leak_gradient():
    t = tg.tensor([[2.0, 2.0, -np.inf]], requires_grad=True)
    nn.logsumexp(t, axis=1).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [[0.5, 0.5, 0.0]])


# ----------------------------------------------------------------- initialisers
def test_initialisers_shapes_dtypes_scales_and_seeds():
    w = nn.glorot_uniform(0, (300, 200))
    assert w.dtype == np.float32 and w.shape == (300, 200)
    assert np.abs(w).max() <= math.sqrt(6 / 500)
    np.testing.assert_array_equal(w, nn.glorot_uniform(np.random.default_rng(0), (300, 200)))
    assert not np.array_equal(w, nn.glorot_uniform(1, (300, 200)))
    for init, var in ((nn.glorot_normal, 2 / 500), (nn.he_normal, 2 / 300), (nn.he_uniform, 2 / 300),
                      (nn.glorot_uniform, 2 / 500)):
        assert init(5, (300, 200)).var() == pytest.approx(var, rel=0.03)
    assert nn.kaiming_normal is nn.he_normal and nn.xavier_uniform is nn.glorot_uniform
    conv = nn.he_normal(0, (3, 3, 64, 8), np.float64)  # HWIO: fan_in = 3 * 3 * 64
    assert conv.dtype == np.float64 and conv.std() == pytest.approx(math.sqrt(2 / 576), rel=0.05)
    assert not nn.zeros(0, (2, 3)).any() and nn.zeros(0, (2,)).dtype == np.float32


# ------------------------------------------------------------------- optimisers
def quadratic_grads(p):
    """Gradients of sum(a * (p - 3)^2) over a pytree (a = 1, 2, 0.5 per leaf)."""
    return {"w": 2 * (p["w"] - 3), "layers": [4 * (p["layers"][0] - 3), (p["layers"][1][0] - 3,)]}


PARAMS = {"w": np.array([1.0, -2.0]), "layers": [np.array([[0.5]]), (np.array(4.0),)]}


def leaves(tree):
    return tg.tree.flatten(tree)[0]


def test_sgd_step_is_p_minus_lr_g():
    opt = optim.sgd(0.1)
    new, state = opt.update(quadratic_grads(PARAMS), opt.init(PARAMS), PARAMS)
    for p, g, q in zip(leaves(PARAMS), leaves(quadratic_grads(PARAMS)), leaves(new)):
        np.testing.assert_allclose(q, p - 0.1 * g, rtol=1e-15)
    assert state == ()


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_steps_follow_the_formula(nesterov):
    lr, beta, g1, g2 = 0.1, 0.9, np.array([1.0, -2.0]), np.array([0.5, 3.0])
    opt = optim.momentum(lr, beta, nesterov=nesterov)
    p0 = np.array([0.0, 1.0])
    p1, s = opt.update(g1, opt.init(p0), p0)
    p2, s = opt.update(g2, s, p1)
    v1, v2 = g1, beta * g1 + g2
    step1, step2 = (g1 + beta * v1, g2 + beta * v2) if nesterov else (v1, v2)
    np.testing.assert_allclose(p2, p0 - lr * step1 - lr * step2, rtol=1e-15)
    np.testing.assert_allclose(s, v2, rtol=1e-15)


def test_adam_steps_with_bias_correction():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = optim.adam(lr, b1, b2, eps)
    p0, g1, g2 = np.array([1.0, -1.0, 0.0]), np.array([0.5, -4.0, 1e-3]), np.array([-1.0, 2.0, 1e-3])
    p1, s = opt.update(g1, opt.init(p0), p0)
    # bias correction makes the first step lr * g / (|g| + eps): about lr in every coordinate
    np.testing.assert_allclose(p1, p0 - lr * g1 / (np.abs(g1) + eps), rtol=1e-12)
    p2, s = opt.update(g2, s, p1)
    m, v = (1 - b1) * (b1 * g1 + g2), (1 - b2) * (b2 * g1 ** 2 + g2 ** 2)
    m_hat, v_hat = m / (1 - b1 ** 2), v / (1 - b2 ** 2)
    np.testing.assert_allclose(p2, p1 - lr * m_hat / (np.sqrt(v_hat) + eps), rtol=1e-12)
    assert s.count == 2 and s.count.dtype == np.int32
    np.testing.assert_allclose(s.mu, m, rtol=1e-15)
    np.testing.assert_allclose(s.nu, v, rtol=1e-15)


@pytest.mark.parametrize("make", [lambda: optim.sgd(0.2), lambda: optim.momentum(0.05),
                                  lambda: optim.momentum(0.05, nesterov=True), lambda: optim.adam(0.3)],
                         ids=["sgd", "momentum", "nesterov", "adam"])
def test_optimisers_converge_on_a_quadratic(make):
    opt = make()
    params, state = PARAMS, opt.init(PARAMS)
    for _ in range(150):
        params, state = opt.update(quadratic_grads(params), state, params)
    for p in leaves(params):
        np.testing.assert_allclose(p, 3.0, atol=2e-2)


@pytest.mark.parametrize("make", [lambda: optim.sgd(0.1), lambda: optim.momentum(0.1, nesterov=True),
                                  lambda: optim.adam(0.1)], ids=["sgd", "nesterov", "adam"])
def test_optimiser_state_passes_through_jit(make):
    opt = make()
    params = {"w": np.array([1.0, -2.0], np.float32), "b": [np.array(4.0, np.float32)]}
    loss = lambda p: tnp.sum(tnp.square(p["w"] - 3)) + tnp.sum(p["b"][0] ** 2)

    @tg.jit
    def step(p, s):
        g = tg.grad(loss)(p)
        return opt.update(g, s, p)

    ref_p, ref_s = params, opt.init(params)
    p, s = params, opt.init(params)
    for _ in range(3):
        p, s = step(p, s)
        ref_p, ref_s = opt.update(tg.grad(loss)(ref_p), ref_s, ref_p)
    for got, want in zip(leaves((p, s)), leaves((ref_p, ref_s))):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert all(q.dtype == np.float32 for q in leaves(p))
    assert step.cache_info().misses == 1


# --------------------------------------------------------------------- clipping
def test_clip_by_value_clips_every_leaf_and_keeps_none():
    out = optim.clip_by_value({"a": np.array([-3.0, 0.5, 9.0]), "b": None}, -1, 1)
    np.testing.assert_array_equal(out["a"], [-1, 0.5, 1])
    assert out["b"] is None


def test_clip_by_global_norm_keeps_direction_and_reports_the_norm():
    grads = {"a": np.array([3.0, 0.0], np.float32), "b": (np.array([[4.0]], np.float32),)}
    clipped, norm = optim.clip_by_global_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(clipped["a"], [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(clipped["b"][0], [[0.8]], rtol=1e-6)
    assert clipped["a"].dtype == np.float32
    assert optim.global_norm(clipped) == pytest.approx(1.0)
    same, norm = optim.clip_by_global_norm(grads, 10.0)  # below the threshold: untouched, exactly
    assert norm == pytest.approx(5.0)
    for got, want in zip(leaves(same), leaves(grads)):
        np.testing.assert_array_equal(got, want)
    zero, norm = optim.clip_by_global_norm([np.zeros(3)], 1.0)
    assert norm == 0 and not np.isnan(zero[0]).any()


def test_clipping_under_jit():
    grads = [np.array([3.0, 4.0]), np.array([12.0])]
    clipped, norm = tg.jit(lambda g: optim.clip_by_global_norm(g, 6.5))(grads)
    assert norm == pytest.approx(13.0)
    np.testing.assert_allclose(clipped[0], [1.5, 2.0], rtol=1e-15)
    np.testing.assert_allclose(clipped[1], [6.0], rtol=1e-15)
    np.testing.assert_allclose(tg.jit(lambda g: optim.clip_by_value(g, -3.5, 3.5))(grads)[1], [3.5])


def test_eager_training_step_with_clipping_and_adam_matches_the_functional_one():
    rng = np.random.default_rng(6)
    w0, x, y = nn.he_normal(rng, (4, 3)), rng.standard_normal((5, 4)).astype(np.float32), rng.integers(0, 3, 5)
    loss = lambda w: nn.cross_entropy(nn.relu(x @ w) - x @ w * 0.5, y)
    opt = optim.adam(0.05)

    w_ref, s_ref = w0, opt.init(w0)
    g, n_ref = optim.clip_by_global_norm(tg.grad(loss)(w_ref), 0.1)
    w_ref, s_ref = opt.update(g, s_ref, w_ref)

    w, s = tg.tensor(w0, requires_grad=True), opt.init(w0)
    loss(w).backward()
    with tg.no_grad():
        g, n = optim.clip_by_global_norm(w.grad, 0.1)
        assert isinstance(g, tg.Tensor) and isinstance(n, tg.Tensor) and not g.requires_grad
        new, s = opt.update(g, s, w)
        w[...] = new
    assert w.is_leaf and w.requires_grad
    assert float(n) == pytest.approx(float(n_ref), rel=1e-6)
    np.testing.assert_allclose(w.detach().numpy(), w_ref, rtol=1e-6)


# -------------------------------------------- optional cross-checks: PyTorch, JAX
def test_nn_agrees_with_torch_functional():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.array([[-1e4, -3.0, -0.5, 0.0], [0.7, 2.0, 40.0, 1e4]])
    tx = torch.tensor(x)
    for ours, theirs in ((nn.relu, F.relu), (nn.sigmoid, torch.sigmoid), (nn.softplus, F.softplus),
                         (nn.gelu, F.gelu), (lambda v: nn.gelu(v, approximate=True),
                                             lambda v: F.gelu(v, approximate="tanh")),
                         (nn.softmax, lambda v: F.softmax(v, -1)), (nn.log_softmax, lambda v: F.log_softmax(v, -1))):
        np.testing.assert_allclose(ours(x), theirs(tx).numpy(), rtol=1e-12, atol=1e-300)
    labels = np.array([2, 1])
    np.testing.assert_allclose(nn.cross_entropy(x, labels), F.cross_entropy(tx, torch.tensor(labels)).item(),
                               rtol=1e-12)


def test_adam_agrees_with_torch_optim():
    torch = pytest.importorskip("torch")
    p0 = np.array([1.0, -2.0, 0.5])
    grads = [np.array([0.3, -1.0, 2.0]), np.array([-0.2, 0.5, 1.0]), np.array([1.0, 1.0, -3.0])]
    tp = torch.tensor(p0, requires_grad=True)
    topt = torch.optim.Adam([tp], lr=0.1)
    opt = optim.adam(0.1)
    p, s = p0, opt.init(p0)
    for g in grads:
        tp.grad = torch.tensor(g)
        topt.step()
        p, s = opt.update(g, s, p)
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12)


def test_nn_agrees_with_jax_nn():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    x = np.array([[-1e4, -3.0, -np.inf, 0.0], [0.7, 2.0, 40.0, 1e4]])
    np.testing.assert_allclose(nn.logsumexp(x, axis=1), jax.nn.logsumexp(x, axis=1), rtol=1e-13)
    np.testing.assert_allclose(tg.grad(lambda v: tnp.sum(nn.logsumexp(v, axis=1)))(x),
                               jax.grad(lambda v: jax.nn.logsumexp(v, axis=1).sum())(x), rtol=1e-13)
    finite = np.where(np.isinf(x), 0.0, x)
    np.testing.assert_allclose(nn.gelu(finite, approximate=True), jax.nn.gelu(finite, approximate=True),
                               rtol=1e-13)
    np.testing.assert_allclose(nn.gelu(finite), jax.nn.gelu(finite, approximate=False), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(nn.one_hot(np.array([0, 3, 5]), 4), jax.nn.one_hot(np.array([0, 3, 5]), 4))
