"""The tape: each primitive applied to Tensors runs at once and, when it
needs a derivative, leaves a node behind.

:class:`TapeBuilder` is a builder (``ir.builder``) like the ones the IR
passes use, so the derivative rules run on it unchanged: the backward pass
calls ``prim.vjp(TAPE, ...)`` on a node's saved values. With grad mode on
(a ``create_graph`` backward) the rule's own operations are recorded too,
which is how higher derivatives come out of the same rules.
"""

from __future__ import annotations

import itertools
import re
import weakref
from typing import Callable

import numpy as np

from ir import ShapedType, type_of
from ir.builder import Builder
from ir.dtypes import canonicalize
from ir.interpreter import FINITE_CHECK, check_finite
from ir.primitives import Primitive

from ..source import user_source
from .mode import STATE
from .tensor import RemovableHandle, Tensor, VersionCounter

_sequence = itertools.count()  # creation order: the backward pass runs later nodes first

FREED = ("Trying to backward through the graph a second time (or directly access saved tensors after they have "
         "already been freed). Saved intermediate values of the graph are freed when you call .backward() or "
         "tg.eager.grad(). Specify retain_graph=True if you need to backward through the graph a second time or "
         "if you need to access saved tensors after calling backward.")


class BackwardNode:
    """One recorded operation, as the backward pass sees it: where its
    gradients go (``next_functions``: a ``(node, output index)`` per operand,
    ``(None, 0)`` for operands without history) and how to compute them
    (``apply``). Hooks and retained gradients of its output tensors live here,
    since a non-leaf tensor is (node, output index)."""

    _hooks: dict[int, dict] | None = None  # output index -> hooks of that output tensor
    _retained: dict[int, weakref.ref] | None = None  # output index -> the tensor that retains its grad

    def __init__(self, next_functions: tuple, n_outputs: int):
        self.next_functions = next_functions
        self.n_outputs = n_outputs
        self.seq = next(_sequence)
        self.source = user_source() if STATE.anomaly else None

    name = "Backward"

    def apply(self, cotangents: list, b: Builder) -> list:
        """Cotangents of the operands (None for zero) from the outputs', computed
        on ``b``: the tape under create_graph (Tensors), else NumPy (arrays)."""
        raise NotImplementedError

    def release(self) -> None:
        """Drop the saved values (after a backward without retain_graph)."""

    def add_hook(self, output_nr: int, hook: Callable) -> RemovableHandle:
        if self._hooks is None:
            self._hooks = {}
        hooks = self._hooks.setdefault(output_nr, {})
        hooks[id(hook)] = hook
        return RemovableHandle(hooks, id(hook))

    def retain(self, output_nr: int, tensor: Tensor) -> None:
        if self._retained is None:
            self._retained = {}
        self._retained[output_nr] = weakref.ref(tensor)

    def retains(self, output_nr: int, tensor: Tensor) -> bool:
        ref = (self._retained or {}).get(output_nr)
        return ref is not None and ref() is tensor

    def run_hooks(self, cotangents: list) -> list:
        """Tensor hooks may replace an output's gradient; retained gradients are stored after them."""
        if self._hooks is None and self._retained is None:
            return cotangents
        for nr, hooks in (self._hooks or {}).items():
            for hook in list(hooks.values()):
                if cotangents[nr] is not None:
                    replaced = hook(as_tensor(cotangents[nr]))
                    if replaced is not None:
                        cotangents[nr] = as_tensor(replaced)
        for nr, ref in (self._retained or {}).items():
            t = ref()
            if t is not None and cotangents[nr] is not None:
                store_grad(t, cotangents[nr])
        return cotangents

    def where_created(self) -> str:
        return f"\nThe forward operation was created at {self.source.describe()}" if self.source else ""

    def __repr__(self) -> str:
        return f"<{self.name} object>"


def as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor._make(np.asarray(x))


def store_grad(t: Tensor, g) -> None:
    """Accumulate ``g`` into ``t.grad``: in place when no graph is being built
    (the tensor the user holds as ``t.grad`` is updated, as in PyTorch),
    out of place (recorded) under ``create_graph``. The first gradient is
    copied: the same array may have gone to other leaves, hooks or the caller."""
    g = as_tensor(g)
    if t._grad is None:
        t._grad = g if g.grad_fn is not None else Tensor._make(np.array(g.data, order="C"))
    elif STATE.grad_enabled or t._grad.grad_fn is not None or not t._grad.data.flags.writeable:
        t._grad = t._grad + g
    else:
        np.add(t._grad.data, g.data, out=t._grad.data)


class AccumulateGrad(BackwardNode):
    """The end of every path to a leaf that requires grad: adds the gradient
    into ``.grad``. The leaf owns it (one per leaf); it refers back weakly, so
    a leaf nobody holds any more is freed and its gradient dropped."""

    name = "AccumulateGrad"

    def __init__(self, variable: Tensor):
        super().__init__((), 1)
        self._variable = weakref.ref(variable)

    @property
    def variable(self) -> Tensor | None:
        return self._variable()

    def accumulate(self, g) -> None:
        t = self._variable()
        if t is None:
            return
        g = as_tensor(g)
        for hook in list((t._hooks or {}).values()):
            replaced = hook(g)
            if replaced is not None:
                g = as_tensor(replaced)
        store_grad(t, g)


def edge(t: Tensor) -> tuple:
    """Where a gradient for ``t`` goes: its grad_fn, or the leaf's (one, kept while the graph lives) AccumulateGrad."""
    if t.grad_fn is not None:
        return t.grad_fn, t._output_nr
    if t._accumulator is None:
        t._accumulator = AccumulateGrad(t)
    return t._accumulator, 0


_NO_EDGE = (None, 0)


class Saved:
    """A node's saved operand or output, handed to the derivative rule in place
    of the value. The tape unpacks it only when the rule computes with it, so,
    as in PyTorch, a freed graph or an in-place change since the forward pass
    is an error exactly when the value is needed."""

    __slots__ = ("node", "index")

    def __init__(self, node: "PrimitiveNode", index: int):
        self.node, self.index = node, index

    @property
    def type(self) -> ShapedType:
        return self.node.saved_type(self.index)

    def unpack(self):
        return self.node.unpack(self.index)


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"_+", name) if part)


class PrimitiveNode(BackwardNode):
    """A primitive applied to Tensors: its operands and outputs, each with the
    version it had when saved, and the primitive's own VJP rule.

    Releasing the node (after a backward without retain_graph) drops the
    tensors and keeps the constant operands, which, like PyTorch's non-tensor
    saved values, cost nothing to keep. Inside ``tg.eager.checkpoint`` the
    tensors are dropped at once and ``recompute`` brings them back on demand."""

    recompute = None  # the checkpoint that can recompute the dropped values

    def __init__(self, prim: Primitive, params: dict, inputs: list, wanted: list[bool], outs: list,
                 counters: list[VersionCounter]):
        super().__init__(tuple([edge(x) if w else _NO_EDGE for x, w in zip(inputs, wanted)]), len(outs))
        self.prim, self.params, self.wanted = prim, params, wanted
        self._saved = [(x, x._counter, x._counter.value) if type(x) is Tensor else (x, None, 0) for x in inputs]
        self._saved += [(o, c, c.value) for o, c in zip(outs, counters)]
        self._types: list[ShapedType] | None = None  # kept when the values are dropped
        if CHECKPOINTS:
            CHECKPOINTS[-1].adopt(self)

    @property
    def name(self) -> str:
        return camel(self.prim.name) + "Backward"

    def adopt_output(self, output_nr: int, t: Tensor) -> None:
        """An in-place operation wrote this output into ``t``: save t's memory at its new version."""
        self._saved[len(self.wanted) + output_nr] = (t.data, t._counter, t._counter.value)

    def saved_type(self, i: int) -> ShapedType:
        entry = self._saved[i]
        if entry is None:
            return self._types[i]
        return type_of(entry[0].data if type(entry[0]) is Tensor else entry[0])

    def unpack(self, i: int):
        entry = self._saved[i]
        if entry is None and self.recompute is not None:
            self.recompute.run()
            entry = self._saved[i]
        if entry is None:
            raise RuntimeError(FREED)
        value, counter, version = entry
        if counter is not None and counter.value != version:
            raise RuntimeError(self._modified(i, value, counter.value, version))
        n_in = len(self.wanted)
        if i >= n_in:  # an output: the tensor as this node made it
            return Tensor._make(value, self, i - n_in, True, counter)
        return value

    def _modified(self, i: int, value, now: int, then: int) -> str:
        n_in = len(self.wanted)
        data = value.data if type(value) is Tensor else value
        what = f"[{data.dtype} tensor of shape {list(data.shape)}]"
        if i >= n_in:
            what += f", which is output {i - n_in} of {self.name},"
        elif value.grad_fn is not None:
            what += f", which is output {value._output_nr} of {value.grad_fn.name},"
        return (f"one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"{what} is at version {now}; expected version {then} instead. {self.name} (the backward of "
                f"{self.prim.name}) needs its value as it was in the forward pass. Hint: use the out-of-place "
                f"operation (y = y + 1 instead of y += 1), or clone() the tensor before changing it; "
                f"tg.detect_anomaly() shows where {self.prim.name} was called.")

    def apply(self, cotangents: list, b: Builder) -> list:
        saved = [Saved(self, i) for i in range(len(self._saved))]
        n_in = len(self.wanted)
        TAPE.rules_running += 1
        try:
            with b.at(self.source, of=self, wanted=self.wanted):
                return self.prim.vjp(b, cotangents, saved[:n_in], saved[n_in:], **self.params)
        finally:
            TAPE.rules_running -= 1

    def release(self) -> None:
        self.drop_tensors()
        self.recompute = None

    def drop_tensors(self) -> None:
        """Forget the saved tensors (not the constants), keeping their types for the rules."""
        if self._types is None:
            self._types = [self.saved_type(i) for i in range(len(self._saved))]
        self._saved = [e if e is not None and e[1] is None and type(e[0]) is not Tensor else None
                       for e in self._saved]


CHECKPOINTS: list = []  # the tg.eager.checkpoint regions running, innermost last


class TapeBuilder(Builder):
    """Runs each primitive with its NumPy implementation on Tensors (or arrays)
    and records a :class:`PrimitiveNode` when grad mode is on and an operand
    requires grad. Results are Tensors."""

    def __init__(self):
        self._checked: set = set()
        self.rules_running = 0  # how many derivative rules are running (nested under create_graph)

    def type_of(self, x) -> ShapedType:
        if type(x) is Saved:
            return x.type
        return type_of(x.data if type(x) is Tensor else np.asarray(x))

    def literal(self, value, dtype) -> np.ndarray:
        return np.asarray(value, dtype=canonicalize(dtype))

    def constant(self, array) -> np.ndarray:
        return np.asarray(array)

    def from_literal(self, lit) -> np.ndarray:
        return lit.value

    def bind(self, prim: Primitive, *inputs, **params) -> list[Tensor]:
        if self.rules_running:  # operands may be saved values
            inputs = [x.unpack() if type(x) is Saved else x for x in inputs]
        # Derivative rules bind what shape rules accept: only the user's operations are checked.
        return self.run(prim, inputs, params, check=self.deriving is None)

    def run(self, prim: Primitive, inputs, params: dict, check: bool = True) -> list[Tensor]:
        """Compute and record ``prim`` on ``inputs`` (Tensors or arrays, no saved values)."""
        arrays = [x.data if type(x) is Tensor else np.asarray(x) for x in inputs]
        if check:
            self._check(prim, arrays, params)
        with np.errstate(all="ignore"):
            outs = [np.asarray(o) for o in prim.impl(*arrays, **params)]
        if FINITE_CHECK.enabled:
            check_finite(prim.name, outs, self._describe, derivative=self.deriving is not None)
        wanted = None
        if STATE.grad_enabled and prim.differentiable:
            wanted = [type(x) is Tensor and x._requires_grad for x in inputs]
            if True not in wanted:
                wanted = None
        counters, bases = [], []
        for o in outs:
            owner = _aliased(o, inputs)
            if owner is None:
                counters.append(VersionCounter())
                bases.append(None)
            else:  # a view (reshape, slice, broadcast): writes through it change the operand
                owner._counter.shared = True
                counters.append(owner._counter)
                bases.append(owner._base if owner._base is not None else owner)
        node = PrimitiveNode(prim, params, inputs, wanted, outs, counters) if wanted is not None else None
        return [Tensor._make(o, node, i, node is not None and o.dtype.kind == "f", c, base)
                for i, (o, c, base) in enumerate(zip(outs, counters, bases))]

    def _check(self, prim: Primitive, arrays: list, params: dict) -> None:
        """The primitive's shape rule, the checks tracing makes, run once per
        distinct signature: on small arrays the rule costs more than the work."""
        try:
            key = (prim.name, *[(a.shape, a.dtype) for a in arrays], *params.items())
            if key in self._checked:
                return
        except TypeError:  # a parameter that cannot be hashed: check every time
            key = None
        prim.shape_rule(*[type_of(a) for a in arrays], **params)
        if key is not None:
            if len(self._checked) > 4096:
                self._checked.clear()
            self._checked.add(key)

    def _describe(self) -> str:
        node = self.deriving
        if node is None:
            src = user_source()
            return f"at {src.describe()}" if src else ""
        return f"in the derivative of {node.prim.name}" + (f", at {node.source.describe()}" if node.source else "")


def _aliased(out: np.ndarray, inputs: list) -> Tensor | None:
    """The Tensor operand whose memory ``out`` views, if any."""
    if out.base is None:
        for x in inputs:
            if type(x) is Tensor and out is x.data:
                return x
        return None
    for x in inputs:
        if type(x) is Tensor and np.may_share_memory(out, x.data):
            return x
    return None


class ArrayBuilder(TapeBuilder):
    """What the rules run on in a backward pass that builds no graph: NumPy at
    once on plain arrays — no Tensors, no tape, no checks the rules do not need."""

    def bind(self, prim: Primitive, *inputs, **params) -> list[np.ndarray]:
        arrays = []
        for x in inputs:
            if type(x) is Saved:
                x = x.unpack()
            arrays.append(x.data if type(x) is Tensor else x)
        with np.errstate(all="ignore"):
            outs = prim.impl(*arrays, **params)
        if FINITE_CHECK.enabled:
            check_finite(prim.name, outs, self._describe, derivative=True)
        return outs


TAPE = TapeBuilder()
ARRAYS = ArrayBuilder()
