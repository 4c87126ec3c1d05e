"""The reference interpreter: runs a graph with each primitive's NumPy
implementation. It is the oracle every pass and every compiled kernel is
tested against, so it checks every value it produces against the IR types.

It also hosts the finite-value check behind ``tracegrad.debug_nans``: when
``FINITE_CHECK.enabled`` is set, the first NaN or Inf an equation produces
raises FloatingPointError naming the primitive, the IR variable and the
user's source line."""

from __future__ import annotations

import weakref
from typing import Callable, Sequence

import numpy as np

from .errors import DTypeError, ShapeError, TracegradError
from .graph import Eqn, Graph, Literal, Var
from .types import type_of


class InterpreterError(TracegradError, RuntimeError):
    """A primitive's implementation disagreed with its shape rule (a tracegrad bug)."""


class _FiniteCheck:
    enabled: bool = False


FINITE_CHECK = _FiniteCheck()

WHERE_HINT = (
    "A NaN in a derivative often comes from a value that tnp.where discarded: its derivative is still computed, "
    "and zero times an infinite derivative is NaN (as in `where(x > 0, sqrt(x), 0)` at x <= 0). Guard the input "
    "as well, so the discarded branch stays finite: `where(x > 0, sqrt(where(x > 0, x, 1)), 0)`.")


def _bad(values) -> str | None:
    for value in values:
        if value.dtype.kind == "f" and value.size and not np.isfinite(value).all():
            return "nan" if np.isnan(value).any() else "inf"
    return None


def nonfinite_error(prim_name: str, kind: str, where: str, derivative: bool) -> FloatingPointError:
    """What debug_nans raises when a primitive produced ``kind`` ("nan" or "inf"),
    wherever it ran: traced with values, in this interpreter, or in a checked build of native code."""
    message = f"debug_nans: {prim_name!r} produced {kind}" + (f" {where}" if where else "")
    return FloatingPointError(message + ("\n" + WHERE_HINT if derivative else ""))


def check_finite(prim_name: str, outputs, describe: Callable[[], str], derivative: bool = False) -> None:
    """Raise FloatingPointError if any output holds NaN or Inf (when enabled)."""
    if not FINITE_CHECK.enabled:
        return
    kind = _bad(outputs)
    if kind is not None:
        raise nonfinite_error(prim_name, kind, describe(), derivative)


def _describe(target: str, equation: str, derivative_of: str, source) -> str:
    """The one shape of every debug_nans location, whoever ran the primitive:
    ``in d: f32[3] (equation `d: f32[3] = sqrt c`, in the derivative of exp), at file.py:12 (in f): y = ...``."""
    text = f"in {target} (equation `{equation}`"
    text += f", in the derivative of {derivative_of})" if derivative_of else ")"
    return text + (f", at {source.describe()}" if source else "")


def describe_eqn(eqn: Eqn, graph: Graph | None) -> str:
    """``in d: f32[3] (equation `d: f32[3] = sqrt c`), at file.py:12: y = tnp.sqrt(x)``. Variables are named
    as ``graph``'s text dump names them, sub-graphs (loop bodies, branches, kernels) included."""
    from .printer import Namer, _equation, format_graph

    names = Namer()
    if graph is not None:
        format_graph(graph, names=names)
    return _describe(f"{names(eqn.outputs[0])}: {eqn.outputs[0].type}", _equation(eqn, names, False),
                     eqn.derivative_of, eqn.source)


def describe_values(prim_name: str, params: dict, inputs, outputs, derivative_of: str, source) -> str:
    """describe_eqn for a primitive computed at once on arrays (no graph, so no
    variable names): the types stand in for them, ``in f64[3] (equation `f64[3] = sqrt f64[3]`)``."""
    from .printer import format_param

    shown = {k: v for k, v in params.items() if not isinstance(v, Graph)}
    params_text = f"[{', '.join(f'{k}={format_param(v)}' for k, v in shown.items())}]" if shown else ""
    outs = ", ".join(str(type_of(o)) for o in outputs)
    ins = " ".join(str(type_of(np.asarray(a))) for a in inputs)
    return _describe(str(type_of(outputs[0])), f"{outs} = {prim_name}{params_text} {ins}".rstrip(), derivative_of,
                     source)


class _Naming:
    """The outermost program being run while debug_nans is on: a NaN inside a
    sub-graph (a loop body) names its variables as that program's dump does,
    as compiled code does, not by the sub-graph alone."""
    graph_fn: Callable[[], Graph | None] | None = None


_NAMING = _Naming()


def run_eqn(eqn: Eqn, inputs: list, graph_fn: Callable[[], Graph | None] = lambda: None) -> list[np.ndarray]:
    """One equation on NumPy values, checked against its output types. The caller
    holds np.errstate(all="ignore"): IEEE results (inf, nan) are values here, not warnings.
    ``graph_fn`` gives the program that names variables in a debug_nans message."""
    if FINITE_CHECK.enabled:
        if _NAMING.graph_fn is not None:  # inside a sub-graph: name by the outermost program
            return _run_eqn(eqn, inputs, _NAMING.graph_fn)
        _NAMING.graph_fn = graph_fn
        try:
            return _run_eqn(eqn, inputs, graph_fn)
        finally:
            _NAMING.graph_fn = None
    return _run_eqn(eqn, inputs, graph_fn)


def _run_eqn(eqn: Eqn, inputs: list, graph_fn: Callable[[], Graph | None]) -> list[np.ndarray]:
    outs = eqn.prim.impl(*inputs, **eqn.params)
    if len(outs) != len(eqn.outputs):
        raise InterpreterError(f"{eqn.prim.name} returned {len(outs)} values for {len(eqn.outputs)} outputs")
    values = []
    for v, value in zip(eqn.outputs, outs):
        value = np.asarray(value)
        if value.shape != v.type.shape or value.dtype != v.type.dtype:
            raise InterpreterError(f"{eqn.prim.name} computed {type_of(value)} where its shape rule says {v.type}"
                                   + (f" ({eqn.source})" if eqn.source else ""))
        values.append(value)
    check_finite(eqn.prim.name, values, lambda: describe_eqn(eqn, graph_fn()), derivative=bool(eqn.derivative_of))
    return values


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


def evaluate(graph: Graph, args: Sequence, *, checked_args: bool = False) -> list[np.ndarray]:
    """Run ``graph`` on NumPy arrays; returns one array per graph output.
    ``checked_args``: the caller guarantees the arguments' types (a sub-graph's
    operands, already checked as the enclosing equation's values)."""
    args = args if checked_args else check_args(graph, args)
    env: dict[int, np.ndarray] = {v.id: a for v, a in zip(graph.inputs, args)}

    def read(a):
        return a.value if isinstance(a, Literal) else env[a.id]

    with np.errstate(all="ignore"):
        for eqn, release in zip(graph.eqns, _release_plan(graph)):
            for v, value in zip(eqn.outputs, run_eqn(eqn, [read(a) for a in eqn.inputs], lambda: graph)):
                env[v.id] = value
            for vid in release:
                del env[vid]
    return [read(a) for a in graph.outputs]
