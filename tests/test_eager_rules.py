"""The eager tape runs the primitives' own VJP rules: for every derivative case
of the rule table (tests/test_autodiff_rules.py, which covers every
differentiable primitive), the gradients backward() computes on Tensors equal
those of the graph transformation, and so do the second derivatives that a
create_graph backward gives."""

from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
from test_autodiff_rules import CASES, Case
from tracegrad import tree

REVERSE = [c for c in CASES if "rev" in c.modes]


def _is_float(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.kind == "f"


def _weights(outputs: list, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(np.shape(o)).astype(np.asarray(o).dtype) if _is_float(np.asarray(o)) else None
            for o in outputs]


def _graph_gradients(fn, args, weights, wrt):
    """d/dx of sum(weights * fn(x)) with the graph transformations (the reference)."""

    def weighted(*xs):
        outs = tree.flatten(fn(*xs))[0]
        return sum((o * w).sum() for o, w in zip(outs, weights) if w is not None)

    return weighted, tg.grad(weighted, argnums=tuple(wrt))(*args)


def _tape_loss(fn, tensors, weights):
    outs = tree.flatten(fn(*tensors))[0]
    return sum((o * tg.tensor(w)).sum() for o, w in zip(outs, weights) if w is not None)


@pytest.mark.parametrize("case", REVERSE, ids=lambda c: c.name if isinstance(c, Case) else str(c))
def test_backward_on_the_tape_equals_the_graph_gradient_to_second_order(case):
    args = [np.asarray(a) for a in case.args]
    wrt = [i for i, a in enumerate(args) if _is_float(a)]
    weights = _weights(tree.flatten(case.fn(*args))[0], seed=1)
    weighted, want = _graph_gradients(case.fn, args, weights, wrt)

    tensors = [tg.tensor(a, requires_grad=i in wrt) for i, a in enumerate(args)]
    leaves = [tensors[i] for i in wrt]
    got = tg.eager.grad(_tape_loss(case.fn, tensors, weights), leaves, create_graph=True, allow_unused=True)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.zeros_like(w) if g is None else g.data, w, rtol=1e-10, atol=1e-12)

    # Second order: the gradient of <grad, v> — a Hessian-vector product — through the taped backward.
    v = _weights([args[i] for i in wrt], seed=2)
    inner = sum((g * tg.tensor(vi)).sum() for g, vi in zip(got, v) if g is not None and g.requires_grad)
    if not isinstance(inner, tg.Tensor):
        return  # a linear function: its gradient does not depend on the inputs
    hvp = tg.eager.grad(inner, leaves, allow_unused=True)
    along = lambda *xs: sum((g * vi).sum() for g, vi in
                            zip(tg.grad(weighted, argnums=tuple(wrt))(*xs), v))
    want2 = tg.grad(along, argnums=tuple(wrt))(*args)
    for h, w in zip(hvp, want2):
        np.testing.assert_allclose(np.zeros_like(w) if h is None else h.data, w, rtol=1e-9, atol=1e-11)
