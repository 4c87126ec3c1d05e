"""Shaped types: what the IR knows of a value before it exists."""

from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np

from . import dtypes


@dataclass(frozen=True)
class ShapedType:
    """A shape and one of the supported dtypes; printed as ``f32[128,784]``."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "dtype", dtypes.canonicalize(self.dtype))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{dtypes.short_name(self.dtype)}[{','.join(map(str, self.shape))}]"

    __repr__ = __str__

    @staticmethod
    def parse(text: str) -> "ShapedType":
        """Read the printed form back: ``'f32[3,4]'`` -> ShapedType((3, 4), float32)."""
        text = text.strip()
        name, _, rest = text.partition("[")
        if not rest.endswith("]") or name not in dtypes.FROM_SHORT:
            raise ValueError(
                f"cannot read type {text!r}: write it as dtype[dims], for example "
                f"'f32[128,784]', 'i64[]' or 'bool[3]' (dtypes: {', '.join(dtypes.FROM_SHORT)})"
            )
        body = rest[:-1].strip()
        try:
            shape = tuple(int(d) for d in body.split(",")) if body else ()
        except ValueError:
            raise ValueError(f"cannot read the dimensions of type {text!r}: they must be integers") from None
        if any(d < 0 for d in shape):
            raise ValueError(f"type {text!r} has a negative dimension")
        return ShapedType(shape, dtypes.FROM_SHORT[name])


def shaped(shape: tuple[int, ...], dtype: np.dtype) -> ShapedType:
    """``ShapedType(shape, dtype)``, made once per distinct pair: eager code asks
    for the types of its operands at every operation, and building one costs
    more than the NumPy work on a small array."""
    key = (shape, dtype)
    t = _interned.get(key)
    if t is None:
        if len(_interned) > 4096:
            _interned.clear()
        t = _interned[key] = ShapedType(shape, dtype)
    return t


_interned: dict[tuple, ShapedType] = {}


def type_of(value) -> ShapedType:
    """The ShapedType of a concrete NumPy array or scalar."""
    arr = value if type(value) is np.ndarray else np.asarray(value)
    return shaped(arr.shape, arr.dtype)
