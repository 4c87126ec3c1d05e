"""The define-by-run eager mode: each documented PyTorch autograd behaviour,
pinned by a test named for it — gradient accumulation, leaves and non-leaves,
freed graphs, vector-Jacobian products, higher derivatives, hooks, grad
mode, detach, in-place operations and version counters, anomaly detection,
grad_fn structure, custom Functions, checkpoint, gradcheck — and the same
tnp model code giving the same loss and gradients eagerly and under jit.
(test_eager_torch.py compares with PyTorch itself where it is installed.)"""

from __future__ import annotations

import sys
import tracemalloc
import warnings

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tnp_helpers import make


def N(*shape, seed=0):
    return make(shape, np.float64, kind="any", seed=("E", seed)) / 2


def close(actual, expected, rtol=1e-10, atol=1e-12):
    """Numerically equal; a Tensor is compared by its data."""
    if isinstance(actual, tg.Tensor):
        actual = actual.detach().data
    if isinstance(expected, tg.Tensor):
        expected = expected.detach().data
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def leaf(data, dtype=np.float64):
    return tg.tensor(data, dtype=dtype, requires_grad=True)


# ------------------------------------------------------------ accumulation
def test_the_spec_example_gives_the_documented_gradient():
    x = tg.tensor([2.0, 3.0], requires_grad=True)
    y = (x * x + x).sum()
    y.backward()
    assert isinstance(x.grad, tg.Tensor)
    assert x.grad.dtype == np.float32
    close(x.grad, [5.0, 7.0])


def test_grad_accumulates_across_backward_calls():
    x = leaf([2.0, 3.0])
    (x * x).sum().backward()
    close(x.grad, [4.0, 6.0])
    (x * x).sum().backward()
    close(x.grad, [8.0, 12.0])
    (x * 10).sum().backward()
    close(x.grad, [18.0, 22.0])


def test_second_backward_updates_the_grad_tensor_in_place():
    x = leaf([2.0, 3.0])
    (x * x).sum().backward()
    held = x.grad
    (x * x).sum().backward()
    assert x.grad is held
    close(held, [8.0, 12.0])


def test_setting_grad_to_none_restarts_accumulation():
    x = leaf([2.0, 3.0])
    (x * x).sum().backward()
    x.grad = None
    assert x.grad is None
    (x * x).sum().backward()
    close(x.grad, [4.0, 6.0])


def test_grad_zero_in_place_restarts_accumulation():
    x = leaf([2.0, 3.0])
    (x * x).sum().backward()
    held = x.grad
    x.grad.zero_()
    close(x.grad, [0.0, 0.0])
    (x * x).sum().backward()
    assert x.grad is held
    close(x.grad, [4.0, 6.0])


def test_grad_may_be_assigned_a_tensor_of_the_same_shape_and_dtype_only():
    x = leaf([1.0, 2.0])
    x.grad = tg.tensor([5.0, 5.0], dtype=np.float64)
    (x * 1).sum().backward()
    close(x.grad, [6.0, 6.0])
    with pytest.raises(RuntimeError, match="different size"):
        x.grad = tg.tensor([1.0], dtype=np.float64)
    with pytest.raises(RuntimeError, match="different type"):
        x.grad = tg.tensor([1.0, 1.0], dtype=np.float32)
    with pytest.raises(TypeError, match="Tensor or None"):
        x.grad = np.ones(2)


def test_a_leaf_used_twice_sums_both_paths():
    x = leaf([1.0, 2.0])
    (x + x).sum().backward()
    close(x.grad, [2.0, 2.0])
    (x + x).sum().backward()
    close(x.grad, [4.0, 4.0])


def test_gradient_passed_to_backward_is_not_modified_by_later_accumulation():
    # torch: x.backward(v) twice gives x.grad == 2 v and leaves v as it was
    x = leaf([1.0, 2.0])
    v = tg.tensor([1.0, 1.0], dtype=np.float64)
    x.backward(v)
    x.backward(v)
    close(x.grad, [2.0, 2.0])
    close(v, [1.0, 1.0])
    y = leaf([1.0, 2.0])
    (y + 0).backward(v)
    (y + 0).backward(v)
    close(y.grad, [2.0, 2.0])
    close(v, [1.0, 1.0])


def test_two_leaves_that_received_one_gradient_accumulate_independently():
    # the VJP of add hands one cotangent to both operands; as in torch, a later
    # backward into a alone must leave b.grad as it was
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    ((a + b) * 1).sum().backward()
    (a * 1).sum().backward()
    close(a.grad, [2.0, 2.0])
    close(b.grad, [1.0, 1.0])


def test_tensor_returned_by_a_hook_is_not_modified_by_later_accumulation():
    x = leaf([1.0, 2.0])
    keep = tg.tensor([5.0, 5.0], dtype=np.float64)
    x.register_hook(lambda g: keep)
    (x * 1).sum().backward()
    (x * 1).sum().backward()
    close(x.grad, [10.0, 10.0])
    close(keep, [5.0, 5.0])


# ------------------------------------------------------------ leaves and non-leaves
def test_non_leaf_grad_is_none_with_a_user_warning():
    x = leaf([1.0, 2.0])
    y = x * 2
    y.sum().backward()
    with pytest.warns(UserWarning, match="not a leaf Tensor.*retain_grad"):
        assert y.grad is None


def test_leaf_grad_access_does_not_warn():
    x = leaf([1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert x.grad is None


def test_retain_grad_keeps_a_non_leaf_gradient():
    x = leaf([2.0, 3.0])
    y = x * x
    y.retain_grad()
    assert y.retains_grad
    (y * 3).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        close(y.grad, [3.0, 3.0])
    close(x.grad, [12.0, 18.0])


def test_retained_grad_of_a_pass_through_non_leaf_accumulates_independently_of_the_leaf():
    x = leaf([1.0, 2.0])
    y = x + 0
    y.retain_grad()
    z = (y * 3).sum()
    z.backward(retain_graph=True)
    z.backward()
    close(y.grad, [6.0, 6.0])  # torch: tensor([6., 6.]) for both
    close(x.grad, [6.0, 6.0])


def test_retain_grad_on_a_leaf_is_a_no_op_and_on_a_constant_is_an_error():
    x = leaf([1.0])
    x.retain_grad()
    assert x.is_leaf and not x.retains_grad
    with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has requires_grad=False"):
        tg.tensor([1.0]).retain_grad()


def test_is_leaf_and_requires_grad_rules():
    x = leaf([1.0, 2.0])
    c = tg.tensor([3.0, 4.0])
    assert x.is_leaf and x.requires_grad and x.grad_fn is None
    assert c.is_leaf and not c.requires_grad
    y = x * c
    assert not y.is_leaf and y.requires_grad and y.grad_fn is not None
    z = c * 2  # nothing it came from requires grad: a leaf without history
    assert z.is_leaf and not z.requires_grad and z.grad_fn is None
    assert not (x > 0).requires_grad  # a boolean result never requires grad
    assert not tnp.argmax(x).requires_grad
    d = y.detach()
    assert d.is_leaf and not d.requires_grad


def test_requires_grad_can_be_switched_on_leaves_only():
    x = tg.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad = False
    assert not x.requires_grad
    x.requires_grad = True
    y = x * 2
    assert y.requires_grad_(True) is y
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf variables.*detach"):
        y.requires_grad_(False)


def test_requires_grad_on_an_integer_tensor_is_an_error():
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require gradients"):
        tg.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        tg.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="floating point"):
        tg.tensor([True]).requires_grad = True


# ------------------------------------------------------------ freed graphs
def test_second_backward_through_a_freed_graph_says_to_pass_retain_graph():
    x = leaf([1.0, 2.0])
    y = tnp.sin(x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"backward through the graph a second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (tnp.sin(x) * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.data.copy()
    y.backward()
    close(x.grad, 2 * first)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_freed_graph_error_also_comes_from_grad():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    tg.eager.grad(y, x)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        tg.eager.grad(y, x)


@pytest.mark.parametrize("expr", [
    pytest.param(lambda x: (x + x).sum(), id="add"),
    pytest.param(lambda x: (x + 1.0).sum(), id="add_constant"),
    pytest.param(lambda x: (x - 1.0).sum(), id="subtract"),
    pytest.param(lambda x: (-x).sum(), id="negative"),
    pytest.param(lambda x: x[0], id="index"),
    pytest.param(lambda x: x.reshape(2, 1).sum(), id="reshape"),
    pytest.param(lambda x: x.mean(), id="mean"),
    pytest.param(lambda x: (x * 2).sum(), id="multiply_constant"),
    pytest.param(lambda x: (x / 2).sum(), id="divide_by_constant"),
])
def test_graph_of_nodes_that_saved_no_tensors_may_backward_twice(expr):
    # as in PyTorch, add, sub, neg, sum, select, views and mean save no tensors; a constant operand
    # (PyTorch frees the Python number it wrapped as a tensor) is kept, so x * 2 backwards twice too
    x = leaf([2.0, 3.0])
    y = expr(x)
    y.backward()
    first = x.grad.data.copy()
    y.backward()
    close(x.grad, 2 * first)


@pytest.mark.parametrize("expr", [
    pytest.param(lambda x: (x * x).sum(), id="multiply"),
    pytest.param(lambda x: (x / (x + 1)).sum(), id="divide"),
    pytest.param(lambda x: tnp.sin(x).sum(), id="sin"),
    pytest.param(lambda x: tnp.exp(x).sum(), id="exp"),
])
def test_graph_of_nodes_that_saved_values_cannot_backward_twice(expr):
    x = leaf([2.0, 3.0])
    y = expr(x)
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


# ------------------------------------------------------------ non-scalar outputs
def test_backward_on_a_non_scalar_without_gradient_says_so():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (x * 2).backward()


def test_backward_on_a_one_element_non_scalar_needs_no_gradient():
    x = leaf([[3.0]])
    (x * x).backward()
    close(x.grad, [[6.0]])


def test_backward_with_gradient_is_a_vector_jacobian_product():
    x = leaf(N(3))
    A = N(2, 3, seed=1)
    v = N(2, seed=2)
    y = tnp.sin(tg.tensor(A) @ x)
    y.backward(tg.tensor(v))
    close(x.grad, A.T @ (np.cos(A @ x.data) * v))
    (g,) = tg.eager.grad(tnp.sin(tg.tensor(A) @ x), x, grad_outputs=tg.tensor(v))
    close(g, A.T @ (np.cos(A @ x.data) * v))


def test_backward_with_a_gradient_of_the_wrong_shape_is_an_error():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[0\] has a shape of \(3,\)"):
        (x * 2).backward(tg.tensor([1.0, 1.0, 1.0]))


def test_backward_of_a_tensor_that_does_not_require_grad_is_an_error():
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
        tg.tensor([1.0]).sum().backward()
    x = leaf([1.0])
    with tg.no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_backward_of_several_outputs_sums_their_gradients():
    x = leaf([1.0, 2.0])
    y1, y2 = x * x, tnp.sin(x)
    tg.eager.backward([y1, y2], [tg.tensor([1.0, 1.0], dtype=np.float64), tg.tensor([2.0, 3.0], dtype=np.float64)])
    close(x.grad, 2 * x.data + np.array([2.0, 3.0]) * np.cos(x.data))


def test_backward_inputs_restricts_which_leaves_accumulate():
    a, b = leaf(1.0), leaf(2.0)
    (a * b).backward(inputs=[a])
    close(a.grad, 2.0)
    assert b.grad is None


# ------------------------------------------------------------ eager.grad
def test_grad_returns_gradients_without_touching_dot_grad():
    x = leaf([1.0, 2.0])
    (g,) = tg.eager.grad((x * x).sum(), x)
    close(g, [2.0, 4.0])
    assert x.grad is None


def test_grad_of_an_unused_input_is_an_error_unless_allow_unused():
    a, b = leaf(1.0), leaf(2.0)
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph.*allow_unused=True"):
        tg.eager.grad(a * 2, [a, b])
    ga, gb = tg.eager.grad(a * 2, [a, b], allow_unused=True)
    close(ga, 2.0)
    assert gb is None


def test_grad_with_respect_to_a_tensor_that_does_not_require_grad_is_an_error():
    a = leaf(1.0)
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.eager.grad(a * 2, tg.tensor(1.0))


def test_grad_with_respect_to_a_non_leaf():
    x = leaf([1.0, 2.0])
    h = x * 3
    (gh,) = tg.eager.grad((h * h).sum(), h)
    close(gh, 2 * h.data)


# ------------------------------------------------------------ create_graph
@pytest.mark.parametrize("f, d2", [
    pytest.param(lambda x: x ** 3, lambda x: 6 * x, id="cube"),
    pytest.param(tnp.sin, lambda x: -np.sin(x), id="sin"),
    pytest.param(tnp.tanh, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2), id="tanh"),
    pytest.param(tnp.exp, np.exp, id="exp"),
    pytest.param(lambda x: tnp.log(x * x + 1), lambda x: 2 * (1 - x * x) / (x * x + 1) ** 2, id="log"),
])
def test_create_graph_gives_second_derivatives(f, d2):
    x0 = np.array([-1.3, 0.4, 0.9])
    x = leaf(x0)
    (g,) = tg.eager.grad(f(x).sum(), x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    g.sum().backward()
    close(x.grad, d2(x0))


def test_third_derivative_of_the_cube_is_six():
    x = leaf(1.7)
    (g1,) = tg.eager.grad(x ** 3, x, create_graph=True)
    (g2,) = tg.eager.grad(g1, x, create_graph=True)
    (g3,) = tg.eager.grad(g2, x)
    close(g1, 3 * 1.7 ** 2)
    close(g2, 6 * 1.7)
    close(g3, 6.0)


def test_backward_with_create_graph_leaves_a_differentiable_grad():
    x = leaf(0.7)
    tnp.tanh(x).backward(create_graph=True)
    g = x.grad
    assert g.grad_fn is not None
    close(g, 1 - np.tanh(0.7) ** 2)
    x.grad = None
    g.backward()
    close(x.grad, -2 * np.tanh(0.7) * (1 - np.tanh(0.7) ** 2))


def test_hessian_vector_product_through_grad_with_create_graph():
    A = N(3, 3, seed=4)
    w0, v0 = N(3, seed=5), N(3, seed=6)

    def f(w):
        return tnp.sum(tnp.sin(w) * (A @ w))

    w = leaf(w0)
    (gw,) = tg.eager.grad(f(w), w, create_graph=True)
    close(gw, tg.grad(f)(w0))
    (hv,) = tg.eager.grad((gw * tg.tensor(v0)).sum(), w)
    close(hv, tg.hessian(f)(w0) @ v0)
    # by hand: H = diag(cos w) A + A^T diag(cos w) - diag(sin w * (A w))
    H = np.cos(w0)[:, None] * A + A.T * np.cos(w0) - np.diag(np.sin(w0) * (A @ w0))
    close(hv, H @ v0)


# ------------------------------------------------------------ hooks
def test_hook_on_a_leaf_sees_the_gradient():
    x = leaf([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.data.copy()))
    (x * 3).sum().backward()
    assert len(seen) == 1
    close(seen[0], [3.0, 3.0])
    close(x.grad, [3.0, 3.0])


def test_hook_on_a_leaf_replaces_the_gradient_it_returns():
    x = leaf([1.0, 2.0])
    x.register_hook(lambda g: g + 1)
    (x * 1).sum().backward()
    close(x.grad, [2.0, 2.0])


def test_hook_on_a_non_leaf_sees_and_replaces_the_gradient_flowing_on():
    x = leaf([1.0, 2.0])
    y = x * 2
    seen = []
    y.register_hook(lambda g: seen.append(g.data.copy()))
    y.register_hook(lambda g: g * 10)
    (y * y).sum().backward()
    close(seen[0], [4.0, 8.0])
    close(x.grad, [80.0, 160.0])


def test_retained_grad_of_a_non_leaf_is_the_gradient_after_its_hooks():
    x = leaf([1.0, 2.0])
    y = x * 2
    y.retain_grad()
    y.register_hook(lambda g: g * 10)
    (y * y).sum().backward()
    close(y.grad, [40.0, 80.0])
    close(x.grad, [80.0, 160.0])


def test_removed_hook_is_not_called():
    x = leaf([1.0, 2.0])
    handle = x.register_hook(lambda g: g * 0)
    (x * 3).sum().backward()
    close(x.grad, [0.0, 0.0])
    handle.remove()
    (x * 3).sum().backward()
    close(x.grad, [3.0, 3.0])
    y = x * 2
    calls = []
    handle = y.register_hook(calls.append)
    handle.remove()
    y.sum().backward()
    assert calls == []


def test_hook_on_a_tensor_that_does_not_require_grad_is_an_error():
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't require gradient"):
        tg.tensor([1.0]).register_hook(lambda g: g)


# ------------------------------------------------------------ grad mode
def test_results_inside_no_grad_do_not_require_grad():
    x = leaf([1.0, 2.0])
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = tnp.sin(x) * 2
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf


def test_enable_grad_inside_no_grad_records_again():
    x = leaf([1.0, 2.0])
    with tg.no_grad():
        with tg.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and y.grad_fn is not None
    assert not z.requires_grad


def test_set_grad_enabled_as_a_context_manager():
    x = leaf([1.0])
    with tg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
        with tg.set_grad_enabled(True):
            assert (x * 2).requires_grad
    assert tg.is_grad_enabled()


def test_set_grad_enabled_called_alone_sets_the_mode_until_changed():
    try:
        tg.set_grad_enabled(False)
        assert not tg.is_grad_enabled()
        assert not (leaf([1.0]) * 2).requires_grad
    finally:
        tg.set_grad_enabled(True)
    assert tg.is_grad_enabled()


def test_no_grad_as_a_decorator_with_and_without_parentheses():
    x = leaf([1.0, 2.0])

    @tg.no_grad
    def bare(a):
        """Doubles a."""
        return a * 2, tg.is_grad_enabled()

    @tg.no_grad()
    def called(a):
        return a * 2, tg.is_grad_enabled()

    for fn in (bare, called):
        y, enabled = fn(x)
        assert not y.requires_grad and not enabled
        assert tg.is_grad_enabled()
    assert bare.__name__ == "bare" and bare.__doc__ == "Doubles a."


def test_enable_grad_and_set_grad_enabled_as_decorators():
    x = leaf([1.0])

    @tg.enable_grad()
    def on(a):
        return a * 2

    @tg.set_grad_enabled(False)
    def off(a):
        return a * 2

    assert tg.is_grad_enabled()  # decorating does not change the mode
    with tg.no_grad():
        assert on(x).requires_grad
        assert not tg.is_grad_enabled()
    assert not off(x).requires_grad
    assert tg.is_grad_enabled()


def test_grad_mode_is_restored_when_the_body_raises():
    with pytest.raises(ValueError), tg.no_grad():
        raise ValueError
    assert tg.is_grad_enabled()

    @tg.no_grad()
    def fails():
        raise ValueError

    with pytest.raises(ValueError):
        fails()
    assert tg.is_grad_enabled()


def test_parameter_update_under_no_grad_keeps_a_leaf():
    p = tg.tensor([1.0, 2.0], requires_grad=True)
    memory = p.data
    (p * p).sum().backward()
    with tg.no_grad():
        p -= 0.1 * p.grad
    assert p.is_leaf and p.requires_grad and p.grad_fn is None
    assert p.data is memory and p._version == 1
    close(p, [0.8, 1.6], rtol=1e-6)
    p.grad = None
    (p * p).sum().backward()
    close(p.grad, [1.6, 3.2], rtol=1e-6)


def test_a_few_sgd_steps_lower_the_loss():
    X, y = N(8, 3, seed=7), N(8, seed=8)
    w = leaf(np.zeros(3))
    losses = []
    for _ in range(5):
        loss = ((tg.tensor(X) @ w - tg.tensor(y)) ** 2).mean()
        losses.append(loss.item())
        w.grad = None
        loss.backward()
        with tg.no_grad():
            w -= 0.1 * w.grad
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0]


# ------------------------------------------------------------ detach
def test_detach_cuts_the_gradient_flow():
    x = leaf([1.0, 2.0])
    (x * x.detach()).sum().backward()
    close(x.grad, [1.0, 2.0])  # d/dx (x * c) with c = x held constant


def test_detach_shares_memory_and_version_counter():
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert d.data is x.data or np.shares_memory(d.data, x.data)
    assert not d.requires_grad and d.is_leaf
    with tg.no_grad():
        d.add_(1.0)
    close(x, [2.0, 3.0])
    assert x._version == d._version == 1


def test_in_place_change_through_detach_of_a_saved_tensor_is_caught():
    x = leaf([1.0, 2.0])
    y = tnp.sin(x)
    x.detach().mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*version 1; expected version 0"):
        y.sum().backward()


# ------------------------------------------------------------ in place
def test_in_place_on_a_leaf_that_requires_grad_is_an_error():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        x.add_(1.0)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x *= 2.0
    close(x, [1.0, 2.0])
    assert x._version == 0


def test_in_place_change_of_a_saved_tensor_names_the_operation_and_the_versions():
    x = leaf([1.0, 2.0], np.float32)
    y = x * 2
    z = tnp.sin(y)
    y.add_(1)
    with pytest.raises(RuntimeError) as info:
        z.sum().backward()
    message = str(info.value)
    assert "one of the variables needed for gradient computation has been modified by an inplace operation" in message
    assert "is at version 1; expected version 0 instead" in message
    assert "SinBackward" in message  # the node that needed the value
    assert "output 0 of AddBackward" in message  # the in-place operation that wrote it
    assert "float32 tensor of shape [2]" in message


def test_in_place_change_of_a_saved_output_is_caught():
    x = leaf([1.0, 2.0])
    y = tnp.exp(x)  # exp's backward reads its output
    y.add_(1)
    with pytest.raises(RuntimeError, match=r"output 0 of ExpBackward.*version 1; expected version 0"):
        y.sum().backward()


def test_in_place_on_a_non_leaf_nothing_saved_gives_pytorchs_gradient():
    x = leaf([1.0, 2.0])
    y = x * 2  # mul by a constant saves the constant, not y
    y.add_(1)
    y *= 3
    assert y.grad_fn.name == "MulBackward"
    (y * y).sum().backward()
    close(x.grad, 36 * (2 * x.data + 1))  # torch: tensor([108., 180.])


def test_in_place_with_a_tensor_that_requires_grad():
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2
    y.mul_(3)
    y.add_(x)
    (y * y).sum().backward()
    close(x.grad, [98.0, 196.0, 294.0])  # torch's values
    x.grad = None
    t = tg.tensor(np.ones(3))
    t.mul_(x)  # a constant becomes a non-leaf with history
    assert t.requires_grad and not t.is_leaf
    t.sum().backward()
    close(x.grad, [1.0, 1.0, 1.0])


def test_item_assignment_on_a_non_leaf_stops_the_gradient_of_the_written_elements():
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2
    y[0] = 5.0
    (y * y).sum().backward()
    close(x.grad, [0.0, 16.0, 24.0])  # torch's values


def test_in_place_through_a_view_is_refused_rather_than_mis_differentiated():
    # PyTorch rebases the base's history; tracegrad refuses with advice instead of a wrong gradient
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2
    v = y[0:2]
    with pytest.raises(RuntimeError, match="shares memory with a view.*clone"):
        v.mul_(3)


def test_version_counter_increments_on_every_in_place_operation():
    t = tg.tensor([1.0, 2.0])
    assert t._version == 0
    t.add_(1)
    t.sub_(1)
    t.mul_(2)
    t.div_(2)
    t += 1
    t -= 1
    t *= 2
    t /= 2
    assert t._version == 8
    t.zero_()
    assert t._version == 9
    close(t, [0.0, 0.0])
    t[1] = 4.0
    assert t._version == 10
    close(t, [0.0, 4.0])
    _ = t * 2  # out of place: no change
    assert t._version == 10


def test_in_place_operators_keep_the_tensor_object_and_dtype():
    t = tg.tensor([1.0, 2.0])
    same = t
    t += 1
    t *= np.float64(2.5)
    assert t is same and t.dtype == np.float32
    close(t, [5.0, 7.5])
    i = tg.tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast"):
        i += 0.5


# ------------------------------------------------------------ anomaly detection
def test_detect_anomaly_names_the_backward_function_and_the_forward_line():
    x = leaf([0.0, 1.0])
    with tg.detect_anomaly():
        y = tnp.sqrt(x) * 0.0  # sqrt's derivative at 0 is inf; times 0 is nan
        line = sys._getframe().f_lineno - 1
        with pytest.raises(RuntimeError) as info:
            y.sum().backward()
    message = str(info.value)
    assert "Function 'SqrtBackward' returned nan values in its 0th output" in message
    assert "sqrt" in message
    assert f"test_eager.py:{line}" in message
    assert "y = tnp.sqrt(x) * 0.0" in message


def test_without_detect_anomaly_the_nan_reaches_grad():
    x = leaf([0.0, 1.0])
    (tnp.sqrt(x) * 0.0).sum().backward()
    assert np.isnan(x.grad.data[0]) and x.grad.data[1] == 0.0


def test_detect_anomaly_adds_the_forward_line_to_an_in_place_error():
    with tg.detect_anomaly():
        x = leaf([1.0, 2.0])
        y = x * 2
        z = tnp.sin(y)
        line = sys._getframe().f_lineno - 1
        y.add_(1)
        with pytest.raises(RuntimeError, match=r"modified by an inplace operation") as info:
            z.sum().backward()
    assert "SinBackward" in str(info.value)
    assert f"test_eager.py:{line}" in str(info.value)


def test_detect_anomaly_is_off_again_after_the_block():
    with tg.detect_anomaly():
        assert tg.eager.is_anomaly_enabled()
    assert not tg.eager.is_anomaly_enabled()


# ------------------------------------------------------------ grad_fn
def test_grad_fn_names():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    assert (x * y).grad_fn.name == "MulBackward"
    assert (x + y).grad_fn.name == "AddBackward"
    assert (x - y).grad_fn.name == "SubBackward"
    assert (x / y).grad_fn.name == "DivBackward"
    assert (-x).grad_fn.name == "NegBackward"
    assert tnp.sin(x).grad_fn.name == "SinBackward"
    assert tnp.exp(x).grad_fn.name == "ExpBackward"
    assert tnp.tanh(x).grad_fn.name == "TanhBackward"
    assert x.sum().grad_fn.name == "ReduceSumBackward"
    assert repr(x * y).endswith("grad_fn=<MulBackward>)")


def test_next_functions_lead_to_accumulate_grad_of_the_leaves():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (fx, nx), (fy, ny) = (x * y).grad_fn.next_functions
    assert fx.name == "AccumulateGrad" and fx.variable is x and nx == 0
    assert fy.name == "AccumulateGrad" and fy.variable is y and ny == 0
    (a, _), (b, _) = (x * x).grad_fn.next_functions
    assert a is b  # one AccumulateGrad per leaf


def test_next_functions_of_a_constant_operand_is_none():
    x = leaf([1.0, 2.0])
    assert (x * tg.tensor([3.0, 4.0], dtype=np.float64)).grad_fn.next_functions[1] == (None, 0)


def test_next_functions_chain_through_intermediate_nodes():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    m = x * y
    z = tnp.sin(m)
    ((node, nr),) = z.grad_fn.next_functions
    assert node is m.grad_fn and nr == 0
    assert node.next_functions[0][0].variable is x


# ------------------------------------------------------------ custom Function
class Scale(tg.Function):
    """x * k for a Python number k, saving x to check saved_tensors."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        ctx.save_for_backward(x)
        return x * k

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        assert x.shape == g.shape
        return g * ctx.k, None


class Square(tg.Function):

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class WrongSquare(Square):

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * g


def test_function_forward_and_backward():
    x = leaf([1.0, 2.0])
    y = Scale.apply(x, 3.0)
    close(y, [3.0, 6.0])
    assert y.requires_grad and not y.is_leaf
    assert y.grad_fn.name == "ScaleBackward"
    assert y.grad_fn.next_functions[0][0].variable is x
    assert y.grad_fn.next_functions[1] == (None, 0)
    (y * y).sum().backward()
    close(x.grad, 18 * x.data)


def test_function_saved_tensors_and_ctx_attributes_reach_backward():
    x = leaf([1.5, -2.0])
    Square.apply(x).sum().backward()
    close(x.grad, [3.0, -4.0])


def test_function_forward_runs_without_recording():
    seen = {}

    class Probe(tg.Function):
        @staticmethod
        def forward(ctx, x):
            seen["enabled"] = tg.is_grad_enabled()
            y = x * 2
            seen["requires_grad"] = y.requires_grad
            return y

        @staticmethod
        def backward(ctx, g):
            return g * 2

    Probe.apply(leaf([1.0]))
    assert seen == {"enabled": False, "requires_grad": False}


def test_function_needs_input_grad():
    seen = {}

    class Probe(tg.Function):
        @staticmethod
        def forward(ctx, x, y, k):
            seen["needs"] = ctx.needs_input_grad
            return x * y * k

        @staticmethod
        def backward(ctx, g):
            return g, None, None

    Probe.apply(leaf([1.0]), tg.tensor([2.0], dtype=np.float64), 3.0)
    assert seen["needs"] == (True, False, False)


def test_function_of_inputs_that_do_not_require_grad_has_no_history():
    y = Square.apply(tg.tensor([1.0, 2.0]))
    assert not y.requires_grad and y.grad_fn is None


def test_function_returning_too_few_or_too_many_gradients_is_an_error():
    class TooFew(tg.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    class TooMany(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g, g

    a, b = leaf([1.0]), leaf([2.0])
    with pytest.raises(RuntimeError, match=r"TooFewBackward returned an incorrect number of gradients \(expected 2, "
                                           r"got 1\)"):
        TooFew.apply(a, b).sum().backward()
    with pytest.raises(RuntimeError, match=r"incorrect number of gradients \(expected 1, got 2\)"):
        TooMany.apply(a).sum().backward()


def test_function_returning_a_gradient_of_the_wrong_shape_is_an_error():
    class Truncated(Square):
        @staticmethod
        def backward(ctx, g):
            return g[:1]

    with pytest.raises(RuntimeError, match=r"TruncatedBackward returned an invalid gradient at index 0 - got \[1\] "
                                           r"but expected shape compatible with \[2\]"):
        Truncated.apply(leaf([1.0, 2.0])).sum().backward()


def test_function_returning_a_gradient_for_a_non_tensor_input_is_an_error():
    class Scaled(tg.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.k = k
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g * ctx.k, g

    with pytest.raises(RuntimeError, match="gradient different than None at position 2.*not a"):
        Scaled.apply(leaf([1.0, 2.0]), 3.0).sum().backward()


def test_function_saved_tensor_modified_in_place_is_an_error():
    x = leaf([1.0, 2.0])
    h = x * 1
    y = Square.apply(h)
    h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*SquareBackward.*version 1; expected "
                                           "version 0"):
        y.sum().backward()


def test_function_saved_tensors_are_freed_after_backward():
    x = leaf([1.0, 2.0])
    y = Square.apply(x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_function_save_for_backward_accepts_tensors_only():
    class SavesANumber(tg.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(3.0)
            return x

    with pytest.raises(TypeError, match="save_for_backward can only save Tensors"):
        SavesANumber.apply(leaf([1.0]))


def test_function_inside_a_create_graph_backward_is_differentiable():
    x = leaf([0.5, -1.5])
    (g,) = tg.eager.grad(Square.apply(x).sum(), x, create_graph=True)  # 2x, recorded by tnp ops
    close(g, 2 * x.data)
    (g * g).sum().backward()
    close(x.grad, 8 * x.data)


# ------------------------------------------------------------ checkpoint
def test_checkpoint_gives_identical_values_and_gradients_including_closed_over_parameters():
    W = leaf(N(3, 3, seed=9))
    x0 = N(4, 3, seed=10)

    def block(h, scale):
        return tnp.tanh(h @ W) * scale + tnp.sin(h)

    x = leaf(x0)
    out = tg.eager.checkpoint(block, x, 2.0)
    assert out.grad_fn is not None
    (out ** 2).sum().backward()
    gx, gW = x.grad.data.copy(), W.grad.data.copy()
    x.grad = W.grad = None
    expected = block(x, 2.0)
    close(out, expected, rtol=0, atol=0)
    (expected ** 2).sum().backward()
    close(gx, x.grad, rtol=0, atol=0)
    close(gW, W.grad, rtol=0, atol=0)


def test_second_derivatives_through_a_checkpoint_equal_those_without_it():
    """create_graph through a checkpoint: the recomputed values carry the history of the
    values they stand for, so the gradient's own gradient reaches the input and the
    closed-over parameter through the block, as without the checkpoint."""
    W = leaf(N(3, 3, seed=12))
    x0 = N(4, 3, seed=13)

    def block(h):
        return tnp.sin(tnp.tanh(h @ W) * h)

    results = []
    for checkpointed in (False, True):
        x = leaf(x0)
        out = tg.eager.checkpoint(block, x) if checkpointed else block(x)
        gx, gW = tg.eager.grad((out ** 2).sum(), [x, W], create_graph=True)
        results.append(tg.eager.grad((gx * gx).sum() + gW.sum(), [x, W]))
    for plain, checkpointed in zip(*results):
        close(checkpointed, plain, rtol=1e-6, atol=1e-6)


def test_checkpoint_differentiates_closed_over_parameters_when_the_input_does_not_require_grad():
    W = leaf(N(3, 3, seed=9))
    X = tg.tensor(N(4, 3, seed=10))
    out = tg.eager.checkpoint(lambda h: tnp.tanh(h @ W), X)
    assert out.requires_grad
    (out.sum() + (W * W).sum()).backward()
    expected = X.data.T @ (1 - np.tanh(X.data @ W.data) ** 2) + 2 * W.data
    close(W.grad, expected)


def _chain(h):
    for _ in range(8):
        h = tnp.sin(h) * 1.01
    return h


def _peak_bytes(data, checkpointed):
    """Peak traced memory of forward + backward through 4 blocks of 8 elementwise layers."""
    x = leaf(data)
    tracemalloc.start()
    try:
        h = x
        for _ in range(4):
            h = tg.eager.checkpoint(_chain, h) if checkpointed else _chain(h)
        h.sum().backward()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, x.grad.data


def test_checkpoint_lowers_the_peak_memory_of_forward_and_backward():
    data = N(100_000, seed=11)  # 0.8 MB a layer, 64 intermediates without checkpoint
    plain, g_plain = _peak_bytes(data, checkpointed=False)
    saved, g_saved = _peak_bytes(data, checkpointed=True)
    close(g_saved, g_plain, rtol=0, atol=0)
    assert saved < 0.5 * plain, (saved, plain)


def test_checkpoint_keeps_nothing_of_the_block_between_forward_and_backward():
    data = N(100_000, seed=12)
    x = leaf(data)
    tracemalloc.start()
    try:
        out = tg.eager.checkpoint(_chain, x)
        held_checkpointed = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del out
    tracemalloc.start()
    try:
        _out = _chain(x)
        held_plain = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held_checkpointed < 0.25 * held_plain, (held_checkpointed, held_plain)


# ------------------------------------------------------------ gradcheck
def test_gradcheck_passes_on_correct_functions():
    a, b = leaf(N(3, seed=13)), leaf(N(2, 3, seed=14))
    assert tg.eager.gradcheck(lambda a, b: tnp.tanh(b @ a) * tnp.sum(a * a), (a, b))
    assert tg.eager.gradcheck(Square.apply, (leaf(N(4, seed=15)),))
    assert tg.eager.gradcheck(lambda a: (tnp.exp(a), tnp.sin(a).sum()), (a,))


def test_gradcheck_raises_on_a_wrong_function_backward():
    x = leaf([1.0, 2.0])
    with pytest.raises(tg.eager.GradcheckError, match="Jacobian mismatch for output 0 with respect to input 0"):
        tg.eager.gradcheck(WrongSquare.apply, (x,))
    assert issubclass(tg.eager.GradcheckError, RuntimeError)
    assert tg.eager.gradcheck(WrongSquare.apply, (x,), raise_exception=False) is False


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad=True"):
        tg.eager.gradcheck(tnp.sin, (tg.tensor([1.0], dtype=np.float64),))


def test_gradcheck_warns_about_single_precision_inputs():
    with pytest.warns(UserWarning, match="not a double precision"):
        tg.eager.gradcheck(lambda x: x * 2, (leaf([1.0], np.float32),), eps=1e-2, atol=1e-2, rtol=1e-2)


# ------------------------------------------------------------ eager vs compiled
def mlp_loss(params, X, Y):
    """A tanh MLP with a softmax cross-entropy, written once with tnp."""
    W1, b1, W2, b2 = params
    h = tnp.tanh(X @ W1 + b1)
    logits = h @ W2 + b2
    z = logits - tnp.max(logits, axis=1, keepdims=True)
    logp = z - tnp.log(tnp.sum(tnp.exp(z), axis=1, keepdims=True))
    return -tnp.mean(tnp.sum(Y * logp, axis=1))


def test_same_model_code_gives_the_same_loss_and_gradients_eager_and_compiled():
    params = (N(5, 8, seed=16), N(8, seed=17), N(8, 3, seed=18), N(3, seed=19))
    X = N(6, 5, seed=20)
    Y = np.eye(3)[[0, 2, 1, 1, 0, 2]]
    value, grads = tg.value_and_grad(mlp_loss)(params, X, Y)
    jvalue, jgrads = tg.jit(tg.value_and_grad(mlp_loss))(params, X, Y)
    tparams = [leaf(p) for p in params]
    loss = mlp_loss(tparams, tg.tensor(X), tg.tensor(Y))
    assert isinstance(loss, tg.Tensor) and loss.shape == () and loss.grad_fn is not None
    loss.backward()
    close(loss.item(), value)
    close(loss.item(), jvalue)
    for t, g, jg in zip(tparams, grads, jgrads):
        close(t.grad, g)
        close(t.grad, jg)


def test_model_code_on_tensors_mixed_with_arrays_stays_eager():
    params = [leaf(p) for p in (N(5, 8, seed=16), N(8, seed=17), N(8, 3, seed=18), N(3, seed=19))]
    loss = mlp_loss(params, N(6, 5, seed=20), np.eye(3)[[0, 2, 1, 1, 0, 2]])
    assert isinstance(loss, tg.Tensor) and loss.requires_grad


# ------------------------------------------------------------ Tensor basics
def test_tensor_dtype_defaults():
    assert tg.tensor([1.5, 2.0]).dtype == np.float32
    assert tg.tensor(1.5).dtype == np.float32
    assert tg.tensor([1, 2.5]).dtype == np.float32
    assert tg.tensor([1, 2]).dtype == np.int64
    assert tg.tensor(3).dtype == np.int64
    assert tg.tensor([True, False]).dtype == np.bool_
    assert tg.tensor(np.array([1.0, 2.0])).dtype == np.float64
    assert tg.tensor(np.array([1, 2], np.int32)).dtype == np.int32
    assert tg.tensor(np.float64(1.0)).dtype == np.float64
    assert tg.tensor([1.0], dtype=np.float64).dtype == np.float64
    assert tg.Tensor([1.0]).dtype == np.float32


def test_tensor_copies_its_data():
    a = np.array([1.0, 2.0])
    t = tg.tensor(a)
    a[0] = 100.0
    close(t, [1.0, 2.0])


def test_tensor_repr():
    assert repr(tg.tensor([1.5, 2.0])) == "Tensor([1.5, 2. ])"
    assert repr(tg.tensor([1, 2])) == "Tensor([1, 2])"
    assert repr(tg.tensor([1.0, 2.0], dtype=np.float64)) == "Tensor([1., 2.], dtype=float64)"
    assert repr(tg.tensor([1.0, 2.0], requires_grad=True)) == "Tensor([1., 2.], requires_grad=True)"
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x * 2) == "Tensor([2., 4.], grad_fn=<MulBackward>)"


def test_numpy_raises_for_a_tensor_that_requires_grad():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires grad.*detach\(\)\.numpy\(\)"):
        x.numpy()
    assert isinstance(x.detach().numpy(), np.ndarray)
    c = tg.tensor([1.0, 2.0])
    assert c.numpy() is c.data  # shares memory, as in PyTorch
    close(np.asarray(c), [1.0, 2.0])


def test_item():
    assert tg.tensor(3.5).item() == 3.5 and type(tg.tensor(3.5).item()) is float
    assert tg.tensor([7]).item() == 7 and type(tg.tensor([7]).item()) is int
    assert leaf([[2.0]]).item() == 2.0
    assert float(tg.tensor(2.0)) == 2.0
    with pytest.raises(RuntimeError, match="a Tensor with 2 elements cannot be converted to Scalar"):
        tg.tensor([1.0, 2.0]).item()


def test_shape_attributes():
    x = tg.tensor(np.zeros((2, 3)))
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.T.shape == (3, 2)
    assert [r.shape for r in x] == [(3,), (3,)]


def test_operators_with_python_scalars():
    x = leaf([1.0, 2.0], np.float32)
    exprs = [x * 2.5, 2.5 * x, x + 1, 1 - x, x / 2, 2 / x, x ** 2, 2 ** x, -x]
    for y in exprs:
        assert isinstance(y, tg.Tensor) and y.dtype == np.float32 and y.requires_grad
    total = exprs[0]
    for y in exprs[1:]:
        total = total + y
    total.sum().backward()
    v = np.array([1.0, 2.0])
    expected = 2.5 + 2.5 + 1 - 1 + 0.5 - 2 / v ** 2 + 2 * v + np.log(2) * 2 ** v - 1
    close(x.grad, expected, rtol=1e-6)


def test_operators_with_numpy_arrays_follow_numpy_promotion():
    x = leaf([1.0, 2.0, 3.0], np.float32)
    for y in (x + np.ones(3, np.float32), np.ones(3, np.float32) + x):
        assert isinstance(y, tg.Tensor) and y.dtype == np.float32 and y.requires_grad
    for y in (x * np.ones(3), np.ones(3) * x):
        assert isinstance(y, tg.Tensor) and y.dtype == np.float64 and y.requires_grad
    (x * np.array([1.0, 2.0, 3.0]) + np.sin(x)).sum().backward()
    close(x.grad, [1.0, 2.0, 3.0] + np.cos([1.0, 2.0, 3.0]), rtol=1e-6)


def test_indexing_with_grad():
    x = leaf(np.arange(6.0).reshape(2, 3))
    y = x[1, ::2].sum() + x[:, 0].sum() * 2 + x[np.array([0, 0])].sum() + x[-1, -1]
    y.backward()
    close(x.grad, [[4.0, 2.0, 2.0], [3.0, 0.0, 2.0]])


def test_reductions_with_axis_and_keepdims():
    x0 = N(2, 3, seed=21)
    x = leaf(x0)
    s = x.sum(axis=0)
    m = tnp.mean(x, axis=1, keepdims=True)
    mx = tnp.max(x, axis=1)
    assert s.shape == (3,) and m.shape == (2, 1) and mx.shape == (2,)
    close(s, x0.sum(0))
    close(m, x0.mean(1, keepdims=True))
    (s * tg.tensor([1.0, 2.0, 3.0], dtype=np.float64)).sum().backward()
    close(x.grad, np.broadcast_to([1.0, 2.0, 3.0], (2, 3)))
    x.grad = None
    (m.sum() + mx.sum()).backward()
    expected = np.full((2, 3), 1 / 3)
    expected[np.arange(2), x0.argmax(1)] += 1
    close(x.grad, expected)


def test_matmul_gradients():
    A0, B0, v0 = N(2, 3, seed=22), N(3, 4, seed=23), N(3, seed=24)
    A, B, v = leaf(A0), leaf(B0), leaf(v0)
    ((A @ B).sum() + (A @ v).sum()).backward()
    close(A.grad, np.ones((2, 4)) @ B0.T + np.outer(np.ones(2), v0))
    close(B.grad, A0.T @ np.ones((2, 4)))
    close(v.grad, A0.T @ np.ones(2))


def test_broadcasting_gradients_sum_over_the_broadcast_axes():
    a, b = leaf(N(3, 1, seed=25)), leaf(N(1, 4, seed=26))
    ((a * b) + b).sum().backward()
    close(a.grad, np.full((3, 1), b.data.sum()))
    close(b.grad, np.full((1, 4), a.data.sum() + 3))


def test_clone_stays_on_the_tape_and_copies():
    x = leaf([1.0, 2.0])
    c = x.clone()
    assert not c.is_leaf and c.requires_grad and not np.shares_memory(c.data, x.data)
    (c * 3).sum().backward()
    close(x.grad, [3.0, 3.0])
