"""User-defined operations with their own backward, and checkpointing.

``class Clamp(tg.Function)`` with static ``forward(ctx, *args)`` and
``backward(ctx, *grads)``; ``Clamp.apply(x)`` runs forward without recording
and puts one node on the tape whose backward is the user's.
"""

from __future__ import annotations

import numpy as np

from .mode import STATE, enable_grad, no_grad
from .tape import CHECKPOINTS, BackwardNode, PrimitiveNode, as_tensor, edge
from .tensor import Tensor


class FunctionCtx:
    """What ``forward`` hands to ``backward``: saved tensors (checked for
    in-place changes when read back), ``needs_input_grad``, and any attribute."""

    def __init__(self, inputs: tuple):
        self.needs_input_grad = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
        self._saved: list | None = []
        self._node: "FunctionNode | None" = None

    def save_for_backward(self, *tensors) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward can only save Tensors (or None), got a {type(t).__name__}; "
                                f"keep other values as attributes of ctx (ctx.k = k)")
        self._saved = [(t, t._counter, t._counter.value) if t is not None else (None, None, 0) for t in tensors]

    @property
    def saved_tensors(self) -> tuple:
        if self._saved is None:
            from .tape import FREED

            raise RuntimeError(FREED)
        for i, (t, counter, version) in enumerate(self._saved):
            if t is not None and counter.value != version:
                name = self._node.name if self._node else "a custom Function"
                raise RuntimeError(f"one of the variables needed for gradient computation has been modified by an "
                                   f"inplace operation: saved tensor {i} of {name} [{t.dtype} tensor of shape "
                                   f"{list(t.shape)}] is at version {counter.value}; expected version {version} "
                                   f"instead. Use the out-of-place operation, or clone() before changing it.")
        return tuple(t for t, _, _ in self._saved)


class FunctionNode(BackwardNode):
    """A custom Function's place on the tape: its backward is the user's ``backward``."""

    def __init__(self, fn_class: type, ctx: FunctionCtx, inputs: tuple, outputs: list[Tensor]):
        super().__init__(tuple(edge(x) if need else (None, 0) for x, need in zip(inputs, ctx.needs_input_grad)),
                         len(outputs))
        self.fn_class, self.ctx = fn_class, ctx
        self._in_shapes = [x.shape if isinstance(x, Tensor) else None for x in inputs]
        self._out_types = [(o.shape, o.dtype) for o in outputs]
        ctx._node = self

    @property
    def name(self) -> str:
        return f"{self.fn_class.__name__}Backward"

    def apply(self, cotangents: list, b) -> list:
        grads = [as_tensor(np.zeros(s, d) if g is None else g) for g, (s, d) in zip(cotangents, self._out_types)]
        result = self.fn_class.backward(self.ctx, *grads)
        result = result if isinstance(result, tuple) else (result,)
        n = len(self.next_functions)
        if len(result) < n or any(r is not None for r in result[n:]):
            raise RuntimeError(f"function {self.name} returned an incorrect number of gradients (expected {n}, got "
                               f"{len(result)}): return one per argument of forward, None for those without one")
        out = []
        for i, (g, (target, _)) in enumerate(zip(result, self.next_functions)):
            if g is not None and self._in_shapes[i] is None:
                raise RuntimeError(f"function {self.name} returned a gradient different than None at position "
                                   f"{i + 1}, but the corresponding forward input was not a Tensor")
            if g is None or target is None:
                out.append(None)
                continue
            g = as_tensor(g)
            expected = self._in_shapes[i]
            if g.shape != expected:
                raise RuntimeError(f"Function {self.name} returned an invalid gradient at index {i} - got "
                                   f"{list(g.shape)} but expected shape compatible with {list(expected)}")
            out.append(g)
        return out

    def release(self) -> None:
        self.ctx._saved = None


class Function:
    """Base class of custom autograd operations (see the module docstring)."""

    @staticmethod
    def forward(ctx: FunctionCtx, *args):
        raise NotImplementedError("a tg.Function subclass defines forward(ctx, *args)")

    @staticmethod
    def backward(ctx: FunctionCtx, *grads):
        raise NotImplementedError("a tg.Function subclass defines backward(ctx, *grads)")

    @classmethod
    def apply(cls, *args):
        ctx = FunctionCtx(args)
        with no_grad():
            result = cls.forward(ctx, *args)
        single = not isinstance(result, tuple)
        results = (result,) if single else result
        outputs = [Tensor._make(r.data, counter=r._counter) if isinstance(r, Tensor) else r for r in results]
        tensors = [o for o in outputs if isinstance(o, Tensor)]
        if STATE.grad_enabled and any(ctx.needs_input_grad):
            node = FunctionNode(cls, ctx, args, tensors)
            for i, t in enumerate(tensors):
                if t.dtype.kind == "f":
                    t.grad_fn, t._output_nr, t._requires_grad = node, i, True
        return outputs[0] if single else tuple(outputs)


class _Region:
    """The primitive nodes recorded while a checkpointed function runs (the innermost region adopts them)."""

    def __init__(self):
        self.nodes: list[PrimitiveNode] = []

    def adopt(self, node: PrimitiveNode) -> None:
        self.nodes.append(node)

    def record(self, fn, args) -> object:
        CHECKPOINTS.append(self)
        try:
            return fn(*args)
        finally:
            CHECKPOINTS.pop()


class _Checkpoint(_Region):
    """One checkpointed call. Its nodes stay on the tape without their saved
    tensors; the first one the backward pass needs runs the function again
    and hands every node the values it saved the first time."""

    def __init__(self, fn, args):
        super().__init__()
        self.fn = fn
        self.args = [(a, a._counter.value if isinstance(a, Tensor) else None) for a in args]

    def run(self) -> None:
        for i, (a, version) in enumerate(self.args):
            if version is not None and a._counter.value != version:
                raise RuntimeError(f"checkpoint: argument {i} [{a.dtype} tensor of shape {list(a.shape)}] was "
                                   f"modified by an inplace operation (version {a._counter.value}; expected "
                                   f"{version}), so the forward pass cannot be recomputed for backward")
        args = [Tensor._make(a.data, counter=a._counter, requires_grad=a.requires_grad) if isinstance(a, Tensor)
                else a for a, _ in self.args]
        again = _Region()
        with enable_grad():
            again.record(self.fn, args)
        if [n.prim.name for n in again.nodes] != [n.prim.name for n in self.nodes]:
            raise RuntimeError("checkpoint: the function recorded different operations when it ran again for "
                               "backward; a checkpointed function must compute the same way every time (no "
                               "randomness or global state that changes between calls)")
        # A replayed operand is a Tensor of the replay's own graph: give it back the history of the value it
        # stands for (an argument, or an output of one of this region's nodes), so that a create_graph backward
        # differentiates through the block into what it was computed from.
        stands_for = {id(copy): a for copy, (a, _) in zip(args, self.args) if isinstance(a, Tensor)}
        node_for = {id(replayed): node for node, replayed in zip(self.nodes, again.nodes)}

        def original(entry):
            value = entry[0]
            if type(value) is Tensor:
                if id(value) in stands_for:
                    return (stands_for[id(value)],) + entry[1:]
                node = node_for.get(id(value.grad_fn))
                if node is not None:
                    return (Tensor._make(value.data, node, value._output_nr, True, value._counter),) + entry[1:]
            return entry

        for node, replayed in zip(self.nodes, again.nodes):
            if node.recompute is self:  # not yet run backward (and released) without needing its values
                node._saved = [mine if mine is not None else original(theirs)
                               for mine, theirs in zip(node._saved, replayed._saved)]
                node.recompute = None


def checkpoint(fn, *args):
    """``fn(*args)`` whose intermediate values are not kept for backward but
    recomputed there: less memory for one more forward pass, and the same
    gradients — for the arguments and for any parameter ``fn`` uses."""
    if not STATE.grad_enabled:
        return fn(*args)
    region = _Checkpoint(fn, args)
    out = region.record(fn, args)
    for node in region.nodes:
        node.drop_tensors()
        node.recompute = region
    return out
