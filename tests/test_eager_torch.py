"""The eager mode against PyTorch itself, where it is installed (the
project's environment does not install it; these tests are skipped there):
the same random models — MLPs with tanh and relu, elementwise chains,
reductions, matmuls, broadcasting — give the same values, gradients and
Hessian-vector products in float64; in-place and hook semantics give
PyTorch's numbers; and a second backward through a freed graph fails for
exactly the operations for which PyTorch's fails."""

from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp

torch = pytest.importorskip("torch")


def rand(*shape, seed=0):
    return np.random.default_rng([2024, seed, *shape]).normal(0.0, 1.0, size=shape)


def close(ours, theirs, rtol=1e-10, atol=1e-12):
    ours = ours.detach().data if isinstance(ours, tg.Tensor) else np.asarray(ours)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=rtol, atol=atol)


class TNP:
    """The few operations whose spelling differs, as tracegrad.numpy spells them."""
    tanh, sin, cos, exp, log, sqrt, abs = tnp.tanh, tnp.sin, tnp.cos, tnp.exp, tnp.log, tnp.sqrt, tnp.abs
    relu = staticmethod(lambda x: tnp.maximum(x, 0.0))
    where = staticmethod(tnp.where)
    sum = staticmethod(lambda x, axis=None, keepdims=False: tnp.sum(x, axis=axis, keepdims=keepdims))
    mean = staticmethod(lambda x, axis=None, keepdims=False: tnp.mean(x, axis=axis, keepdims=keepdims))
    max = staticmethod(lambda x, axis, keepdims=False: tnp.max(x, axis=axis, keepdims=keepdims))
    prod = staticmethod(lambda x, axis: tnp.prod(x, axis=axis))
    var = staticmethod(lambda x, axis: tnp.var(x, axis=axis))
    transpose = staticmethod(lambda x: x.T)


class TORCH:
    """The same operations, as PyTorch spells them."""
    tanh, sin, cos, exp, log, sqrt, abs = torch.tanh, torch.sin, torch.cos, torch.exp, torch.log, torch.sqrt, torch.abs
    relu = staticmethod(lambda x: torch.clamp(x, min=0.0))
    where = staticmethod(torch.where)
    sum = staticmethod(lambda x, axis=None, keepdims=False: x.sum() if axis is None else x.sum(dim=axis,
                                                                                               keepdim=keepdims))
    mean = staticmethod(lambda x, axis=None, keepdims=False: x.mean() if axis is None else x.mean(dim=axis,
                                                                                                  keepdim=keepdims))
    max = staticmethod(lambda x, axis, keepdims=False: torch.amax(x, dim=axis, keepdim=keepdims))
    prod = staticmethod(lambda x, axis: torch.prod(x, dim=axis))
    var = staticmethod(lambda x, axis: torch.var(x, dim=axis, unbiased=False))
    transpose = staticmethod(lambda x: x.T)


# ------------------------------------------------------------ models, written once against L
def mlp_tanh_softmax(L, W1, b1, W2, b2, X, Y):
    h = L.tanh(X @ W1 + b1)
    logits = h @ W2 + b2
    z = logits - L.max(logits, axis=1, keepdims=True)
    logp = z - L.log(L.sum(L.exp(z), axis=1, keepdims=True))
    return -L.mean(L.sum(Y * logp, axis=1))


def mlp_relu_mse(L, W1, b1, W2, b2, X, Y):
    h = L.relu(X @ W1 + b1)
    out = L.tanh(h @ W2 + b2)
    return L.mean((out - Y) ** 2)


def elementwise_chain(L, a, b):
    u = L.sin(a) * L.exp(-a * a) + L.cos(b) / (1.0 + b * b)
    v = L.sqrt(u * u + 1.0) - L.log(L.abs(a) + 2.0) * b ** 3
    return L.sum(L.tanh(v) * (a - b) + 0.5 * v ** 2)


def reductions(L, a, b):
    return (L.sum(L.sum(a, axis=1) ** 2) + L.sum(L.mean(a, axis=0) * b[0]) + L.sum(L.max(a * b, axis=1))
            + L.sum(L.prod(a, axis=0)) + L.sum(L.var(a + b, axis=1)) + L.mean(a, axis=(0, 1), keepdims=True).sum())


def matmuls(L, A, B, v):
    M = A @ B
    return L.sum(L.tanh(M) @ L.transpose(B) * A) + L.sum((v @ A) ** 2) + v @ (L.transpose(B) @ L.transpose(B).T @ v)


def broadcasting(L, col, row, s, m):
    x = col * row + s - m
    y = L.exp(-(x - col) ** 2) * row / (1.0 + s * s)
    return L.sum(y * x) + L.sum(L.where(x > 0, x, 0.1 * x))


def eager_and_torch(model, arrays):
    ours = [tg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return model(TNP, *ours), ours, model(TORCH, *theirs), theirs


def mlp_arrays(seed):
    Y = np.eye(3)[np.random.default_rng(seed).integers(0, 3, 6)]
    return [rand(5, 8, seed=seed) * 0.5, rand(8, seed=seed + 1) * 0.1, rand(8, 3, seed=seed + 2) * 0.5,
            rand(3, seed=seed + 3) * 0.1, rand(6, 5, seed=seed + 4), Y]


CASES = {
    "mlp_tanh_softmax": (mlp_tanh_softmax, mlp_arrays),
    "mlp_relu_mse": (mlp_relu_mse, mlp_arrays),
    "elementwise_chain": (elementwise_chain, lambda s: [rand(4, 3, seed=s), rand(4, 3, seed=s + 1)]),
    "reductions": (reductions, lambda s: [rand(3, 4, seed=s), rand(1, 4, seed=s + 1)]),
    "matmuls": (matmuls, lambda s: [rand(3, 4, seed=s), rand(4, 3, seed=s + 1), rand(3, seed=s + 2)]),
    "broadcasting": (broadcasting, lambda s: [rand(4, 1, seed=s), rand(1, 5, seed=s + 1), rand(seed=s + 2),
                                              rand(5, seed=s + 3)]),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(CASES))
def test_random_model_gradients_match_pytorch(name, seed):
    model, make_arrays = CASES[name]
    loss, ours, tloss, theirs = eager_and_torch(model, make_arrays(seed))
    close(loss, tloss)
    loss.backward()
    tloss.backward()
    for i, (o, t) in enumerate(zip(ours, theirs)):
        close(o.grad, t.grad)


@pytest.mark.parametrize("name", ["mlp_tanh_softmax", "elementwise_chain", "matmuls", "broadcasting"])
def test_random_model_hessian_vector_products_match_pytorch(name):
    model, make_arrays = CASES[name]
    arrays = make_arrays(5)
    vs = [rand(*np.shape(a), seed=99 + i) for i, a in enumerate(arrays)]
    loss, ours, tloss, theirs = eager_and_torch(model, arrays)
    grads = tg.eager.grad(loss, ours, create_graph=True)
    tgrads = torch.autograd.grad(tloss, theirs, create_graph=True)
    for g, t in zip(grads, tgrads):
        close(g, t)
    dot = sum((g * tg.tensor(v)).sum() for g, v in zip(grads, vs))
    tdot = sum((t * torch.tensor(v)).sum() for t, v in zip(tgrads, vs))
    hvps = tg.eager.grad(dot, ours, allow_unused=True)
    thvps = torch.autograd.grad(tdot, theirs, allow_unused=True)
    for h, t in zip(hvps, thvps):
        if t is None:
            assert h is None or not h.data.any()
        else:
            close(h, t, rtol=1e-9, atol=1e-11)


def test_a_few_sgd_steps_match_pytorch():
    arrays = mlp_arrays(7)
    params = [tg.tensor(a, requires_grad=True) for a in arrays[:4]]
    tparams = [torch.tensor(a, requires_grad=True) for a in arrays[:4]]
    X, Y = arrays[4:]
    for _ in range(3):
        loss = mlp_tanh_softmax(TNP, *params, tg.tensor(X), tg.tensor(Y))
        tloss = mlp_tanh_softmax(TORCH, *tparams, torch.tensor(X), torch.tensor(Y))
        close(loss, tloss)
        for p in params:
            p.grad = None
        for p in tparams:
            p.grad = None
        loss.backward()
        tloss.backward()
        with tg.no_grad():
            for p in params:
                p -= 0.5 * p.grad
        with torch.no_grad():
            for p in tparams:
                p -= 0.5 * p.grad
    for p, t in zip(params, tparams):
        close(p, t)


# ------------------------------------------------------------ semantics, side by side
def both(fn):
    """fn(lib, tensor) run with tracegrad and with torch, returning their results."""
    return fn(TNP, lambda a, **k: tg.tensor(np.asarray(a, np.float64), **k)), \
        fn(TORCH, lambda a, **k: torch.tensor(np.asarray(a, np.float64), **k))


def test_in_place_on_non_leaves_matches_pytorch():
    def run(L, T):
        x = T([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 2
        y.mul_(3)
        y.add_(x)
        y *= 0.5
        z = x * 1
        z[1] = 7.0
        ((y * y).sum() + (z * z * z).sum()).backward()
        return x.grad

    ours, theirs = both(run)
    close(ours, theirs)


def test_hooks_and_retained_grads_match_pytorch():
    def run(L, T):
        x = T([1.0, -2.0, 0.5], requires_grad=True)
        y = L.sin(x) * 3
        y.retain_grad()
        y.register_hook(lambda g: g * 10)
        x.register_hook(lambda g: g + 1)
        (y * y).sum().backward()
        return x.grad, y.grad

    (gx, gy), (tx, ty) = both(run)
    close(gx, tx)
    close(gy, ty)


def test_gradient_accumulation_with_shared_gradients_matches_pytorch():
    def run(L, T):
        a, b = T([1.0, 2.0], requires_grad=True), T([3.0, 4.0], requires_grad=True)
        v = T([1.0, 1.0])
        ((a + b) * 1).sum().backward()
        (a + b).backward(v)
        (a * 1).backward(v)
        return a.grad, b.grad, v

    ours, theirs = both(run)
    for o, t in zip(ours, theirs):
        close(o, t)


FREED = {
    "add": lambda L, x: (x + x).sum(),
    "add_constant": lambda L, x: (x + 1.0).sum(),
    "subtract": lambda L, x: (x - 1.0).sum(),
    "negative": lambda L, x: (-x).sum(),
    "index": lambda L, x: x[0],
    "reshape": lambda L, x: x.reshape(2, 1).sum(),
    "multiply_constant": lambda L, x: (x * 2.0).sum(),
    "multiply": lambda L, x: (x * x).sum(),
    "divide": lambda L, x: (x / 2.0).sum(),
    "sin": lambda L, x: L.sin(x).sum(),
    "exp": lambda L, x: L.exp(x).sum(),
    "tanh": lambda L, x: L.tanh(x).sum(),
    "matmul": lambda L, x: x @ x,
    "mean": lambda L, x: L.mean(x),
}


# Constant operands survive a freed graph in tracegrad (they cost nothing to keep), so products and
# quotients by a Python number backward twice; PyTorch saves the number as a tensor and frees it.
KEPT_CONSTANTS = {"multiply_constant", "divide"}


@pytest.mark.parametrize("name", [n for n in FREED if n not in KEPT_CONSTANTS])
def test_second_backward_through_a_freed_graph_fails_exactly_when_pytorchs_does(name):
    def second_backward_raises(L, T):
        x = T([2.0, 3.0], requires_grad=True)
        y = FREED[name](L, x)
        y.backward()
        try:
            y.backward()
        except RuntimeError as e:
            assert "retain_graph=True" in str(e)
            return True
        return False

    ours, theirs = both(second_backward_raises)
    assert ours == theirs


@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled", "ignore:Error detected in")
def test_anomaly_detection_stops_where_pytorchs_does():
    def run(L, T):
        x = T([0.0, 1.0], requires_grad=True)
        y = L.sqrt(x) * 0.0
        try:
            y.sum().backward()
        except RuntimeError as e:
            return str(e)
        return None

    with tg.detect_anomaly(), torch.autograd.detect_anomaly():
        ours, theirs = both(run)
    assert theirs is not None and ours is not None
    assert "returned nan values in its 0th output" in theirs and "returned nan values in its 0th output" in ours
    assert "SqrtBackward" in ours and "SqrtBackward" in theirs


def test_custom_function_matches_pytorch():
    def cube(base):
        """The same custom function, written once for either library's Function class."""

        class Cube(base):
            @staticmethod
            def forward(ctx, x, k):
                ctx.save_for_backward(x)
                ctx.k = k
                return k * x ** 3

            @staticmethod
            def backward(ctx, g):
                (x,) = ctx.saved_tensors
                return 3 * ctx.k * x ** 2 * g, None

        return Cube

    Cube, TCube = cube(tg.Function), cube(torch.autograd.Function)

    a = rand(4, seed=3)
    x, t = tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, ty = tnp.sin(Cube.apply(x, 2.0)), torch.sin(TCube.apply(t, 2.0))
    close(y, ty)
    y.sum().backward()
    ty.sum().backward()
    close(x.grad, t.grad)
    assert y.grad_fn.next_functions[0][0].name == "CubeBackward"
    assert ty.grad_fn.next_functions[0][0].name() == "CubeBackward"


def test_checkpoint_gradients_match_pytorch_checkpoint():
    from torch.utils.checkpoint import checkpoint as torch_checkpoint

    W0, x0 = rand(3, 3, seed=4), rand(5, 3, seed=5)
    W, tW = tg.tensor(W0, requires_grad=True), torch.tensor(W0, requires_grad=True)
    x, tx = tg.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
    out = tg.eager.checkpoint(lambda h: tnp.tanh(h @ W) + tnp.sin(h), x)
    tout = torch_checkpoint(lambda h: torch.tanh(h @ tW) + torch.sin(h), tx, use_reentrant=False)
    close(out, tout)
    (out ** 2).sum().backward()
    (tout ** 2).sum().backward()
    close(x.grad, tx.grad)
    close(W.grad, tW.grad)


def test_tensor_dtype_defaults_match_pytorch():
    for data in ([1.5, 2.0], 1.5, [1, 2.5], [1, 2], 3, [True], np.array([1.0]), np.array([1], np.int32),
                 np.array([1.0], np.float32)):
        assert str(tg.tensor(data).dtype) == str(torch.tensor(data).dtype).removeprefix("torch.")
