"""Passes over control-flow equations as wholes (the other passes already
rewrite inside their bodies):

* :func:`prune` (called by DCE): a control-flow equation keeps only the
  outputs someone reads, the loop carries those need, and the operands its
  bodies still read;
* :func:`hoist_invariants`: a loop body's equations that read only the
  loop's constants run once, before the loop;
* :func:`merge_loops`: of two scans over the same operands, one computing a
  prefix of the other's outputs, the larger serves both. Reverse mode makes
  such pairs: the VJP of a scan is a forward scan that also stacks the
  residuals, beside the original scan, and merged the forward runs once;
* :func:`inline_known_branch` (a folding rule): a ``cond`` whose index is a
  literal is the chosen branch, inlined; :func:`dedupe_scan_outputs` (a
  folding rule): a value a scan body returns as several ys is stacked once.
"""

from __future__ import annotations

from collections import Counter

from ..builder import GraphBuilder, graph_key, renamed
from ..graph import Eqn, Graph, Literal, Var, map_graphs

CONTROL = {"cond", "while", "scan"}
# Cheap to recompute where they are read, costly to write out: a body keeps them.
INDEX_MAPS = {"broadcast_in_dim", "reshape", "transpose", "iota", "convert_element_type"}


def _needed_inputs(graph: Graph, outputs: list[int]) -> set[int]:
    """Positions of the inputs that the given outputs depend on."""
    live = {graph.outputs[i].id for i in outputs if isinstance(graph.outputs[i], Var)}
    for eqn in reversed(graph.eqns):
        if any(v.id in live for v in eqn.outputs):
            live.update(a.id for a in eqn.inputs if isinstance(a, Var))
    return {i for i, v in enumerate(graph.inputs) if v.id in live}


def _restricted(graph: Graph, inputs: list[int], outputs: list[int]) -> Graph:
    """``graph`` with only the listed inputs and outputs (the dropped inputs must be
    unread), with new variables: the original may live on in another equation."""
    from .cleanup import dce

    return renamed(dce(Graph([graph.inputs[i] for i in inputs], list(graph.eqns), [graph.outputs[i] for i in outputs],
                             graph.name)))


def _carry_closure(body: Graph, first_carry: int, wanted_outputs: list[int], carry_count: int,
                   always: set[int] = frozenset()) -> set[int]:
    """The carries (0-based) that the wanted outputs need, directly or through
    earlier iterations: a carry is needed when its final value is wanted or a
    needed value reads it."""
    needed = set(always)
    while True:
        outs = sorted(set(wanted_outputs) | needed)
        reads = {i - first_carry for i in _needed_inputs(body, outs) if first_carry <= i < first_carry + carry_count}
        if reads <= needed:
            return needed
        needed |= reads


def prune(eqn: Eqn, live: set[int]) -> Eqn:
    """``eqn`` without the outputs nobody reads and the work only they needed."""
    used = [v.id in live for v in eqn.outputs]
    pruned = {"cond": _prune_cond, "while": _prune_while, "scan": _prune_scan}[eqn.prim.name](eqn, used)
    return eqn if len(pruned.inputs) == len(eqn.inputs) and len(pruned.outputs) == len(eqn.outputs) else pruned


def _rebuilt(eqn: Eqn, inputs: list[int], outputs: list[int], **params) -> Eqn:
    return Eqn(eqn.prim, [eqn.inputs[i] for i in inputs], {**eqn.params, **params},
               [eqn.outputs[i] for i in outputs], eqn.source, eqn.derivative_of)


def _prune_cond(eqn: Eqn, used: list[bool]) -> Eqn:
    branches = eqn.params["branches"]
    outs = [i for i, u in enumerate(used) if u]
    reads = sorted(set().union(*(_needed_inputs(g, outs) for g in branches)))
    return _rebuilt(eqn, [0] + [i + 1 for i in reads], outs,
                    branches=tuple(_restricted(g, reads, outs) for g in branches))


def _prune_while(eqn: Eqn, used: list[bool]) -> Eqn:
    cond, body = eqn.params["cond"], eqn.params["body"]
    nc, nb = eqn.params["cond_nconsts"], eqn.params["body_nconsts"]
    k = len(eqn.outputs)
    tested = {i - nc for i in _needed_inputs(cond, [0]) if i >= nc}
    carries = sorted(_carry_closure(body, nb, [i for i, u in enumerate(used) if u], k, tested))
    cond_consts = sorted(i for i in _needed_inputs(cond, [0]) if i < nc)
    body_consts = sorted(i for i in _needed_inputs(body, carries) if i < nb)
    return _rebuilt(eqn, cond_consts + [nc + i for i in body_consts] + [nc + nb + i for i in carries], carries,
                    cond=_restricted(cond, cond_consts + [nc + i for i in carries], [0]),
                    body=_restricted(body, body_consts + [nb + i for i in carries], carries),
                    cond_nconsts=len(cond_consts), body_nconsts=len(body_consts))


def _prune_scan(eqn: Eqn, used: list[bool]) -> Eqn:
    body = eqn.params["body"]
    nc, k = eqn.params["num_consts"], eqn.params["num_carry"]
    ys = [j for j in range(k, len(used)) if used[j]]
    carries = sorted(_carry_closure(body, nc, ys, k, {j for j in range(k) if used[j]}))
    outs = carries + ys
    reads = _needed_inputs(body, outs)
    consts = sorted(i for i in reads if i < nc)
    xs = sorted(i for i in reads if i >= nc + k)
    inputs = consts + [nc + c for c in carries] + xs
    return _rebuilt(eqn, inputs, outs, body=_restricted(body, inputs, outs), num_consts=len(consts),
                    num_carry=len(carries))


# ------------------------------------------------------------------ hoisting
def hoist_invariants(graph: Graph, fired: Counter | None = None) -> Graph:
    """Move the work of a loop body that reads only the loop's constants out of
    the loop, so it runs once; the body reads its results as new constants.
    Layout-only equations (broadcasts, reshapes...) stay unless hoisted work
    needs them: recomputed in a kernel they cost nothing, written out they cost
    a buffer. Nested bodies are hoisted first, so work can leave several loops."""
    fired = Counter() if fired is None else fired
    if not any(e.prim.name in ("scan", "while") for e in graph.walk_eqns()):
        return graph
    b = GraphBuilder(hash_cons=False)
    env: dict = {}
    inputs = [b.new_input(v.type) for v in graph.inputs]
    env.update({v.id: x for v, x in zip(graph.inputs, inputs)})
    for eqn in graph.eqns:
        ins = [b.read(env, a) for a in eqn.inputs]
        params = {k: map_graphs(v, lambda g: hoist_invariants(g, fired)) for k, v in eqn.params.items()}
        if eqn.prim.name in ("scan", "while"):
            ins, params = _hoist_from(b, eqn, ins, params, fired)
        with b.at(eqn.source):
            outs = b.bind(eqn.prim, *ins, **params)
        env.update({v.id: o for v, o in zip(eqn.outputs, outs)})
    out = b.build(inputs, [b.read(env, a) for a in graph.outputs], graph.name)
    out.meta.update(graph.meta)
    return out


def _hoist_from(b: GraphBuilder, eqn: Eqn, ins: list, params: dict, fired: Counter):
    """The loop's operands and params with its body's invariant work bound on ``b``."""
    body_key, nconsts_key = ("body", "num_consts") if eqn.prim.name == "scan" else ("body", "body_nconsts")
    body, n = params[body_key], params[nconsts_key]
    first_const = 0 if eqn.prim.name == "scan" else params["cond_nconsts"]
    invariant = {v.id for v in body.inputs[:n]}
    for e in body.eqns:
        if not e.subgraphs() and all(isinstance(a, Literal) or a.id in invariant for a in e.inputs):
            invariant.update(v.id for v in e.outputs)
    hoisted = {id(e) for e in body.eqns if e.outputs and e.outputs[0].id in invariant
               and e.prim.name not in INDEX_MAPS and e.prim.name != "constant"}
    if not hoisted:
        return ins, params
    # What hoisted work reads (index maps, constants) comes along.
    producer = {v.id: e for e in body.eqns for v in e.outputs}
    stack = [e for e in body.eqns if id(e) in hoisted]
    while stack:
        for a in stack.pop().inputs:
            p = producer.get(a.id) if isinstance(a, Var) else None
            if p is not None and id(p) not in hoisted:
                hoisted.add(id(p))
                stack.append(p)
    outer = {v.id: x for v, x in zip(body.inputs[:n], ins[first_const:first_const + n])}
    for e in body.eqns:
        if id(e) in hoisted:
            with b.at(e.source):
                outs = b.bind(e.prim, *[b.read(outer, a) for a in e.inputs], **e.params)
            outer.update({v.id: o for v, o in zip(e.outputs, outs)})
            fired["hoisted_invariants"] += 1
    # The body reads every hoisted value that a remaining equation or an output uses, as a new constant.
    kept = [e for e in body.eqns if id(e) not in hoisted]
    read = {a.id for e in kept for a in e.inputs if isinstance(a, Var)} | {a.id for a in body.outputs
                                                                             if isinstance(a, Var)}
    new_consts = [v for e in body.eqns if id(e) in hoisted for v in e.outputs if v.id in read]
    new_body = Graph(new_consts + list(body.inputs), kept, list(body.outputs), body.name)
    new_ins = ins[:first_const] + [outer[v.id] for v in new_consts] + ins[first_const:]
    return new_ins, {**params, body_key: new_body, nconsts_key: n + len(new_consts)}


# ------------------------------------------------------------------ merging
def merge_loops(graph: Graph, fired: Counter | None = None) -> Graph:
    """Two scans with the same operands and settings, one's body a prefix of the
    other's (the same computation, with fewer ys), become one: the larger,
    placed where the first of them was."""
    from .cleanup import dce

    fired = Counter() if fired is None else fired
    scans = [e for e in graph.eqns if e.prim.name == "scan"]
    if len(scans) < 2:
        return graph
    groups: dict[tuple, list[Eqn]] = {}
    for e in scans:
        key = (tuple(a.key if isinstance(a, Literal) else a.id for a in e.inputs),
               tuple((k, v) for k, v in e.params.items() if k != "body"))
        groups.setdefault(key, []).append(e)
    serves: dict[int, Eqn] = {}  # id of a scan replaced -> the scan that computes its outputs
    for members in groups.values():
        members.sort(key=lambda e: -len(e.outputs))
        for small in members[1:]:
            for large in members:
                if large is small or id(large) in serves:
                    continue
                n = len(small.outputs)
                prefix = Graph(large.params["body"].inputs, large.params["body"].eqns,
                               large.params["body"].outputs[:len(small.params["body"].outputs)])
                if graph_key(dce(prefix)) == graph_key(dce(small.params["body"])) and n <= len(large.outputs):
                    serves[id(small)] = large
                    fired["merged_loops"] += 1
                    break
    if not serves:
        return graph
    rename: dict[int, Var] = {}
    placed: set[int] = set()
    eqns: list[Eqn] = []
    for e in graph.eqns:
        large = serves.get(id(e))
        if large is not None:
            rename.update({v.id: w for v, w in zip(e.outputs, large.outputs)})
            e = large
        if id(e) in placed:
            continue  # the larger scan already stands where the first scan it serves was
        placed.add(id(e))
        eqns.append(Eqn(e.prim, [rename.get(getattr(a, "id", None), a) for a in e.inputs], e.params, e.outputs,
                        e.source, e.derivative_of))
    outputs = [rename.get(getattr(a, "id", None), a) for a in graph.outputs]
    out = Graph(list(graph.inputs), eqns, outputs, graph.name)
    out.meta.update(graph.meta)
    return out


def inline_known_branch(b: GraphBuilder, eqn: Eqn, ins: list):
    """A ``cond`` whose index is a literal (folded from a known predicate) is its branch."""
    if eqn.prim.name != "cond" or not isinstance(ins[0], Literal):
        return None
    branches = eqn.params["branches"]
    return b.inline(branches[min(max(int(ins[0].value), 0), len(branches) - 1)], ins[1:])[0]


def dedupe_scan_outputs(b: GraphBuilder, eqn: Eqn, ins: list):
    """A scan whose body returns one value as several ys stacks it once (reverse
    mode asks for a value the program already stacks, as a residual)."""
    if eqn.prim.name != "scan":
        return None
    body, k = eqn.params["body"], eqn.params["num_carry"]
    first: dict = {}
    source = []  # for each output of the equation, the output of the new one that holds it
    for j, a in enumerate(body.outputs):
        if j < k:
            source.append(j)
            continue
        key = a.key if isinstance(a, Literal) else a.id
        source.append(first.setdefault(key, k + len(first)))
    if len(first) == len(body.outputs) - k:
        return None
    kept = body.outputs[:k] + [body.outputs[j] for j in range(k, len(body.outputs))
                               if source[j] not in source[k:j]]
    new_body = Graph(list(body.inputs), list(body.eqns), kept, body.name)
    outs = b.bind(eqn.prim, *ins, **{**eqn.params, "body": new_body})
    return [outs[s] for s in source]
