"""The five dtypes tracegrad supports, their short names, and NumPy 2 promotion.

dtypes are plain ``numpy.dtype`` objects so that reference implementations,
constants and user arrays share one vocabulary. Promotion follows NumPy 2
(NEP 50): a Python scalar is *weak* and takes the dtype of the array it meets,
so ``float32_array * 2.0`` stays float32.
"""

from __future__ import annotations

import numpy as np

from .errors import DTypeError

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

SUPPORTED = (float32, float64, int32, int64, bool_)
SHORT_NAMES = {float32: "f32", float64: "f64", int32: "i32", int64: "i64", bool_: "bool"}
FROM_SHORT = {v: k for k, v in SHORT_NAMES.items()}

# NumPy's defaults for Python scalars and for functions that make new arrays.
default_float = float64
default_int = int64


def is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


def is_int(dtype: np.dtype) -> bool:
    return dtype.kind in "iu"


def canonicalize(dtype_like, what: str = "dtype") -> np.dtype:
    """Turn anything NumPy calls a dtype (``'float32'``, ``np.int64``, ``float``,
    ``'f32'``) into one of the supported dtypes, or raise a DTypeError that says
    which dtypes exist and how to convert."""
    if isinstance(dtype_like, str) and dtype_like in FROM_SHORT:
        return FROM_SHORT[dtype_like]
    try:
        dt = np.dtype(dtype_like)
    except TypeError as e:
        raise DTypeError(f"{what} {dtype_like!r} is not a dtype: {e}") from None
    if dt in SUPPORTED:
        return dt
    raise DTypeError(
        f"unsupported {what} {dt}: tracegrad supports float32, float64, int32, int64 "
        f"and bool; convert first, for example with .astype(np.float32)"
    )


def short_name(dtype: np.dtype) -> str:
    return SHORT_NAMES[dtype]


def _stand_in(dtype: np.dtype, weak: bool):
    """What to hand np.result_type: a Python scalar of the kind for a weak type."""
    if not weak:
        return dtype
    return {"f": 0.0, "i": 0, "u": 0, "b": False}[dtype.kind]


def result_type(*operands: tuple[np.dtype, bool]) -> tuple[np.dtype, bool]:
    """NumPy 2 promotion of (dtype, weak) pairs; the result is weak only when
    every operand is (a sum of Python scalars stays a Python scalar)."""
    dt = np.result_type(*[_stand_in(d, w) for d, w in operands])
    return canonicalize(dt), all(w for _, w in operands)
