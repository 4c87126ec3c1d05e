"""The differentiation transformations: vjp, grad, value_and_grad, jvp,
jacfwd, jacrev, hessian, stop_gradient.

Each one traces the function into a graph, then differentiates that graph
with the passes of ``ir.passes.autodiff``, emitting the derivative program on
a builder:

* called on NumPy arrays (outside any trace), the function is traced with
  concrete values, so Python control flow on values works as in
  define-by-run, and the derivative is computed at once on those values;
* called on tracers (under ``jit``, or inside another transformation), the
  traced graph and its derivative are inlined into the enclosing trace, so
  ``jit(grad(f))``, ``grad(grad(f))`` and ``jvp(grad(f))`` all compose.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from ir import NumpyBuilder, ShapedType, dtypes
from ir.passes.autodiff import active_vars, backward, jvp_inline, seed_cotangents

from . import tree
from .core import Tensor, Trace, Tracer, as_operand, bind1, current_trace, type_and_weak
from .errors import ArgumentError, DTypeError, ShapeError
from .jit import _result
from .tracing import tensor_argument


class Linearized:
    """A function traced at some arguments, its outputs computed, ready to be
    differentiated any number of times (one forward, many backward passes)."""

    def __init__(self, fun: Callable, args: tuple, name: str, has_aux: bool = False):
        self.outer = current_trace()
        leaves, in_tree = tree.flatten(args)
        leaves = [as_operand(x) for x in leaves]
        self.in_types = [type_and_weak(x)[0] for x in leaves]
        concrete = self.outer is None or self.outer.concrete
        trace = Trace(name, concrete=concrete)
        with trace:
            tracers = [trace.new_input(t, w, x.value if isinstance(x, Tracer) else x if concrete else None)
                       for x, (t, w) in zip(leaves, map(type_and_weak, leaves))]
            out = fun(*tree.unflatten(in_tree, tracers))
            if has_aux and not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise ArgumentError(f"{name}() was declared has_aux=True, so it must return a pair "
                                    f"(output, auxiliary data); it returned a {type(out).__name__}")
            graph, both = trace.finish_tree(tuple(out) if has_aux else (out, None))
        self.out_tree, self.aux_tree = both.children
        self.graph, self.n_out, self.n_in = graph, self.out_tree.num_leaves, len(leaves)
        if self.outer is None:
            # The concrete trace already computed every value: they are the residuals.
            self.builder, self.env = NumpyBuilder(), trace.builder.values
            self.outputs = [_result(self._read(a), set()) for a in graph.outputs]
        else:
            # Inside a trace: inline the forward program, captured outer values included.
            self.builder = self.outer.builder
            inputs = [self.outer.atom(x) for x in leaves] + [self.outer.atom(o) for o, _ in trace.captured]
            atoms, self.env = self.builder.inline(graph, inputs)
            self.outputs = [Tracer(self.outer, a) for a in atoms]

    def _read(self, a):
        return self.builder.read(self.env, a)

    @property
    def out(self):
        return tree.unflatten(self.out_tree, self.outputs[:self.n_out])

    @property
    def aux(self):
        return tree.unflatten(self.aux_tree, self.outputs[self.n_out:])

    def _lift(self, x):
        """A user's cotangent or tangent in the builder's currency."""
        if self.outer is None:
            return np.asarray(x)
        return self.outer.atom(as_operand(x))

    def _wrap(self, x):
        return _result(x, set()) if self.outer is None else Tracer(self.outer, x)

    def vjp(self, out_cts: list) -> list:
        """Cotangents of the inputs (zeros where none flows) for output cotangents."""
        if self.outer is not None and not self.outer.alive:
            raise RuntimeError("this vjp function belongs to a trace that has finished; call it inside the same "
                               "traced function")
        b, graph = self.builder, self.graph
        cts = seed_cotangents(b, graph.outputs[:self.n_out], [None if ct is None else self._lift(ct) for ct in out_cts])
        inputs = graph.inputs[:self.n_in]
        found = backward(b, graph.eqns, self.env, cts, active_vars(graph.eqns, {v.id for v in inputs}))
        return [self._wrap(found[v.id] if v.id in found else b.zeros_like(self._read(v))) for v in inputs]

    def jvp(self, tangents: list) -> list:
        """Tangents of the outputs (zeros where none flows) along input tangents."""
        b, graph = self.builder, self.graph
        primals = [self._read(v) for v in graph.inputs]
        lifted = [None if t is None else self._lift(t) for t in tangents] + [None] * (len(primals) - self.n_in)
        outs, out_tangents = jvp_inline(b, graph, primals, lifted, known=self.env)
        return [self._wrap(t if t is not None else b.zeros_like(o))
                for o, t in zip(outs[:self.n_out], out_tangents[:self.n_out])]


def _name(fun) -> str:
    return getattr(fun, "__name__", type(fun).__name__)


def _wraps(wrapper: Callable, fun: Callable, prefix: str) -> Callable:
    """Name ``wrapper`` after ``fun`` and give it fun's signature: it takes the
    same arguments, so jit's argument checks (a missing argument, static_argnums
    beyond the call) speak of fun's parameters, not of ``*args, **kwargs``."""
    wrapper.__name__ = f"{prefix}_{_name(fun)}"
    try:
        wrapper.__signature__ = inspect.signature(fun)
    except (TypeError, ValueError):  # no signature to copy (a builtin): the call itself will check
        pass
    return wrapper


def _check_float(args, what: str) -> None:
    leaves, _ = tree.flatten(args)
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, Tensor):
            raise tensor_argument(f"input {i}", what)
        t, _ = type_and_weak(as_operand(leaf))
        if not dtypes.is_float(t.dtype):
            raise DTypeError(f"{what} requires float inputs, but input {i} has dtype {t.dtype} ({t}). Differentiate "
                             f"with respect to float arguments only: convert with .astype(np.float32), or leave "
                             f"the integer argument out of argnums")


# ------------------------------------------------------------------- reverse
def vjp(fun: Callable, *primals, has_aux: bool = False):
    """``(out, vjp_fn)`` or ``(out, vjp_fn, aux)``: vjp_fn(cotangent of out) returns a
    tuple with the cotangent of each primal."""
    _check_float(primals, "vjp")
    lin = Linearized(fun, primals, _name(fun), has_aux)
    _, in_tree = tree.flatten(primals)

    def vjp_fn(ct):
        ct_leaves, ct_tree = tree.flatten(ct)
        if ct_tree != lin.out_tree:
            raise ArgumentError(f"vjp_fn expects a cotangent shaped like the output ({lin.out_tree}), got {ct_tree}")
        cast = []
        for c, o in zip(ct_leaves, lin.outputs):
            ct_type, o_type = type_and_weak(as_operand(c))[0], type_and_weak(o)[0]
            if ct_type.shape != o_type.shape:
                raise ShapeError(f"vjp_fn: the cotangent has shape {ct_type.shape} but the output has shape "
                                 f"{o_type.shape}; pass one cotangent per output, shaped like it")
            # In the output's dtype, as jvp does with tangents: vjp_fn(1.0) for a float32 output is common,
            # and the rules need one dtype per operation.
            cast.append(_astype(c, o_type.dtype) if dtypes.is_float(o_type.dtype) else c)
        return tree.unflatten(in_tree, lin.vjp(cast))

    return (lin.out, vjp_fn, lin.aux) if has_aux else (lin.out, vjp_fn)


def _argnums(argnums, nargs: int, fname: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not -nargs <= i < nargs:
            raise ArgumentError(f"argnums {argnums} is out of range: {fname}() was called with {nargs} positional "
                                f"argument{'s' if nargs != 1 else ''}")
    return tuple(i % nargs for i in nums)


def _partial_in(fun, args, kwargs, nums):
    """fun as a function of the arguments at ``nums`` only; the others are fixed."""
    def of_diff(*diff):
        full = list(args)
        for i, x in zip(nums, diff):
            full[i] = x
        return fun(*full, **kwargs)

    of_diff.__name__ = _name(fun)
    return of_diff


def value_and_grad(fun: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """A function returning ``(fun(*args), gradient)`` (``((value, aux), gradient)``
    with has_aux); the gradient is shaped like the argument(s) at ``argnums``."""

    def value_and_grad_f(*args, **kwargs):
        fname = _name(fun)
        nums = _argnums(argnums, len(args), fname)
        diff = tuple(args[i] for i in nums)
        _check_float(diff, "grad")
        lin = Linearized(_partial_in(fun, args, kwargs, nums), diff, fname, has_aux)
        if len(lin.outputs[:lin.n_out]) != 1 or lin.out_tree.kind != "leaf":
            raise ArgumentError(f"grad requires {fname}() to return one scalar, it returned {lin.out_tree}; use vjp "
                                f"or jacrev for several or non-scalar outputs")
        out_type = type_and_weak(lin.outputs[0])[0]
        if out_type.shape != () or not dtypes.is_float(out_type.dtype):
            raise ShapeError(f"grad requires a scalar float output, but {fname}() returned {out_type}; use vjp "
                             f"(with a cotangent) or jacrev for a non-scalar output, or reduce it (e.g. .sum())")
        grads = lin.vjp([np.ones((), out_type.dtype)])
        _, diff_tree = tree.flatten(diff)
        grads = tree.unflatten(diff_tree, grads)
        g = grads[0] if isinstance(argnums, int) else grads
        value = lin.outputs[0]
        return ((value, lin.aux), g) if has_aux else (value, g)

    return _wraps(value_and_grad_f, fun, "value_and_grad")


def grad(fun: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """The gradient of a scalar function with respect to the argument(s) at ``argnums``."""
    vg = value_and_grad(fun, argnums, has_aux)

    def grad_f(*args, **kwargs):
        (value, g) = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return _wraps(grad_f, fun, "grad")


# ------------------------------------------------------------------- forward
def jvp(fun: Callable, primals, tangents):
    """``(fun(*primals), tangent of the output)`` along ``tangents`` (one per primal)."""
    primals, tangents = tuple(primals), tuple(tangents)
    p_leaves, p_tree = tree.flatten(primals)
    t_leaves, t_tree = tree.flatten(tangents)
    if p_tree != t_tree:
        raise ArgumentError(f"jvp: tangents must have the structure of primals ({p_tree}), got {t_tree}")
    _check_float(primals, "jvp")
    for p, t in zip(p_leaves, t_leaves):
        pt, tt = type_and_weak(as_operand(p))[0], type_and_weak(as_operand(t))[0]
        if pt.shape != tt.shape:
            raise ShapeError(f"jvp: a tangent of shape {tt.shape} was given for a primal of shape {pt.shape}")
    lin = Linearized(fun, primals, _name(fun))
    tangents_out = [_astype(t, type_and_weak(o)[0].dtype) for t, o in zip(lin.jvp(
        [_astype(t, type_and_weak(as_operand(p))[0].dtype) for p, t in zip(p_leaves, t_leaves)]), lin.outputs)]
    return lin.out, tree.unflatten(lin.out_tree, tangents_out)


def _astype(x, dtype):
    from .numpy import astype

    return astype(x, dtype)


def _jacobian(fun, argnums, forward: bool, name: str) -> Callable:
    """Jacobians by one JVP per input element (forward) or one VJP per output
    element (reverse), sharing one forward trace. Each Jacobian has shape
    out.shape + in.shape; pytrees of outputs and tuple argnums nest as in JAX."""

    def jac_f(*args, **kwargs):
        from . import numpy as tnp

        fname = _name(fun)
        nums = _argnums(argnums, len(args), fname)
        diff = tuple(args[i] for i in nums)
        _check_float(diff, name)
        lin = Linearized(_partial_in(fun, args, kwargs, nums), diff, fname)
        in_types, out_types = lin.in_types, [type_and_weak(o)[0] for o in lin.outputs]
        blocks = [[None] * len(in_types) for _ in out_types]  # blocks[out][in]
        if forward:
            for j, t in enumerate(in_types):
                columns = [lin.jvp(_basis(in_types, j, k)) for k in range(t.size)]
                for i, o in enumerate(out_types):
                    stacked = tnp.stack([c[i] for c in columns], axis=-1) if columns else np.zeros(o.shape + (0,),
                                                                                                    o.dtype)
                    blocks[i][j] = tnp.reshape(stacked, o.shape + t.shape)
        else:
            for i, o in enumerate(out_types):
                rows = [lin.vjp(_basis(out_types, i, k)) for k in range(o.size)]
                for j, t in enumerate(in_types):
                    stacked = tnp.stack([r[j] for r in rows], axis=0) if rows else np.zeros((0,) + t.shape, t.dtype)
                    blocks[i][j] = tnp.reshape(stacked, o.shape + t.shape)
        for i, o in enumerate(out_types):
            if not dtypes.is_float(o.dtype):  # no derivative flows to an integer output: zeros in both modes
                blocks[i] = [np.zeros(o.shape + t.shape, t.dtype) for t in in_types]
        _, diff_tree = tree.flatten(diff)
        per_out = [tree.unflatten(diff_tree, row) for row in blocks]
        per_out = [p[0] if isinstance(argnums, int) else p for p in per_out]
        return tree.unflatten(lin.out_tree, per_out)

    return _wraps(jac_f, fun, name)


def _basis(types: list[ShapedType], which: int, k: int) -> list:
    """Unit vector k of value ``which``; None (a zero) for the other values."""
    out = [None] * len(types)
    e = np.zeros(types[which].size, types[which].dtype)
    e[k] = 1
    out[which] = e.reshape(types[which].shape)
    return out


def jacfwd(fun: Callable, argnums=0) -> Callable:
    """The Jacobian by forward mode: one JVP per input element (cheap for few inputs)."""
    return _jacobian(fun, argnums, True, "jacfwd")


def jacrev(fun: Callable, argnums=0) -> Callable:
    """The Jacobian by reverse mode: one VJP per output element (cheap for few outputs)."""
    return _jacobian(fun, argnums, False, "jacrev")


def hessian(fun: Callable, argnums=0) -> Callable:
    """The matrix of second derivatives, jacfwd(jacrev(fun)): shape in.shape + in.shape for a scalar fun."""
    return jacfwd(jacrev(fun, argnums), argnums)


def stop_gradient(x: Any) -> Any:
    """x unchanged, with a zero derivative (on every float leaf of a pytree)."""
    def stop(leaf):
        leaf = as_operand(leaf)
        return bind1("stop_gradient", leaf) if isinstance(leaf, (Tracer, Tensor)) else leaf

    return tree.tree_map(stop, x)
