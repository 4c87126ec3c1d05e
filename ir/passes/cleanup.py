"""Common-subexpression elimination, dead-code elimination and inlining."""

from __future__ import annotations

from collections import Counter

from ..graph import Eqn, Graph, Var
from .rewrite import NamedRule, rewrite


def cse(graph: Graph, fired: Counter | None = None) -> Graph:
    """Rebuild through a hash-consing builder: two equations with the same
    primitive, the same inputs and structurally equal params (sub-graphs
    compared by content) become one, in sub-graphs too; ``fired`` counts the
    merges as ``merged_duplicates``. Exact: every primitive is pure."""
    return rewrite(graph, [], fired, hash_cons=True)


def dce(graph: Graph, fired: Counter | None = None) -> Graph:
    """Drop equations none of whose outputs is used (autodiff residuals nobody
    reads, recomputations a simplification made unnecessary), in sub-graphs too."""
    live = {a.id for a in graph.outputs if isinstance(a, Var)}
    kept: list[Eqn] = []
    for eqn in reversed(graph.eqns):
        if not any(v.id in live for v in eqn.outputs):
            if fired is not None:
                fired["dead_equations"] += 1
            continue
        params = {k: _dce_param(v, fired) for k, v in eqn.params.items()}
        kept.append(eqn if params == eqn.params else
                    Eqn(eqn.prim, eqn.inputs, params, eqn.outputs, eqn.source, eqn.derivative_of))
        live.update(a.id for a in eqn.inputs if isinstance(a, Var))
    return Graph(list(graph.inputs), kept[::-1], list(graph.outputs), graph.name)


def _dce_param(value, fired):
    if isinstance(value, Graph):
        return dce(value, fired)
    if isinstance(value, tuple) and value and all(isinstance(g, Graph) for g in value):
        return tuple(dce(g, fired) for g in value)
    return value


def _inline_call(b, eqn, ins):
    """Once a program is differentiated, a custom-derivative call is just its
    function: inline it so the other passes see through it (a custom_vjp_call's
    residual outputs are left for DCE to drop). A checkpoint stays whole: its
    backward already recomputes the body, and inlining the forward copy would
    let CSE merge the two and keep every intermediate alive, undoing it."""
    body = {"custom_jvp_call": "fun", "custom_vjp_call": "fwd"}.get(eqn.prim.name)
    if body is None:
        return None
    return b.inline(eqn.params[body], ins)[0]


INLINE_RULES = [NamedRule("inline_calls", _inline_call, _inline_call.__doc__)]
