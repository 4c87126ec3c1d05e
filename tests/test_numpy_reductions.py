"""tracegrad.numpy reductions (sum, mean, prod, max, min, var, std, argmax,
argmin, any, all) against NumPy: axis None / int / negative / tuple / (),
keepdims, size-0 and size-1 axes, NumPy's accumulator dtypes, and the method
forms on tracers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tracegrad as tg
import tracegrad.numpy as tnp
from tnp_helpers import (DTYPES, assert_matches, check, check_jit, check_raises_like_numpy, dt_name, make, numpy_ref,
                         strided, transposed_view)

REDUCTIONS = ["sum", "mean", "prod", "max", "min", "var", "std", "any", "all"]
ARG_REDUCTIONS = ["argmax", "argmin"]

# (shape, axis) pairs: None, ints, negative ints, tuples (unsorted, negative), the empty tuple.
AXES_4D = [None, 0, 3, -1, -3, (0, 2), (-1, 0), (1, 2, 3), (0, 1, 2, 3), ()]
CASES = [((2, 3, 4, 5), ax) for ax in AXES_4D] + [
    ((), None), ((), ()), ((7,), 0), ((7,), None), ((1,), -1), ((3, 1), 1), ((4, 6), (0,)),
    ((3, 0, 2), 1), ((3, 0, 2), 0), ((3, 0, 2), None), ((3, 0, 2), (0, 2)),
]
CASE_IDS = [f"{s}-axis{a}" for s, a in CASES]


def _fn(name, **kw):
    return lambda x: getattr(tnp, name)(x, **kw)


def _ref(name, **kw):
    return lambda x: getattr(np, name)(x, **kw)


def _data(shape, dt, name):
    # prod of many normals over/underflows float32 only in the 4-d all-axes case; keep |x| near 1 there
    return make(shape, dt, kind="small" if name == "prod" else "any", seed=(name,))


def _check_reduction(name, x, axis, keepdims) -> bool:
    """The tnp reduction against NumPy; where NumPy raises, the same kind of
    error. Returns whether NumPy computed a value."""
    fn, ref = _fn(name, axis=axis, keepdims=keepdims), _ref(name, axis=axis, keepdims=keepdims)
    try:
        numpy_ref(ref, x)
    except ValueError:
        check_raises_like_numpy(fn, ref, x)
        return False
    check(fn, ref, x)
    return True


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("dt", DTYPES, ids=dt_name)
@pytest.mark.parametrize("shape,axis", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
def test_reduction_matches_numpy(name, dt, shape, axis, keepdims):
    """Values, dtype (int32/bool sums and products accumulate in int64; mean,
    var and std of integers are float64) and shape, or NumPy's kind of error
    (max/min of an empty axis)."""
    x = _data(shape, dt, name)
    if _check_reduction(name, x, axis, keepdims):
        check_jit(lambda a: getattr(a, name)(axis=axis, keepdims=keepdims), _ref(name, axis=axis, keepdims=keepdims),
                  x)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("shape,axis", [((3, 0, 2), 1), ((3, 0, 2), None), ((0,), 0), ((3, 0, 2), (0, 1))],
                         ids=str)
def test_max_min_of_an_empty_axis_raise_value_error(name, shape, axis):
    check_raises_like_numpy(_fn(name, axis=axis), _ref(name, axis=axis), np.zeros(shape, np.float32))


@pytest.mark.parametrize("name", ARG_REDUCTIONS)
@pytest.mark.parametrize("dt", DTYPES, ids=dt_name)
@pytest.mark.parametrize("shape,axis", [((2, 3, 4, 5), None), ((2, 3, 4, 5), 0), ((2, 3, 4, 5), 2),
                                        ((2, 3, 4, 5), -1), ((7,), 0), ((7,), None), ((), None), ((1, 4), 0),
                                        ((3, 0), 0)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
def test_argmax_argmin_return_int64_indices_of_the_first_extremum(name, dt, shape, axis, keepdims):
    x = make(shape, dt, kind="small", seed=(name,))  # small ints: many ties, so "first" matters
    fn, ref = _fn(name, axis=axis, keepdims=keepdims), _ref(name, axis=axis, keepdims=keepdims)
    check(fn, ref, x)
    check_jit(lambda a: getattr(a, name)(axis=axis, keepdims=keepdims), ref, x)


@pytest.mark.parametrize("name", ARG_REDUCTIONS)
@pytest.mark.parametrize("shape,axis", [((0,), None), ((3, 0), 1), ((0, 3), None)], ids=str)
def test_argmax_argmin_of_an_empty_sequence_raise_value_error(name, shape, axis):
    check_raises_like_numpy(_fn(name, axis=axis), _ref(name, axis=axis), np.zeros(shape, np.float64))


@pytest.mark.parametrize("name", REDUCTIONS + ARG_REDUCTIONS)
def test_reductions_propagate_nan_and_inf_like_numpy(name):
    x = make((4, 6), np.float32, kind="special", seed=(name,))
    x[1] = np.nan  # a whole row of nan
    x[2, :3] = np.inf
    for axis in (None, 0, 1):
        check(_fn(name, axis=axis), _ref(name, axis=axis), x)


@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize("dt", [np.float32, np.float64, np.int32, np.bool_], ids=dt_name)
@pytest.mark.parametrize("ddof", [0, 1, 2, 5, 7])
@pytest.mark.parametrize("axis", [None, 0, (0, 1), -1])
def test_var_std_with_ddof(name, dt, ddof, axis):
    """ddof >= the count gives inf or nan, as in NumPy."""
    x = make((3, 2, 4), dt, seed=(name, ddof))
    check(_fn(name, axis=axis, ddof=ddof), _ref(name, axis=axis, ddof=ddof), x)
    check_jit(lambda a: getattr(a, name)(axis=axis, ddof=ddof), _ref(name, axis=axis, ddof=ddof), x)


@pytest.mark.parametrize("name", ["sum", "prod", "mean", "var", "std"])
@pytest.mark.parametrize("src,acc", [(np.int32, np.float32), (np.float32, np.float64), (np.int64, np.int32),
                                     (np.bool_, np.int32), (np.float64, np.float32)], ids=dt_name)
def test_reduction_dtype_argument_sets_the_accumulator(name, src, acc):
    """An integer dtype truncates mean, var and std, as NumPy does (NumPy's std
    raises a casting error instead when the result is an array, which tracegrad
    does not copy: there it truncates too)."""
    x = make((3, 5), src, kind="small", seed=(name,))
    for axis in (None, 1):
        if name == "std" and axis is not None and np.dtype(acc).kind == "i":
            expected = np.sqrt(np.var(x, axis=axis, dtype=acc)).astype(acc)  # what NumPy's scalar path does
            check(_fn(name, axis=axis, dtype=acc), lambda a: expected, x)
            continue
        check(_fn(name, axis=axis, dtype=acc), _ref(name, axis=axis, dtype=acc), x)


@pytest.mark.parametrize("name", ["sum", "max", "argmax", "var", "any", "mean"])
@pytest.mark.parametrize("view", [strided, transposed_view, lambda a: a[::-1, :, ::-2]],
                         ids=["strided", "transposed", "negative_steps"])
def test_reductions_of_non_contiguous_views(name, view):
    base = make((4, 3, 6), np.float32, seed=(name,))
    x = view(base)
    assert not x.flags.c_contiguous
    for axis in (None, 0, -1):
        expected = check(_fn(name, axis=axis), _ref(name, axis=axis), x)
        assert_matches(getattr(tnp, name)(np.ascontiguousarray(x), axis=axis), expected, "contiguous copy")


def test_reduction_axis_out_of_range_raises_axis_error():
    x = make((2, 3), np.float32)
    for name in REDUCTIONS + ARG_REDUCTIONS:
        for axis in (2, -3):
            check_raises_like_numpy(_fn(name, axis=axis), _ref(name, axis=axis), x)


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_repeated_axis_raises_value_error(name):
    x = make((2, 3), np.float32)
    check_raises_like_numpy(_fn(name, axis=(0, -2)), _ref(name, axis=(0, -2)), x)


def test_sum_of_int32_accumulates_in_int64_without_overflow():
    x = np.full((4,), 2**30, np.int32)
    expected = check(tnp.sum, np.sum, x)
    assert expected == 2**32
    check_jit(lambda a: a.sum(), np.sum, x)


def test_mean_of_float32_stays_float32_and_of_ints_is_float64():
    assert tg.jit(tnp.mean)(make((3,), np.float32)).dtype == np.float32
    assert tg.jit(tnp.mean)(make((3,), np.int32)).dtype == np.float64
    assert tg.jit(tnp.mean)(make((3,), np.bool_)).dtype == np.float64


# ------------------------------------------------------------ property tests


@st.composite
def shapes_and_axes(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    axes = draw(st.lists(st.integers(-len(shape), len(shape) - 1), unique_by=lambda a: a % len(shape), max_size=4)
                if shape else st.just([]))
    axis = draw(st.sampled_from([None, tuple(axes)] + ([axes[0]] if axes else [])))
    return shape, axis


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(case=shapes_and_axes(), dt=st.sampled_from(DTYPES), name=st.sampled_from(REDUCTIONS),
       keepdims=st.booleans())
def test_property_reductions_over_random_axes_match_numpy(case, dt, name, keepdims):
    shape, axis = case
    _check_reduction(name, _data(shape, dt, name), axis, keepdims)
