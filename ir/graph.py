"""The IR's three small classes -- a variable, an equation, a graph -- and the
atoms an equation may read.

A graph is in SSA form: every Var is defined once, by a graph input or by one
equation's output, before it is read. Sub-graphs (branches of ``cond``, loop
bodies, fused kernels) are ordinary Graph objects stored in an equation's
params; they are closed, so everything a sub-graph reads is one of its inputs.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from .types import ShapedType, type_of

_ids = itertools.count()


class Var:
    """An SSA value. Identity is the name: two Vars are equal only if they are
    the same object. The printer gives it a short stable name."""

    __slots__ = ("type", "id")

    def __init__(self, type: ShapedType):
        self.type = type
        self.id = next(_ids)

    def __repr__(self) -> str:
        return f"Var#{self.id}:{self.type}"


class Literal:
    """A scalar constant written inline as an equation input, e.g. ``2.0:f32``."""

    __slots__ = ("value", "type")

    def __init__(self, value, dtype=None):
        arr = np.array(value, dtype=dtype)  # a copy, read-only: the graph owns its literals
        if arr.ndim != 0:
            raise ValueError("a Literal is a scalar; arrays are `constant` equations")
        arr.setflags(write=False)
        self.value = arr
        self.type = type_of(arr)

    @property
    def key(self) -> tuple:
        """Exact identity of the value: bytes, so -0.0 and 0.0 differ and NaN equals itself."""
        return ("literal", self.type.dtype.str, self.value.tobytes())

    def __repr__(self) -> str:
        return f"Literal({self.value!r})"


Atom = Union[Var, Literal]


class Constant:
    """An array held as an equation parameter (the ``value`` of a ``constant``).

    Hashable by content so that the builder can hash-cons constants and CSE can
    compare them; printed abridged so a large weight does not flood a dump."""

    __slots__ = ("array", "_digest")

    def __init__(self, array):
        self.array = np.array(array, copy=True, order="C")
        self.array.setflags(write=False)
        self._digest = None

    @property
    def cheap_to_compare(self) -> bool:
        return self.array.size <= 4096

    @property
    def digest(self) -> bytes:
        """A hash of dtype, shape and bytes, computed when first compared."""
        if self._digest is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(self.array.dtype.str.encode())
            h.update(repr(self.array.shape).encode())
            h.update(memoryview(self.array.view(np.uint8).reshape(-1)) if self.array.size else b"")
            self._digest = h.digest()
        return self._digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other) -> bool:
        return isinstance(other, Constant) and self.digest == other.digest

    def __repr__(self) -> str:
        if self.array.size <= 6:
            return np.array2string(self.array, separator=",").replace("\n", "")
        return f"<{type_of(self.array)} array>"


@dataclass(frozen=True)
class SourceInfo:
    """Where the user's code created an equation: kept through every pass so that
    errors and dumps point at the user's line, not at tracegrad's."""

    file: str
    line: int
    function: str = ""
    code: str = ""

    def __str__(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"

    def describe(self) -> str:
        """``file.py:12 (in loss): y = x @ w`` -- the form error messages use."""
        where = f"{self.file}:{self.line}"
        if self.function:
            where += f" (in {self.function})"
        return f"{where}: {self.code}" if self.code else where


@dataclass(eq=False)
class Eqn:
    """``outputs = prim[params](*inputs)``, remembered with its source line."""

    prim: Any  # ir.primitives.core.Primitive; not imported to keep this module at the bottom
    inputs: list
    params: dict
    outputs: list
    source: SourceInfo | None = None
    derivative_of: str = ""  # the primitive whose derivative rule made this equation, if one did

    def subgraphs(self) -> list[tuple[str, "Graph"]]:
        """The (label, graph) pairs held in params, in a stable order."""
        found = []
        for k, v in self.params.items():
            if isinstance(v, Graph):
                found.append((k, v))
            elif isinstance(v, tuple) and v and all(isinstance(g, Graph) for g in v):
                found.extend((f"{k}[{i}]", g) for i, g in enumerate(v))
        return found


def map_graphs(value, fn):
    """A param value with each graph it holds (a Graph, or a tuple of them, as
    ``cond``'s branches) replaced by ``fn(graph)``: how a pass recurses into bodies."""
    if isinstance(value, Graph):
        return fn(value)
    if isinstance(value, tuple) and value and all(isinstance(g, Graph) for g in value):
        return tuple(fn(g) for g in value)
    return value


@dataclass(eq=False)
class Graph:
    """A closed program: typed inputs, equations in execution order, outputs."""

    inputs: list
    eqns: list
    outputs: list
    name: str = "f"
    meta: dict = field(default_factory=dict)

    @property
    def in_types(self) -> list[ShapedType]:
        return [v.type for v in self.inputs]

    @property
    def out_types(self) -> list[ShapedType]:
        return [a.type for a in self.outputs]

    def __str__(self) -> str:
        from .printer import format_graph

        return format_graph(self)

    def format(self, *, source: bool = False) -> str:
        """The text dump; ``source=True`` adds each equation's file:line."""
        from .printer import format_graph

        return format_graph(self, source=source)

    def to_networkx(self):
        from .printer import to_networkx

        return to_networkx(self)

    def to_dot(self) -> str:
        from .printer import to_dot

        return to_dot(self)

    def walk_eqns(self):
        """Every equation, sub-graphs' included, outer before inner."""
        for eqn in self.eqns:
            yield eqn
            for _, sub in eqn.subgraphs():
                yield from sub.walk_eqns()
