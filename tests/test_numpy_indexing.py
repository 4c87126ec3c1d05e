"""Indexing tracers with NumPy's rules -- basic slices (steps, negative indices
and steps), ints, None, ``...``, integer arrays (lists, NumPy arrays, traced
arrays), mixed advanced and basic indices, boolean NumPy masks -- and ``take``.

Each key runs three ways: tracegrad's indexing on a plain NumPy array, ``x[key]``
on a tracer under jit with the key's index arrays as constants, and the same
with every integer index array passed as a traced jit argument."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad.numpy._indexing import getitem
from tnp_helpers import assert_matches, check, check_jit, check_raises_like_numpy, make, strided, transposed_view

S = slice(None)

BASIC_KEYS = [
    0, -1, 3, np.int64(2), np.int32(-4), (1, 2), (-1, -2, -3, -4), S, slice(1, 3), slice(None, None, 2),
    slice(None, None, -1), slice(-2, None), slice(None, -2), slice(3, 0, -1), slice(-1, -5, -2), slice(10, 20),
    slice(2, 2), slice(None, None, 3), slice(None, None, -3), slice(-100, 100), slice(100, -100, -1),
    (S, slice(None, None, -2)), (S, S, slice(1, 5, 2), slice(6, None, -3)), (slice(3, 1), 0),
    Ellipsis, (), (Ellipsis, 0), (0, Ellipsis, -1), (None, 1), (S, None, 2), (Ellipsis, None), (None, Ellipsis, None),
    (1, slice(None, None, -2), None, Ellipsis, 3), (None, None, 0, None), (0, 1, 2, 3), (-1, Ellipsis),
]

ADVANCED_KEYS = [
    [0, 2], [-1, 0, -1], np.array([[0, 1], [2, 3]]), np.array([3], np.int32), [], np.array([], np.int64),
    (S, [0, 2, 4]),  # one index array: its dimensions stay in place
    ([0, 1], S, [2, 3]),  # separated by a slice: index dimensions go first
    (S, [0, 1], [2, 3]),  # adjacent: in place
    (1, S, [0, 2]),  # an int counts as an index array: separated, so first
    (S, 1, [0, 2]),  # adjacent int and array: in place
    (S, 0, S, [1, 2]),  # separated: first
    (0, [1, 2], 0),  # adjacent, all at the front
    ([[0], [1]], [0, 1, 2]),  # index arrays broadcast together
    (Ellipsis, [0, 1]), (Ellipsis, [[1], [5]], S), (None, [0, 1]), (S, None, [0, 1]),
    ([0, 1], None, [2, 3]),  # None separates them too: first
    (slice(None, None, -1), [0, 2]), (slice(1, None, 2), [3, 0], slice(None, None, -2)),
    ([1, 0], [2, 0], [3, 4], [0, 6]), (np.array([[1, 0]]), S, S, np.array([[5], [6]])),
    ([-4, 3], Ellipsis, -7), (np.int64(1), [2, -1]),
]

MASK_4 = np.array([True, False, True, True])
MASK_45 = make((4, 5), np.bool_, seed=("mask",))
BOOL_KEYS = [
    MASK_4, MASK_45, make((4, 5, 6, 7), np.bool_, seed=("mask4",)), (S, np.array([0, 1, 0, 1, 1], bool)),
    [True, False, True, False], np.zeros(4, bool), (MASK_45, 2), (Ellipsis, np.array([1, 0, 0, 0, 0, 0, 1], bool)),
    (np.array([True, False, False, True]), S, [0, 5]), (S, make((5, 6), np.bool_, seed=("mask56",))),
]

ALL_KEYS = BASIC_KEYS + ADVANCED_KEYS + BOOL_KEYS


def key_id(key) -> str:
    def one(k):
        if isinstance(k, slice):
            return ":".join("" if v is None else str(v) for v in (k.start, k.stop, k.step))
        if k is Ellipsis:
            return "..."
        if isinstance(k, np.ndarray):
            return f"{k.dtype.name}{list(k.shape)}" if k.dtype == bool else f"arr{k.tolist()}"
        return repr(k)

    return "[" + ",".join(one(k) for k in (key if isinstance(key, tuple) else (key,))) + "]"


def _as_entries(key):
    return list(key) if isinstance(key, tuple) else [key]


def _rebuild(key, positions, arrays):
    entries = _as_entries(key)
    for p, a in zip(positions, arrays):
        entries[p] = a
    return tuple(entries) if isinstance(key, tuple) else entries[0]


def _integer_arrays(key):
    """Positions and values of the integer index arrays in a key (lists included)."""
    found = []
    for i, k in enumerate(_as_entries(key)):
        if isinstance(k, list) and not any(isinstance(e, bool) for e in k):
            found.append((i, np.asarray(k, np.int64)))
        elif isinstance(k, np.ndarray) and k.dtype.kind == "i":
            found.append((i, k))
    return found


def check_index(x, key):
    """NumPy's x[key] against tracegrad's, three ways."""
    expected = check(lambda a: getitem(a, key), lambda a: a[key], x)
    check_jit(lambda a: a[key], lambda a: a[key], x)
    arrays = _integer_arrays(key)
    if arrays:
        positions, values = zip(*arrays)
        traced = tg.jit(lambda a, *idx: a[_rebuild(key, positions, idx)])(x, *values)
        assert_matches(traced, expected, "with traced index arrays")
    return expected


@pytest.mark.parametrize("key", ALL_KEYS, ids=[key_id(k) for k in ALL_KEYS])
@pytest.mark.parametrize("layout", ["contiguous", "strided", "transposed"])
def test_getitem_matches_numpy(key, layout):
    x = make((4, 5, 6, 7), np.float32)
    x = {"contiguous": x, "strided": strided(x), "transposed": transposed_view(x)}[layout]
    check_index(x, key)


@pytest.mark.parametrize("dt", [np.int32, np.int64, np.bool_], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("key", [slice(None, None, -1), [2, 0], (S, [1, 1]), (Ellipsis, 0), (MASK_4[:3],)],
                         ids=key_id)
def test_getitem_keeps_the_dtype(dt, key):
    check_index(make((3, 2), dt), key)


@pytest.mark.parametrize("key", [(), Ellipsis, None, (None, Ellipsis), (Ellipsis, None, None)], ids=key_id)
def test_getitem_of_a_0d_array(key):
    check_index(make((), np.float64), key)


@pytest.mark.parametrize("key", [slice(None, None, -1), np.array([], np.int64), slice(5, None), 0, (S, [])],
                         ids=key_id)
def test_getitem_of_a_size_0_axis(key):
    x = make((2, 0), np.float32) if isinstance(key, int) else make((0, 3), np.float32)
    check_index(x, key)


@pytest.mark.parametrize("key", [4, -5, (0, 5), [0, 4], [-5], (0, 0, 0, 0, 0), (Ellipsis, Ellipsis),
                                 np.array([0.5]), 1.5, np.array([True, False]), (S, MASK_45), (Ellipsis, MASK_45), "a"],
                         ids=key_id)
def test_bad_indices_raise_index_error_like_numpy(key):
    x = make((4, 5, 6, 7), np.float32)
    kind = check_raises_like_numpy(lambda a: getitem(a, key), lambda a: a[key], x)
    with pytest.raises(kind):
        tg.jit(lambda a: a[key])(x)


@pytest.mark.parametrize("idx_dt", [np.int32, np.int64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("where", ["front", "middle", "last", "two"])
def test_traced_negative_indices_count_from_the_end(idx_dt, where):
    x = make((4, 5, 6), np.float64)
    i = np.array([[-1, 0], [-4, 3]], idx_dt)
    j = np.array([-6, 5], idx_dt)
    fn = {"front": lambda a, i, j: a[i], "middle": lambda a, i, j: a[:, i, ::2],
          "last": lambda a, i, j: a[..., j], "two": lambda a, i, j: a[i, :, j]}[where]
    check_jit(fn, fn, x, i, j)


def test_traced_0d_integer_index_drops_the_axis():
    x = make((4, 5), np.float32)
    check_jit(lambda a, i: a[i], lambda a, i: a[i], x, np.int64(-2))
    check_jit(lambda a, i: a[1:, i], lambda a, i: a[1:, i], x, np.array(3, np.int32))


def test_traced_out_of_range_indices_are_clamped():
    """Documented: a compiled program cannot raise, so traced indices beyond the
    axis are clamped to it (concrete ones raise IndexError, as in NumPy)."""
    x = make((4, 5), np.float32)
    i = np.array([7, -9, 2])
    out = tg.jit(lambda a, i: a[i])(x, i)
    np.testing.assert_array_equal(out, x[[3, 0, 2]])


def test_traced_boolean_mask_is_refused_with_a_hint():
    x = make((4,), np.float32)
    with pytest.raises(IndexError, match="where"):
        tg.jit(lambda a, m: a[m])(x, MASK_4)
    with pytest.raises(IndexError, match="where"):
        tg.jit(lambda a: a[a > 0])(x)


def test_traced_float_index_array_raises_index_error():
    with pytest.raises(IndexError):
        tg.jit(lambda a, i: a[i])(make((4,), np.float32), np.array([0.0]))


def test_setitem_on_a_tracer_raises_type_error():
    def f(a):
        a[0] = 1.0
        return a

    with pytest.raises(TypeError, match="immutable"):
        tg.jit(f)(make((3,), np.float32))


# ------------------------------------------------------------------------ take
TAKE_CASES = [(2, None), (-1, None), ([0, -1, 3], None), ([[0, 1], [2, 59]], None), ([1, 0, 1], 0), ([3, -1], 1),
              ([[0], [2]], -1), (np.array([2], np.int32), 2), (1, 1), ([], 0), (np.int64(-2), -2)]


@pytest.mark.parametrize("indices,axis", TAKE_CASES, ids=str)
@pytest.mark.parametrize("dt", [np.float64, np.int32, np.bool_], ids=lambda d: np.dtype(d).name)
def test_take(indices, axis, dt):
    x = make((3, 4, 5), dt)
    indices = np.asarray(indices, np.int64) if isinstance(indices, list) else indices
    check(lambda a: tnp.take(a, indices, axis=axis), lambda a: np.take(a, indices, axis=axis), x)
    check_jit(lambda a: a.take(indices, axis=axis), lambda a: np.take(a, indices, axis=axis), x)
    # the indices as a traced argument
    check(lambda a, i: tnp.take(a, i, axis=axis), lambda a, i: np.take(a, i, axis=axis), x, np.asarray(indices))


def test_take_of_non_contiguous_view():
    x = transposed_view(make((4, 5), np.float32))
    check(lambda a: tnp.take(a, [3, 0, -1]), lambda a: np.take(a, [3, 0, -1]), x)
    check(lambda a: tnp.take(a, [3, 0, -1], axis=1), lambda a: np.take(a, [3, 0, -1], axis=1), x)


def test_take_out_of_range_raises_index_error():
    x = make((3, 4), np.float32)
    for indices, axis in [([12], None), ([3], 0), ([-5], 1)]:
        check_raises_like_numpy(lambda a: tnp.take(a, indices, axis=axis), lambda a: np.take(a, indices, axis=axis), x)
    check_raises_like_numpy(lambda a: tnp.take(a, [0], axis=2), lambda a: np.take(a, [0], axis=2), x)


def test_traced_index_arrays_of_different_int_dtypes_mix_with_constant_ones():
    x = make((3, 4, 5), np.float32)
    i, j = np.array([0, -1], np.int32), np.array([[1], [2]], np.int64)
    check_jit(lambda a, i, j: a[i, j], lambda a, i, j: a[i, j], x, i, j)
    check_jit(lambda a, i: a[1, :, i], lambda a, i: a[1, :, i], x, i)
    check_jit(lambda a, i: a[[0, 2], ::-1, i], lambda a, i: a[[0, 2], ::-1, i], x, i)


# ------------------------------------------------------------ property tests

PROPERTY_SETTINGS = settings(max_examples=250, deadline=None, derandomize=True, database=None)


@st.composite
def shapes_and_keys(draw, advanced: bool):
    """A shape of rank 0-4 (sizes 0-5) and a key of ints, slices (any start,
    stop and step, in and out of range), None, at most one ``...`` and, when
    ``advanced``, integer lists within range."""
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))
    bound = st.one_of(st.none(), st.integers(-7, 7))
    step = st.one_of(st.none(), st.integers(-3, 3).filter(lambda s: s != 0))
    key, dims = [], iter(range(len(shape)))
    for d in dims:
        choices = [st.builds(slice, bound, bound, step)]
        if shape[d]:
            choices.append(st.integers(-shape[d], shape[d] - 1))
            if advanced:
                choices.append(st.lists(st.integers(-shape[d], shape[d] - 1), min_size=1, max_size=3))
        entry = draw(st.one_of(*choices)) if draw(st.booleans()) or advanced else slice(None)
        key.append(entry)
        if draw(st.integers(0, 5)) == 0:
            key.append(None)
    if advanced:  # index lists must broadcast together: give them all the first one's length
        lengths = [len(k) for k in key if isinstance(k, list)]
        key = [(k * 3)[:lengths[0]] if isinstance(k, list) else k for k in key]
    cut = draw(st.integers(0, len(key)))
    if draw(st.booleans()):
        key = key[:cut] + [Ellipsis] + key[cut + (1 if cut < len(key) and key[cut] is not None else 0):]
    else:
        key = key[:cut] if all(k is None or isinstance(k, slice) for k in key[cut:]) else key
    return shape, tuple(key)


@PROPERTY_SETTINGS
@given(shapes_and_keys(advanced=False))
def test_property_basic_indexing_matches_numpy(case):
    shape, key = case
    check_index(make(shape, np.int32, seed=("hyp",)), key)


@PROPERTY_SETTINGS
@given(shapes_and_keys(advanced=True))
def test_property_advanced_indexing_matches_numpy(case):
    shape, key = case
    check_index(make(shape, np.int32, seed=("hyp",)), key)
