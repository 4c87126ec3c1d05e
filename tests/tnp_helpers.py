"""Shared machinery of the tracegrad.numpy conformance tests (test_numpy_*.py).

Every case computes a NumPy reference and then runs the tracegrad version
two ways -- eagerly on plain NumPy arrays and under ``tg.jit`` (abstract
tracing plus the reference interpreter) -- and demands the same dtype, the
same shape and the same values (exact for integers and bools, close for
floats, NaN where NumPy has NaN).
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np

import tracegrad as tg

DTYPES = (np.float32, np.float64, np.int32, np.int64, np.bool_)
FLOATS = (np.float32, np.float64)
INTS = (np.int32, np.int64)
RTOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}

SEED = 20240611


def rng(*salt) -> np.random.Generator:
    """A generator seeded by the test's own parameters, so every case has fixed
    data regardless of which other cases run."""
    return np.random.default_rng([SEED, *(zlib.crc32(repr(s).encode()) for s in salt)])


def dt_name(dtype) -> str:
    return np.dtype(dtype).name


def make(shape, dtype, *, kind: str = "any", seed=()) -> np.ndarray:
    """Random data of ``shape`` and ``dtype``.

    kind: ``any`` (mixed signs), ``positive`` (floats in (0.1, 3), ints in
    [1, 5]), ``nonzero`` (no zeros: safe divisors), ``small`` (|x| < 1),
    ``special`` (floats with nan, inf, -inf, -0.0 sprinkled in)."""
    g = rng(shape, dtype, kind, *seed)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.asarray(g.random(shape) < 0.5)
    if dtype.kind == "i":
        lo, hi = {"positive": (1, 6), "small": (-1, 2)}.get(kind, (-5, 6))
        out = np.asarray(g.integers(lo, hi, size=shape), dtype)
        if kind == "nonzero":
            out[out == 0] = 3
        return out
    if kind == "positive":
        out = g.uniform(0.1, 3.0, size=shape)
    elif kind == "small":
        out = g.uniform(-0.9, 0.9, size=shape)
    else:
        out = g.normal(0.0, 2.0, size=shape)
    if kind == "nonzero":
        out[np.abs(out) < 0.05] = 0.5
    out = np.asarray(out, dtype)
    if kind == "special" and out.size:
        flat = out.reshape(-1)
        specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], dtype)
        picks = g.choice(flat.size, size=min(flat.size, 5), replace=False)
        flat[picks] = specials[: len(picks)]
    return out


def strided(arr: np.ndarray) -> np.ndarray:
    """The same values as ``arr`` in a non-contiguous view (every other element
    of a twice-as-long buffer along the last axis, or a transposed copy's view)."""
    if arr.ndim == 0:
        return arr
    buf = np.empty(arr.shape[:-1] + (2 * arr.shape[-1],), arr.dtype)
    buf[..., ::2] = arr
    view = buf[..., ::2]
    assert np.array_equal(view, arr, equal_nan=arr.dtype.kind == "f")
    return view


def transposed_view(arr: np.ndarray) -> np.ndarray:
    """The same values as ``arr`` as the transpose of a C-contiguous array (so
    the view itself is Fortran-ordered)."""
    view = np.ascontiguousarray(arr.T).T
    assert np.array_equal(view, arr, equal_nan=arr.dtype.kind == "f")
    return view


def numpy_ref(fn, *args):
    """NumPy's answer, without NumPy's warnings for IEEE results (0/0, log(0)...)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args)


def assert_matches(actual, expected, how: str = "", rtol: float | None = None) -> None:
    """``actual`` equals NumPy's ``expected``: same structure, dtype and shape;
    values exact for ints and bools, within rtol for floats, NaN where NumPy has NaN."""
    if isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)), f"{how}: expected a sequence, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{how}: {len(actual)} results, NumPy has {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_matches(a, e, f"{how}[{i}]", rtol)
        return
    assert isinstance(actual, (np.ndarray, np.generic)), \
        f"{how}: expected a NumPy array, got {type(actual).__name__}"
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    assert actual.dtype == expected.dtype, f"{how}: dtype {actual.dtype}, NumPy gives {expected.dtype}"
    assert actual.shape == expected.shape, f"{how}: shape {actual.shape}, NumPy gives {expected.shape}"
    if expected.dtype.kind == "f":
        tol = RTOL[expected.dtype] if rtol is None else rtol
        finite = expected[np.isfinite(expected)]
        scale = float(np.max(np.abs(finite))) if finite.size else 1.0
        np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * max(scale, 1.0), equal_nan=True,
                                   err_msg=how)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=how)


def check(tnp_fn, np_fn, *args, rtol: float | None = None, jit: bool = True):
    """Run ``tnp_fn`` eagerly on the NumPy ``args`` and under ``tg.jit`` (every
    arg a traced input) and compare both with ``np_fn(*args)``. Returns NumPy's
    answer. The inputs must come back unchanged."""
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    expected = numpy_ref(np_fn, *args)
    assert_matches(tnp_fn(*args), expected, "eager on NumPy arrays", rtol)
    if jit:
        assert_matches(tg.jit(tnp_fn)(*args), expected, "under jit", rtol)
    for a, b in zip(args, before):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg="an input array was modified")
    return expected


def check_jit(fn, np_fn, *args, rtol: float | None = None):
    """``fn`` under jit only (operators, methods: on NumPy arrays they are NumPy's own)."""
    expected = numpy_ref(np_fn, *args)
    assert_matches(tg.jit(fn)(*args), expected, "under jit", rtol)
    return expected


def builtin_base(exc_type: type) -> type:
    """The built-in exception class a NumPy exception is (UFuncTypeError -> TypeError,
    numpy's AxisError -> ValueError), to demand that tracegrad raises the same kind."""
    for cls in exc_type.__mro__:
        if cls.__module__ == "builtins" and cls is not Exception and issubclass(cls, Exception):
            return cls
    return Exception


def check_raises_like_numpy(tnp_fn, np_fn, *args, jit: bool = True) -> type:
    """NumPy raises for these arguments; tracegrad must raise the same built-in
    kind of error, eagerly and under jit. Returns that class."""
    try:
        numpy_ref(np_fn, *args)
    except Exception as e:  # noqa: BLE001 -- we want NumPy's class, whatever it is
        kind = builtin_base(type(e))
    else:
        raise AssertionError("the test expects NumPy to raise here, but it did not")
    import pytest

    with pytest.raises(kind):
        tnp_fn(*args)
    if jit:
        with pytest.raises(kind):
            tg.jit(tnp_fn)(*args)
    return kind


def check_or_raises(tnp_fn, np_fn, *args, rtol: float | None = None):
    """:func:`check` where NumPy succeeds; where NumPy raises, the same kind of
    error from tracegrad (:func:`check_raises_like_numpy`)."""
    try:
        numpy_ref(np_fn, *args)
    except Exception:  # noqa: BLE001
        check_raises_like_numpy(tnp_fn, np_fn, *args)
        return None
    return check(tnp_fn, np_fn, *args, rtol=rtol)
