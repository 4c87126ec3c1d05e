"""Functional optimisers and gradient clipping on pytrees, in the manner of optax.

An optimiser is a pair of pure functions::

    opt = optim.adam(1e-3)
    state = opt.init(params)
    params, state = opt.update(grads, state, params)

``params``, ``grads`` and ``state`` are pytrees (nested tuples, lists and
dicts) of arrays, so a whole training step, update included, can run under
``tg.jit``; nothing is updated in place. Unlike optax's ``update``, which
returns updates to add, this one returns the new parameters, since that is
what a training step wants. The leaves may be NumPy arrays, tracers or eager
Tensors (for an eager step, call ``update`` under ``tg.no_grad()`` with the
``.grad`` Tensors and write the results back, ``p[...] = new``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np

from . import numpy as tnp
from .numpy._base import dtype_of
from .tree import flatten, tree_map, unflatten

__all__ = ["Optimizer", "sgd", "momentum", "adam", "clip_by_value", "clip_by_global_norm", "global_norm"]

Pytree = Any


class Optimizer(NamedTuple):
    """``init(params) -> state``; ``update(grads, state, params) -> (new_params, new_state)``."""

    init: Callable[[Pytree], Pytree]
    update: Callable[[Pytree, Pytree, Pytree], tuple[Pytree, Pytree]]


def sgd(lr: float) -> Optimizer:
    """p <- p - lr * g. The state is empty, ``()``."""
    def init(params):
        return ()

    def update(grads, state, params):
        return tree_map(lambda p, g: p - lr * g, params, grads), state

    return Optimizer(init, update)


def momentum(lr: float, beta: float = 0.9, nesterov: bool = False) -> Optimizer:
    """Heavy-ball SGD as PyTorch's SGD(momentum=beta) and optax's: v <- beta v + g,
    p <- p - lr v; with ``nesterov``, p <- p - lr (g + beta v) (the new v).
    The state is the velocity, a pytree like ``params`` starting at zero."""
    def init(params):
        return tree_map(tnp.zeros_like, params)

    def update(grads, velocity, params):
        velocity = tree_map(lambda v, g: beta * v + g, velocity, grads)
        step = tree_map(lambda v, g: g + beta * v, velocity, grads) if nesterov else velocity
        return tree_map(lambda p, s: p - lr * s, params, step), velocity

    return Optimizer(init, update)


class AdamState(NamedTuple):
    """Adam's state: the step count (an int32 0-d array) and the first and
    second moment estimates, pytrees like the parameters."""

    count: Any
    mu: Pytree
    nu: Pytree


def adam(lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam (Kingma & Ba 2015), as PyTorch and optax compute it:
    m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2, and
    p <- p - lr m_hat / (sqrt(v_hat) + eps) with the bias corrections
    m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t) at step t = 1, 2, ...
    The corrections matter early: m and v start at 0, so without them the
    first steps would be far too small."""
    def init(params):
        zeros = tree_map(tnp.zeros_like, params)
        return AdamState(np.zeros((), np.int32), zeros, zeros)

    def update(grads, state, params):
        count = state.count + 1
        mu = tree_map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
        nu = tree_map(lambda v, g: b2 * v + (1 - b2) * (g * g), state.nu, grads)

        def step(p, m, v):
            t = tnp.astype(count, dtype_of(p))  # in p's dtype, so float32 parameters stay float32
            m_hat = m / (1 - b1 ** t)
            v_hat = v / (1 - b2 ** t)
            return p - lr * m_hat / (tnp.sqrt(v_hat) + eps)

        return tree_map(step, params, mu, nu), AdamState(count, mu, nu)

    return Optimizer(init, update)


# --------------------------------------------------------------------- clipping
def clip_by_value(grads: Pytree, lo: float, hi: float) -> Pytree:
    """Each element clipped to [lo, hi] (``None`` leaves, such as an unused
    parameter's ``.grad``, stay ``None``)."""
    return tree_map(lambda g: tnp.clip(g, lo, hi), grads)


def global_norm(tree: Pytree):
    """sqrt of the sum of squares of every element of every leaf."""
    leaves = flatten(tree)[0]
    return tnp.sqrt(sum(tnp.sum(tnp.square(g)) for g in leaves))


def clip_by_global_norm(grads: Pytree, max_norm: float) -> tuple[Pytree, Any]:
    """(grads scaled by min(1, max_norm / norm), norm), with norm the global norm
    of all leaves before clipping (the form of optax.clip_by_global_norm and
    torch.nn.utils.clip_grad_norm_, which also returns the norm). Every leaf is
    scaled by the same factor, so the direction of the whole gradient is kept.
    The factor max_norm / max(norm, max_norm) is exactly 1 below the threshold
    and never divides by a zero norm."""
    leaves, treedef = flatten(grads)
    norm = global_norm(leaves)
    scale = max_norm / tnp.maximum(norm, max_norm)
    clipped = [g * tnp.astype(scale, dtype_of(g)) for g in leaves]
    return unflatten(treedef, clipped), norm
