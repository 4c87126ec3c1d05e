"""tracegrad.numpy: NumPy's API on NumPy arrays, tracers and eager Tensors alike.

On plain NumPy arrays these functions return NumPy arrays; on tracers they
record the program. Every function is written once, against ``core.bind``."""

from ir.dtypes import bool_, float32, float64, int32, int64

from ._base import astype as _astype
from ._creation import arange, eye, full, full_like, linspace, ones, ones_like, zeros, zeros_like
from ._elementwise import (abs, absolute, add, arctan, around, bitwise_and, bitwise_not, bitwise_or, bitwise_xor,
                           ceil, clip, cos, cosh, divide, equal, exp, expm1, floor, floor_divide, greater,
                           greater_equal, invert, isfinite, isinf, isnan, less, less_equal, log, log1p, logical_and,
                           logical_not, logical_or, logical_xor, maximum, minimum, mod, multiply, negative,
                           not_equal, positive, power, reciprocal, remainder, round, sign, sin, sinh, sqrt, square,
                           subtract, tan, tanh, true_divide, where)
from ._indexing import take
from ._linalg import dot, einsum, inner, matmul, outer, tensordot
from ._reductions import all, amax, amin, any, argmax, argmin, max, mean, min, prod, std, sum, var
from ._shape import (atleast_1d, broadcast_to, concatenate, expand_dims, flip, moveaxis, ravel, repeat, reshape,
                     split, squeeze, stack, swapaxes, tile, transpose)
from ._base import shape_of as shape


def astype(x, dtype):
    """x converted to dtype (x.astype(dtype))."""
    from ir import dtypes

    return _astype(x, dtypes.canonicalize(dtype))


def ndim(x) -> int:
    return len(shape(x))


def size(x) -> int:
    import numpy as _np

    return int(_np.prod(shape(x), dtype=_np.int64))


pi = 3.141592653589793
e = 2.718281828459045
inf = float("inf")
nan = float("nan")
newaxis = None
