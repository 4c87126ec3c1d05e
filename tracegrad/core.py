"""Tracing: Tracers stand in for arrays while a Python function runs, and
every operation on them is bound as an equation in the current trace.

``bind`` is the single door to the primitives for the front end: on tracers
it records an equation in their trace; on eager Tensors it runs the primitive
on the tape (``tracegrad.eager``); on plain NumPy arrays it runs the
primitive's reference implementation at once. ``tracegrad.numpy`` is written
once against it, so it serves all three.
"""

from __future__ import annotations

import numpy as np

from ir import Graph, GraphBuilder, Literal, NumpyBuilder, ShapedType, dtypes
from ir.builder import EvaluatingGraphBuilder
from ir.types import shaped
from ir.primitives import REGISTRY

from . import tree
from .eager.tape import TAPE
from .eager.tensor import Tensor
from .errors import ArgumentError, ConcretizationError, DTypeError, EscapedTracerError, ShapeError, TracegradError
from .source import at_user_line, user_source

_numpy_builder = NumpyBuilder(source_fn=user_source)  # debug_nans names the user's line


class Trace:
    """One tracing of one function: a GraphBuilder plus the Tracers it made.

    Traces nest (a transformation traces its function inside an enclosing
    trace); ``level`` orders them, and an operation on tracers of several live
    traces is recorded in the innermost, which captures the outer values as
    extra inputs. A *concrete* trace also computes every value as it records
    it, so Python control flow on values works, as in define-by-run."""

    _levels = 0
    capture_tensors = False
    active: list["Trace"] = []  # the traces whose functions are running, innermost last

    def __init__(self, name: str = "f", concrete: bool = False):
        self.builder = (EvaluatingGraphBuilder if concrete else GraphBuilder)(source_fn=user_source)
        self.name = name
        self.alive = True
        self.concrete = concrete
        self.inputs: list = []
        self.captured: list[tuple[Tracer, object]] = []  # (outer tracer, input var)
        self._capture_of: dict[int, Tracer] = {}
        Trace._levels += 1
        self.level = Trace._levels

    def new_input(self, type: ShapedType, weak: bool = False, value=None) -> "Tracer":
        var = self.builder.new_input(type)
        self.inputs.append(var)
        if self.concrete:
            self.builder.values[var.id] = np.asarray(value, dtype=type.dtype)
        return Tracer(self, var, weak)

    def capture(self, outer) -> "Tracer":
        """An enclosing trace's value (a Tracer, or an eager Tensor that requires
        grad) used here: an extra input, mapped back on inlining."""
        key = id(outer.atom) if isinstance(outer, Tracer) else id(outer)
        hit = self._capture_of.get(key)
        if hit is None:
            t, weak = type_and_weak(outer)
            var = self.builder.new_input(t)
            self.captured.append((outer, var))
            if self.concrete:
                self.builder.values[var.id] = outer.value if isinstance(outer, Tracer) else outer.data
            hit = self._capture_of[key] = Tracer(self, var, weak)
        return hit

    def atom(self, x):
        """The IR atom for an operand: a Tracer's var, or a constant. A body traced
        for a control-flow primitive captures the eager Tensors it closes over that
        require grad, so the tape sees them as operands and their gradients flow."""
        if isinstance(x, Tracer):
            return x.atom if x.trace is self else self.capture(x).atom
        if self.capture_tensors and type(x) is Tensor and x.requires_grad:
            return self.capture(x).atom
        return self.builder.constant(x)

    def bind(self, prim, args, params) -> list:
        return self.builder.bind(prim, *[self.atom(a) for a in args], **params)

    def finish_tree(self, out) -> tuple[Graph, "tree.TreeDef"]:
        """Close the trace on a function's result, a pytree of arrays, numbers or tracers."""
        leaves, out_tree = tree.flatten(out)
        for i, leaf in enumerate(leaves):
            if not isinstance(leaf, (Tracer, np.ndarray, np.generic, bool, int, float)):
                raise ArgumentError(f"{self.name}() returned a {type(leaf).__name__} (output leaf {i}); a traced "
                                    f"function returns arrays, numbers, or tuples / lists / dicts of them")
        return self.finish([x if isinstance(x, Tracer) else as_operand(x) for x in leaves]), out_tree

    def finish(self, outputs: list) -> Graph:
        """Close the trace; outputs may be Tracers or constants. Captured outer
        values become the graph's last inputs (see ``captured``)."""
        for o in outputs:
            if isinstance(o, Tracer) and o.trace is not self and not o.trace.alive:
                find_trace([o])  # from a finished trace: EscapedTracerError
        atoms = [self.atom(o) for o in outputs]
        self.alive = False
        return self.builder.build(self.inputs + [v for _, v in self.captured], atoms, self.name)

    def __enter__(self) -> "Trace":
        Trace.active.append(self)
        return self

    def __exit__(self, *exc):
        Trace.active.remove(self)
        self.alive = False


def current_trace() -> Trace | None:
    """The innermost trace whose function is running, if any."""
    return Trace.active[-1] if Trace.active else None


class Tracer:
    """A value under tracing: its abstract type (shape, dtype) and its IR atom.

    ``weak`` marks a Python scalar argument, which promotes like a Python
    scalar (NumPy 2): a float32 array times a weak float stays float32."""

    __slots__ = ("trace", "atom", "weak")
    __array_priority__ = 1000

    def __init__(self, trace: Trace, atom, weak: bool = False):
        self.trace = trace
        self.atom = atom
        self.weak = weak

    @property
    def value(self) -> np.ndarray | None:
        """The concrete value, in a concrete trace; None under jit."""
        if isinstance(self.atom, Literal):
            return self.atom.value
        return self.trace.builder.values.get(self.atom.id) if self.trace.concrete else None

    # -- what is known without a value -----------------------------------------
    @property
    def type(self) -> ShapedType:
        return self.atom.type

    @property
    def shape(self) -> tuple[int, ...]:
        return self.atom.type.shape

    @property
    def dtype(self) -> np.dtype:
        return self.atom.type.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return self.atom.type.size

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self) -> str:
        return f"Tracer<{self.type}>"

    # -- what needs a value: refused, with the user's line and the fix ---------
    def _concretization_error(self, what: str):
        src = user_source()
        where = f" at {src.describe()}" if src else ""
        raise ConcretizationError(
            f"{what} needs the value of a traced array ({self.type}){where}.\n"
            f"Under jit, arguments are abstract: only their shape and dtype are known while the function is traced. "
            f"Branch on values with lax.cond or loop with lax.while_loop / lax.fori_loop, use tnp.where for "
            f"elementwise choices, or mark the argument static with static_argnums / static_argnames.")

    def _concrete(self, what: str) -> np.ndarray:
        """The value, where one is known (outside jit); otherwise the error that explains why not.
        A value taken out of a trace is a constant: no derivative flows through it."""
        value = self.value
        if value is None:
            self._concretization_error(what)
        return value

    def __bool__(self):
        return bool(self._concrete("Python control flow (`if`, `while`, `and`, `or`, `not` or bool())"))

    def __float__(self):
        return float(self._concrete("float()"))

    def __int__(self):
        return int(self._concrete("int()"))

    def __complex__(self):
        return complex(self._concrete("complex()"))

    def __index__(self):
        return self._concrete("using an array as a Python index (__index__)").__index__()

    def item(self):
        return self._concrete(".item()").item()

    def tolist(self):
        return self._concrete(".tolist()").tolist()

    def __array__(self, dtype=None, copy=None):
        value = self._concrete("converting to a NumPy array (np.asarray / np.array)")
        return value if dtype is None else value.astype(dtype)

    __hash__ = None  # == is elementwise, so tracers cannot be dict keys (as NumPy arrays)


def find_trace(args) -> Trace | None:
    """The innermost live trace among the Tracers in ``args``; a tracer of a
    finished trace is an error."""
    found = None
    for a in args:
        if isinstance(a, Tracer):
            if not a.trace.alive:
                raise EscapedTracerError(
                    f"a traced value ({a.type}) from a finished trace of {a.trace.name!r} was used again. "
                    f"Tracers exist only while their function is traced: return the value instead of storing "
                    f"it in a global or an attribute.")
            if found is None or a.trace.level > found.level:
                found = a.trace
    return found


def bind(name: str, *args, **params) -> list:
    """Apply primitive ``name``: recorded on Tracers, taped on Tensors, computed on arrays."""
    prim = REGISTRY[name]
    kinds = {type(a) for a in args}
    trace = find_trace(args) if Tracer in kinds else None
    try:
        if trace is None:
            return (TAPE if Tensor in kinds else _numpy_builder).bind(prim, *args, **params)
        outs = trace.bind(prim, args, params)
    except (ShapeError, DTypeError, ValueError) as e:
        if not isinstance(e, TracegradError) and type(e) is not ValueError:
            raise  # someone else's exception type, whose constructor we do not know
        # A rule rejected the operands: say where in the user's code that happened.
        raise type(e)(f"{e}{at_user_line()}") from None
    return [Tracer(trace, o) for o in outs]


def lift(trace: Trace, value) -> Tracer:
    """A constant as a Tracer of ``trace``."""
    return Tracer(trace, trace.atom(value))


def bind1(name: str, *args, **params):
    (out,) = bind(name, *args, **params)
    return out


# ----------------------------------------------------------------- operands
def type_and_weak(x) -> tuple[ShapedType, bool]:
    """Abstract type of any operand, and whether it promotes like a Python scalar."""
    if isinstance(x, Tracer):
        return x.type, x.weak
    if type(x) is Tensor:
        return shaped(x.data.shape, x.data.dtype), False
    if isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
        if isinstance(x, bool):
            return ShapedType((), dtypes.bool_), True
        if isinstance(x, int):
            return ShapedType((), dtypes.int64), True
        return ShapedType((), dtypes.float64), True
    arr = np.asarray(x)
    if arr.dtype not in dtypes.SUPPORTED:
        dtypes.canonicalize(arr.dtype, "array dtype")  # the error that names the supported dtypes
    return shaped(arr.shape, arr.dtype), False


def as_operand(x):
    """Tracers and Tensors stay; everything else becomes a NumPy array of a supported dtype."""
    if isinstance(x, (Tracer, Tensor)):
        return x
    if isinstance(x, (list, tuple)) and any(isinstance(e, Tracer) for e in _flat(x)):
        raise TypeError("a list containing traced arrays is not an array: combine them with tnp.stack or "
                        "tnp.concatenate")
    if isinstance(x, complex):
        raise DTypeError("complex numbers are not supported by tracegrad (float32, float64, int32, int64 and bool "
                         "are); pass the real and imaginary parts as two float arrays")
    if isinstance(x, int) and not isinstance(x, bool) and not -2**63 <= x < 2**63:
        raise OverflowError(f"Python int {x} does not fit int64")
    arr = np.asarray(x)
    dtypes.canonicalize(arr.dtype, "array dtype")
    return arr


def _flat(x):
    for e in x:
        if isinstance(e, (list, tuple)):
            yield from _flat(e)
        else:
            yield e
