"""Structured control flow: ``cond``, ``switch``, ``while_loop``, ``fori_loop``
and ``scan``, with JAX's signatures.

Under tracing, Python's ``if`` and ``while`` cannot branch on a value nobody
knows yet; these functions trace their bodies once, into sub-graphs of one
control-flow equation, so the branch or loop happens when the program runs,
and compiles to a native branch or loop. Bodies may close over traced values
(they become operands of the equation) and may be nested.

They work everywhere the primitives do: on NumPy arrays they run at once, on
eager Tensors they are recorded on the tape (closed-over Tensors that require
grad get gradients), and under ``grad``/``jvp`` they are differentiated by
their primitives' rules.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ir import Graph, ShapedType, Var, dtypes

from . import tree
from .core import Trace, Tracer, as_operand, bind, bind1, type_and_weak
from .errors import ArgumentError, DTypeError, ShapeError
from .source import at_user_line


def _leaves(x) -> tuple[list, tree.TreeDef, list[tuple[ShapedType, bool]]]:
    leaves, td = tree.flatten(x)
    types = [type_and_weak(as_operand(v)) and type_and_weak(v) for v in leaves]  # a Python scalar stays weak
    return [as_operand(v) for v in leaves], td, types


class _Body:
    """A user function traced on abstract arguments: its graph (inputs: the
    arguments' leaves, then the values it closes over), output tree and the
    closed-over values (``captured``, outer Tracers or Tensors)."""

    def __init__(self, fun: Callable, types, in_tree, name: str, casts: dict[int, np.dtype] | None = None):
        t = Trace(name)
        t.capture_tensors = True
        with t:
            tracers = [t.new_input(typ, weak) for typ, weak in types]
            leaves, out_tree = tree.flatten(fun(*tree.unflatten(in_tree, tracers)))
            self.weak = [isinstance(v, (Tracer, bool, int, float)) and type_and_weak(v)[1] for v in leaves]
            for i, dt in (casts or {}).items():
                leaves[i] = bind1("convert_element_type", as_operand(leaves[i]), dtype=dt)
            self.graph, self.out_tree = t.finish_tree(tree.unflatten(out_tree, leaves))
        self.captured = [outer for outer, _ in t.captured]
        self.num_args = len(types)

    @property
    def out_types(self) -> list[ShapedType]:
        return self.graph.out_types


def _closed(body: _Body, captured: list, key_of) -> Graph:
    """``body``'s graph taking (``captured``..., its arguments...): the closed-over
    values of several bodies unified, so each body takes them all."""
    g = body.graph
    args, mine = g.inputs[:body.num_args], g.inputs[body.num_args:]
    by_key = {key_of(outer): v for outer, v in zip(body.captured, mine)}
    consts = [by_key.get(key_of(outer)) or Var(type_and_weak(outer)[0]) for outer in captured]
    return Graph(consts + list(args), list(g.eqns), list(g.outputs), g.name)


def _key(outer) -> int:
    return id(outer.atom) if isinstance(outer, Tracer) else id(outer)


def _union(bodies: Sequence[_Body]) -> list:
    seen: dict[int, Any] = {}
    for body in bodies:
        for outer in body.captured:
            seen.setdefault(_key(outer), outer)
    return list(seen.values())


def _mismatch(message: str, paths: list[str], got: list[ShapedType], expected: list[ShapedType]) -> None:
    """Raise for the first leaf whose types differ; ``message`` names it with {path}, {got} and {expected}."""
    for path, g, e in zip(paths, got, expected):
        if g != e:
            raise ShapeError(message.format(path=path, got=g, expected=e) + at_user_line())


def _name(fun: Callable, default: str) -> str:
    """The function's name for messages; its role (``true_fun``) when it has none (a lambda)."""
    name = getattr(fun, "__name__", "<lambda>")
    return default if name == "<lambda>" else name


# ------------------------------------------------------------------------ cond
def switch(index, branches: Sequence[Callable], *operands):
    """``branches[index](*operands)``, the index clamped to ``[0, len(branches) - 1]``.
    Every branch must return the same structure of the same types."""
    branches = list(branches)
    if not branches:
        raise ArgumentError("switch: needs at least one branch")
    index = as_operand(index)
    t, _ = type_and_weak(index)
    if t.ndim != 0 or not (dtypes.is_int(t.dtype) or t.dtype == dtypes.bool_):
        raise DTypeError(f"switch: the index must be an integer scalar, got {t}{at_user_line()}")
    return _branch("switch", bind1("convert_element_type", index, dtype=dtypes.int32), branches,
                   [_name(f, f"branch{i}") for i, f in enumerate(branches)], operands)


def cond(pred, true_fun: Callable, false_fun: Callable, *operands):
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, decided
    when the program runs. Both functions must return the same structure of the
    same types; only the chosen one runs."""
    pred = as_operand(pred)
    t, _ = type_and_weak(pred)
    if t.ndim != 0:
        raise ShapeError(f"cond: the predicate must be a scalar, got {t}; reduce it first (tnp.any, tnp.all) or "
                         f"choose elementwise with tnp.where{at_user_line()}")
    if t.dtype != dtypes.bool_:
        pred = bind1("ne", pred, np.zeros((), t.dtype))
    index = bind1("convert_element_type", pred, dtype=dtypes.int32)
    names = [_name(false_fun, "false_fun"), _name(true_fun, "true_fun")]
    return _branch("cond", index, [false_fun, true_fun], names, operands)


def _branch(what: str, index, funs: list[Callable], names: list[str], operands):
    leaves, in_tree, types = _leaves(tuple(operands))
    bodies = [_Body(f, types, in_tree, n) for f, n in zip(funs, names)]
    for body, n in zip(bodies[1:], names[1:]):
        if body.out_tree != bodies[0].out_tree:
            raise ShapeError(f"{what}: {names[0]} and {n} must return the same structure, but {names[0]} returned "
                             f"{bodies[0].out_tree} and {n} returned {body.out_tree}{at_user_line()}")
    _unify_weak(bodies, funs, types, in_tree, names)
    first = bodies[0]
    paths = ["output" + p for p in tree.leaf_paths(first.out_tree)]
    for body, n in zip(bodies[1:], names[1:]):
        _mismatch(f"{what}: {n}() returns {{path}} as {{got}}, but {names[0]}() returns it as {{expected}}; every "
                  f"branch must return the same shapes and dtypes", paths, body.out_types, first.out_types)
    captured = _union(bodies)
    graphs = tuple(_closed(b, captured, _key) for b in bodies)
    # Operands after the captured values: the graphs take (captured..., operands...).
    outs = bind("cond", index, *captured, *leaves, branches=graphs)
    return tree.unflatten(first.out_tree, outs)


def _unify_weak(bodies: list[_Body], funs, types, in_tree, names) -> None:
    """Outputs that are Python scalars in one branch take the dtype of the others
    (JAX's weak types): ``cond(p, lambda: x, lambda: 0.0)`` with x float32 works."""
    n = len(bodies[0].out_types)
    for i in range(len(bodies)):
        casts = {}
        for j in range(n):
            strong = [b.out_types[j] for b in bodies if not b.weak[j]]
            mine = bodies[i].out_types[j]
            if bodies[i].weak[j] and strong and strong[0].shape == mine.shape and strong[0].dtype != mine.dtype:
                casts[j] = strong[0].dtype
        if casts:
            bodies[i] = _Body(funs[i], types, in_tree, names[i], casts)


# ----------------------------------------------------------------------- loops
def _carry_body(what: str, fun: Callable, init_leaves, init_types, in_tree, label: str, extra=None):
    """Trace ``fun`` on the carry (plus ``extra`` = (types, tree) arguments after
    it) until its carry output matches the carry: a weakly typed initial value
    (a Python scalar) takes the body's dtype, a Python scalar the body returns
    takes the carry's, and anything else that differs is an error naming the leaf."""
    types = list(init_types)
    while True:
        arg_types = types + (extra[0] if extra else [])
        arg_tree = tree.TreeDef("tuple", (), (in_tree,) + ((extra[1],) if extra else ()))
        body = _Body(fun, arg_types, arg_tree, _name(fun, "body"))
        carry_out, carry_tree = _carry_part(what, body)
        if carry_tree != in_tree:
            raise ShapeError(f"{what}: {body.graph.name}() must return the carry with the structure of {label}: "
                             f"it is {in_tree}, the function returned {carry_tree}{at_user_line()}")
        retry = False
        casts = {}
        for k, ((t, weak), out) in enumerate(zip(types, carry_out)):
            if t == out or t.shape != out.shape:
                continue
            if weak:
                types[k] = (out, False)
                init_leaves[k] = bind1("convert_element_type", init_leaves[k], dtype=out.dtype)
                retry = True
            elif body.weak[k]:
                casts[k] = t.dtype
        if casts and not retry:
            body = _Body(fun, arg_types, arg_tree, _name(fun, "body"), casts)
            carry_out, _ = _carry_part(what, body)
        if not retry:
            paths = [label + p for p in tree.leaf_paths(in_tree)]
            _mismatch(f"{what}: {body.graph.name}() returns the carry {{path}} as {{got}}, but its initial value is "
                      f"{{expected}}; a loop's carry keeps its shape and dtype from one iteration to the next",
                      paths, carry_out, [t for t, _ in types])
            return body, types


def _carry_part(what: str, body: _Body) -> tuple[list[ShapedType], tree.TreeDef]:
    if what == "scan":
        td = body.out_tree
        if td.kind not in ("tuple", "list") or len(td.children) != 2:
            raise ArgumentError(f"scan: {body.graph.name}() must return a pair (carry, y), it returned {td}"
                                f"{at_user_line()}")
        carry_td = td.children[0]
        return body.out_types[:carry_td.num_leaves], carry_td
    return body.out_types, body.out_tree


def while_loop(cond_fun: Callable, body_fun: Callable, init_val):
    """``val = init_val; while cond_fun(val): val = body_fun(val)``, as one
    equation. Differentiable in forward mode; reverse mode needs a known trip
    count: use fori_loop with Python int bounds, or scan."""
    init_leaves, in_tree, init_types = _leaves(init_val)
    body, types = _carry_body("while_loop", body_fun, init_leaves, init_types, in_tree, "init_val")
    test = _Body(cond_fun, types, tree.TreeDef("tuple", (), (in_tree,)), _name(cond_fun, "cond_fun"))
    if test.out_types != [ShapedType((), dtypes.bool_)]:
        got = ", ".join(map(str, test.out_types)) or "nothing"
        raise DTypeError(f"while_loop: {test.graph.name}() must return a boolean scalar, it returned {got}"
                         f"{at_user_line()}")
    cond_graph, body_graph = _closed(test, test.captured, _key), _closed(body, body.captured, _key)
    outs = bind("while", *test.captured, *body.captured, *init_leaves, cond=cond_graph, body=body_graph,
                cond_nconsts=len(test.captured), body_nconsts=len(body.captured))
    return tree.unflatten(in_tree, outs)


def _static_int(x) -> int | None:
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return int(x)
    if isinstance(x, np.ndarray) and x.ndim == 0 and dtypes.is_int(x.dtype):
        return int(x)
    return None


def fori_loop(lower, upper, body_fun: Callable, init_val):
    """``val = init_val; for i in range(lower, upper): val = body_fun(i, val)``.
    With Python int bounds it is a scan of ``upper - lower`` steps, so reverse
    mode works; with traced bounds, a while_loop."""
    lo, hi = _static_int(lower), _static_int(upper)
    if lo is not None and hi is not None:
        def step(carry, _):
            i, val = carry
            return (i + 1, body_fun(i, val)), None

        step.__name__ = _name(body_fun, "body_fun")
        (_, out), _ = _scan(step, (lower, init_val), None, max(hi - lo, 0), False, "(i, init_val)")
        return out
    (lo_type, lo_weak), (hi_type, hi_weak) = type_and_weak(lower), type_and_weak(upper)
    # A Python int bound takes the other bound's dtype (a weak type, as in JAX).
    dt = hi_type.dtype if lo_weak else lo_type.dtype if hi_weak else np.result_type(lo_type.dtype, hi_type.dtype)
    lower, upper = as_operand(lower), as_operand(upper)
    lower = bind1("convert_element_type", lower, dtype=dt)
    upper = bind1("convert_element_type", upper, dtype=dt)

    def body(carry):
        i, hi_, val = carry
        return i + 1, hi_, body_fun(i, val)

    _, _, out = while_loop(lambda c: c[0] < c[1], body, (lower, upper, init_val))
    return out


def scan(f: Callable, init, xs, length: int | None = None, reverse: bool = False):
    """``carry = init; for x in xs: carry, y = f(carry, x)``, returning the final
    carry and the ys stacked along a new leading axis; ``xs`` is a pytree of
    arrays sliced along their leading axis (or None, with ``length``)."""
    return _scan(f, init, xs, length, reverse, "init")


def _scan(f: Callable, init, xs, length: int | None, reverse: bool, label: str):
    x_leaves, x_tree, x_types = _leaves(xs)
    lengths = {t.shape[0] for t, _ in x_types if t.ndim}
    if any(t.ndim == 0 for t, _ in x_types):
        raise ShapeError(f"scan: every leaf of xs needs a leading axis to scan over, got "
                         f"{', '.join(str(t) for t, _ in x_types)}{at_user_line()}")
    if length is not None:
        lengths.add(int(length))
    if len(lengths) != 1:
        found = sorted(lengths)
        raise ShapeError(f"scan: " + (f"the xs leaves and length disagree on the number of steps: {found}"
                                      if found else "xs is None: pass length=") + at_user_line())
    n = lengths.pop()
    init_leaves, in_tree, init_types = _leaves(init)
    slices = [(ShapedType(t.shape[1:], t.dtype), w) for t, w in x_types]
    body, types = _carry_body("scan", f, init_leaves, init_types, in_tree, label, extra=(slices, x_tree))
    y_tree = body.out_tree.children[1]
    graph = _closed(body, body.captured, _key)
    outs = bind("scan", *body.captured, *init_leaves, *x_leaves, body=graph, length=n, reverse=bool(reverse),
                num_consts=len(body.captured), num_carry=len(init_leaves))
    k = len(init_leaves)
    return tree.unflatten(in_tree, outs[:k]), tree.unflatten(y_tree, outs[k:])
