"""Primitives that call a sub-graph: user-defined derivatives and
rematerialisation. Each keeps its programs as Graph params, so the printer
shows them, the verifier checks them, and passes can see into them."""

from __future__ import annotations

from ..errors import ShapeError
from ..interpreter import evaluate
from ..types import ShapedType
from .core import Primitive, add_tangents, register

FAMILY = "call"


def _check_signature(name: str, what: str, got, expected) -> None:
    if list(got) != list(expected):
        raise ShapeError(f"{name}: {what} are {', '.join(map(str, got)) or 'nothing'}, expected "
                         f"{', '.join(map(str, expected)) or 'nothing'}")


def _call_rule(name: str, graph_param: str):
    def rule(*types: ShapedType, **params):
        graph = params[graph_param]
        _check_signature(name, f"the operands of the {graph_param} program", types, graph.in_types)
        return list(graph.out_types)

    return rule


def _custom_vjp_rule(*types: ShapedType, fwd, bwd, num_outs):
    outs = _call_rule("custom_vjp_call", "fwd")(*types, fwd=fwd)
    _check_signature("custom_vjp_call", "the bwd program's inputs (residuals, output cotangents)",
                     bwd.in_types, outs[num_outs:] + outs[:num_outs])
    _check_signature("custom_vjp_call", "the bwd program's outputs (one cotangent per operand)", bwd.out_types, types)
    return outs


def _custom_jvp_rule(*types: ShapedType, fun, jvp):
    outs = _call_rule("custom_jvp_call", "fun")(*types, fun=fun)
    _check_signature("custom_jvp_call", "the jvp program's inputs (primals, tangents)", jvp.in_types, list(types) * 2)
    _check_signature("custom_jvp_call", "the jvp program's outputs (outputs, tangents)", jvp.out_types, outs * 2)
    return outs


def _zeros_for_none(b, cts, like):
    return [b.zeros_like(x) if c is None else c for c, x in zip(cts, like)]


# ------------------------------------------------------------------ checkpoint
def _checkpoint_jvp(b, primals, tangents, outs, *, body):
    from ..passes.autodiff import jvp_inline

    return jvp_inline(b, body, primals, tangents)[1]


def _checkpoint_vjp(b, cts, primals, outs, *, body):
    """Recompute the body's intermediates from its inputs, then differentiate them."""
    from ..passes.autodiff import vjp_inline

    return vjp_inline(b, body, primals, cts)[1]


checkpoint = register(Primitive(
    "checkpoint", _call_rule("checkpoint", "body"), lambda *xs, body: evaluate(body, xs, checked_args=True), FAMILY,
    "runs `body`; reverse mode stores only its inputs and recomputes its intermediates in the backward program",
    jvp=_checkpoint_jvp, vjp=_checkpoint_vjp))


# ------------------------------------------------------------------ custom_vjp
def _custom_vjp_jvp(b, primals, tangents, outs, **params):
    raise TypeError("a custom_vjp function cannot be differentiated in forward mode (jvp, jacfwd, hessian): it has "
                    "only a reverse-mode rule; define it with custom_jvp instead, which serves both modes")


def _custom_vjp_vjp(b, cts, primals, outs, *, fwd, bwd, num_outs):
    """The user's bwd program, on the residuals fwd saved and the output cotangents.

    The residuals get cotangents of their own when a program that ran bwd is
    differentiated again (reverse over reverse: bwd read them). Those flow back
    through fwd, which is ordinary code, as in JAX; dropping them would make
    every second derivative through the function silently zero."""
    from ..passes.autodiff import vjp_inline

    in_cts = [None] * len(primals)
    if any(c is not None for c in cts[:num_outs]):
        out_cts = _zeros_for_none(b, cts[:num_outs], outs[:num_outs])
        in_cts = b.inline(bwd, list(outs[num_outs:]) + out_cts)[0]
    if any(c is not None for c in cts[num_outs:]):
        through_fwd = vjp_inline(b, fwd, list(primals), [None] * num_outs + list(cts[num_outs:]))[1]
        in_cts = [add_tangents(b, [c, d]) for c, d in zip(in_cts, through_fwd)]
    return in_cts


custom_vjp_call = register(Primitive(
    "custom_vjp_call", _custom_vjp_rule, lambda *xs, fwd, bwd, num_outs: evaluate(fwd, xs, checked_args=True),
    FAMILY,
    "runs the user's `fwd` program, whose first `num_outs` outputs are the function's and the rest residuals; "
    "reverse mode runs the user's `bwd` program on (residuals, output cotangents)",
    jvp=_custom_vjp_jvp, vjp=_custom_vjp_vjp))


# ------------------------------------------------------------------ custom_jvp
def _custom_jvp_jvp(b, primals, tangents, outs, *, fun, jvp):
    n = len(outs)
    results = b.inline(jvp, list(primals) + _zeros_for_none(b, tangents, primals))[0]
    return results[n:]


def _custom_jvp_vjp(b, cts, primals, outs, *, fun, jvp):
    """The user's rule is linear in the tangents, so its transpose is its own
    reverse-mode derivative with respect to them (at zero tangents)."""
    from ..passes.autodiff import vjp_inline

    n, k = len(outs), len(primals)
    zero_tangents = [b.zeros_like(x) for x in primals]
    _, in_cts = vjp_inline(b, jvp, list(primals) + zero_tangents, [None] * n + list(cts), wrt=list(range(k, 2 * k)))
    return in_cts[k:]


custom_jvp_call = register(Primitive(
    "custom_jvp_call", _custom_jvp_rule, lambda *xs, fun, jvp: evaluate(fun, xs, checked_args=True), FAMILY,
    "runs `fun`; forward mode runs the user's `jvp` program on (primals, tangents), returning (outputs, output "
    "tangents); reverse mode transposes it",
    jvp=_custom_jvp_jvp, vjp=_custom_jvp_vjp))


# ----------------------------------------------------------------------- fused
fused = register(Primitive(
    "fused", _call_rule("fused", "body"), lambda *xs, kind, body: evaluate(body, xs, checked_args=True), FAMILY,
    "one kernel: `body` runs as a single loop nest (`kind` elementwise, reduction or matmul with its "
    "epilogue) reading its operands from memory once and writing only its outputs; made by the fusion pass",
    jvp=lambda b, primals, tangents, outs, *, kind, body: _checkpoint_jvp(b, primals, tangents, outs, body=body),
    vjp=lambda b, cts, primals, outs, *, kind, body: _checkpoint_vjp(b, cts, primals, outs, body=body)))
