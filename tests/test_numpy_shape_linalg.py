"""tracegrad.numpy shape functions, array creation and linear algebra against
NumPy (eagerly on arrays and under jit), including ``@`` and the method forms
on tracers."""

from __future__ import annotations

import operator

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tnp_helpers import (DTYPES, assert_matches, check, check_jit, check_raises_like_numpy,
                         dt_name, make, strided, transposed_view)

# ------------------------------------------------------------------- reshape
RESHAPES = [((2, 3, 4), (6, 4)), ((2, 3, 4), (-1,)), ((2, 3, 4), (4, -1)), ((2, 3, 4), (2, -1, 3)),
            ((), (1, 1)), ((), (-1,)), ((1,), ()), ((6,), (1, 2, 1, 3)), ((3, 0), (0, 5)), ((3, 0), (-1, 3)),
            ((3, 0), (3, -1)), ((2, 3, 4, 5), (5, 4, 3, 2)), ((4,), 4), ((2, 2), -1)]


@pytest.mark.parametrize("old,new", RESHAPES, ids=str)
@pytest.mark.parametrize("dt", [np.float32, np.int64, np.bool_], ids=dt_name)
def test_reshape(old, new, dt):
    x = make(old, dt)
    check(lambda a: tnp.reshape(a, new), lambda a: np.reshape(a, new), x)
    check_jit(lambda a: a.reshape(new), lambda a: a.reshape(new), x)
    if isinstance(new, tuple) and new:
        check_jit(lambda a: a.reshape(*new), lambda a: a.reshape(*new), x)


@pytest.mark.parametrize("old,new", [((2, 3), (4, 2)), ((2, 3), (-1, -1)), ((2, 3), (4, -1)), ((3, 0), (-1, 0))],
                         ids=str)
def test_reshape_to_an_incompatible_shape_raises_value_error(old, new):
    check_raises_like_numpy(lambda a: tnp.reshape(a, new), lambda a: np.reshape(a, new), make(old, np.float32))


@pytest.mark.parametrize("view", [strided, transposed_view, lambda a: a[::-1, ::2]],
                         ids=["strided", "transposed", "negative_step"])
def test_reshape_and_ravel_of_non_contiguous_views_use_row_major_order(view):
    x = view(make((4, 6), np.float64))
    assert not x.flags.c_contiguous
    check(lambda a: tnp.reshape(a, (-1, 2)), lambda a: np.reshape(a, (-1, 2)), x)
    check(lambda a: tnp.ravel(a), np.ravel, x)
    check_jit(lambda a: a.flatten(), lambda a: a.flatten(), x)


# ----------------------------------------------------------------- transpose
@pytest.mark.parametrize("shape,axes", [((2, 3), None), ((2, 3, 4), None), ((2, 3, 4), (1, 0, 2)),
                                        ((2, 3, 4), (-1, 0, -2)), ((), None), ((5,), None),
                                        ((2, 3, 4, 5), (3, 1, 0, 2)),
                                        ((2, 0, 3), (2, 0, 1))], ids=str)
def test_transpose(shape, axes):
    x = make(shape, np.int32)
    check(lambda a: tnp.transpose(a, axes), lambda a: np.transpose(a, axes), x)
    check_jit(lambda a: a.transpose(axes), lambda a: a.transpose(axes), x)
    if axes is not None:
        check_jit(lambda a: a.transpose(*axes), lambda a: a.transpose(*axes), x)
    check_jit(lambda a: a.T, lambda a: a.T, x)


def test_transpose_with_wrong_axes_raises():
    x = make((2, 3, 4), np.float32)
    for axes in [(0, 1), (0, 0, 1), (0, 1, 3)]:
        check_raises_like_numpy(lambda a: tnp.transpose(a, axes), lambda a: np.transpose(a, axes), x)


def test_mT_swaps_the_last_two_axes():
    x = make((2, 3, 4), np.float32)
    check_jit(lambda a: a.mT, lambda a: a.mT, x)


@pytest.mark.parametrize("a1,a2", [(0, 1), (0, -1), (-1, -2), (2, 2), (1, 0)])
def test_swapaxes(a1, a2):
    x = make((2, 3, 4), np.float64)
    check(lambda a: tnp.swapaxes(a, a1, a2), lambda a: np.swapaxes(a, a1, a2), x)
    check_jit(lambda a: a.swapaxes(a1, a2), lambda a: a.swapaxes(a1, a2), x)


@pytest.mark.parametrize("src,dst", [(0, -1), (-1, 0), (1, 2), ([0, 1], [-1, -2]), ((0, 2), (2, 0)), ([3, 0], [0, 1]),
                                     ([], [])], ids=str)
def test_moveaxis(src, dst):
    x = make((2, 3, 4, 5), np.float32)
    check(lambda a: tnp.moveaxis(a, src, dst), lambda a: np.moveaxis(a, src, dst), x)


def test_moveaxis_with_repeated_or_out_of_range_axes_raises():
    x = make((2, 3, 4), np.float32)
    for src, dst in [((0, 0), (1, 2)), (3, 0), ((0, 1), (2,))]:
        check_raises_like_numpy(lambda a: tnp.moveaxis(a, src, dst), lambda a: np.moveaxis(a, src, dst), x)


# --------------------------------------------------- expand_dims / squeeze
@pytest.mark.parametrize("shape,axis", [((2, 3), 0), ((2, 3), 2), ((2, 3), -1), ((2, 3), -3), ((2, 3), (0, 3)),
                                        ((2, 3), (-1, 0)), ((), 0), ((), (0, 1)), ((0,), 1)], ids=str)
def test_expand_dims(shape, axis):
    check(lambda a: tnp.expand_dims(a, axis), lambda a: np.expand_dims(a, axis), make(shape, np.int64))


def test_expand_dims_out_of_range_or_repeated_raises():
    x = make((2, 3), np.int64)
    for axis in (3, -4, (0, 0)):
        check_raises_like_numpy(lambda a: tnp.expand_dims(a, axis), lambda a: np.expand_dims(a, axis), x)


@pytest.mark.parametrize("shape,axis", [((1, 3, 1, 2), None), ((1, 3, 1, 2), 0), ((1, 3, 1, 2), -2),
                                        ((1, 3, 1, 2), (0, 2)), ((1,), None), ((), None), ((1, 0, 1), None),
                                        ((3, 4), None)], ids=str)
def test_squeeze(shape, axis):
    x = make(shape, np.float32)
    check(lambda a: tnp.squeeze(a, axis), lambda a: np.squeeze(a, axis), x)
    check_jit(lambda a: a.squeeze(axis), lambda a: a.squeeze(axis), x)


def test_squeeze_of_an_axis_not_of_size_one_raises_value_error():
    check_raises_like_numpy(lambda a: tnp.squeeze(a, 1), lambda a: np.squeeze(a, 1), make((1, 3), np.float32))


# -------------------------------------------------------------- broadcast_to
@pytest.mark.parametrize("shape,to", [((3, 1, 4), (2, 3, 5, 4)), ((), (2, 3)), ((1,), (0,)), ((3,), (2, 3)),
                                      ((2, 1), (2, 1)), ((1, 1), (3, 4)), ((4,), 4)], ids=str)
def test_broadcast_to(shape, to):
    x = make(shape, np.float32)
    check(lambda a: tnp.broadcast_to(a, to), lambda a: np.broadcast_to(a, to), x)


def test_broadcast_to_an_incompatible_shape_raises_value_error():
    for shape, to in [((3,), (4,)), ((2, 3), (3,)), ((2, 1), (3, 1))]:
        check_raises_like_numpy(lambda a: tnp.broadcast_to(a, to), lambda a: np.broadcast_to(a, to),
                                make(shape, np.float32))


# ------------------------------------------------------- concatenate / stack
@pytest.mark.parametrize("shapes,axis", [([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 0)], 1), ([(2, 3), (2, 3)], -1),
                                         ([(2, 3), (4,)], None), ([(3,)], 0), ([(2, 3, 4), (2, 3, 1)], 2),
                                         ([(0, 2), (1, 2)], 0), ([(), (2,)], None)], ids=str)
@pytest.mark.parametrize("dts", [(np.float32, np.float32), (np.int32, np.float32), (np.bool_, np.int32),
                                 (np.int64, np.int32)], ids=lambda d: "-".join(map(dt_name, d)))
def test_concatenate_promotes_and_joins(shapes, axis, dts):
    xs = [make(s, dts[i % 2], seed=(i,)) for i, s in enumerate(shapes)]
    check(lambda *a: tnp.concatenate(a, axis=axis), lambda *a: np.concatenate(a, axis=axis), *xs)
    # one traced operand joined with a NumPy constant
    check_jit(lambda a: tnp.concatenate([a] + xs[1:], axis=axis), lambda a: np.concatenate([a] + xs[1:], axis=axis),
              xs[0])


def test_concatenate_mismatched_shapes_or_0d_raise_value_error():
    a, b = make((2, 3), np.float32), make((3, 2), np.float32)
    check_raises_like_numpy(lambda a, b: tnp.concatenate([a, b]), lambda a, b: np.concatenate([a, b]), a, b)
    check_raises_like_numpy(lambda a, b: tnp.concatenate([a, b], axis=2), lambda a, b: np.concatenate([a, b], axis=2),
                            a, a)
    s = make((), np.float32)
    check_raises_like_numpy(lambda a, b: tnp.concatenate([a, b]), lambda a, b: np.concatenate([a, b]), s, s)


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 0)], ids=str)
@pytest.mark.parametrize("axis", [0, -1, 1])
def test_stack(shape, axis):
    xs = [make(shape, np.float64, seed=(i,)) for i in range(3)]
    if axis == 1 and not shape:
        check_raises_like_numpy(lambda *a: tnp.stack(a, axis=axis), lambda *a: np.stack(a, axis=axis), *xs)
        return
    check(lambda *a: tnp.stack(a, axis=axis), lambda *a: np.stack(a, axis=axis), *xs)
    check(lambda a, b: tnp.stack([a, b.astype(np.int32)], axis=axis),
          lambda a, b: np.stack([a, b.astype(np.int32)], axis=axis), *xs[:2])


def test_stack_of_different_shapes_raises_value_error():
    check_raises_like_numpy(lambda a, b: tnp.stack([a, b]), lambda a, b: np.stack([a, b]),
                            make((2,), np.float32), make((3,), np.float32))


# ---------------------------------------------------------------------- split
@pytest.mark.parametrize("shape,ios,axis", [((6, 4), 3, 0), ((6, 4), 2, 1), ((6, 4), 1, -1), ((6, 4), [2, 5], 0),
                                            ((6, 4), [1], -1), ((10,), [3, 1, 7], 0), ((10,), [-3], 0),
                                            ((10,), [5, -8], 0), ((10,), [0, 12], 0), ((10,), [], 0),
                                            ((0, 3), 3, 0), ((2, 3, 4), (1, 3), 2)], ids=str)
def test_split(shape, ios, axis):
    """Sections must divide evenly; indices are slice bounds (clamped, and an
    out-of-order pair gives an empty piece), as in NumPy."""
    x = make(shape, np.float32)
    check(lambda a: tnp.split(a, ios, axis=axis), lambda a: np.split(a, ios, axis=axis), x)


def test_split_into_unequal_sections_raises_value_error():
    check_raises_like_numpy(lambda a: tnp.split(a, 4), lambda a: np.split(a, 4), make((6,), np.float32))


# ------------------------------------------------------------------ flip/tile/repeat
@pytest.mark.parametrize("shape,axis", [((2, 3, 4), None), ((2, 3, 4), 0), ((2, 3, 4), -1), ((2, 3, 4), (0, 2)),
                                        ((), None), ((0, 3), 1), ((5,), 0)], ids=str)
def test_flip(shape, axis):
    check(lambda a: tnp.flip(a, axis), lambda a: np.flip(a, axis), make(shape, np.int32))


@pytest.mark.parametrize("shape,reps", [((2, 3), 2), ((2, 3), (2, 1)), ((2, 3), (2, 1, 3)), ((2, 3), (3,)),
                                        ((), (2, 2)), ((3,), 0), ((2, 3), (1, 1)), ((1, 2, 1), (2, 1, 2, 2))],
                         ids=str)
def test_tile(shape, reps):
    check(lambda a: tnp.tile(a, reps), lambda a: np.tile(a, reps), make(shape, np.float32))


@pytest.mark.parametrize("shape,repeats,axis", [((2, 3), 2, None), ((2, 3), 2, 0), ((2, 3), 3, -1),
                                                ((2, 3), [1, 0, 2], 1), ((2, 3), [2, 1], 0), ((), 3, None),
                                                ((2, 3), 0, 1), ((4,), np.array([1, 2, 0, 1]), 0), ((2, 2), 1, None)],
                         ids=str)
def test_repeat(shape, repeats, axis):
    x = make(shape, np.bool_)
    check(lambda a: tnp.repeat(a, repeats, axis), lambda a: np.repeat(a, repeats, axis), x)
    check_jit(lambda a: a.repeat(repeats, axis), lambda a: np.repeat(a, repeats, axis), x)


@pytest.mark.parametrize("name", ["transpose", "flip", "tile", "repeat", "concatenate", "split", "swapaxes",
                                  "broadcast_to", "squeeze"])
def test_shape_functions_on_non_contiguous_views(name):
    fns = {"transpose": lambda m: m.transpose(a, (1, 2, 0)), "flip": lambda m: m.flip(a, (0, 2)),
           "tile": lambda m: m.tile(a, (2, 1, 1)), "repeat": lambda m: m.repeat(a, 2, axis=1),
           "concatenate": lambda m: m.concatenate([a, a[::-1]], axis=2), "split": lambda m: m.split(a, [1, 2], axis=1),
           "swapaxes": lambda m: m.swapaxes(a, 0, -1), "broadcast_to": lambda m: m.broadcast_to(a, (2, 4, 3, 2)),
           "squeeze": lambda m: m.squeeze(a[:, :1])}
    for view in (strided, transposed_view):
        a = view(make((4, 3, 2), np.float32))
        assert not a.flags.c_contiguous
        expected = fns[name](np)
        assert_matches(fns[name](tnp), expected, "eager")


# ------------------------------------------------------------------ creation
@pytest.mark.parametrize("name", ["zeros", "ones"])
@pytest.mark.parametrize("shape", [(), (0,), 3, (2, 3), (2, 1, 0, 4)], ids=str)
@pytest.mark.parametrize("dtype", [None, np.float32, np.int32, np.int64, bool, "float64"], ids=str)
def test_zeros_and_ones(name, shape, dtype):
    assert_matches(getattr(tnp, name)(shape, dtype), getattr(np, name)(shape, dtype), "eager")
    assert_matches(getattr(tnp, name)(shape, dtype=dtype), getattr(np, name)(shape, dtype=dtype), "eager")
    assert_matches(tg.jit(lambda: getattr(tnp, name)(shape, dtype))(), getattr(np, name)(shape, dtype), "jit")


@pytest.mark.parametrize("fill", [2, 2.5, True, -7, np.float32(1.5), np.int32(3)], ids=repr)
@pytest.mark.parametrize("dtype", [None, np.float32, np.int64], ids=str)
def test_full(fill, dtype):
    for shape in [(2, 3), (), 4]:
        assert_matches(tnp.full(shape, fill, dtype), np.full(shape, fill, dtype), "eager")
        assert_matches(tg.jit(lambda: tnp.full(shape, fill, dtype))(), np.full(shape, fill, dtype), "jit")


def test_full_with_a_traced_fill_value():
    v = np.float32(2.5)
    check(lambda v: tnp.full((2, 3), v), lambda v: np.full((2, 3), v), v)
    check(lambda v: tnp.full((2, 3), v, np.int32), lambda v: np.full((2, 3), v, np.int32), v)


@pytest.mark.parametrize("name", ["zeros_like", "ones_like"])
@pytest.mark.parametrize("dt", DTYPES, ids=dt_name)
@pytest.mark.parametrize("dtype", [None, np.float32, np.bool_], ids=str)
@pytest.mark.parametrize("shape", [(), (2, 3), (0, 4)], ids=str)
def test_zeros_like_and_ones_like_on_arrays_and_tracers(name, dt, dtype, shape):
    x = make(shape, dt)
    check(lambda a: getattr(tnp, name)(a, dtype), lambda a: getattr(np, name)(a, dtype), x)
    # under jit on a tracer the result is part of the traced program
    check(lambda a: getattr(tnp, name)(a, dtype=dtype) * 3 + a, lambda a: getattr(np, name)(a, dtype=dtype) * 3 + a,
          x)


def test_zeros_like_of_non_contiguous_view():
    x = transposed_view(make((3, 4), np.float32))
    check(tnp.ones_like, np.ones_like, x)


@pytest.mark.parametrize("args,kw", [((5,), {}), ((2, 10, 3), {}), ((10, 0, -2), {}), ((0.0, 1.0, 0.25), {}),
                                     ((5,), {"dtype": np.int32}), ((1, 4), {"dtype": np.float32}), ((0,), {}),
                                     ((3, 1), {}), ((-3.5, 2), {}), ((2.0,), {})], ids=str)
def test_arange(args, kw):
    assert_matches(tnp.arange(*args, **kw), np.arange(*args, **kw), "eager")
    assert_matches(tg.jit(lambda: tnp.arange(*args, **kw))(), np.arange(*args, **kw), "jit")


def test_arange_inside_jit_combines_with_tracers():
    x = make((5,), np.int32)
    check_jit(lambda a: a + tnp.arange(5), lambda a: a + np.arange(5), x)
    check_jit(lambda a: a * tnp.arange(a.shape[0], dtype=np.int32), lambda a: a * np.arange(5, dtype=np.int32), x)
    with pytest.raises(TypeError, match="static"):
        tg.jit(lambda n: tnp.arange(n))(5)


@pytest.mark.parametrize("args,kw", [((0, 1, 5), {}), ((0, 1, 5), {"endpoint": False}), ((-2, 3), {}),
                                     ((0, 10, 4), {"dtype": np.int32}), ((1, 0, 3), {"dtype": np.float32}),
                                     ((0, 1, 0), {}), ((0, 1, 1), {}), ((0, 5, 4), {"dtype": np.int64})], ids=str)
def test_linspace(args, kw):
    assert_matches(tnp.linspace(*args, **kw), np.linspace(*args, **kw), "eager")
    assert_matches(tg.jit(lambda: tnp.linspace(*args, **kw))(), np.linspace(*args, **kw), "jit")


@pytest.mark.parametrize("args,kw", [((3,), {}), ((3, 4), {}), ((4, 3, 1), {}), ((3, 3, -1), {}), ((3,), {"k": 5}),
                                     ((2,), {"dtype": np.int32}), ((0,), {}), ((3,), {"dtype": bool}),
                                     ((2, 5), {"k": 2, "dtype": np.float32})], ids=str)
def test_eye(args, kw):
    assert_matches(tnp.eye(*args, **kw), np.eye(*args, **kw), "eager")
    x = make(np.eye(*args, **kw).shape, np.float64)
    check_jit(lambda a: a * tnp.eye(*args, **kw), lambda a: a * np.eye(*args, **kw), x)


# ---------------------------------------------------------------------- linalg
LINALG_DTYPES = [(np.float32, np.float32), (np.float64, np.float64), (np.int32, np.int32), (np.int64, np.int64),
                 (np.bool_, np.bool_), (np.int32, np.float32), (np.float32, np.float64), (np.bool_, np.int32)]
LINALG_IDS = ["-".join(map(dt_name, d)) for d in LINALG_DTYPES]
PRODUCT_RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}  # summation order differs


def _pair(sa, sb, dts, salt=()):
    return make(sa, dts[0], kind="small", seed=("a", *salt)), make(sb, dts[1], kind="small", seed=("b", *salt))


def _rtol(x, y):
    dt = np.result_type(x, y)
    return PRODUCT_RTOL.get(dt)


DOT_SHAPES = [((), ()), ((), (3,)), ((4,), ()), ((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 5)), ((3, 4), (4, 5)),
              ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 3, 4), (6, 4, 5)), ((0,), (0,)), ((3, 0), (0, 2)),
              ((0, 4), (4, 2)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("sa,sb", DOT_SHAPES, ids=str)
@pytest.mark.parametrize("dts", LINALG_DTYPES, ids=LINALG_IDS)
def test_dot(sa, sb, dts):
    a, b = _pair(sa, sb, dts, (sa, sb))
    check(tnp.dot, np.dot, a, b, rtol=_rtol(a, b))
    check_jit(lambda a, b: a.dot(b), np.dot, a, b, rtol=_rtol(a, b))


MATMUL_SHAPES = [((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 5)), ((3, 4), (4, 5)), ((2, 3, 4), (4, 5)),
                 ((3, 4), (2, 4, 5)), ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 6)), ((1, 3, 4), (2, 4, 5)),
                 ((4,), (2, 4, 5)), ((2, 3, 4), (4,)), ((0, 3, 4), (4, 2)), ((3, 0), (0, 2)),
                 ((2, 1, 1, 4), (1, 3, 4, 2))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("dts", LINALG_DTYPES, ids=LINALG_IDS)
def test_matmul_and_the_at_operator(sa, sb, dts):
    """1-d operands are promoted and the added axis removed; batch axes broadcast."""
    a, b = _pair(sa, sb, dts, (sa, sb))
    check(tnp.matmul, np.matmul, a, b, rtol=_rtol(a, b))
    check_jit(operator.matmul, np.matmul, a, b, rtol=_rtol(a, b))
    check_jit(lambda b: a @ b, lambda b: a @ b, b, rtol=_rtol(a, b))  # reflected: ndarray @ tracer


@pytest.mark.parametrize("sa,sb", [((), (3,)), ((3, 4), (5, 4)), ((3,), (4,)), ((2, 3, 4), (3, 3, 2)),
                                   ((2, 3, 4), (3, 4))], ids=str)
def test_matmul_misaligned_or_0d_operands_raise_value_error(sa, sb):
    a, b = _pair(sa, sb, (np.float32, np.float32))
    check_raises_like_numpy(tnp.matmul, np.matmul, a, b)
    with pytest.raises(ValueError):
        tg.jit(operator.matmul)(a, b)


def test_dot_misaligned_raises_value_error():
    a, b = _pair((3, 4), (3, 4), (np.float32, np.float32))
    check_raises_like_numpy(tnp.dot, np.dot, a, b)


@pytest.mark.parametrize("sa,sb", [((3,), (4,)), ((2, 3), (4,)), ((), (3,)), ((0,), (3,)), ((2, 2), (3, 1))],
                         ids=str)
@pytest.mark.parametrize("dts", LINALG_DTYPES, ids=LINALG_IDS)
def test_outer_flattens_its_operands(sa, sb, dts):
    a, b = _pair(sa, sb, dts)
    check(tnp.outer, np.outer, a, b)


@pytest.mark.parametrize("sa,sb", [((4,), (4,)), ((3, 4), (4,)), ((3, 4), (2, 4)), ((2, 3, 4), (5, 4)), ((), (3,)),
                                   ((3, 2), ()), ((0,), (0,)), ((2, 0), (3, 0))], ids=str)
@pytest.mark.parametrize("dts", LINALG_DTYPES, ids=LINALG_IDS)
def test_inner(sa, sb, dts):
    a, b = _pair(sa, sb, dts)
    check(tnp.inner, np.inner, a, b, rtol=_rtol(a, b))


def test_inner_misaligned_raises_value_error():
    check_raises_like_numpy(tnp.inner, np.inner, *_pair((3, 4), (4, 3), (np.float32, np.float32)))


@pytest.mark.parametrize("sa,sb,axes", [((3, 4, 5), (4, 5, 6), 2), ((3, 4), (4, 5), 1), ((3, 4), (5, 6), 0),
                                        ((2, 3), (2, 3), 2), ((3, 4, 5), (5, 4, 2), ([1, 2], [1, 0])),
                                        ((3, 4, 5), (4, 3), ([0, 1], [1, 0])), ((3, 4, 5), (5, 2), (2, 0)),
                                        ((3, 4, 5), (5, 2), ([-1], [0])), ((3, 4), (4, 3), ((0, 1), (1, 0))),
                                        ((2, 0), (0, 3), 1), ((), (), 0)], ids=str)
@pytest.mark.parametrize("dts", LINALG_DTYPES[:6], ids=LINALG_IDS[:6])
def test_tensordot(sa, sb, axes, dts):
    a, b = _pair(sa, sb, dts)
    check(lambda a, b: tnp.tensordot(a, b, axes), lambda a, b: np.tensordot(a, b, axes), a, b, rtol=_rtol(a, b))


def test_tensordot_misaligned_raises_value_error():
    a, b = _pair((3, 4), (3, 4), (np.float32, np.float32))
    check_raises_like_numpy(lambda a, b: tnp.tensordot(a, b, 1), lambda a, b: np.tensordot(a, b, 1), a, b)
    # More axes than the operands have: NumPy fails with an IndexError from its internals; tracegrad says
    # what is wrong with a ValueError (ShapeError), as for the other misfits.
    with pytest.raises(ValueError, match="cannot contract 3 axes"):
        tnp.tensordot(a, b, 3)


EINSUM = [("ij,jk->ik", (3, 4), (4, 5)), ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)), ("i,i->", (4,), (4,)),
          ("i,j->ij", (3,), (4,)), ("ij,kj", (3, 4), (5, 4)), ("ij,jk", (3, 4), (4, 5)), ("i,i", (4,), (4,)),
          ("ba,ac", (2, 3), (3, 4)), ("ij,jk->ki", (3, 4), (4, 5)), ("ij,ij->ij", (3, 4), (3, 4)),
          ("ij,ij->", (3, 4), (3, 4)), ("ij,j->i", (3, 4), (4,)), ("ijk,ikl->jl", (2, 3, 4), (2, 4, 5)),
          ("ij,k->i", (3, 4), (5,)), ("bhqd,bhkd->bhqk", (2, 3, 4, 5), (2, 3, 6, 5)), ("ab,cd->abcd", (2, 3), (4, 1)),
          ("ij,jk->ik", (3, 0), (0, 2)), ("i,->i", (3,), ()), ("bij,bjk->ikb", (2, 3, 4), (2, 4, 5)),
          ("ij,jk->", (3, 4), (4, 5)), ("ij,ji->", (3, 4), (4, 3)), ("ik,jk->kji", (2, 3), (4, 3)),
          ("ij->ji", (3, 4), None), ("ij->", (3, 4), None), ("ijk->kj", (2, 3, 4), None), ("ij", (3, 4), None),
          ("ji", (3, 4), None), ("ij->i", (3, 4), None), ("i->", (0,), None), ("->", (), None)]


@pytest.mark.parametrize("spec,sa,sb", EINSUM, ids=[e[0] for e in EINSUM])
@pytest.mark.parametrize("dts", LINALG_DTYPES, ids=LINALG_IDS)
def test_einsum(spec, sa, sb, dts):
    if sb is None:
        a = make(sa, dts[0], kind="small", seed=(spec,))
        check(lambda a: tnp.einsum(spec, a), lambda a: np.einsum(spec, a), a, rtol=PRODUCT_RTOL.get(a.dtype))
        return
    a, b = _pair(sa, sb, dts, (spec,))
    check(lambda a, b: tnp.einsum(spec, a, b), lambda a, b: np.einsum(spec, a, b), a, b, rtol=_rtol(a, b))


def test_einsum_unsupported_forms_say_so():
    """Documented limits: ellipses, repeated indices in one operand and more than two operands."""
    a = make((3, 3), np.float32)
    with pytest.raises(NotImplementedError, match="repeated"):
        tnp.einsum("ii->i", a)
    with pytest.raises(NotImplementedError, match="ellips"):
        tnp.einsum("...i->i", a)
    with pytest.raises(ValueError):
        tnp.einsum("ij,jk,kl->il", a, a, a)


def test_einsum_mismatched_sizes_raise_value_error():
    a, b = _pair((3, 4), (5, 6), (np.float32, np.float32))
    check_raises_like_numpy(lambda a, b: tnp.einsum("ij,jk->ik", a, b), lambda a, b: np.einsum("ij,jk->ik", a, b),
                            a, b)


@pytest.mark.parametrize("fn", ["dot", "matmul", "tensordot", "inner", "einsum"])
def test_products_of_non_contiguous_views(fn):
    fns = {"dot": lambda m, a, b: m.dot(a, b), "matmul": lambda m, a, b: m.matmul(a, b),
           "tensordot": lambda m, a, b: m.tensordot(a, b, 1), "inner": lambda m, a, b: m.inner(a, b.T),
           "einsum": lambda m, a, b: m.einsum("ij,jk->ik", a, b)}
    for view_a, view_b in [(strided, transposed_view), (transposed_view, lambda v: v[::-1])]:
        a = view_a(make((3, 4), np.float64, seed=(1,)))
        b = view_b(make((4, 5), np.float64, seed=(2,)))
        check(lambda a, b: fns[fn](tnp, a, b), lambda a, b: fns[fn](np, a, b), a, b)


# --------------------------------------------------------- tracer attributes
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3, 1, 4)], ids=str)
@pytest.mark.parametrize("dt", DTYPES, ids=dt_name)
def test_tracer_shape_dtype_ndim_size_and_len_are_numpys(shape, dt):
    x = make(shape, dt)
    seen = {}

    def f(a):
        seen.update(shape=a.shape, dtype=a.dtype, ndim=a.ndim, size=a.size, len=len(a) if a.ndim else None,
                    tnp=(tnp.shape(a), tnp.ndim(a), tnp.size(a)))
        return a

    tg.jit(f)(x)
    assert seen == dict(shape=x.shape, dtype=x.dtype, ndim=x.ndim, size=x.size, len=len(x) if x.ndim else None,
                        tnp=(x.shape, x.ndim, x.size))
    assert seen["dtype"] == dt and isinstance(seen["dtype"], np.dtype)


def test_ravel_and_flatten_methods():
    x = make((2, 3, 4), np.int32)
    check_jit(lambda a: a.ravel(), np.ravel, x)
    check_jit(lambda a: a.flatten(), lambda a: a.flatten(), x)
