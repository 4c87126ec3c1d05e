"""Automatic differentiation as graph transformations.

Both modes walk a graph's equations and call each primitive's derivative
rule on a builder, so the same code differentiates into a new graph (a
GraphBuilder), into an enclosing trace, or computes at once (a NumpyBuilder,
as the eager tape does). Only float values carry tangents and cotangents;
``None`` is a symbolic zero, never materialised until an output needs it.

* Forward mode (:func:`jvp_inline`, :func:`jvp_graph`): each equation is
  bound, then its JVP rule maps input tangents to output tangents.
* Reverse mode (:func:`backward`, :func:`vjp_graph`): after the forward
  equations, cotangents flow from the outputs back through each equation's
  VJP rule, summed where a value is used more than once. The forward values
  the rules read are the residuals: in :func:`vjp_graph` they are the
  forward graph's own variables, so the joint program computes them once.
"""

from __future__ import annotations

from ..builder import Builder, GraphBuilder
from ..dtypes import is_float
from ..graph import Eqn, Graph, Var


def differentiable(a) -> bool:
    """Whether a value can carry a derivative: a float variable."""
    return isinstance(a, Var) and is_float(a.type.dtype)


# ------------------------------------------------------------------ forward
def jvp_inline(b: Builder, graph: Graph, primals: list, tangents: list, known: dict | None = None):
    """Outputs and output tangents of ``graph`` at ``primals`` along ``tangents``
    (None for a zero tangent), emitted on ``b``. ``known`` forward values (by
    var id) are reused instead of being computed again."""
    env = dict(known or {})
    env.update({v.id: x for v, x in zip(graph.inputs, primals)})
    tan = {v.id: t for v, t in zip(graph.inputs, tangents) if t is not None and differentiable(v)}
    read = lambda a: b.read(env, a)
    for eqn in graph.eqns:
        ins = [read(a) for a in eqn.inputs]
        if not all(v.id in env for v in eqn.outputs):
            with b.at(eqn.source):
                env.update({v.id: o for v, o in zip(eqn.outputs, b.bind(eqn.prim, *ins, **eqn.params))})
        in_tangents = [tan.get(a.id) if isinstance(a, Var) else None for a in eqn.inputs]
        if not eqn.prim.differentiable or all(t is None for t in in_tangents):
            continue
        outs = [env[v.id] for v in eqn.outputs]
        with b.at(eqn.source, of=eqn):
            out_tangents = eqn.prim.jvp(b, ins, in_tangents, outs, **eqn.params)
        for v, t in zip(eqn.outputs, out_tangents):
            if t is not None and differentiable(v):
                tan[v.id] = t
    outs = [read(a) for a in graph.outputs]
    return outs, [tan.get(a.id) if isinstance(a, Var) else None for a in graph.outputs]


def jvp_graph(graph: Graph, wrt: list[int] | None = None) -> Graph:
    """graph -> graph taking (primals..., a tangent per float input in ``wrt``)
    and returning (outputs..., a tangent per float output)."""
    wrt = _float_inputs(graph, wrt)
    b = GraphBuilder()
    primals = [Var(v.type) for v in graph.inputs]
    tangent_vars = [Var(graph.inputs[i].type) for i in wrt]
    tangents = [None] * len(primals)
    for i, t in zip(wrt, tangent_vars):
        tangents[i] = t
    outs, out_tangents = jvp_inline(b, graph, primals, tangents)
    float_outs = [(o, t) for a, o, t in zip(graph.outputs, outs, out_tangents) if is_float(a.type.dtype)]
    results = outs + [t if t is not None else b.zeros_like(o) for o, t in float_outs]
    return b.build(primals + tangent_vars, results, f"jvp_{graph.name}")


# ------------------------------------------------------------------ reverse
def active_vars(eqns: list[Eqn], sources: set[int]) -> set[int]:
    """Ids of the float variables that depend on ``sources``: only they need cotangents."""
    active = set(sources)
    for eqn in eqns:
        if eqn.prim.differentiable and any(isinstance(a, Var) and a.id in active for a in eqn.inputs):
            active.update(v.id for v in eqn.outputs if differentiable(v))
    return active


def seed_cotangents(b: Builder, outputs: list, out_cts: list) -> dict:
    """Output cotangents by variable id, summed where one variable is output twice."""
    cts: dict = {}
    for a, ct in zip(outputs, out_cts):
        if ct is not None and differentiable(a):
            cts[a.id] = b.add(cts[a.id], ct) if a.id in cts else ct
    return cts


def backward(b: Builder, eqns: list[Eqn], env: dict, cts: dict, active: set[int] | None = None) -> dict:
    """Propagate cotangents (var id -> value, consumed) back through ``eqns``,
    whose forward values are in ``env``. Returns the cotangents that reach
    variables no equation defines (the inputs)."""
    read = lambda a: b.read(env, a)
    for eqn in reversed(eqns):
        out_cts = [cts.pop(v.id, None) for v in eqn.outputs]
        if all(c is None for c in out_cts) or not eqn.prim.differentiable:
            continue
        targets = [isinstance(a, Var) and differentiable(a) and (active is None or a.id in active)
                   for a in eqn.inputs]
        if not any(targets):
            continue
        ins = [read(a) for a in eqn.inputs]
        outs = [env[v.id] for v in eqn.outputs]
        with b.at(eqn.source, of=eqn, wanted=targets):
            in_cts = eqn.prim.vjp(b, out_cts, ins, outs, **eqn.params)
            for a, ct, wanted in zip(eqn.inputs, in_cts, targets):
                if wanted and ct is not None:
                    cts[a.id] = b.add(cts[a.id], ct) if a.id in cts else ct
    return cts


def vjp_inline(b: Builder, graph: Graph, primals: list, out_cts: list, known: dict | None = None,
               wrt: list[int] | None = None) -> tuple[list, list]:
    """Outputs of ``graph`` and the cotangents of its inputs (None where zero,
    and for inputs not in ``wrt``) for output cotangents ``out_cts``, emitted on ``b``."""
    outs, env = b.inline(graph, primals, known)
    cts = seed_cotangents(b, graph.outputs, out_cts)
    wanted = {graph.inputs[i].id for i in _float_inputs(graph, wrt)}
    found = backward(b, graph.eqns, env, cts, active_vars(graph.eqns, wanted))
    return outs, [found.get(v.id) if v.id in wanted else None for v in graph.inputs]


def vjp_graph(graph: Graph, wrt: list[int] | None = None) -> Graph:
    """graph -> graph taking (primals..., a cotangent per float output) and
    returning (outputs..., a cotangent per float input in ``wrt``).

    The forward equations are the original graph's, unchanged, so the values
    the backward reads (the residuals) are its variables."""
    wrt = _float_inputs(graph, wrt)
    b = GraphBuilder()
    env = {v.id: v for v in graph.inputs}
    for eqn in graph.eqns:
        env.update({v.id: v for v in eqn.outputs})
    ct_vars = [Var(a.type) for a in graph.outputs if is_float(a.type.dtype)]
    one_each = iter(ct_vars)
    cts = seed_cotangents(b, graph.outputs, [next(one_each) if is_float(a.type.dtype) else None
                                             for a in graph.outputs])
    active = active_vars(graph.eqns, {graph.inputs[i].id for i in wrt})
    found = backward(b, graph.eqns, env, cts, active)
    results = []
    for i in wrt:
        v = graph.inputs[i]
        results.append(found.get(v.id) if v.id in found else b.zeros_like(v))
    return Graph(list(graph.inputs) + ct_vars, list(graph.eqns) + b.eqns, list(graph.outputs) + results,
                 f"vjp_{graph.name}")


def _float_inputs(graph: Graph, wrt) -> list[int]:
    indices = range(len(graph.inputs)) if wrt is None else wrt
    return [i for i in indices if is_float(graph.inputs[i].type.dtype)]
