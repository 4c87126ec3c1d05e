"""The text dump, Graphviz DOT and networkx views of a graph, from one walk.

Names are given in order of first definition (a, b, ..., z, ba, bb, ...), so
two traces of the same function print the same text. The text form reads
like a Python function: one equation per line, every variable typed, params
in brackets, sub-graphs as indented blocks under the equation that holds
them, and optionally each equation's source line::

    def f(a: f32[3,4], b: f32[4]) -> f32[3]:
        c: f32[3,4] = broadcast_in_dim[shape=(3, 4), broadcast_dimensions=(1,)] b
        d: f32[3,4] = mul a c
        e: f32[3] = reduce_sum[axes=(1,)] d
        return e
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from . import dtypes
from .graph import Eqn, Graph, Literal, Var

INDENT = "    "


class Namer:
    """Short stable names for Vars, in order of first request."""

    def __init__(self):
        self.names: dict[int, str] = {}

    def __call__(self, v: Var) -> str:
        name = self.names.get(v.id)
        if name is None:
            name = self.names[v.id] = _letters(len(self.names))
        return name


def _letters(n: int) -> str:
    letters = string.ascii_lowercase
    out = letters[n % 26]
    n //= 26
    while n:
        out = letters[n % 26] + out
        n //= 26
    return out


def format_atom(a, names: Namer) -> str:
    if isinstance(a, Literal):
        v = a.value[()]
        text = str(bool(v)) if a.type.dtype == dtypes.bool_ else str(v)
        return f"{text}:{dtypes.short_name(a.type.dtype)}"
    if isinstance(a, Var):
        return names(a)
    return f"<{type(a).__name__}?>"  # not an atom: a broken graph, shown so the verifier can say so


def _typed(v, names: Namer) -> str:
    return f"{format_atom(v, names)}: {v.type}" if isinstance(v, Var) else format_atom(v, names)


def format_param(v) -> str:
    if isinstance(v, np.dtype):
        return dtypes.short_name(v) if v in dtypes.SHORT_NAMES else str(v)
    if isinstance(v, tuple):
        inner = ", ".join(format_param(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    return repr(v)


@dataclass
class Line:
    """One step of the walk: an equation (or a sub-graph header) at a depth."""

    depth: int
    eqn: Eqn | None = None
    graph: Graph | None = None
    label: str = ""
    parent: Eqn | None = None  # the equation whose params hold this line's graph


def walk(graph: Graph, depth: int = 0, label: str | None = None, parent: Eqn | None = None):
    """Graph header, its equations with their sub-graphs nested below them."""
    yield Line(depth, graph=graph, label=label if label is not None else graph.name, parent=parent)
    for eqn in graph.eqns:
        yield Line(depth + 1, eqn=eqn, parent=parent)
        for sub_label, sub in eqn.subgraphs():
            yield from walk(sub, depth + 2, sub_label, eqn)


def _signature(graph: Graph, names: Namer, label: str, top: bool) -> str:
    args = ", ".join(_typed(v, names) for v in graph.inputs)
    outs = [str(getattr(a, "type", "?")) for a in graph.outputs]
    ret = outs[0] if len(outs) == 1 else f"({', '.join(outs)})"
    return f"{'def ' if top else ''}{label}({args}) -> {ret}:"


def _equation(eqn: Eqn, names: Namer, source: bool) -> str:
    # Inputs are named before outputs: an input was defined earlier, so it keeps its name.
    ins = " ".join(format_atom(a, names) for a in eqn.inputs)
    outs = ", ".join(_typed(v, names) for v in eqn.outputs) or "()"
    shown = {k: v for k, v in eqn.params.items() if k not in dict(eqn.subgraphs()) and not _holds_graphs(v)}
    params = f"[{', '.join(f'{k}={format_param(v)}' for k, v in shown.items())}]" if shown else ""
    text = f"{outs} = {eqn.prim.name}{params}" + (f" {ins}" if ins else "")
    if source and eqn.source is not None:
        text += f"  # {eqn.source}"
    return text


def _holds_graphs(v) -> bool:
    return isinstance(v, Graph) or (isinstance(v, tuple) and bool(v) and all(isinstance(g, Graph) for g in v))


def _return(graph: Graph, names: Namer) -> str:
    outs = [format_atom(a, names) for a in graph.outputs]
    return "return " + (outs[0] if len(outs) == 1 else f"({', '.join(outs)})")


def format_graph(graph: Graph, *, source: bool = False, names: Namer | None = None) -> str:
    """The text dump; ``names`` (a Namer) is filled with the names it uses."""
    names = Namer() if names is None else names
    lines = []
    stack: list[tuple[int, Graph]] = []
    for line in walk(graph):
        # Close every sub-graph that ended before this line with its return.
        while stack and stack[-1][0] >= line.depth:
            d, g = stack.pop()
            lines.append(INDENT * (d + 1) + _return(g, names))
        if line.graph is not None:
            lines.append(INDENT * line.depth + _signature(line.graph, names, line.label, top=line.depth == 0))
            stack.append((line.depth, line.graph))
        else:
            lines.append(INDENT * line.depth + _equation(line.eqn, names, source))
    while stack:
        d, g = stack.pop()
        lines.append(INDENT * (d + 1) + _return(g, names))
    return "\n".join(lines)


def to_networkx(graph: Graph):
    """A networkx DiGraph with a node per variable and per equation.

    Variable nodes are named by the printer's names and carry ``kind='var'`` and
    ``type``; equation nodes are ``'eqn<k>'`` with ``kind='eqn'``, ``prim``,
    ``params`` and ``source``; edges run variable -> equation -> variable.
    Sub-graph equations carry ``parent`` (the equation node that holds them)."""
    import networkx as nx

    g = nx.DiGraph(name=graph.name)
    names = Namer()
    node_of: dict[int, str] = {}
    for line in walk(graph):
        if line.graph is not None:
            for v in line.graph.inputs:
                g.add_node(names(v), kind="var", type=str(v.type), graph_input=line.depth == 0)
            continue
        eqn = line.eqn
        node = node_of[id(eqn)] = f"eqn{len(node_of)}"
        for a in eqn.inputs:
            if isinstance(a, Var):
                g.add_edge(names(a), node)
                g.nodes[names(a)].setdefault("kind", "var")
                g.nodes[names(a)].setdefault("type", str(a.type))
        g.add_node(node, kind="eqn", prim=eqn.prim.name, params=eqn.params, source=str(eqn.source or ""))
        if line.parent is not None:
            g.nodes[node]["parent"] = node_of[id(line.parent)]
        for v in eqn.outputs:
            g.add_node(names(v), kind="var", type=str(v.type))
            g.add_edge(node, names(v))
    for a in graph.outputs:
        if isinstance(a, Var):
            g.nodes[names(a)]["graph_output"] = True
    return g


def to_dot(graph: Graph) -> str:
    """Graphviz DOT text: ovals for variables (name and type), boxes for
    equations (primitive and source line), built from :func:`to_networkx`."""
    nxg = to_networkx(graph)
    out = [f'digraph "{graph.name}" {{', "  rankdir=TB;", '  node [fontname="monospace"];']
    for node, attrs in nxg.nodes(data=True):
        if attrs["kind"] == "var":
            style = ", style=bold" if attrs.get("graph_input") or attrs.get("graph_output") else ""
            out.append(f'  "{node}" [shape=ellipse, label="{node}: {attrs["type"]}"{style}];')
        else:
            label = attrs["prim"] + (f"\\n{attrs['source']}" if attrs["source"] else "")
            out.append(f'  "{node}" [shape=box, label="{label}"];')
    for a, b in nxg.edges():
        out.append(f'  "{a}" -> "{b}";')
    out.append("}")
    return "\n".join(out)
