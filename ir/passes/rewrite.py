"""The one driver every rewriting pass runs on.

A pass is a list of named rules. The driver rebuilds the graph equation by
equation through a GraphBuilder; for each equation it offers the rules the
equation with its (already rewritten) inputs, and the first rule that
returns replacement outputs wins; otherwise the equation is bound again
unchanged. Sub-graphs held in params are rewritten the same way first, so
passes see into control flow and fused kernels. The driver counts which
rules fired, so ``as_text("optimized")`` and ``--passes`` can say what
happened, and every equation keeps the user's source line.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

from ..builder import GraphBuilder
from ..errors import VerificationError
from ..graph import Eqn, Graph, Literal, map_graphs

# rule(b, eqn, inputs) -> replacement outputs (atoms of b), or None to leave the equation alone
Rule = Callable[[GraphBuilder, Eqn, list], "list | None"]


@dataclass
class NamedRule:
    name: str
    fn: Rule
    doc: str = ""


def rewrite(graph: Graph, rules: list[NamedRule], fired: Counter | None = None, hash_cons: bool = False) -> Graph:
    """The graph rebuilt with ``rules`` applied once to every equation (sub-graphs included)."""
    fired = Counter() if fired is None else fired
    b = GraphBuilder(hash_cons=hash_cons)
    inputs = [b.new_input(v.type) for v in graph.inputs]
    env = {v.id: x for v, x in zip(graph.inputs, inputs)}
    read = lambda a: a if isinstance(a, Literal) else env[a.id]
    for eqn in graph.eqns:
        params = {k: map_graphs(v, lambda g: rewrite(g, rules, fired, hash_cons)) for k, v in eqn.params.items()}
        offered = eqn if params == eqn.params else _with_params(eqn, params)
        ins = [read(a) for a in eqn.inputs]
        start = len(b.eqns)
        with b.at(eqn.source):
            outs = None
            for rule in rules:
                outs = rule.fn(b, offered, ins)
                if outs is not None:
                    _check_replacement(rule, eqn, outs)
                    fired[rule.name] += 1
                    break
            if outs is None:
                outs = b.bind(eqn.prim, *ins, **params)
                if len(b.eqns) == start:  # the hash-consing builder already had this equation
                    fired["merged_duplicates"] += 1
        for new in b.eqns[start:]:
            new.derivative_of = new.derivative_of or eqn.derivative_of
        env.update({v.id: o for v, o in zip(eqn.outputs, outs)})
    return b.build(inputs, [read(a) for a in graph.outputs], graph.name)


def _check_replacement(rule: NamedRule, eqn: Eqn, outs) -> None:
    """A rule must replace an equation by values of exactly its output types:
    a wrong shape would otherwise flow on silently (the shape rules of later
    equations accept many shapes) and change what the program returns."""
    got = [o.type for o in outs]
    want = [v.type for v in eqn.outputs]
    if got != want:
        raise VerificationError(f"rewrite rule {rule.name!r} replaced `{eqn.prim.name}` (outputs "
                                f"{', '.join(map(str, want))}) by values of types {', '.join(map(str, got))}")


def _with_params(eqn: Eqn, params: dict) -> Eqn:
    return Eqn(eqn.prim, eqn.inputs, params, eqn.outputs, eqn.source, eqn.derivative_of)


def rebind(b: GraphBuilder, eqn: Eqn, ins: list, **params) -> list:
    """Bind ``eqn``'s primitive on new inputs (and optionally new params)."""
    return b.bind(eqn.prim, *ins, **{**eqn.params, **params})
