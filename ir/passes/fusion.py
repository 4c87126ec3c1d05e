"""Fusion: group equations into kernels, each a ``fused`` equation holding its
sub-graph, so intermediates stay in registers instead of making a round trip
through memory.

Groups grow from producers into consumers, in program order:

* elementwise into elementwise (broadcasts and reshapes count as elementwise:
  they only re-index), when the producer's iteration space is no larger than
  the consumer's;
* elementwise into a reduction over the producer's values;
* a reduction into an elementwise epilogue on the reduced values (``mean``'s
  division);
* a matmul (``dot_general``) is a boundary, except that an elementwise
  epilogue of its output's shape (bias add, activation) joins its kernel, and
  an elementwise prologue used only by the matmul does too;
* sibling reductions over one input share a kernel (one read of the input).

A merge that would create a cycle between kernels is refused (checked with
networkx on the kernel graph). Cost model for duplicated work: a broadcast
of a literal, or an ``iota``, costs nothing to recompute, so it is copied into
every kernel that reads it instead of being written to memory; any other
value that several kernels read is computed once and written, because
recomputing a chain of arithmetic in each reader costs more than one write
and one read per element. Every refused merge is recorded, with its reason,
for ``as_text("fused", explain=True)``.
"""

from __future__ import annotations

from collections import Counter

import networkx as nx

from ..builder import GraphBuilder
from ..graph import Eqn, Graph, Literal, Var, map_graphs
from ..primitives import REGISTRY
from .cleanup import dce

REDUCTIONS = {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod"}
INDEX_MAPS = {"broadcast_in_dim", "reshape"}


def kind_of(eqn: Eqn) -> str:
    name = eqn.prim.name
    if name in REDUCTIONS:
        return "reduction"
    if name == "dot_general":
        return "matmul"
    if (eqn.prim.family == "elementwise" or name in INDEX_MAPS) and not eqn.subgraphs():
        return "elementwise"
    return "other"


def _free_to_recompute(eqn: Eqn) -> bool:
    return eqn.prim.name == "iota" or (eqn.prim.name == "broadcast_in_dim" and isinstance(eqn.inputs[0], Literal))


class _Groups:
    """Union-find over equation indices, with each group's kind and size."""

    def __init__(self, eqns: list[Eqn]):
        self.eqns = eqns
        self.parent = list(range(len(eqns)))
        self.kind = {i: kind_of(e) for i, e in enumerate(eqns)}
        self.size = {i: _space(e) for i, e in enumerate(eqns)}  # elements the group's loop iterates over
        self.out_size = {i: e.outputs[0].type.size if e.outputs else 0 for i, e in enumerate(eqns)}
        self.members_of = {i: [i] for i in range(len(eqns))}

    def union(self, p: int, c: int) -> None:
        """Put group p into group c."""
        self.parent[p] = c
        self.members_of[c] += self.members_of.pop(p)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def members(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(len(self.eqns)):
            out.setdefault(self.find(i), []).append(i)
        return out


def _space(eqn: Eqn) -> int:
    if eqn.prim.name in REDUCTIONS:
        return eqn.inputs[0].type.size
    return max((v.type.size for v in eqn.outputs), default=0)


def role(eqn: Eqn, rows: tuple) -> str | None:
    """An equation's place in a row kernel that loops over the leading shape ``rows``:
    'row' (runs inside the loop on one row), 'accumulate' (a reduction over the
    row axes, summed across iterations) or 'after' (runs once the loop is done)."""
    k = len(rows)
    if eqn.prim.name in REDUCTIONS:
        shape, axes = eqn.inputs[0].type.shape, set(eqn.params["axes"])
        if shape[:k] != rows:
            return None
        if all(a >= k for a in axes):
            return "row"
        return "accumulate" if set(range(k)) <= axes else None
    return "row" if eqn.outputs[0].type.shape[:k] == rows else "after"


def row_kernel(eqns: list[Eqn]) -> tuple | None:
    """The longest leading shape over which ``eqns`` can run as one row kernel
    (each row's values stay in cache between its passes, as in a softmax), or None."""
    first = eqns[0].inputs[0].type.shape if eqns[0].prim.name in REDUCTIONS else eqns[0].outputs[0].type.shape
    defined = {v.id: e for e in eqns for v in e.outputs}
    for k in range(len(first), 0, -1):
        rows = first[:k]
        roles = {id(e): role(e, rows) for e in eqns}
        if any(r is None for r in roles.values()):
            continue
        ok = True
        for e in eqns:
            inner = [roles[id(defined[a.id])] for a in e.inputs if isinstance(a, Var) and a.id in defined]
            if roles[id(e)] in ("row", "accumulate") and any(r != "row" for r in inner):
                ok = False  # a row cannot read what is only known after the loop
            if roles[id(e)] == "after" and "row" in inner:
                ok = False
        if ok:
            return rows
    return None


def _why_not(groups: _Groups, p: int, c: int, only_consumer: bool) -> str | None:
    """None if producer group p may join consumer group c, else the reason."""
    reason = _why_not_simple(groups, p, c, only_consumer)
    if reason is not None and "matmul" not in (groups.kind[p], groups.kind[c]) and \
            "other" not in (groups.kind[p], groups.kind[c]):
        members = sorted(groups.members_of[p] + groups.members_of[c])
        if row_kernel([groups.eqns[i] for i in members]) is not None:
            return None
    return reason


def _why_not_simple(groups: _Groups, p: int, c: int, only_consumer: bool) -> str | None:
    kp, kc = groups.kind[p], groups.kind[c]
    if "row" in (kp, kc):
        return "the two kernels do not share a leading loop shape"
    if "other" in (kp, kc):
        name = groups.eqns[p if kp == "other" else c].prim.name
        return f"{name} is not fused with other work (it moves or selects data a loop nest cannot express)"
    if kp == "elementwise" and kc in ("elementwise", "reduction"):
        if groups.size[p] > groups.size[c]:
            return "the producer iterates over more elements than the consumer"
        return None
    if kp == "elementwise" and kc == "matmul":
        return None if only_consumer else "a matmul prologue must feed only the matmul"
    if kp == "matmul" and kc == "elementwise":
        if groups.size[c] != groups.out_size[p]:
            return "an epilogue must have the matmul output's shape"
        return None
    if kp == "reduction" and kc == "elementwise":
        if groups.size[c] > groups.out_size[p]:
            return "the consumer iterates over more elements than the reduction produces (it would need a " \
                   "second pass over the reduction's input)"
        return None
    if kp == "matmul" and kc == "matmul":
        return "matmul is a fusion boundary"
    return f"a {kp} kernel does not fuse into a {kc} kernel"


def _merged_kind(kp: str, kc: str) -> str:
    for k in ("matmul", "row", "reduction"):
        if k in (kp, kc):
            return k
    return "elementwise"


def _acyclic_after(groups: _Groups, p: int, c: int, consumers: dict[int, list[int]]) -> bool:
    """Merging p and c closes a cycle exactly when one reaches the other through a third kernel."""
    def successors(g: int) -> set[int]:
        return {groups.find(j) for i in groups.members_of[g] for j in consumers.get(i, ())} - {g}

    for start, goal in ((p, c), (c, p)):
        seen, stack = set(), [s for s in successors(start) if s != goal]
        while stack:
            g = stack.pop()
            if g == goal:
                return False
            if g not in seen:
                seen.add(g)
                stack.extend(successors(g))
    return True


def fuse(graph: Graph, fired: Counter | None = None) -> Graph:
    fired = Counter() if fired is None else fired
    graph = _fuse_bodies(graph, fired)
    eqns = graph.eqns
    groups = _Groups(eqns)
    producer = {v.id: i for i, e in enumerate(eqns) for v in e.outputs}
    readers: dict[int, set[int]] = {}
    for j, e in enumerate(eqns):
        for a in e.inputs:
            if isinstance(a, Var) and a.id in producer:
                readers.setdefault(a.id, set()).add(j)
    consumers = {i: sorted({j for v in e.outputs for j in readers.get(v.id, ())}) for i, e in enumerate(eqns)}
    outputs = {a.id for a in graph.outputs if isinstance(a, Var)}
    boundaries: list[str] = []

    for j, e in enumerate(eqns):
        for a in e.inputs:
            if not isinstance(a, Var) or a.id not in producer:
                continue
            i = producer[a.id]
            if _free_to_recompute(eqns[i]):
                continue  # copied into each reader below
            p, c = groups.find(i), groups.find(j)
            if p == c:
                continue
            only = all(groups.find(k) in (p, c) for k in consumers[i]) and a.id not in outputs
            reason = _why_not(groups, p, c, only)
            if reason is None and not _acyclic_after(groups, p, c, consumers):
                reason = "merging would create a cycle between kernels"
            if reason is not None:
                boundaries.append(f"{eqns[i].prim.name} -> {e.prim.name} ({a.type}): {reason}")
                continue
            kind = _merged_kind(groups.kind[p], groups.kind[c])
            if _why_not_simple(groups, p, c, only) is not None:
                kind = "row"  # allowed only as a row kernel
            groups.union(p, c)
            groups.kind[c] = kind
            groups.size[c] = max(groups.size[c], groups.size[p])
            groups.out_size[c] = max(groups.out_size[c], groups.out_size[p]) if kind != "matmul" else \
                groups.out_size[p if groups.kind.get(p) == "matmul" else c]
            fired["fused_edges"] += 1
    _merge_sibling_reductions(groups, eqns, consumers, fired)
    out = _build(graph, groups, producer, fired)
    out = dce(out)
    out.meta["boundaries"] = boundaries
    return out


def _fuse_bodies(graph: Graph, fired: Counter) -> Graph:
    """The graph with the bodies of its branches and loops fused: each runs as kernels too."""
    if not any(e.prim.family == "control" for e in graph.eqns):
        return graph
    eqns = []
    for e in graph.eqns:
        if e.prim.family == "control":
            params = {k: map_graphs(v, lambda g: fuse(g, fired)) for k, v in e.params.items()}
            e = Eqn(e.prim, e.inputs, params, e.outputs, e.source, e.derivative_of)
        eqns.append(e)
    return Graph(list(graph.inputs), eqns, list(graph.outputs), graph.name, dict(graph.meta))


def _merge_sibling_reductions(groups: _Groups, eqns, consumers, fired) -> None:
    """Reductions of one input in separate kernels share one (one read of the input)."""
    by_input: dict[tuple, list[int]] = {}
    for i, e in enumerate(eqns):
        if e.prim.name in REDUCTIONS and isinstance(e.inputs[0], Var):
            by_input.setdefault((e.inputs[0].id,), []).append(i)
    for members in by_input.values():
        for i in members[1:]:
            p, c = groups.find(i), groups.find(members[0])
            if p != c and groups.kind[p] == groups.kind[c] == "reduction" and _acyclic_after(groups, p, c, consumers):
                groups.union(p, c)
                fired["sibling_reductions"] += 1


def _build(graph: Graph, groups: _Groups, producer: dict, fired: Counter) -> Graph:
    eqns = graph.eqns
    members = groups.members()
    outputs = {a.id for a in graph.outputs if isinstance(a, Var)}
    new_eqns: list[Eqn] = []
    # Kernels in a topological order of the kernel graph, ties in program order.
    dag = nx.DiGraph()
    dag.add_nodes_from(members)
    for j, e in enumerate(eqns):
        for a in e.inputs:
            if isinstance(a, Var) and a.id in producer and groups.find(producer[a.id]) != groups.find(j):
                dag.add_edge(groups.find(producer[a.id]), groups.find(j))
    readers: dict[int, set[int]] = {}  # var id -> the kernels that read it
    for j, e in enumerate(eqns):
        for a in e.inputs:
            if isinstance(a, Var):
                readers.setdefault(a.id, set()).add(groups.find(j))
    if not nx.is_directed_acyclic_graph(dag):  # the merges were checked one by one; this checks the result
        raise AssertionError(f"fusion made a cycle between kernels: {nx.find_cycle(dag)}")
    for root in nx.lexicographical_topological_sort(dag, key=lambda r: min(members[r])):
        idx = members[root]
        body_eqns = [eqns[i] for i in idx]
        if len(body_eqns) == 1:
            new_eqns.append(body_eqns[0])
            continue
        inside = {v.id for e in body_eqns for v in e.outputs}
        copied: list[int] = []  # free producers recomputed inside this kernel
        reads: dict[int, Var] = {}
        for e in body_eqns:
            for a in e.inputs:
                if isinstance(a, Var) and a.id not in inside and a.id not in reads:
                    src = producer.get(a.id)
                    if src is not None and _free_to_recompute(eqns[src]):
                        copied.append(src)
                        inside.add(a.id)
                        fired["recomputed_broadcasts"] += 1
                    else:
                        reads[a.id] = a
        writes = [v for e in body_eqns for v in e.outputs if readers.get(v.id, set()) - {root} or v.id in outputs]
        body = _body(list(reads.values()), [eqns[i] for i in sorted(copied)] + body_eqns, writes, graph.name)
        kind = groups.kind[root]
        sources = [e.source for e in body_eqns if e.source is not None]
        new_eqns.append(Eqn(REGISTRY["fused"], list(reads.values()), {"kind": kind, "body": body},
                            writes, sources[-1] if sources else None))
        fired[f"{kind}_kernels"] += 1
    return Graph(list(graph.inputs), new_eqns, list(graph.outputs), graph.name, dict(graph.meta))


def _body(reads: list[Var], eqns: list[Eqn], writes: list[Var], name: str) -> Graph:
    """The kernel's sub-graph, with fresh variables (SSA holds across the nesting)."""
    b = GraphBuilder(hash_cons=False)
    inputs = [b.new_input(v.type) for v in reads]
    env = {v.id: x for v, x in zip(reads, inputs)}
    read = lambda a: a if isinstance(a, Literal) else env[a.id]
    for e in eqns:
        with b.at(e.source):
            outs = b.bind(e.prim, *[read(a) for a in e.inputs], **e.params)
        b.eqns[-1].derivative_of = e.derivative_of
        env.update({v.id: o for v, o in zip(e.outputs, outs)})
    return b.build(inputs, [env[v.id] for v in writes], f"{name}_kernel")
