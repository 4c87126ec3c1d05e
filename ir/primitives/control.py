"""Structured control flow: ``cond``, ``while`` and ``scan``.

Each holds its bodies as Graph params. A body is closed (it reads only its
inputs), so the printer indents it under its equation, the verifier checks
it, the passes rewrite inside it, and codegen turns it into a native branch
or loop. The operand layouts are JAX's:

* ``cond(index, *operands, branches=(g0, g1, ...))``: the outputs of
  ``branches[clamp(index)](*operands)``;
* ``while(*cond_consts, *body_consts, *init, cond=g, body=g, cond_nconsts, body_nconsts)``:
  the carry after ``carry = body(*body_consts, *carry)`` ran while
  ``cond(*cond_consts, *carry)`` held;
* ``scan(*consts, *init, *xs, body=g, length, reverse, num_consts, num_carry)``:
  ``body(*consts, *carry, *x_slices) -> (*carry, *y_slices)`` run over the
  leading axis of ``xs``; the outputs are the final carry and the ``ys``
  stacked along a new leading axis.

The derivative rules build the derived bodies (JVPs, transposes) as new
graphs with the autodiff pass, and bind one new control-flow equation on the
builder, so they serve the graph transformations and the eager tape alike.
Reverse mode of ``scan`` stores the residuals its backward loop needs, one
slice per step, as extra ``ys`` of a forward loop; the ``merge_loops`` pass
then lets that loop replace the original, so the forward runs once.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..graph import Graph, Var
from ..interpreter import evaluate
from ..types import ShapedType
from .core import Primitive, register, wanted

FAMILY = "control"


def _agree(prim: str, what: str, got, expected, against: str) -> None:
    """Types that must match one for one; the message names the first leaf that does not."""
    got, expected = list(got), list(expected)
    if len(got) != len(expected):
        raise ShapeError(f"{prim}: {what} are {len(got)} values ({', '.join(map(str, got)) or 'none'}), but "
                         f"{against} are {len(expected)} ({', '.join(map(str, expected)) or 'none'})")
    for k, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            raise ShapeError(f"{prim}: {what} differ from {against} at leaf {k}: {g} against {e}")


def _new_graph(build, in_types, name: str) -> Graph:
    """A fresh graph: ``build(b, inputs) -> outputs`` on new input Vars. Derived
    bodies are always built anew, never share a Var with the body they come from."""
    from ..builder import GraphBuilder
    from ..passes.cleanup import dce

    b = GraphBuilder(hash_cons=False)
    ins = [Var(t) for t in in_types]
    return dce(b.build(ins, build(b, ins), name))


def _zeros(b, t: ShapedType):
    return b.full(t.shape, 0, t.dtype)


# ------------------------------------------------------------------------ cond
def _cond_rule(index: ShapedType, *types: ShapedType, branches):
    if index.ndim != 0 or not dtypes.is_int(index.dtype):
        raise DTypeError(f"cond: the branch index must be a 0-d integer, got {index}")
    if not branches:
        raise ShapeError("cond: needs at least one branch")
    for k, g in enumerate(branches):
        _agree("cond", f"branch {k}'s inputs", g.in_types, types, "the operands")
    for k, g in enumerate(branches[1:], 1):
        _agree("cond", f"branch {k}'s outputs", g.out_types, branches[0].out_types, "branch 0's outputs")
    return list(branches[0].out_types)


def _cond_impl(index, *operands, branches):
    k = int(np.clip(index, 0, len(branches) - 1))
    return evaluate(branches[k], operands, checked_args=True)


def _jvp_body(graph: Graph, nonzero: list[bool], instantiate: list[bool] | None = None, name: str = ""):
    """``graph``'s forward-mode derivative as a graph taking (inputs..., a tangent
    per input marked ``nonzero``) and returning (outputs..., a tangent per output
    whose tangent is not zero or is marked ``instantiate``), and which outputs
    those are."""
    from ..passes.autodiff import jvp_inline

    nonzero = [nz and dtypes.is_float(t.dtype) for nz, t in zip(nonzero, graph.in_types)]
    tangent_types = [t for nz, t in zip(nonzero, graph.in_types) if nz]
    found: list[bool] = []

    def build(b, ins):
        primals, it = ins[:len(graph.inputs)], iter(ins[len(graph.inputs):])
        outs, tangents = jvp_inline(b, graph, primals, [next(it) if nz else None for nz in nonzero])
        keep = [t is not None or (instantiate is not None and instantiate[k]) for k, t in enumerate(tangents)]
        found.extend(t is not None for t in tangents)
        return outs + [t if t is not None else _zeros(b, b.type_of(o))
                       for o, t, k in zip(outs, tangents, keep) if k]

    g = _new_graph(build, list(graph.in_types) + tangent_types, name or f"jvp_{graph.name}")
    return g, found


def _output_slice(graph: Graph, start: int, name: str) -> Graph:
    """``graph`` returning only its outputs from ``start`` on, rebuilt fresh."""
    return _new_graph(lambda b, ins: b.inline(graph, ins)[0][start:], graph.in_types, name)


def _cond_jvp(b, primals, tangents, outs, *, branches):
    index, operands = primals[0], primals[1:]
    nonzero = [t is not None for t in tangents[1:]]
    out_nonzero = [any(found) for found in zip(*(_jvp_body(g, nonzero)[1] for g in branches))]
    jvps = [_jvp_body(g, nonzero, out_nonzero)[0] for g in branches]
    derived = tuple(_output_slice(g, len(outs), f"jvp_{br.name}") for g, br in zip(jvps, branches))
    given = [t for t in tangents[1:] if t is not None]
    results = iter(b.bind(cond, index, *operands, *given, branches=derived))
    return [next(results) if nz else None for nz in out_nonzero]


def _vjp_body(graph: Graph, wrt: list[int], name: str) -> Graph:
    """``graph``'s reverse-mode derivative as a graph taking (inputs..., a cotangent
    per float output) and returning a cotangent (zeros where none) per input in ``wrt``."""
    from ..passes.autodiff import vjp_inline

    floats = [t for t in graph.out_types if dtypes.is_float(t.dtype)]

    def build(b, ins):
        primals, it = ins[:len(graph.inputs)], iter(ins[len(graph.inputs):])
        cts = [next(it) if dtypes.is_float(t.dtype) else None for t in graph.out_types]
        _, found = vjp_inline(b, graph, primals, cts, wrt=wrt)
        return [found[i] if found[i] is not None else _zeros(b, graph.in_types[i]) for i in wrt]

    return _new_graph(build, list(graph.in_types) + floats, name)


def _cond_vjp(b, cts, primals, outs, *, branches):
    index, operands = primals[0], primals[1:]
    wrt = [i for i, x in enumerate(operands) if dtypes.is_float(b.type_of(x).dtype) and wanted(b, i + 1)]
    out_cts = [c if c is not None else _zeros(b, b.type_of(o)) for c, o in zip(cts, outs)
               if dtypes.is_float(b.type_of(o).dtype)]
    derived = tuple(_vjp_body(g, wrt, f"vjp_{g.name}") for g in branches)
    found = iter(b.bind(cond, index, *operands, *out_cts, branches=derived))
    in_cts = [None] * len(operands)
    for i in wrt:
        in_cts[i] = next(found)
    return [None] + in_cts


cond = register(Primitive(
    "cond", _cond_rule, _cond_impl, FAMILY,
    "runs one of `branches` on the operands: branches[index], the index clamped to the valid range "
    "(a boolean predicate is index 0 for false, 1 for true)",
    jvp=_cond_jvp, vjp=_cond_vjp))


# ----------------------------------------------------------------------- while
def _while_rule(*types: ShapedType, cond, body, cond_nconsts, body_nconsts):
    carry = types[cond_nconsts + body_nconsts:]
    _agree("while", "the cond function's inputs", cond.in_types, types[:cond_nconsts] + carry,
           "its constants and the carry")
    if cond.out_types != [ShapedType((), np.bool_)]:
        raise DTypeError(f"while: the cond function must return one boolean scalar, it returns "
                         f"{', '.join(map(str, cond.out_types)) or 'nothing'}")
    _agree("while", "the body's inputs", body.in_types, types[cond_nconsts:], "its constants and the carry")
    _agree("while", "the body's outputs", body.out_types, carry, "the carry it receives")
    return list(carry)


def _while_impl(*args, cond, body, cond_nconsts, body_nconsts):
    cond_consts = list(args[:cond_nconsts])
    body_consts = list(args[cond_nconsts:cond_nconsts + body_nconsts])
    carry = list(args[cond_nconsts + body_nconsts:])
    while evaluate(cond, cond_consts + carry, checked_args=True)[0]:
        carry = evaluate(body, body_consts + carry, checked_args=True)
    return carry


def _carry_fixpoint(body: Graph, const_nonzero: list[bool], carry_nonzero: list[bool], num_carry: int,
                    rest_nonzero: list[bool] = ()) -> list[bool]:
    """Which carries have a non-zero tangent on some iteration: those with one
    at the start, and those the body gives one from another (iterated to a fixpoint)."""
    while True:
        _, found = _jvp_body(body, const_nonzero + carry_nonzero + list(rest_nonzero))
        grown = [a or f for a, f in zip(carry_nonzero, found[:num_carry])]
        if grown == carry_nonzero:
            return carry_nonzero
        carry_nonzero = grown


def _interleave(graph: Graph, in_groups: list[list[int]], out_groups: list[list[int]], name: str) -> Graph:
    """``graph`` with its inputs and outputs reordered: each group lists positions
    of the original, concatenated in the given order."""
    ins = [graph.inputs[i] for group in in_groups for i in group]
    outs = [graph.outputs[i] for group in out_groups for i in group]
    return Graph(ins, list(graph.eqns), outs, name)


def _tangent_operands(b, primals, tangents, nonzero):
    """The tangents to pass for the operands marked nonzero, zeros where the caller had none."""
    return [t if t is not None else _zeros(b, b.type_of(x)) for x, t, nz in zip(primals, tangents, nonzero) if nz]


def _while_jvp(b, primals, tangents, outs, *, cond, body, cond_nconsts, body_nconsts):
    nc, nb = cond_nconsts, body_nconsts
    consts, init = primals[nc:nc + nb], primals[nc + nb:]
    const_nz = [t is not None and dtypes.is_float(b.type_of(x).dtype) for x, t in zip(consts, tangents[nc:nc + nb])]
    carry_nz = [t is not None and dtypes.is_float(b.type_of(x).dtype) for x, t in zip(init, tangents[nc + nb:])]
    carry_nz = _carry_fixpoint(body, const_nz, carry_nz, len(init))
    jvp, _ = _jvp_body(body, const_nz + carry_nz, carry_nz)
    k, n_ct = len(init), sum(const_nz)
    # jvp's inputs: consts, carry, const tangents, carry tangents -> consts, const tangents, carry, carry tangents
    new_body = _interleave(jvp, [list(range(nb)), list(range(nb + k, nb + k + n_ct)), list(range(nb, nb + k)),
                                 list(range(nb + k + n_ct, len(jvp.inputs)))],
                           [list(range(len(jvp.outputs)))], f"jvp_{body.name}")
    new_cond = _new_graph(lambda bb, ins: bb.inline(cond, ins[:len(cond.inputs)])[0],
                          list(cond.in_types) + [t for t, nz in zip(cond.in_types[nc:], carry_nz) if nz], cond.name)
    results = b.bind(while_loop, *primals[:nc], *consts, *_tangent_operands(b, consts, tangents[nc:nc + nb], const_nz),
                     *init, *_tangent_operands(b, init, tangents[nc + nb:], carry_nz),
                     cond=new_cond, body=new_body, cond_nconsts=nc, body_nconsts=nb + n_ct)
    found = iter(results[k:])
    return [next(found) if nz else None for nz in carry_nz]


def _while_vjp(b, cts, primals, outs, **params):
    where = f" (at {b.deriving.source.describe()})" if b.deriving is not None and b.deriving.source else ""
    raise ValueError(
        f"reverse-mode differentiation of a while_loop{where}: its number of iterations depends on values, so "
        f"the backward pass cannot know how many steps to run back. Use lax.fori_loop with Python int bounds, or "
        f"lax.scan with a fixed length (a loop that stops early can carry a done flag and stop changing its "
        f"carry); forward mode (jvp) does work through while_loop")


while_loop = register(Primitive(
    "while", _while_rule, _while_impl, FAMILY,
    "runs `body` on the carry while `cond` holds; `cond` and `body` receive their constants first",
    jvp=_while_jvp, vjp=_while_vjp))


# ------------------------------------------------------------------------ scan
def _scan_rule(*types: ShapedType, body, length, reverse, num_consts, num_carry):
    if not isinstance(length, int) or length < 0:
        raise ShapeError(f"scan: length must be a non-negative int, got {length!r}")
    consts, carry, xs = types[:num_consts], types[num_consts:num_consts + num_carry], types[num_consts + num_carry:]
    for k, x in enumerate(xs):
        if x.ndim == 0 or x.shape[0] != length:
            raise ShapeError(f"scan: xs leaf {k} has type {x}, but every xs leaf needs a leading axis of the "
                             f"scan's length, {length}")
    slices = [ShapedType(x.shape[1:], x.dtype) for x in xs]
    _agree("scan", "the body's inputs", body.in_types, list(consts) + list(carry) + slices,
           "its constants, the carry and one slice of each xs")
    outs = body.out_types
    if len(outs) < num_carry:
        raise ShapeError(f"scan: the body returns {len(outs)} values, fewer than the {num_carry} of the carry")
    _agree("scan", "the body's carry outputs", outs[:num_carry], carry, "the carry it receives")
    return list(carry) + [ShapedType((length,) + y.shape, y.dtype) for y in outs[num_carry:]]


def _scan_impl(*args, body, length, reverse, num_consts, num_carry):
    consts = list(args[:num_consts])
    carry = list(args[num_consts:num_consts + num_carry])
    xs = args[num_consts + num_carry:]
    ys = [np.empty((length,) + t.shape, t.dtype) for t in body.out_types[num_carry:]]
    for i in range(length - 1, -1, -1) if reverse else range(length):
        outs = evaluate(body, consts + carry + [x[i] for x in xs], checked_args=True)
        carry = outs[:num_carry]
        for y, o in zip(ys, outs[num_carry:]):
            y[i] = o
    return carry + ys


def _scan_jvp(b, primals, tangents, outs, *, body, length, reverse, num_consts, num_carry):
    nc, k = num_consts, num_carry
    floats = [t is not None and dtypes.is_float(b.type_of(x).dtype) for x, t in zip(primals, tangents)]
    const_nz, carry_nz, xs_nz = floats[:nc], floats[nc:nc + k], floats[nc + k:]
    carry_nz = _carry_fixpoint(body, const_nz, carry_nz, k, xs_nz)
    jvp, found = _jvp_body(body, const_nz + carry_nz + xs_nz, carry_nz + [False] * (len(outs) - k))
    n_ct, n_kt = sum(const_nz), sum(carry_nz)
    n_in, n_out = len(body.inputs), len(body.outputs)
    ys_nz = found[k:]
    t0 = n_in  # jvp inputs: consts, carry, xs, then tangents of each group
    new_body = _interleave(
        jvp,
        [list(range(nc)), list(range(t0, t0 + n_ct)), list(range(nc, nc + k)), list(range(t0 + n_ct, t0 + n_ct + n_kt)),
         list(range(nc + k, n_in)), list(range(t0 + n_ct + n_kt, len(jvp.inputs)))],
        [list(range(k)), list(range(n_out, n_out + n_kt)), list(range(k, n_out)), list(range(n_out + n_kt,
                                                                                            len(jvp.outputs)))],
        f"jvp_{body.name}")
    consts, init, xs = primals[:nc], primals[nc:nc + k], primals[nc + k:]
    results = b.bind(scan, *consts, *_tangent_operands(b, consts, tangents[:nc], const_nz),
                     *init, *_tangent_operands(b, init, tangents[nc:nc + k], carry_nz),
                     *xs, *_tangent_operands(b, xs, tangents[nc + k:], xs_nz),
                     body=new_body, length=length, reverse=reverse, num_consts=nc + n_ct, num_carry=k + n_kt)
    carry_t = iter(results[k:k + n_kt])
    ys_t = iter(results[k + n_kt + len(outs) - k:])
    return [next(carry_t) if nz else None for nz in carry_nz] + [next(ys_t) if nz else None for nz in ys_nz]


def _scan_vjp(b, cts, primals, outs, *, body, length, reverse, num_consts, num_carry):
    """A forward loop that also stacks the residuals, then a loop over the steps in
    the opposite order that runs the body's transpose, carrying the carry's
    cotangent and summing the constants'."""
    from ..passes.autodiff import vjp_graph

    nc, k = num_consts, num_carry
    n_in, n_out = len(body.inputs), len(body.outputs)
    is_f = [dtypes.is_float(t.dtype) for t in body.in_types]
    carries = [i for i in range(nc, nc + k) if is_f[i]]
    const_w = [i for i in range(nc) if is_f[i] and wanted(b, i)]
    xs_w = [i for i in range(nc + k, n_in) if is_f[i] and wanted(b, i)]
    wrt = carries + const_w + xs_w
    joint = vjp_graph(body, wrt)  # (inputs, output cotangents) -> (outputs, cotangents of wrt)
    n_fwd = len(body.eqns)
    forward_ids = {v.id for v in body.inputs} | {v.id for e in body.eqns for v in e.outputs}
    position = {v.id: i for i, v in enumerate(body.inputs)}
    backward_eqns = joint.eqns[n_fwd:]
    ct_vars = joint.inputs[n_in:]
    read = [a for e in backward_eqns for a in e.inputs] + list(joint.outputs[n_out:])
    residuals, xs_read = [], []
    for a in read:
        if not isinstance(a, Var) or a.id not in forward_ids:
            continue
        i = position.get(a.id)
        if i is not None and (i < nc or i >= nc + k):
            if i >= nc + k and a not in xs_read:
                xs_read.append(a)
        elif a not in residuals:
            residuals.append(a)

    def forward(bb, ins):
        outs_, env = bb.inline(body, ins)
        return outs_ + [env[r.id] for r in residuals]

    fwd_body = _new_graph(forward, body.in_types, body.name)
    n_ct_out = len(ct_vars)
    carry_cts = ct_vars[:len(carries)]  # the float carries come first among the float outputs
    ys_cts = ct_vars[len(carries):]

    def backward(bb, ins):
        it = iter(ins)
        env = {v.id: next(it) for v in body.inputs[:nc]}
        env.update({v.id: next(it) for v in carry_cts})
        accumulated = [next(it) for _ in const_w]
        env.update({r.id: next(it) for r in residuals})
        env.update({x.id: next(it) for x in xs_read})
        env.update({v.id: next(it) for v in ys_cts})
        found, _ = bb.inline(Graph([], backward_eqns, list(joint.outputs[n_out:])), [], known=env)
        found = iter(found)
        carry_out = [next(found) for _ in carries]
        consts_out = [bb.add(acc, next(found)) for acc in accumulated]
        return carry_out + consts_out + [next(found) for _ in xs_w]

    bwd_types = ([t for t in body.in_types[:nc]] + [v.type for v in carry_cts] + [body.in_types[i] for i in const_w]
                 + [r.type for r in residuals] + [x.type for x in xs_read] + [v.type for v in ys_cts])
    bwd_body = _new_graph(backward, bwd_types, f"vjp_{body.name}")
    assert n_ct_out == len(carries) + len(ys_cts)

    forward_outs = b.bind(scan, *primals, body=fwd_body, length=length, reverse=reverse, num_consts=nc, num_carry=k)
    stacked = forward_outs[n_out:]
    consts = primals[:nc]
    init_cts = [cts[i - nc] if cts[i - nc] is not None else _zeros(b, b.type_of(outs[i - nc])) for i in carries]
    acc0 = [_zeros(b, body.in_types[i]) for i in const_w]
    xs_given = [primals[position[x.id]] for x in xs_read]
    float_ys = [j for j in range(k, n_out) if dtypes.is_float(body.out_types[j].dtype)]
    ys_given = [cts[j] if cts[j] is not None else _zeros(b, b.type_of(outs[j])) for j in float_ys]
    results = b.bind(scan, *consts, *init_cts, *acc0, *stacked, *xs_given, *ys_given, body=bwd_body, length=length,
                     reverse=not reverse, num_consts=nc, num_carry=len(carries) + len(const_w))
    found = dict(zip(carries + const_w + xs_w, results))
    return [found.get(i) for i in range(len(primals))]


scan = register(Primitive(
    "scan", _scan_rule, _scan_impl, FAMILY,
    "runs `body` once per slice of the xs along their leading axis (last to first when `reverse`), threading "
    "the carry; returns the final carry and the per-step outputs stacked along a new leading axis",
    jvp=_scan_jvp, vjp=_scan_vjp))
