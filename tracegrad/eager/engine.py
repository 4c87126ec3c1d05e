"""The backward pass over the tape: every node runs once, after every node
that sends it a gradient, with the gradients for each of its outputs summed.

Among the nodes that are ready, the one created last runs first (PyTorch's
order), so hooks fire in a predictable order. The pass runs with grad mode
set to ``create_graph``: only then do the rules' own operations land on the
tape, giving a graph of the gradient that can be differentiated again.
"""

from __future__ import annotations

import heapq
from typing import Sequence

import numpy as np

from .mode import STATE
from .tape import ARRAYS, TAPE, AccumulateGrad, BackwardNode, as_tensor, edge
from .tensor import Tensor


def _roots(tensors: Sequence[Tensor], gradients: Sequence) -> list[tuple[tuple, Tensor]]:
    """Each output's edge and its starting gradient (ones for a one-element output)."""
    roots = []
    for i, (t, g) in enumerate(zip(tensors, gradients)):
        if not isinstance(t, Tensor):
            raise TypeError(f"backward needs Tensors, got a {type(t).__name__} (output {i})")
        if not t.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn: nothing "
                               f"it was computed from requires grad (make the inputs with requires_grad=True, and "
                               f"compute outside tg.no_grad())")
        if g is None:
            if t.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs: this output has shape "
                                   f"{t.shape}. Pass gradient= (a tensor of that shape, the vector of a "
                                   f"vector-Jacobian product) to backward, or reduce the output first, e.g. .sum()")
            g = Tensor._make(np.ones_like(t.data))
        else:
            g = as_tensor(g)
            if g.shape != t.shape:
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {g.shape} and output[{i}] "
                                   f"has a shape of {t.shape}.")
        roots.append((edge(t), g))
    return roots


_UNMET = object()  # what ``pending`` holds for a node the pass has not met yet


def run(roots: list[tuple[tuple, Tensor]], retain_graph: bool, create_graph: bool,
        capture: dict | None = None, accumulate_into: set | None = None) -> dict:
    """Propagate the root gradients. Gradients reaching a leaf's AccumulateGrad
    are added to its ``.grad`` (only for leaves in ``accumulate_into`` when given);
    those reaching an edge in ``capture`` are returned by edge instead.

    A node's edges lead only to nodes made before it (an operation's inputs
    exist before it runs), so running the nodes met so far in decreasing
    creation order visits every node after all the nodes that send it a
    gradient — PyTorch's order, without counting dependencies first: one heap
    of the nodes met and not yet run, and one pass."""
    b = TAPE if create_graph else ARRAYS  # gradients as Tensors on the tape, or as plain arrays
    pending: dict[BackwardNode, list | None] = {}  # node met -> gradient per output (None: none arrived yet)
    ready: list = []  # (-seq, node) of the nodes met, a heap: the latest made first
    for (node, nr), g in roots:
        if node not in pending:
            pending[node] = None
            heapq.heappush(ready, (-node.seq, node))
        _add(pending, node, nr, g, b)
    captured: dict = {}
    heappop, heappush = heapq.heappop, heapq.heappush
    anomaly = STATE.anomaly
    grad_mode, STATE.grad_enabled = STATE.grad_enabled, create_graph
    try:
        while ready:
            node = heappop(ready)[1]
            cts = pending.pop(node)
            in_cts = None
            if cts is not None:
                if node._hooks is not None or node._retained is not None:
                    cts = node.run_hooks(cts)
                if capture is not None:
                    for nr, ct in enumerate(cts):
                        if (node, nr) in capture and ct is not None:
                            captured[node, nr] = as_tensor(ct)
                if isinstance(node, AccumulateGrad):
                    if capture is None and (accumulate_into is None or node.variable in accumulate_into):
                        node.accumulate(cts[0])
                else:
                    in_cts = _apply(node, cts, b) if anomaly else node.apply(cts, b)
            if not retain_graph:
                node.release()
            for i, (nxt, nr) in enumerate(node.next_functions):
                if nxt is None:
                    continue
                slots = pending.get(nxt, _UNMET)
                if slots is _UNMET:
                    slots = pending[nxt] = None
                    heappush(ready, (-nxt.seq, nxt))
                if in_cts is not None and in_cts[i] is not None:
                    if slots is None:
                        slots = pending[nxt] = [None] * nxt.n_outputs
                    slots[nr] = in_cts[i] if slots[nr] is None else b.add(slots[nr], in_cts[i])
    finally:
        STATE.grad_enabled = grad_mode
    return captured


def _add(pending: dict, node: BackwardNode, nr: int, g, b) -> None:
    slots = pending[node]
    if slots is None:
        slots = pending[node] = [None] * node.n_outputs
    slots[nr] = g if slots[nr] is None else b.add(slots[nr], g)


def _apply(node: BackwardNode, cts: list, b) -> list:
    """One node's backward in anomaly mode (outside it the pass calls
    ``node.apply`` directly): a NaN or Inf it returns is an error naming the
    forward operation and where it was created."""
    try:
        in_cts = node.apply(cts, b)
    except RuntimeError as e:
        if STATE.anomaly and node.source is not None:
            raise RuntimeError(f"{e}\n(raised in {node.name}){node.where_created()}") from None
        raise
    if STATE.anomaly:
        for i, ct in enumerate(in_cts):
            data = ct.data if isinstance(ct, Tensor) else None if ct is None else np.asarray(ct)
            if data is not None and data.dtype.kind == "f" and not np.isfinite(data).all():
                kind = "nan" if np.isnan(data).any() else "inf"
                raise RuntimeError(f"Function '{node.name}' returned {kind} values in its {i}th output: the "
                                   f"derivative is not finite here.{node.where_created()}")
    return in_cts


def backward(tensors: Sequence[Tensor], grad_tensors: Sequence | None = None, retain_graph: bool | None = None,
             create_graph: bool = False, inputs=None) -> None:
    """Add the gradients of ``tensors`` (weighted by ``grad_tensors``) into the leaves' ``.grad``."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    grads = [None] * len(tensors) if grad_tensors is None else (
        [grad_tensors] if isinstance(grad_tensors, Tensor) else list(grad_tensors))
    only = None
    if inputs is not None:
        only = set([inputs] if isinstance(inputs, Tensor) else inputs)
    run(_roots(tensors, grads), create_graph if retain_graph is None else retain_graph, create_graph,
        accumulate_into=only)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple:
    """The gradients of ``outputs`` with respect to ``inputs``, returned
    instead of added into ``.grad`` (PyTorch's ``torch.autograd.grad``)."""
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    grads = [None] * len(outputs) if grad_outputs is None else (
        [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs))
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) does not require grad")
    edges = [edge(t) for t in inputs]
    captured = run(_roots(outputs, grads), create_graph if retain_graph is None else retain_graph, create_graph,
                   capture=set(edges))
    results = []
    for i, e in enumerate(edges):
        g = captured.get(e)
        if g is None and not allow_unused:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) appears to not have been used in the "
                               f"graph. Set allow_unused=True if this is the desired behavior.")
        results.append(g)
    return tuple(results)
