"""User-defined derivatives (custom_vjp, custom_jvp) and rematerialisation
(checkpoint): the rules are used in every mode they serve, eagerly and under
jit, to higher order; mistakes in a rule are reported by name; checkpoint
gives the same gradients while the backward program stores fewer forward
values and recomputes the rest."""

from __future__ import annotations

import numpy as np
import pytest

import ir
import tracegrad as tg
import tracegrad.numpy as tnp
from tnp_helpers import make


def N(*shape, seed=0):
    return make(shape, np.float64, kind="any", seed=("C", seed)) / 2


def close(actual, expected, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# ------------------------------------------------------------ custom_vjp
@tg.custom_vjp
def round_ste(x):
    """Rounding with a straight-through gradient."""
    return tnp.round(x)


round_ste.defvjp(lambda x: (round_ste(x), None), lambda _, g: (g,))


@tg.custom_vjp
def clip_gradient(x):
    """The identity, whose gradient is clipped to [-1, 1]."""
    return x


clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (tnp.clip(g, -1.0, 1.0),))


@tg.custom_vjp
def sin_saving_cos(x):
    return tnp.sin(x)


sin_saving_cos.defvjp(lambda x: (sin_saving_cos(x), tnp.cos(x)), lambda cos_x, g: (g * cos_x,))


@tg.custom_vjp
def scaled_product(x, y):
    return x * y


scaled_product.defvjp(lambda x, y: (scaled_product(x, y), (x, y)), lambda res, g: (g * res[1], g * res[0]))


def test_straight_through_rounding_rounds_forward_and_passes_the_gradient_through():
    x = np.array([0.2, 1.7, -2.4, 3.5])
    close(round_ste(x), np.round(x))
    close(tg.jit(round_ste)(x), np.round(x))
    loss = lambda x: tnp.sum(round_ste(x) * x)  # d/dx = round(x) + x * 1
    close(tg.grad(loss)(x), np.round(x) + x)
    close(tg.jit(tg.grad(loss))(x), np.round(x) + x)
    value, g = tg.value_and_grad(lambda x: tnp.sum(round_ste(x)))(x)
    close(value, np.sum(np.round(x)))
    close(g, np.ones(4))
    # without the custom rule, round has a zero derivative
    close(tg.grad(lambda x: tnp.sum(tnp.round(x)))(x), np.zeros(4))


def test_clipped_gradient_clips_the_cotangent_only():
    x = N(3)
    out, pullback = tg.vjp(clip_gradient, x)
    close(out, x)
    close(pullback(np.array([3.0, -0.5, -7.0]))[0], [1.0, -0.5, -1.0])
    close(tg.grad(lambda x: tnp.sum(clip_gradient(x) * 5.0))(x), np.ones(3))
    close(tg.grad(lambda x: tnp.sum(clip_gradient(x) * 0.25))(x), np.full(3, 0.25))
    close(tg.jit(tg.grad(lambda x: tnp.sum(clip_gradient(x * x) * 5.0)))(x), 2 * x)  # chain rule after clipping


def test_custom_vjp_bwd_reads_residuals_and_matches_finite_differences():
    x, y = N(4), N(4, seed=1)
    close(tg.grad(lambda x: tnp.sum(sin_saving_cos(x)))(x), np.cos(x))
    tg.check_grads(sin_saving_cos, (x,), order=1, modes=("rev",))
    gx, gy = tg.grad(lambda x, y: tnp.sum(scaled_product(x, y) ** 2), argnums=(0, 1))(x, y)
    close(gx, 2 * x * y * y)
    close(gy, 2 * x * x * y)
    tg.check_grads(scaled_product, (x, y), order=1, modes=("rev",))


def test_custom_vjp_reverse_over_reverse_differentiates_the_residuals():
    """The second derivative flows through bwd's use of the residuals (cos x,
    or x itself), which fwd computed from x: -sin(x), not 0."""
    x = N(3)
    second = tg.grad(lambda x: tg.grad(lambda x: tnp.sum(sin_saving_cos(x)))(x)[0])(x)
    close(second, [-np.sin(x[0]), 0.0, 0.0])
    tg.check_grads(sin_saving_cos, (x,), order=2, modes=("rev",))
    tg.check_grads(scaled_product, (x, N(3, seed=1)), order=2, modes=("rev",))
    hessian_rows = tg.jacrev(tg.grad(lambda x: tnp.sum(sin_saving_cos(x))))(x)
    close(hessian_rows, np.diag(-np.sin(x)))
    close(tg.jit(tg.jacrev(tg.grad(lambda x: tnp.sum(sin_saving_cos(x)))))(x), np.diag(-np.sin(x)))


def test_custom_vjp_cannot_be_differentiated_in_forward_mode():
    x = N(3)
    with pytest.raises(TypeError, match="custom_jvp"):
        tg.jvp(round_ste, (x,), (np.ones(3),))
    with pytest.raises(TypeError, match="forward mode"):
        tg.jacfwd(sin_saving_cos)(x)
    with pytest.raises(TypeError, match="forward mode"):
        tg.hessian(lambda x: tnp.sum(sin_saving_cos(x)))(x)


def test_custom_vjp_bwd_returning_the_wrong_number_of_cotangents_is_an_argument_error():
    @tg.custom_vjp
    def f(x):
        return x * 2.0

    f.defvjp(lambda x: (f(x), None), lambda _, g: (g, g))
    with pytest.raises(tg.ArgumentError, match=r"f: bwd must return a tuple with one cotangent per argument \(1\)"):
        tg.grad(lambda x: tnp.sum(f(x)))(N(3))

    f.defvjp(lambda x: (f(x), None), lambda _, g: g)  # a bare array, not a tuple
    with pytest.raises(tg.ArgumentError, match="one cotangent per argument"):
        tg.jit(tg.grad(lambda x: tnp.sum(f(x))))(N(3))


def test_custom_vjp_bwd_returning_a_cotangent_of_the_wrong_shape_or_dtype_is_a_shape_error():
    @tg.custom_vjp
    def f(x, y):
        return x * y

    f.defvjp(lambda x, y: (f(x, y), None), lambda _, g: (g, g[:2]))
    with pytest.raises(tg.ShapeError, match=r"f: bwd returned a cotangent of type f64\[2\] for argument leaf 1 of "
                                            r"type f64\[3\]"):
        tg.grad(lambda x, y: tnp.sum(f(x, y)))(N(3), N(3))

    f.defvjp(lambda x, y: (f(x, y), None), lambda _, g: (g, g.astype(np.float32)))
    with pytest.raises(tg.ShapeError, match="f32.*f64"):
        tg.grad(lambda x, y: tnp.sum(f(x, y)))(N(3), N(3))


def test_custom_vjp_misuse_is_reported():
    @tg.custom_vjp
    def no_rule(x):
        return x

    with pytest.raises(TypeError, match="defvjp"):
        tg.grad(lambda x: tnp.sum(no_rule(x)))(N(3))

    @tg.custom_vjp
    def bad_fwd(x):
        return x

    bad_fwd.defvjp(lambda x: x, lambda _, g: (g,))
    with pytest.raises(tg.ArgumentError, match="pair"):
        tg.grad(lambda x: tnp.sum(bad_fwd(x)))(N(3))

    def closes_over_traced(w):
        @tg.custom_vjp
        def f(x):
            return x * w

        f.defvjp(lambda x: (f(x), None), lambda _, g: (g * w,))
        return tnp.sum(f(np.ones(3)))

    with pytest.raises(tg.ArgumentError, match="closes over a traced value"):
        tg.grad(closes_over_traced)(N(3))


def test_check_grads_failure_names_the_cotangent_and_the_plain_derivative():
    """A wrong bwd (tanh's derivative written 1 - tanh(x) instead of
    1 - tanh(x)**2): reverse mode compares u·J for a random cotangent u, so the
    message says so, shows u, and divides by it to give numbers the user
    recognises: 1 - tanh(0.3) and 1 - tanh(0.3)**2."""
    @tg.custom_vjp
    def bad_tanh(x):
        return tnp.tanh(x)

    bad_tanh.defvjp(lambda x: (tnp.tanh(x), x), lambda x, g: (g * (1 - tnp.tanh(x)),))
    x = np.array([0.3, -1.2, 0.8])
    with pytest.raises(AssertionError) as info:
        tg.check_grads(bad_tanh, (x,), order=1, modes=("rev",))
    message = str(info.value)
    assert "element (0,)" in message and "random cotangent u = [" in message
    assert "tg.vjp(bad_tanh, *args)" in message and "sum(u * bad_tanh(*args))" in message
    assert f"d out[0] / d x[0] if bad_tanh is elementwise: analytic {1 - np.tanh(0.3):.8g}, numeric 0.9151" in message

    with pytest.raises(AssertionError, match="the gradient itself: analytic 0.70868"):  # scalar output: u is a number
        tg.check_grads(lambda x: tnp.sum(bad_tanh(x)), (x,), order=1, modes=("rev",))

    @tg.custom_jvp
    def bad_sin(x):
        return tnp.sin(x)

    bad_sin.defjvp(lambda primals, tangents: (tnp.sin(primals[0]), tnp.sin(primals[0]) * tangents[0]))
    with pytest.raises(AssertionError, match=r"J·v along the random tangent v = \[.*tg.jvp\(bad_sin, args, v\)"):
        tg.check_grads(bad_sin, (x,), order=1, modes=("fwd",))


# ------------------------------------------------------------ custom_jvp
@tg.custom_jvp
def logsumexp(x):
    m = tnp.max(x)
    return m + tnp.log(tnp.sum(tnp.exp(x - m)))


@logsumexp.defjvp
def logsumexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = logsumexp(x)
    return y, tnp.sum(tnp.exp(x - y) * t)


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


BIG = np.array([1000.0, 1001.0, 999.0, 1000.5])  # exp overflows without the max shift


def test_stable_logsumexp_value_and_gradient_is_softmax():
    p = softmax(BIG)
    close(logsumexp(BIG), 1001.0 + np.log(np.sum(np.exp(BIG - 1001.0))))
    close(tg.grad(logsumexp)(BIG), p)
    close(tg.jit(tg.grad(logsumexp))(BIG), p)
    close(tg.vjp(logsumexp, BIG)[1](np.array(2.0))[0], 2 * p)  # reverse mode: the transposed rule
    _, t = tg.jvp(logsumexp, (BIG,), (np.ones(4),))
    close(t, 1.0)
    _, t = tg.jit(lambda x, v: tg.jvp(logsumexp, (x,), (v,)))(BIG, np.eye(4)[1])
    close(t, p[1])


def test_stable_logsumexp_hessian_is_diag_p_minus_p_p_transpose():
    p = softmax(BIG)
    expected = np.diag(p) - np.outer(p, p)
    close(tg.hessian(logsumexp)(BIG), expected)
    close(tg.jit(tg.hessian(logsumexp))(BIG), expected)
    close(tg.jacrev(tg.grad(logsumexp))(BIG), expected)  # reverse over reverse
    close(tg.grad(lambda x: tg.grad(logsumexp)(x)[0])(BIG), expected[0])
    _, hv = tg.jvp(tg.grad(logsumexp), (BIG,), (np.ones(4),))
    close(hv, expected @ np.ones(4), atol=1e-12)


def test_custom_jvp_rule_is_used_instead_of_differentiating_the_function():
    @tg.custom_jvp
    def f(x):
        return tnp.sin(x)

    f.defjvp(lambda p, t: (f(*p), 10.0 * t[0]))  # deliberately not cos
    x = N(3)
    close(f(x), np.sin(x))
    close(tg.grad(lambda x: tnp.sum(f(x)))(x), np.full(3, 10.0))
    close(tg.jvp(f, (x,), (np.ones(3),))[1], np.full(3, 10.0))
    close(tg.jit(tg.jacrev(f))(x), 10.0 * np.eye(3))


def test_custom_jvp_with_two_arguments_and_a_constant_one():
    @tg.custom_jvp
    def f(x, y):
        return x * y

    f.defjvp(lambda p, t: (f(*p), t[0] * p[1] + p[0] * t[1]))
    x, y = N(3), N(3, seed=1)
    gx, gy = tg.grad(lambda x, y: tnp.sum(f(x, y)), argnums=(0, 1))(x, y)
    close(gx, y)
    close(gy, x)
    close(tg.grad(lambda x: tnp.sum(f(x, y)))(x), y)  # y a constant: its tangent is zero
    close(tg.grad(lambda x: tnp.sum(f(x, 3.0)))(x), np.full(3, 3.0))
    tg.check_grads(f, (x, y), order=2)


def test_custom_jvp_misuse_is_reported():
    @tg.custom_jvp
    def no_rule(x):
        return x

    with pytest.raises(TypeError, match="defjvp"):
        tg.grad(lambda x: tnp.sum(no_rule(x)))(N(3))

    @tg.custom_jvp
    def wrong_shape(x):
        return x * 2.0

    wrong_shape.defjvp(lambda p, t: (wrong_shape(*p), tnp.sum(t[0])))
    with pytest.raises(tg.ShapeError, match="jvp rule must return"):
        tg.jvp(wrong_shape, (N(3),), (np.ones(3),))


# ------------------------------------------------------------ checkpoint
def block(x):
    return tnp.sin(tnp.cos(tnp.exp(x)))


def plain(x):
    return tnp.sum(block(x) * x)


def checkpointed(x):
    return tnp.sum(tg.checkpoint(block)(x) * x)


def test_checkpoint_gives_identical_values_and_gradients():
    x = N(5)
    close(checkpointed(x), plain(x), rtol=0, atol=0)
    close(tg.jit(checkpointed, backend="interpret")(x), plain(x), rtol=0, atol=0)
    close(tg.grad(checkpointed)(x), tg.grad(plain)(x), rtol=0, atol=0)
    close(tg.jit(tg.grad(checkpointed), backend="interpret")(x), tg.grad(plain)(x), rtol=0, atol=0)
    close(tg.jit(tg.grad(checkpointed))(x), tg.grad(plain)(x), rtol=1e-14, atol=1e-15)
    close(tg.hessian(checkpointed)(x), tg.hessian(plain)(x))
    close(tg.jvp(checkpointed, (x,), (np.ones(5),))[1], tg.jvp(plain, (x,), (np.ones(5),))[1])
    tg.check_grads(checkpointed, (x,), order=2)


def _forward_vars_read_by_backward(f, x) -> set[int]:
    """Ids of the values the forward part of grad(f)'s joint program defines
    and its backward part reads (the inputs excluded: they are kept anyway):
    the residuals the backward must store."""
    n_forward = len(tg.make_ir(f)(x).eqns)
    graph = tg.make_ir(tg.grad(f))(x)
    forward, backward = graph.eqns[:n_forward], graph.eqns[n_forward:]
    defined = {v.id for e in forward for v in e.outputs}
    return {a.id for e in backward for a in e.inputs if isinstance(a, ir.Var) and a.id in defined}


def test_checkpoint_stores_fewer_residuals():
    x = N(5)
    plain_residuals = _forward_vars_read_by_backward(plain, x)
    checkpointed_residuals = _forward_vars_read_by_backward(checkpointed, x)
    assert len(plain_residuals) == 3  # exp x, cos(exp x), sin(cos(exp x))
    assert len(checkpointed_residuals) == 1  # only the block's output
    assert len(checkpointed_residuals) < len(plain_residuals)


def test_checkpoint_recomputes_the_block_in_the_backward_program():
    x = N(5)
    graph = tg.make_ir(tg.grad(checkpointed))(x)
    names = [e.prim.name for e in graph.eqns]
    at = names.index("checkpoint")
    assert "exp" not in names[:at]  # the forward program calls the block, it does not inline it
    assert {"exp", "cos"} <= set(names[at + 1:])  # the backward recomputes its intermediates
    (body,) = [sub for _, sub in graph.eqns[at].subgraphs()]
    assert [e.prim.name for e in body.eqns] == ["exp", "cos", "sin"]
    # the same in the dump: top-level lines (one indent) recompute exp after the checkpoint equation
    text = tg.jit(tg.grad(checkpointed)).lower(x).as_text("traced")
    top = [line for line in text.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    at = next(i for i, line in enumerate(top) if "= checkpoint " in line)
    assert not any("= exp " in line for line in top[:at])
    assert any("= exp " in line for line in top[at + 1:])
    plain_names = [e.prim.name for e in tg.make_ir(tg.grad(plain))(x).eqns]
    assert plain_names.count("exp") == 1  # without checkpoint, exp is computed once and stored


def test_checkpoint_of_a_closure_differentiates_the_captured_weights():
    w = N(2, 2)
    x = N(1, 2, seed=1)

    def net(w, x):
        layer = tg.checkpoint(lambda h: tnp.tanh(h @ w))
        return tnp.sum(layer(layer(x)))

    def reference(w, x):
        return tnp.sum(tnp.tanh(tnp.tanh(x @ w) @ w))

    for argnums in (0, 1):
        close(tg.grad(net, argnums=argnums)(w, x), tg.grad(reference, argnums=argnums)(w, x))
        close(tg.jit(tg.grad(net, argnums=argnums))(w, x), tg.grad(reference, argnums=argnums)(w, x))
    tg.check_grads(net, (w, x), order=2)


def test_checkpoint_on_pytrees_and_eagerly():
    f = tg.checkpoint(lambda p: {"out": p["a"] * tnp.sin(p["b"])})
    p = {"a": N(2), "b": N(2, seed=1)}
    close(f(p)["out"], p["a"] * np.sin(p["b"]))  # outside any trace: the plain function
    g = tg.grad(lambda p: tnp.sum(f(p)["out"]))(p)
    close(g["a"], np.sin(p["b"]))
    close(g["b"], p["a"] * np.cos(p["b"]))
