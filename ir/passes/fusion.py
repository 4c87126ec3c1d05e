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

A merge that would create a cycle between kernels is refused: the kernels are
kept in a topological order, updated at each merge, so the search for a path
between the two visits only the kernels placed between them (networkx checks
the final kernel graph). Cost model for duplicated work: a broadcast
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


class _KernelGraph:
    """The graph between kernels, kept up to date as groups merge: each kernel's
    successors and predecessors, and a position per kernel that every edge
    increases (a topological order, as numbers that leave room in between).

    Its nodes are numbers of their own, not union-find roots: a merge keeps the
    node with more neighbours and renames the other in its neighbours' sets, so
    a kernel that grows along a long chain is not copied at every step."""

    def __init__(self, n: int, consumers: dict[int, list[int]]):
        self.succ = [set(consumers.get(i, ())) - {i} for i in range(n)]
        self.pred: list[set[int]] = [set() for _ in range(n)]
        for i, js in enumerate(self.succ):
            for j in js:
                self.pred[j].add(i)
        self.pos = [float(i) for i in range(n)]  # program order to begin with
        self.alive = set(range(n))

    def ends(self, a: int, b: int) -> tuple[int, int]:
        """(earlier, later) of two nodes: only the earlier can reach the later."""
        return (a, b) if self.pos[a] < self.pos[b] else (b, a)

    def merge(self, a: int, b: int, reach: tuple[str, set[int]]) -> int:
        """Contract nodes a and b; returns the node that stands for both. ``reach``
        is what ``_acyclic_after`` found: ("after", the nodes the earlier one
        reaches up to the later one's position) or ("before", the nodes that reach
        the later one from the earlier one's position on). The merged node takes
        the later (or the earlier) one's position, and the found nodes move just
        behind (or ahead of) it, so every edge still increases the position."""
        succ, pred, pos = self.succ, self.pred, self.pos
        start, goal = self.ends(a, b)
        side, found = reach
        keep, gone = (a, b) if len(succ[a]) + len(pred[a]) >= len(succ[b]) + len(pred[b]) else (b, a)
        for s in succ[gone]:  # gone's neighbours now neighbour keep
            pred[s].discard(gone)
            pred[s].add(keep)
        for s in pred[gone]:
            succ[s].discard(gone)
            succ[s].add(keep)
        succ[keep] |= succ[gone]
        pred[keep] |= pred[gone]
        succ[keep].discard(keep)
        pred[keep].discard(keep)
        succ[gone], pred[gone] = set(), set()
        self.alive.discard(gone)
        pos[keep] = pos[goal] if side == "after" else pos[start]
        if found and not self._spread(keep, found, side):
            self._renumber()
            self._spread(keep, found, side)
        return keep

    def _spread(self, keep: int, found: set[int], side: str) -> bool:
        """Place ``found`` (in its order) evenly between the merged node and the
        nearest neighbour outside it; False when floats cannot tell the places apart."""
        pos = self.pos
        moved = sorted(found, key=pos.__getitem__)
        if side == "after":
            lo = pos[keep]
            hi = min((pos[s] for f in found for s in self.succ[f] if s not in found), default=lo + 1.0)
        else:
            hi = pos[keep]
            lo = max((pos[s] for f in found for s in self.pred[f] if s not in found), default=hi - 1.0)
        step = (hi - lo) / (len(moved) + 1)
        places = [lo + step * (k + 1) for k in range(len(moved))]
        if not (lo < places[0] and all(x < y for x, y in zip(places, places[1:])) and places[-1] < hi):
            return False
        for g, x in zip(moved, places):
            pos[g] = x
        return True

    def _renumber(self) -> None:
        """Whole numbers again, in the same order (rarely: when repeated spreading used up a gap)."""
        for k, g in enumerate(sorted(self.alive, key=self.pos.__getitem__)):
            self.pos[g] = float(k)


class _Groups:
    """Union-find over equation indices, with each group's kind and size, and the
    kernel graph between the groups (``node`` maps a group's root to its node)."""

    def __init__(self, eqns: list[Eqn], consumers: dict[int, list[int]]):
        self.eqns = eqns
        self.parent = list(range(len(eqns)))
        self.kind = {i: kind_of(e) for i, e in enumerate(eqns)}
        self.size = {i: _space(e) for i, e in enumerate(eqns)}  # elements the group's loop iterates over
        self.out_size = {i: e.outputs[0].type.size if e.outputs else 0 for i, e in enumerate(eqns)}
        self.members_of = {i: [i] for i in range(len(eqns))}
        self.kernels = _KernelGraph(len(eqns), consumers)
        self.node = {i: i for i in range(len(eqns))}

    def union(self, p: int, c: int, reach: tuple[str, set[int]]) -> None:
        """Put group p into group c; ``reach`` as ``_KernelGraph.merge`` takes it."""
        self.parent[p] = c
        self.members_of[c] += self.members_of.pop(p)
        self.node[c] = self.kernels.merge(self.node.pop(p), self.node[c], reach)

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


def _acyclic_after(groups: _Groups, p: int, c: int) -> tuple[str, set[int]] | None:
    """None if merging groups p and c would close a cycle, which happens exactly
    when one reaches the other through a third kernel; else what ``union`` needs
    to keep the kernels' order topological.

    Only the earlier of the two in that order can reach the later, and only
    through kernels placed between them, so the search never leaves that stretch.
    It runs from both ends at once and stops when either side has nothing left
    to visit: ("after", what the earlier one reaches) or ("before", what reaches
    the later one)."""
    k = groups.kernels
    succ, pred, pos = k.succ, k.pred, k.pos
    start, goal = k.ends(groups.node[p], groups.node[c])
    lo, hi = pos[start], pos[goal]
    # The bounds include the two ends' own positions: a kernel placed level with one cannot reach it, but it is
    # found all the same, so that the merge moves it too and no edge is left between equal positions.
    # Depth-first from both ends, one node a side in turn. Each side is a stack of iterators over neighbour
    # sets, read lazily: a kernel with thousands of readers costs nothing when the other side finishes first.
    ahead, behind = set(), set()  # reached from start; reaching goal
    fwd, bwd = [iter(succ[start])], [iter(pred[goal])]
    while True:
        g = _next(fwd, lambda s: s != goal and pos[s] <= hi and s not in ahead)
        if g is None:  # every kernel the earlier one reaches was checked for an edge into the later one
            return "after", ahead
        if g in behind or goal in succ[g]:
            return None
        ahead.add(g)
        fwd.append(iter(succ[g]))
        g = _next(bwd, lambda s: s != start and pos[s] >= lo and s not in behind)
        if g is None:  # every kernel that reaches the later one is known: a cycle needs one the earlier one feeds
            return ("before", behind) if behind.isdisjoint(succ[start]) else None
        if g in ahead:
            return None
        behind.add(g)
        bwd.append(iter(pred[g]))


def _next(stack: list, wanted) -> int | None:
    """The next node of a depth-first search kept as a stack of iterators, or None when it is done."""
    while stack:
        for s in stack[-1]:
            if wanted(s):
                return s
        stack.pop()
    return None


def fuse(graph: Graph, fired: Counter | None = None) -> Graph:
    fired = Counter() if fired is None else fired
    graph = _fuse_bodies(graph, fired)
    eqns = graph.eqns
    producer = {v.id: i for i, e in enumerate(eqns) for v in e.outputs}
    readers: dict[int, set[int]] = {}
    for j, e in enumerate(eqns):
        for a in e.inputs:
            if isinstance(a, Var) and a.id in producer:
                readers.setdefault(a.id, set()).add(j)
    consumers = {i: sorted({j for v in e.outputs for j in readers.get(v.id, ())}) for i, e in enumerate(eqns)}
    groups = _Groups(eqns, consumers)
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
            after = _acyclic_after(groups, p, c) if reason is None else None
            if reason is None and after is None:
                reason = "merging would create a cycle between kernels"
            if reason is not None:
                boundaries.append(f"{eqns[i].prim.name} -> {e.prim.name} ({a.type}): {reason}")
                continue
            kind = _merged_kind(groups.kind[p], groups.kind[c])
            if _why_not_simple(groups, p, c, only) is not None:
                kind = "row"  # allowed only as a row kernel
            groups.union(p, c, after)
            groups.kind[c] = kind
            groups.size[c] = max(groups.size[c], groups.size[p])
            groups.out_size[c] = max(groups.out_size[c], groups.out_size[p]) if kind != "matmul" else \
                groups.out_size[p if groups.kind.get(p) == "matmul" else c]
            fired["fused_edges"] += 1
    _merge_sibling_reductions(groups, eqns, fired)
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


def _merge_sibling_reductions(groups: _Groups, eqns, fired) -> None:
    """Reductions of one input in separate kernels share one (one read of the input)."""
    by_input: dict[tuple, list[int]] = {}
    for i, e in enumerate(eqns):
        if e.prim.name in REDUCTIONS and isinstance(e.inputs[0], Var):
            by_input.setdefault((e.inputs[0].id,), []).append(i)
    for members in by_input.values():
        for i in members[1:]:
            p, c = groups.find(i), groups.find(members[0])
            if p != c and groups.kind[p] == groups.kind[c] == "reduction":
                after = _acyclic_after(groups, p, c)
                if after is not None:
                    groups.union(p, c, after)
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
