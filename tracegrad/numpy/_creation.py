"""Array creation. With no traced argument these return NumPy arrays; a
uniform one that meets a tracer enters the graph as a broadcast literal."""

from __future__ import annotations

import numpy as np

from ir import dtypes

from ..core import Tracer, lift
from ._base import dtype_of, full as _broadcast_full, operands, shape_of


def _dtype(dtype, default):
    return dtypes.canonicalize(dtype) if dtype is not None else default


def _shape(shape) -> tuple[int, ...]:
    return (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)


def zeros(shape, dtype=None):
    return np.zeros(_shape(shape), _dtype(dtype, dtypes.float64))


def ones(shape, dtype=None):
    return np.ones(_shape(shape), _dtype(dtype, dtypes.float64))


def full(shape, fill_value, dtype=None):
    (v,) = operands(fill_value)
    if isinstance(v, Tracer):
        return _broadcast_full(_shape(shape), v, _dtype(dtype, v.dtype))
    return np.full(_shape(shape), v, dtype=_dtype(dtype, dtypes.canonicalize(np.asarray(v).dtype)))


def full_like(a, fill_value, dtype=None, shape=None):
    a, v = operands(a, fill_value)
    dt = _dtype(dtype, dtype_of(a))
    shape = _shape(shape) if shape is not None else shape_of(a)
    if isinstance(v, Tracer):
        return _broadcast_full(shape, v, dt)
    if isinstance(a, Tracer):  # traced like its argument, as a user of *_like expects
        return _broadcast_full(shape, lift(a.trace, np.asarray(v, dt)), dt)
    return np.full(shape, v, dtype=dt)


def zeros_like(a, dtype=None, shape=None):
    return full_like(a, 0, dtype, shape)


def ones_like(a, dtype=None, shape=None):
    return full_like(a, 1, dtype, shape)


def arange(start, stop=None, step=None, dtype=None):
    bounds = [v for v in (start, stop, step) if v is not None]
    if any(isinstance(v, Tracer) for v in bounds):
        raise TypeError("arange needs concrete bounds: its length is part of the array's shape; pass the bounds as "
                        "static arguments (static_argnums)")
    return np.arange(*bounds if step is None else (start, stop, step), dtype=_dtype(dtype, None))


def linspace(start, stop, num: int = 50, endpoint: bool = True, dtype=None):
    if any(isinstance(v, Tracer) for v in (start, stop)):
        raise TypeError("linspace needs concrete start and stop values")
    return np.linspace(start, stop, num, endpoint=endpoint, dtype=_dtype(dtype, None))


def eye(N: int, M: int | None = None, k: int = 0, dtype=None):
    return np.eye(N, M, k, dtype=_dtype(dtype, dtypes.float64))
