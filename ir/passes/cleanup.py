"""Common-subexpression elimination, dead-code elimination and inlining."""

from __future__ import annotations

from collections import Counter

from ..builder import renamed
from ..graph import Eqn, Graph, Var, map_graphs
from .loops import CONTROL, prune
from .rewrite import NamedRule, rewrite


def cse(graph: Graph, fired: Counter | None = None) -> Graph:
    """Rebuild through a hash-consing builder: two equations with the same
    primitive, the same inputs and structurally equal params (sub-graphs
    compared by content) become one, in sub-graphs too; ``fired`` counts the
    merges as ``merged_duplicates``. Exact: every primitive is pure."""
    return rewrite(graph, [], fired, hash_cons=True)


def dce(graph: Graph, fired: Counter | None = None) -> Graph:
    """Drop equations none of whose outputs is used (autodiff residuals nobody
    reads, recomputations a simplification made unnecessary), in sub-graphs too;
    a control-flow equation drops the outputs, carries and operands no one needs."""
    live = {a.id for a in graph.outputs if isinstance(a, Var)}
    kept: list[Eqn] = []
    for eqn in reversed(graph.eqns):
        if not any(v.id in live for v in eqn.outputs):
            if fired is not None:
                fired["dead_equations"] += 1
            continue
        if eqn.prim.name in CONTROL:
            pruned = prune(eqn, live)
            if pruned is not eqn and fired is not None:
                fired["pruned_loop_values"] += len(eqn.outputs) - len(pruned.outputs) + len(eqn.inputs) - len(
                    pruned.inputs)
            eqn = pruned
        params = {k: map_graphs(v, lambda g: _dce_body(g, fired)) for k, v in eqn.params.items()}
        kept.append(eqn if params == eqn.params else
                    Eqn(eqn.prim, eqn.inputs, params, eqn.outputs, eqn.source, eqn.derivative_of))
        live.update(a.id for a in eqn.inputs if isinstance(a, Var))
    if len(kept) == len(graph.eqns) and all(a is b for a, b in zip(reversed(kept), graph.eqns)):
        return graph
    return Graph(list(graph.inputs), kept[::-1], list(graph.outputs), graph.name)


def _dce_body(graph: Graph, fired: Counter | None) -> Graph:
    """A body after DCE: itself if nothing changed, else a copy with new variables.
    A body may be shared by equations that derivative rules copied (the body of a
    loop's derivative holds the branches of the loop's cond): two pruned versions
    of one body must not share a variable, as the verifier and codegen require."""
    out = dce(graph, fired)
    return graph if out is graph else renamed(out)


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
