"""User-defined derivatives (custom_vjp, custom_jvp) and rematerialisation
(checkpoint). Each traces the user's functions into graphs and binds one
primitive that holds them, so the derivative rules stay graph transformations."""

from __future__ import annotations

import functools
from typing import Callable


from ir import ShapedType

from . import tree
from .core import Trace, Tracer, as_operand, bind, current_trace, type_and_weak
from .errors import ArgumentError, ShapeError


def _traced(args) -> bool:
    return current_trace() is not None or any(isinstance(x, Tracer) for x in tree.flatten(args)[0])


def trace_graph(fun: Callable, types: list[tuple[ShapedType, bool]], in_tree, name: str, allow_capture: bool):
    """fun traced abstractly on arguments of ``types``: (graph, out_tree, captured outer tracers)."""
    t = Trace(name)
    with t:
        tracers = [t.new_input(typ, weak) for typ, weak in types]
        graph, out_tree = t.finish_tree(fun(*tree.unflatten(in_tree, tracers)))
    if t.captured and not allow_capture:
        raise ArgumentError(f"{name}() closes over a traced value ({t.captured[0][0].type}); a function with a "
                            f"custom derivative must receive every traced value as an argument")
    return graph, out_tree, [outer for outer, _ in t.captured]


def _leaf_types(args):
    leaves, in_tree = tree.flatten(args)
    leaves = [as_operand(x) for x in leaves]
    return leaves, in_tree, [type_and_weak(x) for x in leaves]


class _Custom:
    """A function with user-written derivative rules. Called outside any trace it
    is the plain function; traced, it binds one primitive holding the traced
    function and rules. While its own rules are traced (fwd usually calls f),
    it is the plain function too."""

    missing_rule = ""

    def __init__(self, fun: Callable):
        self.fun = fun
        self._in_rule = False
        functools.update_wrapper(self, fun)

    def _has_rule(self) -> bool:
        raise NotImplementedError

    def __call__(self, *args):
        if not self._has_rule():
            raise TypeError(f"{type(self).__name__} function {self.__name__}() has no rule: "
                            f"{self.missing_rule.format(name=self.__name__)}")
        if self._in_rule or not _traced(args):
            return self.fun(*args)
        leaves, in_tree, types = _leaf_types(args)
        self._in_rule = True
        try:
            return self._bind(leaves, in_tree, types)
        finally:
            self._in_rule = False


class custom_vjp(_Custom):
    """A function with a user-written reverse-mode derivative::

        @tg.custom_vjp
        def f(x): ...
        def f_fwd(x): return f(x), residuals
        def f_bwd(residuals, g): return (cotangent_of_x,)   # one per argument
        f.defvjp(f_fwd, f_bwd)
    """

    missing_rule = "call {name}.defvjp(fwd, bwd) first"
    fwd = bwd = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        self.fwd, self.bwd = fwd, bwd

    def _has_rule(self) -> bool:
        return self.fwd is not None

    def _bind(self, leaves, in_tree, types):
        fwd_graph, fwd_tree, _ = trace_graph(self.fwd, types, in_tree, getattr(self.fwd, "__name__", "fwd"), False)
        if fwd_tree.kind not in ("tuple", "list") or len(fwd_tree.children) != 2:
            raise ArgumentError(f"{self.__name__}: fwd must return a pair (output, residuals), it returned "
                                f"{fwd_tree}")
        out_tree, res_tree = fwd_tree.children
        n_out = out_tree.num_leaves
        out_types, res_types = fwd_graph.out_types[:n_out], fwd_graph.out_types[n_out:]
        bwd_in = [(t, False) for t in res_types + out_types]
        bwd_graph, ct_tree, _ = trace_graph(lambda *xs: self.bwd(tree.unflatten(res_tree, xs[:len(res_types)]),
                                                                 tree.unflatten(out_tree, xs[len(res_types):])),
                                            bwd_in, tree.flatten(tuple(range(len(bwd_in))))[1],
                                            getattr(self.bwd, "__name__", "bwd"), False)
        self._check_cotangents(bwd_graph, ct_tree, in_tree, [t for t, _ in types])
        outs = bind("custom_vjp_call", *leaves, fwd=fwd_graph, bwd=bwd_graph, num_outs=n_out)
        return tree.unflatten(out_tree, outs[:n_out])

    def _check_cotangents(self, bwd_graph, ct_tree, in_tree, in_types) -> None:
        nargs = len(in_tree.children)
        if ct_tree.kind not in ("tuple", "list") or len(ct_tree.children) != nargs:
            raise ArgumentError(f"{self.__name__}: bwd must return a tuple with one cotangent per argument "
                                f"({nargs}), it returned {ct_tree}")
        if ct_tree != in_tree:
            raise ArgumentError(f"{self.__name__}: bwd returned cotangents structured as {ct_tree}, but the "
                                f"arguments are {in_tree}")
        for i, (got, want) in enumerate(zip(bwd_graph.out_types, in_types)):
            if got != want:
                raise ShapeError(f"{self.__name__}: bwd returned a cotangent of type {got} for argument leaf {i} "
                                 f"of type {want}; each cotangent has its argument's shape and dtype")


class custom_jvp(_Custom):
    """A function with a user-written forward-mode derivative, which also serves
    reverse mode (tracegrad transposes it)::

        @tg.custom_jvp
        def f(x): ...
        @f.defjvp
        def f_jvp(primals, tangents): return f(*primals), tangent_out
    """

    missing_rule = "decorate one with @{name}.defjvp"
    rule = None

    def defjvp(self, rule: Callable) -> Callable:
        self.rule = rule
        return rule

    def _has_rule(self) -> bool:
        return self.rule is not None

    def _bind(self, leaves, in_tree, types):
        fun_graph, out_tree, _ = trace_graph(self.fun, types, in_tree, self.__name__, False)
        n = len(leaves)
        both = tree.flatten((tuple(range(n)), tuple(range(n))))[1]
        jvp_graph, jvp_tree, _ = trace_graph(
            lambda p, t: self.rule(tree.unflatten(in_tree, p), tree.unflatten(in_tree, t)),
            [(t, w) for t, w in types] * 2, both, getattr(self.rule, "__name__", "jvp"), False)
        if jvp_graph.out_types != fun_graph.out_types * 2:
            raise ShapeError(f"{self.__name__}: the jvp rule must return (output, tangent of the output) shaped like "
                             f"{fun_graph.out_types} twice; it returned {jvp_graph.out_types}")
        outs = bind("custom_jvp_call", *leaves, fun=fun_graph, jvp=jvp_graph)
        return tree.unflatten(out_tree, outs)


def checkpoint(fun: Callable) -> Callable:
    """fun, rematerialised: reverse mode keeps only its inputs and recomputes its
    intermediates in the backward program, trading compute for memory."""

    @functools.wraps(fun)
    def remat(*args):
        if not _traced(args):
            return fun(*args)
        leaves, in_tree, types = _leaf_types(args)
        body, out_tree, captured = trace_graph(fun, types, in_tree, getattr(fun, "__name__", "f"), True)
        return tree.unflatten(out_tree, bind("checkpoint", *leaves, *captured, body=body))

    return remat



