"""The differentiation transformations (grad, value_and_grad, vjp, jvp,
jacfwd, jacrev, hessian): against hand-derived derivatives and finite
differences, composed with each other and with jit, on pytrees, and the
errors that say what to do instead."""

from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tnp_helpers import make


def N(*shape, seed=0):
    return make(shape, np.float64, kind="any", seed=("T", seed)) / 2


def numeric_jacobian(f, x, eps=1e-6):
    """Central differences of f (array -> array) at x, shape f(x).shape + x.shape."""
    x = np.asarray(x, np.float64)
    out = np.asarray(f(x))
    jac = np.zeros(out.shape + x.shape)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        jac[(...,) + idx] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps)
    return jac


def close(actual, expected, rtol=1e-10, atol=1e-12):
    """Numerically equal, leaf by leaf for tuples of arrays."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            close(a, e, rtol, atol)
        return
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# ------------------------------------------------------- hand-derived gradients
def test_grad_matches_hand_derived_gradients():
    x = N(4)
    close(tg.grad(lambda x: tnp.sum(tnp.sin(x) * x ** 2))(x), np.cos(x) * x ** 2 + 2 * x * np.sin(x))
    A, b = N(3, 4, seed=1), N(3, seed=2)
    close(tg.grad(lambda x: tnp.sum((A @ x - b) ** 2))(x), 2 * A.T @ (A @ x - b))
    M = N(4, 4, seed=3)
    close(tg.grad(lambda x: x @ M @ x)(x), (M + M.T) @ x)
    close(tg.grad(lambda x: tnp.sqrt(tnp.sum(x * x)))(x), x / np.linalg.norm(x))


def test_grad_of_softmax_cross_entropy_is_softmax_minus_one_hot():
    logits = N(5)
    label = 3

    def loss(z):
        z = z - tnp.max(z)
        return tnp.log(tnp.sum(tnp.exp(z))) - z[label]

    p = np.exp(logits - logits.max())
    p /= p.sum()
    close(tg.grad(loss)(logits), p - np.eye(5)[label])
    close(tg.jit(tg.grad(loss))(logits), p - np.eye(5)[label])


def test_grad_of_logistic_regression_loss_matches_the_textbook_formula():
    X, y, w = N(6, 3, seed=1), (N(6, seed=2) > 0).astype(np.float64), N(3)

    def loss(w):
        p = 1 / (1 + tnp.exp(-(X @ w)))
        return -tnp.mean(y * tnp.log(p) + (1 - y) * tnp.log(1 - p))

    p = 1 / (1 + np.exp(-(X @ w)))
    close(tg.grad(loss)(w), X.T @ (p - y) / len(y))


# --------------------------------------------------------------- Jacobians
def nonsquare(x):
    """R^3 -> R^2."""
    return tnp.stack([x[0] * x[1] * tnp.sin(x[2]), tnp.exp(x[0]) + x[2] ** 2])


def test_jacobians_of_a_nonsquare_function_match_finite_differences_and_each_other():
    x = N(3)
    expected = np.array([[x[1] * np.sin(x[2]), x[0] * np.sin(x[2]), x[0] * x[1] * np.cos(x[2])],
                         [np.exp(x[0]), 0.0, 2 * x[2]]])
    jf, jr = tg.jacfwd(nonsquare)(x), tg.jacrev(nonsquare)(x)
    assert jf.shape == jr.shape == (2, 3)
    close(jf, expected)
    close(jr, expected)
    close(jf, numeric_jacobian(nonsquare, x), rtol=1e-7, atol=1e-8)
    close(tg.jit(tg.jacrev(nonsquare))(x), expected)
    close(tg.jit(tg.jacfwd(nonsquare))(x), expected)


def test_jacobian_shapes_are_output_shape_then_input_shape():
    x = N(2, 3)
    f = lambda x: tnp.tanh(x).T[:, :, None] * np.ones(2)  # (3, 2, 2)
    jf, jr = tg.jacfwd(f)(x), tg.jacrev(f)(x)
    assert jf.shape == jr.shape == (3, 2, 2, 2, 3)
    close(jf, jr)
    close(jf, numeric_jacobian(f, x), rtol=1e-7, atol=1e-8)


def test_jacobians_of_pytree_outputs_nest_like_the_output():
    x = N(3)
    f = lambda x: {"head": x[:2] * x[2], "rest": (tnp.sum(x ** 2), tnp.cos(x))}
    for jac in (tg.jacfwd(f)(x), tg.jacrev(f)(x)):
        assert set(jac) == {"head", "rest"}
        close(jac["head"], numeric_jacobian(lambda x: x[:2] * x[2], x), rtol=1e-7, atol=1e-8)
        close(jac["head"], [[x[2], 0, x[0]], [0, x[2], x[1]]])
        assert isinstance(jac["rest"], tuple)
        close(jac["rest"][0], 2 * x)
        close(jac["rest"][1], np.diag(-np.sin(x)))


def test_jacobians_with_several_argnums_give_one_block_per_argument():
    x, y = N(3), N(2, seed=1)
    f = lambda x, y: tnp.outer(x, y).reshape(-1)[:4] * 2.0  # R^3 x R^2 -> R^4
    jx, jy = tg.jacfwd(f, argnums=(0, 1))(x, y)
    rx, ry = tg.jacrev(f, argnums=(0, 1))(x, y)
    assert jx.shape == (4, 3) and jy.shape == (4, 2)
    close(jx, rx)
    close(jy, ry)
    close(jx, numeric_jacobian(lambda x: f(x, y), x), rtol=1e-7, atol=1e-8)
    close(jy, numeric_jacobian(lambda y: f(x, y), y), rtol=1e-7, atol=1e-8)


def test_jacobian_with_respect_to_a_dict_argument_is_a_dict():
    params = {"w": N(2, 3), "b": N(2, seed=1)}
    x = N(3, seed=2)
    f = lambda p: p["w"] @ x + p["b"]
    for jac in (tg.jacfwd(f)(params), tg.jacrev(f)(params)):
        assert set(jac) == {"w", "b"}
        close(jac["b"], np.eye(2))
        close(jac["w"], np.einsum("ij,k->ijk", np.eye(2), x))


# ---------------------------------------------------------------- Hessians
def test_hessian_of_sum_of_cubes_is_diag_6x():
    x = N(4)
    close(tg.hessian(lambda x: tnp.sum(x ** 3))(x), np.diag(6 * x))


def test_hessian_of_quadratic_form_is_a_plus_a_transpose():
    A = N(3, 3, seed=1)
    x = N(3)
    h = tg.hessian(lambda x: x @ A @ x)(x)
    close(h, A + A.T)
    close(tg.jit(tg.hessian(lambda x: x @ A @ x))(x), A + A.T)


def test_hessian_of_a_matrix_argument_has_shape_in_in():
    x = N(2, 2)
    h = tg.hessian(lambda x: tnp.sum(tnp.exp(x) * x[::-1]))(x)
    assert h.shape == (2, 2, 2, 2)
    close(h.reshape(4, 4), h.reshape(4, 4).T)  # symmetric
    close(h, numeric_jacobian(tg.grad(lambda x: tnp.sum(tnp.exp(x) * x[::-1])), x), rtol=1e-6, atol=1e-8)


def test_hessian_vector_product_by_forward_over_reverse_equals_hessian_times_v():
    f = lambda x: tnp.sum(tnp.tanh(x) * x ** 2) + tnp.prod(x[:2])
    x, v = N(4), N(4, seed=1)
    _, hv = tg.jvp(tg.grad(f), (x,), (v,))
    close(hv, tg.hessian(f)(x) @ v)
    _, hv_jit = tg.jit(lambda x, v: tg.jvp(tg.grad(f), (x,), (v,)))(x, v)
    close(hv_jit, hv)
    # reverse over reverse gives the same product
    close(tg.grad(lambda x: tnp.sum(tg.grad(f)(x) * v))(x), hv)


# -------------------------------------------------------------- compositions
def test_grad_of_grad_is_the_second_derivative():
    f = lambda x: x ** 3 * tnp.sin(x)
    for x in (0.3, -1.7, 2.0):
        d2 = 6 * x * np.sin(x) + 6 * x ** 2 * np.cos(x) - x ** 3 * np.sin(x)
        close(tg.grad(tg.grad(f))(x), d2)
    d3 = tg.grad(tg.grad(tg.grad(lambda x: x ** 4)))(1.5)
    close(d3, 24 * 1.5)


def test_jit_of_grad_equals_grad():
    f = lambda x, y: tnp.sum(tnp.tanh(x @ y) ** 2)
    x, y = N(2, 3), N(3, 2, seed=1)
    for argnums in (0, 1, (0, 1)):
        eager = tg.grad(f, argnums=argnums)(x, y)
        jitted = tg.jit(tg.grad(f, argnums=argnums))(x, y)
        close(jitted, eager)


def test_grad_of_jit_equals_grad():
    f = lambda x: tnp.sum(tnp.exp(x) * tnp.cos(x))
    x = N(5)
    close(tg.grad(tg.jit(f))(x), tg.grad(f)(x))
    close(tg.grad(tg.jit(f))(x), np.exp(x) * (np.cos(x) - np.sin(x)))
    close(tg.grad(tg.grad(tg.jit(lambda x: x ** 3)))(2.0), 12.0)


def test_jacfwd_of_jacrev_equals_hessian_and_jacrev_of_jacfwd():
    f = lambda x: tnp.sum(tnp.sin(x) * x[::-1])
    x = N(3)
    h = tg.jacfwd(tg.jacrev(f))(x)
    close(h, tg.hessian(f)(x))
    close(h, tg.jacrev(tg.jacfwd(f))(x))
    close(h, tg.jacrev(tg.jacrev(f))(x))
    close(h, numeric_jacobian(tg.grad(f), x), rtol=1e-7, atol=1e-8)


def test_vjp_of_a_vjp_applies_the_jacobian_again():
    """u -> J^T u is linear with Jacobian J^T, so its vjp maps w to J w."""
    f = lambda x: nonsquare(x)
    x, w = N(3), N(3, seed=1)
    J = tg.jacrev(f)(x)
    pullback = lambda u: tg.vjp(f, x)[1](u)[0]
    out, pullback_of_pullback = tg.vjp(pullback, np.ones(2))
    close(out, J.T @ np.ones(2))
    (jw,) = pullback_of_pullback(w)
    close(jw, J @ w)


def test_vjp_of_a_vjp_in_the_primal_gives_second_derivatives():
    f = lambda x: tnp.sin(x) * x
    x, u = N(3), N(3, seed=1)
    g = lambda x: tg.vjp(f, x)[1](u)[0]  # u * f'(x)
    _, pb = tg.vjp(g, x)
    (second,) = pb(np.ones(3))
    close(second, u * (2 * np.cos(x) - x * np.sin(x)))


def test_grad_of_a_function_calling_grad_of_a_closure_over_the_outer_variable():
    """d/dx [d/dy (x * y * y)] at y = x is d/dx (2 x y)|y=x = 4x: the inner
    grad must not confuse its perturbation of y with the outer one of x."""
    def inner_grad_at_x(x):
        return tg.grad(lambda y: x * y * y)(x)

    for x in (3.0, -0.5):
        close(inner_grad_at_x(x), 2 * x * x)
        close(tg.grad(inner_grad_at_x)(x), 4 * x)
        close(tg.jit(tg.grad(inner_grad_at_x))(x), 4 * x)
        close(tg.jvp(inner_grad_at_x, (x,), (1.0,))[1], 4 * x)


def test_python_if_on_values_works_in_grad_outside_jit():
    def piecewise(x):
        if tnp.sum(x) > 0:
            return tnp.sum(x ** 2)
        return tnp.sum(3.0 * x)

    x = np.array([1.0, 2.0])
    close(tg.grad(piecewise)(x), 2 * x)
    close(tg.grad(piecewise)(-x), [3.0, 3.0])
    with pytest.raises(tg.ConcretizationError, match="lax.cond") as info:
        tg.jit(tg.grad(piecewise))(x)
    assert "test_transforms.py" in str(info.value)  # the line of the `if`


def test_python_loop_with_data_dependent_trip_count_differentiates_outside_jit():
    def newton_sqrt(a):
        x = a
        while tnp.abs(x * x - a) > 1e-12:
            x = 0.5 * (x + a / x)
        return x

    close(tg.grad(newton_sqrt)(4.0), 0.25, rtol=1e-6)


def test_transformations_inside_jit_are_inlined_into_one_program():
    f = lambda x: tnp.sum(tnp.sin(x) ** 2)
    x = N(3)
    jf = tg.jit(lambda x: (tg.grad(f)(x), tg.hessian(f)(x)))
    g, h = jf(x)
    close(g, 2 * np.sin(x) * np.cos(x))
    close(h, np.diag(2 * np.cos(2 * x)))
    text = jf.lower(x).as_text("traced")
    assert "sin" in text and "cos" in text


def test_make_ir_of_grad_is_the_joint_forward_and_backward_program():
    f = lambda x: tnp.sum(tnp.exp(x) * x)
    x = N(3)
    graph = tg.make_ir(tg.grad(f))(x)
    names = [e.prim.name for e in graph.eqns]
    assert names.count("exp") == 1  # the backward reuses the forward's exp: it is a residual
    assert graph.in_types == [tg.ShapedType((3,), np.float64)] and graph.out_types == graph.in_types
    assert "exp" in tg.jit(tg.grad(f)).lower(x).as_text("traced")


# ------------------------------------------------- value_and_grad and pytrees
def test_value_and_grad_with_int_and_tuple_argnums():
    f = lambda a, b, c: tnp.sum(a * b) + c ** 2
    a, b = N(3), N(3, seed=1)
    value, g = tg.value_and_grad(f)(a, b, 2.0)
    close(value, np.sum(a * b) + 4.0)
    close(g, b)
    value, g = tg.value_and_grad(f, argnums=1)(a, b, 2.0)
    close(g, a)
    value, g = tg.value_and_grad(f, argnums=(0, 2))(a, b, 2.0)
    assert isinstance(g, tuple) and len(g) == 2
    close(g[0], b)
    close(g[1], 4.0)
    _, g = tg.value_and_grad(f, argnums=(1,))(a, b, 2.0)
    assert isinstance(g, tuple) and len(g) == 1
    _, g = tg.value_and_grad(f, argnums=-1)(a, b, 2.0)
    close(g, 4.0)


def test_value_and_grad_with_has_aux_returns_the_aux_untouched():
    def loss(w):
        pred = w * 2.0
        return tnp.sum(pred ** 2), {"pred": pred, "count": 3}

    w = N(3)
    (value, aux), g = tg.value_and_grad(loss, has_aux=True)(w)
    close(value, np.sum((2 * w) ** 2))
    close(aux["pred"], 2 * w)
    assert aux["count"] == 3
    close(g, 8 * w)
    g2, aux2 = tg.grad(loss, has_aux=True)(w)
    close(g2, g)
    close(aux2["pred"], aux["pred"])
    (jvalue, jaux), jg = tg.jit(tg.value_and_grad(loss, has_aux=True))(w)
    close(jvalue, value)
    close(jg, g)


def test_gradients_of_dict_and_tuple_arguments_are_pytrees_of_the_same_structure():
    params = {"w": N(2, 3), "b": N(2, seed=1), "layers": (N(2, seed=2), [N(3, seed=3)])}
    x = N(3, seed=4)

    def loss(p, x):
        h = p["w"] @ (x * p["layers"][1][0]) + p["b"]
        return tnp.sum(tnp.tanh(h) * p["layers"][0])

    g = tg.grad(loss)(params, x)
    assert set(g) == {"w", "b", "layers"}
    assert isinstance(g["layers"], tuple) and isinstance(g["layers"][1], list)
    for path, leaf in (("w", params["w"]), ("b", params["b"])):
        assert g[path].shape == leaf.shape and g[path].dtype == leaf.dtype
    # b against a hand derivation; every leaf against finite differences through the flat view
    h = params["w"] @ (x * params["layers"][1][0]) + params["b"]
    close(g["b"], (1 - np.tanh(h) ** 2) * params["layers"][0])
    close(g["layers"][0], np.tanh(h))
    tg.check_grads(loss, (params, x), order=1)
    gj = tg.jit(tg.grad(loss))(params, x)
    close(gj["layers"][1][0], g["layers"][1][0])
    gp, gx = tg.grad(loss, argnums=(0, 1))(params, x)
    close(gp["w"], g["w"])
    assert gx.shape == x.shape


def test_vjp_and_jvp_on_pytrees():
    f = lambda p: {"sum": tnp.sum(p[0] * p[1]), "prod": p[0] * 2.0}
    p = (N(2), N(2, seed=1))
    out, pullback = tg.vjp(f, p)
    close(out["sum"], np.sum(p[0] * p[1]))
    (ct,) = pullback({"sum": np.array(1.0), "prod": np.array([1.0, -1.0])})
    close(ct[0], p[1] + np.array([2.0, -2.0]))
    close(ct[1], p[0])
    out, tangent = tg.jvp(f, (p,), ((np.ones(2), np.zeros(2)),))
    close(tangent["sum"], np.sum(p[1]))
    close(tangent["prod"], [2.0, 2.0])


def test_vjp_with_has_aux_and_several_primals():
    f = lambda x, y: (x * y, {"note": x + 1.0})
    x, y = N(3), N(3, seed=1)
    out, pullback, aux = tg.vjp(f, x, y, has_aux=True)
    close(out, x * y)
    close(aux["note"], x + 1.0)
    gx, gy = pullback(np.ones(3))
    close(gx, y)
    close(gy, x)


def test_jvp_keeps_the_primal_dtype_and_returns_the_output():
    x = N(3).astype(np.float32)
    out, t = tg.jvp(lambda x: x ** 2, (x,), (np.ones(3),))  # a float64 tangent for a float32 primal
    assert out.dtype == t.dtype == np.float32
    close(t, 2 * x, rtol=1e-6)
    out, t = tg.jvp(lambda x, y: x * y, (2.0, 3.0), (1.0, 0.0))
    close(out, 6.0)
    close(t, 3.0)


def test_vjp_function_takes_cotangents_in_the_output_dtype():
    """A Python float or a float64 cotangent for a float32 output is converted,
    as jvp converts tangents, rather than failing inside a derivative rule."""
    x = N(3).astype(np.float32)
    _, pullback = tg.vjp(lambda x: tnp.sum(tnp.sin(x)), x)
    (g,) = pullback(1.0)
    assert g.dtype == np.float32
    close(g, np.cos(x), rtol=1e-6)
    _, pullback = tg.vjp(tnp.sin, x)
    close(pullback(np.full(3, 2.0))[0], 2 * np.cos(x), rtol=1e-6)
    (g,) = tg.jit(lambda x: tg.vjp(lambda x: tnp.sum(tnp.sin(x)), x)[1](1.0))(x)
    assert g.dtype == np.float32
    _, pullback = tg.vjp(tnp.sin, N(3))
    close(pullback(np.ones(3, np.float32))[0], np.cos(N(3)))


def test_gradient_dtype_follows_the_argument_dtype():
    x = N(3).astype(np.float32)
    assert tg.grad(lambda x: tnp.sum(x * 2.0))(x).dtype == np.float32
    assert tg.grad(lambda x: tnp.sum(x.astype(np.float64) ** 2))(x).dtype == np.float32
    assert tg.jit(tg.grad(lambda x: tnp.mean(x)))(x).dtype == np.float32


def test_gradient_of_an_output_independent_of_the_argument_is_zero():
    x = N(3)
    close(tg.grad(lambda x: 3.0)(x), np.zeros(3))
    close(tg.grad(lambda x, y: tnp.sum(y), argnums=0)(x, x), np.zeros(3))
    close(tg.jit(tg.grad(lambda x: 3.0))(x), np.zeros(3))
    close(tg.jacrev(lambda x: np.ones(2))(x), np.zeros((2, 3)))


# ------------------------------------------------------------------- errors
def test_grad_of_a_nonscalar_output_suggests_vjp_or_jacrev():
    with pytest.raises(tg.ShapeError, match="vjp.*jacrev") as info:
        tg.grad(lambda x: x * 2.0)(N(3))
    assert "f64[3]" in str(info.value)
    with pytest.raises(tg.ArgumentError, match="vjp.*jacrev"):
        tg.grad(lambda x: (tnp.sum(x), tnp.sum(x)))(N(3))


def test_grad_of_an_integer_output_is_an_error():
    with pytest.raises(tg.ShapeError, match="scalar float output"):
        tg.grad(lambda x: tnp.argmax(x))(N(3))


def test_grad_with_respect_to_an_integer_argument_is_a_dtype_error():
    with pytest.raises(tg.DTypeError, match="float") as info:
        tg.grad(lambda x: tnp.sum(x * 2.0))(np.arange(3))
    assert isinstance(info.value, TypeError)
    assert "astype" in str(info.value) and "argnums" in str(info.value)
    with pytest.raises(TypeError):
        tg.grad(lambda x: x * 2.0)(3)  # a Python int
    with pytest.raises(tg.DTypeError):
        tg.grad(lambda x, n: tnp.sum(x) * n, argnums=(0, 1))(N(2), np.int32(2))
    close(tg.grad(lambda x, n: tnp.sum(x) * n)(N(2), np.int32(2)), [2.0, 2.0])  # not differentiated: fine
    with pytest.raises(tg.DTypeError):
        tg.jacfwd(lambda x: x)(np.array([True, False]))
    with pytest.raises(tg.DTypeError):
        tg.jvp(lambda x: x, (np.arange(2),), (np.ones(2),))


def test_argnums_out_of_range_is_an_argument_error():
    f = lambda x, y: tnp.sum(x * y)
    for argnums in (2, (0, 5), -3):
        with pytest.raises(tg.ArgumentError, match="out of range"):
            tg.grad(f, argnums=argnums)(N(2), N(2))
    with pytest.raises(tg.ArgumentError):
        tg.jacrev(f, argnums=3)(N(2), N(2))


def test_has_aux_requires_a_pair():
    with pytest.raises(tg.ArgumentError, match="pair"):
        tg.grad(lambda x: tnp.sum(x), has_aux=True)(N(3))
    with pytest.raises(tg.ArgumentError, match="pair"):
        tg.value_and_grad(lambda x: (tnp.sum(x), 1, 2), has_aux=True)(N(3))
    with pytest.raises(tg.ArgumentError, match="pair"):
        tg.vjp(lambda x: x, N(3), has_aux=True)


def test_jvp_with_a_mismatched_tangent_is_an_error():
    with pytest.raises(tg.ShapeError, match=r"tangent of shape \(2,\).*primal of shape \(3,\)"):
        tg.jvp(lambda x: x * 2.0, (N(3),), (np.ones(2),))
    with pytest.raises(tg.ArgumentError, match="structure"):
        tg.jvp(lambda x: x * 2.0, (N(3),), (np.ones(3), np.ones(3)))


def test_vjp_function_checks_the_cotangent():
    _, pullback = tg.vjp(lambda x: (x, tnp.sum(x)), N(3))
    with pytest.raises(tg.ShapeError, match="cotangent"):
        pullback((np.ones(2), np.array(1.0)))
    with pytest.raises(tg.ArgumentError, match="cotangent"):
        pullback(np.ones(3))


def test_vjp_function_used_after_its_jit_trace_finished_is_an_error():
    saved = []

    @tg.jit
    def f(x):
        out, pullback = tg.vjp(tnp.sin, x)
        saved.append(pullback)
        return out

    f(N(3))
    with pytest.raises(RuntimeError, match="trace that has finished"):
        saved[0](np.ones(3))


def test_jit_inside_grad_traces_abstractly_so_python_if_on_values_raises():
    def f(x):
        if x.sum() > 0:
            return tnp.sum(x * x)
        return tnp.sum(x)

    with pytest.raises(tg.ConcretizationError):
        tg.grad(tg.jit(f))(np.ones(3))
    np.testing.assert_allclose(tg.grad(f)(np.ones(3)), 2 * np.ones(3))


def test_debug_nans_under_jit_says_the_nan_is_in_a_derivative_and_how_to_guard_it():
    f = tg.jit(tg.grad(lambda x: tnp.sum(tnp.where(x > 0, tnp.sqrt(x), 0.0))))
    with tg.debug_nans(), pytest.raises(FloatingPointError, match=r"in the derivative of sqrt(.|\n)*where\(x > 0, x, 1\)"):
        f(np.array([1.0, 0.0]))


def test_jacobians_of_an_integer_output_are_float_zeros_in_both_modes():
    f = lambda x: (x * 2.0, tnp.argmax(x))
    x = np.array([1.0, 3.0, 2.0])
    for jac in (tg.jacfwd(f)(x), tg.jacrev(f)(x)):
        np.testing.assert_array_equal(jac[0], 2.0 * np.eye(3))
        assert jac[1].dtype == np.float64 and jac[1].shape == (3,) and not jac[1].any()
