"""Operators and methods of array-like classes (Tracer and the eager Tensor),
defined once in terms of tnp functions, and NumPy's dispatch protocols
so that ``np.sin(tracer)`` and ``np.sum(tracer)`` reach tnp."""

from __future__ import annotations

from ir import dtypes

from . import _elementwise as E, _indexing, _linalg, _reductions as R, _shape as S


def _swap(fn):
    return lambda self, other: fn(other, self)


def _reshape_method(self, *shape, order="C"):
    return S.reshape(self, shape[0] if len(shape) == 1 else shape, order=order)


def _transpose_method(self, *axes):
    return S.transpose(self, (axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes) or None)


def _astype(self, dtype):
    from ._base import astype

    return astype(self, dtypes.canonicalize(dtype))


METHODS = {
    "__add__": E.add, "__radd__": _swap(E.add),
    "__sub__": E.subtract, "__rsub__": _swap(E.subtract),
    "__mul__": E.multiply, "__rmul__": _swap(E.multiply),
    "__truediv__": E.divide, "__rtruediv__": _swap(E.divide),
    "__floordiv__": E.floor_divide, "__rfloordiv__": _swap(E.floor_divide),
    "__mod__": E.remainder, "__rmod__": _swap(E.remainder),
    "__pow__": E.power, "__rpow__": _swap(E.power),
    "__matmul__": _linalg.matmul, "__rmatmul__": _swap(_linalg.matmul),
    "__and__": E.bitwise_and, "__rand__": _swap(E.bitwise_and),
    "__or__": E.bitwise_or, "__ror__": _swap(E.bitwise_or),
    "__xor__": E.bitwise_xor, "__rxor__": _swap(E.bitwise_xor),
    "__neg__": E.negative, "__pos__": E.positive, "__abs__": E.absolute, "__invert__": E.invert,
    "__eq__": E.equal, "__ne__": E.not_equal, "__lt__": E.less, "__le__": E.less_equal,
    "__gt__": E.greater, "__ge__": E.greater_equal,
    "__getitem__": _indexing.getitem, "__setitem__": _indexing.setitem_error,
    "sum": R.sum, "mean": R.mean, "prod": R.prod, "max": R.max, "min": R.min, "var": R.var, "std": R.std,
    "argmax": R.argmax, "argmin": R.argmin, "any": R.any, "all": R.all,
    "reshape": _reshape_method, "transpose": _transpose_method, "astype": _astype,
    "squeeze": S.squeeze, "flatten": S.ravel, "ravel": S.ravel, "swapaxes": S.swapaxes, "repeat": S.repeat,
    "clip": E.clip, "dot": _linalg.dot, "take": _indexing.take, "round": E.round,
    "T": property(lambda self: S.transpose(self)),
    "mT": property(lambda self: S.swapaxes(self, -1, -2)),
}

_UFUNC_ALIASES = {"absolute": E.absolute, "power": E.power, "arctan": E.arctan, "true_divide": E.divide}


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """np.<ufunc>(tracer, ...) runs the tnp function of the same name."""
    from .. import numpy as tnp

    fn = _UFUNC_ALIASES.get(ufunc.__name__) or getattr(tnp, ufunc.__name__, None)
    if method != "__call__" or kwargs or fn is None:
        return NotImplemented
    return fn(*inputs)


def _array_function(self, func, types, args, kwargs):
    """np.sum(tracer), np.reshape(tracer, ...) and friends run the tnp function of the same name."""
    from .. import numpy as tnp

    fn = getattr(tnp, func.__name__, None)
    if fn is None:
        raise TypeError(f"np.{func.__name__} is not supported on traced arrays, and tracegrad.numpy has no "
                        f"{func.__name__!r}; write it with tracegrad.numpy functions")
    return fn(*args, **kwargs)


def install(cls) -> type:
    """Give an array-like class NumPy's operators and methods."""
    for name, fn in METHODS.items():
        if name not in cls.__dict__:  # the class's own definition wins (a Tensor's __setitem__ writes in place)
            setattr(cls, name, fn)
    cls.__array_ufunc__ = _array_ufunc
    cls.__array_function__ = _array_function
    if "__hash__" not in cls.__dict__:
        cls.__hash__ = None
    return cls

