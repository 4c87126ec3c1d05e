"""The reference interpreter: runs a graph with each primitive's NumPy
implementation. It is the oracle every pass and every compiled kernel is
tested against, so it checks every value it produces against the IR types."""

from __future__ import annotations

import weakref
from typing import Sequence

import numpy as np

from .errors import DTypeError, ShapeError, TracegradError
from .graph import Graph, Literal, Var
from .types import type_of


class InterpreterError(TracegradError, RuntimeError):
    """A primitive's implementation disagreed with its shape rule (a tracegrad bug)."""


def check_args(graph: Graph, args: Sequence) -> list[np.ndarray]:
    """Arguments as arrays whose types match the graph's inputs, or a clear error."""
    if len(args) != len(graph.inputs):
        raise TypeError(f"graph {graph.name!r} takes {len(graph.inputs)} arguments, got {len(args)}")
    arrays = []
    for i, (v, a) in enumerate(zip(graph.inputs, args)):
        arr = np.asarray(a)
        if arr.shape != v.type.shape:
            raise ShapeError(f"argument {i} of graph {graph.name!r} has shape {arr.shape}, expected {v.type}")
        if arr.dtype != v.type.dtype:
            raise DTypeError(f"argument {i} of graph {graph.name!r} has dtype {arr.dtype}, expected {v.type}")
        arrays.append(arr)
    return arrays


def _release_plan(graph: Graph) -> list[list[int]]:
    """For each equation, the Vars read for the last time there. Dropping
    them at once keeps few large arrays alive, so NumPy reuses their memory
    instead of faulting in fresh pages on every call."""
    plan = _plans.get(graph)
    if plan is None:
        last: dict[int, int] = {}
        for i, eqn in enumerate(graph.eqns):
            for a in eqn.inputs:
                if isinstance(a, Var):
                    last[a.id] = i
        kept = {a.id for a in graph.outputs if isinstance(a, Var)}
        plan = [[] for _ in graph.eqns]
        for vid, i in last.items():
            if vid not in kept:
                plan[i].append(vid)
        _plans[graph] = plan
    return plan


_plans: "weakref.WeakKeyDictionary[Graph, list]" = weakref.WeakKeyDictionary()


def evaluate(graph: Graph, args: Sequence) -> list[np.ndarray]:
    """Run ``graph`` on NumPy arrays; returns one array per graph output."""
    env: dict[int, np.ndarray] = {v.id: a for v, a in zip(graph.inputs, check_args(graph, args))}

    def read(a):
        return a.value if isinstance(a, Literal) else env[a.id]

    with np.errstate(all="ignore"):  # IEEE results (inf, nan) are values here, not warnings
        for eqn, release in zip(graph.eqns, _release_plan(graph)):
            outs = eqn.prim.impl(*[read(a) for a in eqn.inputs], **eqn.params)
            if len(outs) != len(eqn.outputs):
                raise InterpreterError(f"{eqn.prim.name} returned {len(outs)} values for {len(eqn.outputs)} outputs")
            for v, value in zip(eqn.outputs, outs):
                value = np.asarray(value)
                if value.shape != v.type.shape or value.dtype != v.type.dtype:
                    raise InterpreterError(
                        f"{eqn.prim.name} computed {type_of(value)} where its shape rule says {v.type}"
                        + (f" ({eqn.source})" if eqn.source else ""))
                env[v.id] = value
            for vid in release:
                del env[vid]
    return [read(a) for a in graph.outputs]
