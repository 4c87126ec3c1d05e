"""Builders: the one interface through which anything emits primitives.

Derivative rules, the tracer and the passes all call ``b.add(x, y)``,
``b.broadcast_in_dim(...)`` and friends on a builder. A :class:`GraphBuilder`
records equations (hash-consed: asking twice for the same equation returns the
first one's outputs, so equal sub-expressions are shared as they are built);
a :class:`NumpyBuilder` computes at once with the reference implementations.
Writing a rule once against this interface makes it serve both.
"""

from __future__ import annotations

import weakref
from typing import Callable

import numpy as np

from . import dtypes
from .graph import Atom, Constant, Eqn, Graph, Literal, SourceInfo, Var
from .interpreter import FINITE_CHECK, check_finite, describe_values, run_eqn
from .primitives import REGISTRY, Primitive
from .types import ShapedType, type_of


def params_key(value):
    """A hashable stand-in for a params dict (or one of its values)."""
    if isinstance(value, dict):
        return tuple((k, params_key(v)) for k, v in sorted(value.items()))
    if isinstance(value, (tuple, list)):
        return tuple(params_key(v) for v in value)
    if isinstance(value, Graph):
        return graph_key(value)
    hash(value)  # raises TypeError for a param that cannot be compared
    return value


def graph_key(graph: Graph) -> tuple:
    """A structural key: equal for two graphs that compute the same thing the
    same way, whatever their Var objects (variables numbered by definition)."""
    key = _graph_keys.get(graph)
    if key is None:
        number: dict[int, int] = {}

        def ref(a):
            if isinstance(a, Literal):
                return a.key
            return ("v", number[a.id]) if a.id in number else ("free", a.id)  # a malformed graph: the verifier says

        for v in graph.inputs:
            number[v.id] = len(number)
        eqns = []
        for eqn in graph.eqns:
            eqns.append((eqn.prim.name, tuple(ref(a) for a in eqn.inputs), params_key(eqn.params),
                         tuple(str(v.type) for v in eqn.outputs)))
            for v in eqn.outputs:
                number[v.id] = len(number)
        key = _graph_keys[graph] = ("graph", tuple(str(t) for t in graph.in_types), tuple(eqns),
                                    tuple(ref(a) for a in graph.outputs))
    return key


_graph_keys: "weakref.WeakKeyDictionary[Graph, tuple]" = weakref.WeakKeyDictionary()


def renamed(graph: Graph) -> Graph:
    """The same program with new variables (sub-graphs are shared, not copied)."""
    b = GraphBuilder(hash_cons=False)
    inputs = [b.new_input(v.type) for v in graph.inputs]
    outputs, _ = b.inline(graph, inputs)
    return b.build(inputs, outputs, graph.name)


class Builder:
    """Methods named after primitives (``b.exp(x)``, ``b.and_(x, y)``) bind them;
    the helpers below compose primitives for patterns every rule needs."""

    def bind(self, prim: Primitive, *inputs, **params) -> list:
        raise NotImplementedError

    def type_of(self, x) -> ShapedType:
        raise NotImplementedError

    def literal(self, value, dtype) -> object:
        """A scalar constant in this builder's currency."""
        raise NotImplementedError

    def constant(self, array) -> object:
        raise NotImplementedError

    def from_literal(self, lit: Literal):
        """A graph's Literal in this builder's currency."""
        return lit

    def read(self, env: dict, a):
        """A graph atom's value in this builder's currency: a literal, or env's value of a variable."""
        return self.from_literal(a) if isinstance(a, Literal) else env[a.id]

    def at(self, source: SourceInfo | None, of: Eqn | None = None, wanted: list[bool] | None = None):
        """Context in which new equations carry ``source``: a derivative rule's
        equations cite the user's line of the equation ``of`` they differentiate.
        ``wanted`` tells a VJP rule which operands need a cotangent."""
        return _SourceScope(self, source, of, wanted)

    def inline(self, graph: Graph, inputs, known: dict | None = None) -> tuple[list, dict]:
        """Bind every equation of ``graph`` on ``inputs``; returns the outputs and
        the environment (graph var id -> value in this builder's currency).
        ``known`` values (by var id) are used instead of binding again."""
        env = dict(known or {})
        env.update({v.id: x for v, x in zip(graph.inputs, inputs)})
        for eqn in graph.eqns:
            if all(v.id in env for v in eqn.outputs):
                continue
            with self.at(eqn.source):
                outs = self.bind(eqn.prim, *[self.read(env, a) for a in eqn.inputs], **eqn.params)
            env.update({v.id: o for v, o in zip(eqn.outputs, outs)})
        return [self.read(env, a) for a in graph.outputs], env

    def bind1(self, name: str, *inputs, **params):
        (out,) = self.bind(REGISTRY[name], *inputs, **params)
        return out

    def __getattr__(self, name: str) -> Callable:
        prim = REGISTRY.get(name.rstrip("_"))
        if prim is None:
            raise AttributeError(f"{type(self).__name__} has no method or primitive {name!r}")

        def method(*inputs, **params):
            (out,) = self.bind(prim, *inputs, **params)
            return out

        setattr(self, name, method)  # found directly next time: rules call these in every backward step
        return method

    # -- helpers -----------------------------------------------------------
    def full(self, shape, value, dtype):
        """``value`` broadcast to ``shape``: a literal when shape is ()."""
        lit = self.literal(value, dtype)
        if not shape:
            return lit
        return self.broadcast_in_dim(lit, shape=tuple(shape), broadcast_dimensions=())

    def zeros_like(self, x):
        t = self.type_of(x)
        return self.full(t.shape, 0, t.dtype)

    def convert(self, x, dtype):
        return x if self.type_of(x).dtype == dtype else self.convert_element_type(x, dtype=dtype)

    def broadcast_to(self, x, shape):
        """NumPy broadcasting of x to shape (trailing dimensions aligned)."""
        t = self.type_of(x)
        shape = tuple(shape)
        if t.shape == shape:
            return x
        lead = len(shape) - t.ndim
        return self.broadcast_in_dim(x, shape=shape, broadcast_dimensions=tuple(range(lead, len(shape))))

    def sum_to_shape(self, x, shape):
        """Undo broadcasting: sum x down to ``shape`` (the VJP of broadcast_to)."""
        t = self.type_of(x)
        shape = tuple(shape)
        if t.shape == shape:
            return x
        lead = t.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and t.shape[lead + i] != 1)
        summed = self.reduce_sum(x, axes=axes) if axes else x
        return self.reshape(summed, new_sizes=shape) if self.type_of(summed).shape != shape else summed


class _SourceScope:
    def __init__(self, builder: Builder, source, of, wanted):
        self.builder, self.source, self.of, self.wanted = builder, source, of, wanted

    def __enter__(self):
        b = self.builder
        self.saved = b.source_override, b.deriving, b.wanted
        if self.source is not None:
            b.source_override = self.source
        b.deriving, b.wanted = self.of, self.wanted

    def __exit__(self, *exc):
        self.builder.source_override, self.builder.deriving, self.builder.wanted = self.saved


Builder.source_override = None
Builder.deriving = None  # the equation whose derivative is being emitted, for debug_nans
Builder.wanted = None  # which of its operands need a cotangent (None: all)


def _uniform(flat: np.ndarray) -> bool:
    """All elements bit-identical (so -0.0 differs from 0.0, and NaNs match); a
    few samples first, so a typical data array is rejected at once."""
    bits = flat.view(np.uint8).reshape(flat.size, -1)
    probe = bits[[0, flat.size // 2, -1]]
    return bool((probe == bits[0]).all() and (bits == bits[0]).all())


class GraphBuilder(Builder):
    """Records equations into a graph under construction.

    ``source_fn`` is asked for the SourceInfo of every new equation (the tracer
    passes one that finds the user's line); ``on_bind`` lets a caller see each
    equation as it is made (concrete tracing evaluates it at once)."""

    def __init__(self, source_fn: Callable[[], SourceInfo | None] | None = None, hash_cons: bool = True):
        self.eqns: list[Eqn] = []
        self.source_fn = source_fn
        self.hash_cons = hash_cons
        self._memo: dict = {}
        self.producer: dict[int, Eqn] = {}  # var id -> the equation that defines it

    def new_input(self, type: ShapedType) -> Var:
        return Var(type)

    def type_of(self, x) -> ShapedType:
        return x.type

    def literal(self, value, dtype) -> Literal:
        return Literal(value, dtype)

    def constant(self, array) -> Atom:
        """A NumPy value as an atom. A uniform array (``np.zeros((512, 512))``)
        becomes a broadcast literal, so the graph does not carry its bytes."""
        arr = np.asarray(array)
        if arr.ndim == 0:
            return Literal(arr)
        flat = np.ascontiguousarray(arr).reshape(-1)  # a strided view has no byte view
        if flat.size > 1 and _uniform(flat):
            return self.broadcast_in_dim(Literal(flat[0]), shape=arr.shape, broadcast_dimensions=())
        return self.bind1("constant", value=Constant(arr))

    def bind(self, prim: Primitive, *inputs, **params) -> list:
        key = None
        # A large constant (a batch of data closed over) is not worth hashing by content on every trace.
        if self.hash_cons and all(getattr(v, "cheap_to_compare", True) for v in params.values()):
            key = (prim.name, tuple(a.key if isinstance(a, Literal) else id(a) for a in inputs), params_key(params))
            hit = self._memo.get(key)
            if hit is not None:
                return hit[1]
        out_types = prim.shape_rule(*[a.type for a in inputs], **params)
        outs = [Var(t) for t in out_types]
        source = self.source_override or (self.source_fn() if self.source_fn else None)
        eqn = Eqn(prim, list(inputs), dict(params), outs, source,
                  self.deriving.prim.name if self.deriving is not None else "")
        self.eqns.append(eqn)
        self.producer.update((v.id, eqn) for v in outs)
        if key is not None:
            self._memo[key] = (inputs, outs)  # keep inputs alive so their ids stay unique
        return outs

    def build(self, inputs, outputs, name: str = "f") -> Graph:
        return Graph(list(inputs), list(self.eqns), list(outputs), name)


class NumpyBuilder(Builder):
    """Computes at once with each primitive's reference implementation.

    ``source_fn`` is asked, only when debug_nans reports, for the SourceInfo
    of the user's line (the front end passes one that walks the stack)."""

    def __init__(self, source_fn: Callable[[], SourceInfo | None] | None = None):
        self.source_fn = source_fn

    def type_of(self, x) -> ShapedType:
        return type_of(x)

    def literal(self, value, dtype) -> np.ndarray:
        return np.asarray(value, dtype=dtypes.canonicalize(dtype))

    def constant(self, array) -> np.ndarray:
        return np.asarray(array)

    def from_literal(self, lit: Literal) -> np.ndarray:
        return lit.value

    def bind(self, prim: Primitive, *inputs, **params) -> list:
        arrays = [np.asarray(x) for x in inputs]
        prim.shape_rule(*[type_of(a) for a in arrays], **params)  # the same checks as when tracing
        with np.errstate(all="ignore"):
            outs = [np.asarray(v) for v in prim.impl(*arrays, **params)]
        if FINITE_CHECK.enabled:
            check_finite(prim.name, outs, lambda: self._describe(prim, params, arrays, outs),
                         derivative=self.deriving is not None)
        return outs

    def _describe(self, prim: Primitive, params: dict, inputs, outputs) -> str:
        eqn = self.deriving
        if eqn is not None:
            return describe_values(prim.name, params, inputs, outputs, eqn.prim.name, eqn.source)
        source = self.source_override or (self.source_fn() if self.source_fn else None)
        return describe_values(prim.name, params, inputs, outputs, "", source)


class EvaluatingGraphBuilder(GraphBuilder):
    """Records equations like a GraphBuilder and computes each one's value at
    once with the reference implementations: what concrete tracing (outside
    jit) runs on, so a traced program's values are known as it is built."""

    def __init__(self, source_fn=None, hash_cons: bool = True):
        super().__init__(source_fn, hash_cons)
        self.values: dict[int, np.ndarray] = {}

    def value_of(self, atom) -> np.ndarray:
        return atom.value if isinstance(atom, Literal) else self.values[atom.id]

    def bind(self, prim: Primitive, *inputs, **params) -> list:
        n = len(self.eqns)
        outs = super().bind(prim, *inputs, **params)
        for eqn in self.eqns[n:]:  # none on a hash-cons hit
            with np.errstate(all="ignore"):
                values = run_eqn(eqn, [self.value_of(a) for a in eqn.inputs], self._graph_so_far)
            self.values.update((v.id, value) for v, value in zip(eqn.outputs, values))
        return outs

    def _graph_so_far(self) -> Graph:
        """The equations recorded so far as a graph (its inputs: what they read but do not define), for naming
        variables in a debug_nans message."""
        defined = {v.id for e in self.eqns for v in e.outputs}
        free = {a.id: a for e in self.eqns for a in e.inputs if isinstance(a, Var) and a.id not in defined}
        return Graph(list(free.values()), self.eqns, [])
