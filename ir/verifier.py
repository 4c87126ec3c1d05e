"""The type checker: re-derives every type from the primitive rules.

Run after every pass in tests and in debug mode, it catches a pass that
breaks the graph where the break happens rather than where it crashes."""

from __future__ import annotations

from .builder import params_key
from .errors import TracegradError, VerificationError
from .graph import Eqn, Graph, Literal, Var
from .primitives import REGISTRY
from .printer import Namer, _equation, format_graph
from .types import ShapedType, type_of


def verify(graph: Graph) -> Graph:
    """Check ``graph`` and every sub-graph; return it unchanged or raise VerificationError."""
    names = Namer()
    format_graph(graph, names=names)  # name every variable as str(graph) does, so messages match the dump
    _verify(graph, names, set(), set())
    return graph


def _fail(eqn: Eqn | None, index: int | None, names: Namer, graph: Graph, problem: str):
    where = f"in graph {graph.name!r}"
    if eqn is not None:
        where += f", equation {index} `{_equation(eqn, names, source=False)}`"
        if eqn.source is not None:
            where += f" ({eqn.source})"
    raise VerificationError(f"{where}: {problem}")


def _check_atom(a, defined: set[int], eqn, index, names, graph, what: str):
    if isinstance(a, Literal):
        if a.value.ndim != 0 or type_of(a.value) != a.type:
            _fail(eqn, index, names, graph, f"{what} literal {a!r} does not have its declared type {a.type}")
    elif isinstance(a, Var):
        if a.id not in defined:
            _fail(eqn, index, names, graph, f"{what} {names(a)}: {a.type} is used before it is defined")
    else:
        _fail(eqn, index, names, graph, f"{what} {a!r} is neither a Var nor a Literal")


def _verify(graph: Graph, names: Namer, seen: set[int], checked: set[int]) -> None:
    """``seen``: Vars defined anywhere so far (SSA holds across nesting); ``checked``: graphs
    already verified, so that a sub-graph shared by several equations is checked once."""
    checked.add(id(graph))
    defined: set[int] = set()

    def define(v, eqn, index):
        if not isinstance(v, Var) or not isinstance(v.type, ShapedType):
            _fail(eqn, index, names, graph, f"{v!r} is not a typed Var")
        if v.id in seen:
            _fail(eqn, index, names, graph, f"variable {names(v)} is defined more than once (SSA)")
        seen.add(v.id)
        defined.add(v.id)

    for v in graph.inputs:
        define(v, None, None)
    for i, eqn in enumerate(graph.eqns):
        if REGISTRY.get(getattr(eqn.prim, "name", None)) is not eqn.prim:
            _fail(eqn, i, names, graph, f"primitive {eqn.prim!r} is not registered")
        for a in eqn.inputs:
            _check_atom(a, defined, eqn, i, names, graph, "input")
        try:
            params_key(eqn.params)
        except TypeError as e:
            _fail(eqn, i, names, graph, f"params must be hashable: {e}")
        for _, sub in eqn.subgraphs():
            if id(sub) not in checked:
                _verify(sub, names, seen, checked)
        try:
            expected = eqn.prim.shape_rule(*[a.type for a in eqn.inputs], **eqn.params)
        except (TracegradError, TypeError, ValueError) as e:
            _fail(eqn, i, names, graph, f"the shape rule rejects the inputs: {e}")
        got = [v.type for v in eqn.outputs]
        if len(got) != len(expected):
            _fail(eqn, i, names, graph,
                  f"{eqn.prim.name} produces {len(expected)} outputs, the equation has {len(got)}")
        for k, (g, e) in enumerate(zip(got, expected)):
            if g != e:
                _fail(eqn, i, names, graph, f"output {k} is declared {g} but {eqn.prim.name} produces {e}")
        for v in eqn.outputs:
            define(v, eqn, i)
    for a in graph.outputs:
        _check_atom(a, defined, None, None, names, graph, "graph output")
