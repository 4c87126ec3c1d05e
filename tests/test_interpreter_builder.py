"""The reference interpreter and the builders: hand-built graphs run as NumPy
says, bad arguments are refused clearly, the GraphBuilder hash-conses, the
NumpyBuilder checks the same shape rules, and constants are stored sensibly."""

import numpy as np
import pytest

import ir
from ir import Constant, GraphBuilder, Literal, NumpyBuilder, Primitive, ShapedType

f32, f64, i32, i64 = np.float32, np.float64, np.int32, np.int64
rng = np.random.default_rng(0)


def T(shape, dtype=f32) -> ShapedType:
    return ShapedType(shape, dtype)


def _run(build, arg_types, args):
    """Build a graph with ``build(b, *inputs) -> outputs`` and evaluate it."""
    b = GraphBuilder()
    ins = [b.new_input(t) for t in arg_types]
    outs = build(b, *ins)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    g = ir.verify(b.build(ins, outs))
    return ir.evaluate(g, args)


# ------------------------------------------------------------ interpreter
def test_elementwise_graph_agrees_with_numpy():
    x = rng.standard_normal((3, 4)).astype(f32)
    y = rng.standard_normal((3, 4)).astype(f32)

    def build(b, x, y):
        s = b.add(b.mul(x, y), b.literal(2.0, f32))
        return b.select(b.gt(x, y), b.tanh(s), b.exp(b.neg(x)))

    (got,) = _run(build, [T((3, 4)), T((3, 4))], [x, y])
    want = np.where(x > y, np.tanh(x * y + f32(2.0)), np.exp(-x))
    assert got.dtype == f32
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_matmul_broadcast_and_reductions_agree_with_numpy():
    x = rng.standard_normal((5, 3))
    w = rng.standard_normal((3, 4))
    bias = rng.standard_normal(4)

    def build(b, x, w, bias):
        h = b.dot_general(x, w, dimension_numbers=(((1,), (0,)), ((), ())))
        h = b.add(h, b.broadcast_in_dim(bias, shape=(5, 4), broadcast_dimensions=(1,)))
        return b.reduce_sum(h, axes=(0,)), b.reduce_max(h, axes=(0, 1)), b.argmax(h, axis=1, index_dtype=np.dtype(i32))

    s, m, am = _run(build, [T((5, 3), f64), T((3, 4), f64), T((4,), f64)], [x, w, bias])
    h = x @ w + bias
    np.testing.assert_allclose(s, h.sum(axis=0))
    np.testing.assert_allclose(m, h.max())
    np.testing.assert_array_equal(am, h.argmax(axis=1).astype(i32))
    assert am.dtype == i32 and m.shape == ()


def test_batched_dot_general_agrees_with_einsum():
    a = rng.standard_normal((2, 3, 4))
    c = rng.standard_normal((2, 4, 5))

    def build(b, a, c):
        return b.dot_general(a, c, dimension_numbers=(((2,), (1,)), ((0,), (0,))))

    (got,) = _run(build, [T((2, 3, 4), f64), T((2, 4, 5), f64)], [a, c])
    np.testing.assert_allclose(got, np.einsum("bij,bjk->bik", a, c))


def test_data_movement_primitives_agree_with_numpy():
    x = np.arange(24, dtype=i64).reshape(2, 3, 4)
    idx = np.array([[1, 0], [0, 1]], dtype=i32)

    def build(b, x, idx):
        return (b.transpose(x, permutation=(2, 0, 1)),
                b.reshape(x, new_sizes=(6, 4)),
                b.slice(x, start_indices=(0, 1, 0), limit_indices=(2, 3, 4), strides=(1, 1, 2)),
                b.rev(x, dimensions=(1,)),
                b.concatenate(x, x, dimension=2),
                b.gather(x, idx),
                b.iota(dtype=np.dtype(i32), shape=(2, 3), dimension=1),
                b.convert_element_type(x, dtype=np.dtype(f32)))

    got = _run(build, [T((2, 3, 4), i64), T((2, 2), i32)], [x, idx])
    want = [x.transpose(2, 0, 1), x.reshape(6, 4), x[0:2, 1:3, 0:4:2], x[:, ::-1], np.concatenate([x, x], 2),
            x[idx], np.broadcast_to(np.arange(3, dtype=i32), (2, 3)), x.astype(f32)]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_a_graph_output_may_be_an_input_or_a_literal():
    x = np.arange(3.0)
    got = _run(lambda b, x: (x, Literal(7, i32)), [T((3,), f64)], [x])
    np.testing.assert_array_equal(got[0], x)
    assert got[1] == 7 and got[1].dtype == i32


def test_ieee_results_are_values_not_warnings():
    with np.errstate(all="raise"):
        (got,) = _run(lambda b, x: b.div(x, b.literal(0.0, f64)), [T((3,), f64)], [np.array([1.0, -1.0, 0.0])])
    assert got[0] == np.inf and got[1] == -np.inf and np.isnan(got[2])


def _exp_graph():
    b = GraphBuilder()
    x = b.new_input(T((3,)))
    return b.build([x], [b.exp(x)], name="g")


def test_interpreter_rejects_a_wrong_number_of_arguments():
    g = _exp_graph()
    with pytest.raises(TypeError, match=r"graph 'g' takes 1 arguments, got 0"):
        ir.evaluate(g, [])
    with pytest.raises(TypeError, match=r"takes 1 arguments, got 2"):
        ir.evaluate(g, [np.ones(3, f32), np.ones(3, f32)])


def test_interpreter_rejects_a_wrong_shape():
    with pytest.raises(ir.ShapeError, match=r"argument 0 of graph 'g' has shape \(4,\), expected f32\[3\]"):
        ir.evaluate(_exp_graph(), [np.ones(4, f32)])


def test_interpreter_rejects_a_wrong_dtype_instead_of_converting():
    with pytest.raises(ir.DTypeError, match=r"argument 0 of graph 'g' has dtype float64, expected f32\[3\]"):
        ir.evaluate(_exp_graph(), [np.ones(3)])


def test_interpreter_reports_an_implementation_that_breaks_its_shape_rule():
    liar = Primitive("test_liar", lambda x: [x], lambda x: [x.astype(f64)], "test", "claims f32, computes f64")
    ir.REGISTRY["test_liar"] = liar
    try:
        b = GraphBuilder()
        x = b.new_input(T((3,)))
        g = b.build([x], b.bind(liar, x))
        with pytest.raises(ir.InterpreterError, match=r"test_liar computed f64\[3\] where its shape rule says f32"):
            ir.evaluate(g, [np.ones(3, f32)])
    finally:
        del ir.REGISTRY["test_liar"]


# ------------------------------------------------------------ hash-consing
def test_the_same_equation_built_twice_is_one_equation():
    b = GraphBuilder()
    x, y = b.new_input(T((3,))), b.new_input(T((3,)))
    first = b.mul(x, y)
    second = b.mul(x, y)
    assert first is second
    assert len(b.eqns) == 1
    s1 = b.reduce_sum(first, axes=(0,))
    s2 = b.reduce_sum(second, axes=(0,))
    assert s1 is s2 and len(b.eqns) == 2


def test_equal_literals_are_one_equation_however_they_were_made():
    b = GraphBuilder()
    x = b.new_input(T((3,)))
    assert b.mul(x, Literal(2.0, f32)) is b.mul(x, b.literal(2, f32))
    assert b.mul(x, Literal(np.nan, f32)) is b.mul(x, Literal(float("nan"), f32))  # NaN is itself
    assert len(b.eqns) == 2


def test_negative_zero_and_zero_literals_do_not_merge():
    b = GraphBuilder()
    x = b.new_input(T((3,)))
    plus = b.add(x, Literal(0.0, f32))
    minus = b.add(x, Literal(-0.0, f32))
    assert plus is not minus and len(b.eqns) == 2
    g = b.build([x], [plus, minus])
    p, m = ir.evaluate(g, [np.full(3, -0.0, f32)])
    assert not np.signbit(p).any() and np.signbit(m).all()  # -0 + 0 = 0, -0 + -0 = -0


def test_different_params_or_inputs_or_primitives_do_not_merge():
    b = GraphBuilder()
    x, y = b.new_input(T((3, 4))), b.new_input(T((3, 4)))
    assert b.reduce_sum(x, axes=(0,)) is not b.reduce_sum(x, axes=(1,))
    assert b.add(x, y) is not b.add(y, x)  # structural: operand order counts
    assert b.add(x, y) is not b.mul(x, y)
    assert b.reshape(x, new_sizes=(12,)) is not b.reshape(x, new_sizes=(4, 3))
    assert len(b.eqns) == 7


def test_hash_consing_can_be_switched_off():
    b = GraphBuilder(hash_cons=False)
    x = b.new_input(T((3,)))
    assert b.exp(x) is not b.exp(x)
    assert len(b.eqns) == 2


def test_equal_constants_merge_by_content_not_by_identity():
    b = GraphBuilder()
    c1 = b.constant(np.arange(4, dtype=f32))
    c2 = b.constant(np.arange(4, dtype=f32))
    c3 = b.constant(np.arange(4, dtype=f32).reshape(2, 2))  # same bytes, other shape
    c4 = b.constant(np.arange(4, dtype=i32))  # other dtype
    assert c1 is c2
    assert len({id(c) for c in (c1, c3, c4)}) == 3
    assert [e.prim.name for e in b.eqns] == ["constant"] * 3


# --------------------------------------------------------------- constants
def test_a_literal_owns_a_read_only_copy_of_its_value():
    source = np.array(2.5)
    lit = Literal(source)
    source[()] = 0.0
    assert lit.value == 2.5 and lit.type == T((), f64)
    assert not lit.value.flags.writeable
    with pytest.raises(ValueError, match="a Literal is a scalar"):
        Literal(np.ones(2))



def test_a_0d_value_becomes_a_literal_without_an_equation():
    b = GraphBuilder()
    lit = b.constant(np.float32(1.5))
    assert isinstance(lit, Literal) and lit.type == T(())
    assert b.eqns == []


@pytest.mark.parametrize("value, literal", [
    (np.zeros((512, 512), f32), "0.0:f32"),
    (np.full((2, 3), 7, i64), "7:i64"),
    (np.ones(4, bool), "True:bool"),
    (np.full(3, np.nan), "nan:f64"),
])
def test_a_uniform_array_becomes_a_broadcast_literal(value, literal):
    b = GraphBuilder()
    atom = b.constant(value)
    (eqn,) = b.eqns
    assert eqn.prim.name == "broadcast_in_dim"
    assert eqn.params == {"shape": value.shape, "broadcast_dimensions": ()}
    assert isinstance(eqn.inputs[0], Literal)
    assert f"= broadcast_in_dim[shape={value.shape}, broadcast_dimensions=()] {literal}" in str(b.build([], [atom]))
    (got,) = ir.evaluate(b.build([], [atom]), [])
    np.testing.assert_array_equal(got, value)


@pytest.mark.parametrize("value", [
    np.arange(6, dtype=f32).reshape(2, 3),
    np.array([0.0, -0.0]),  # equal as numbers, not as bits
    np.array([5], i32),
    np.arange(10.0)[::3],  # a strided view
    np.array([True, False]),
])
def test_a_non_uniform_array_becomes_a_constant_equation(value):
    b = GraphBuilder()
    atom = b.constant(value)
    (eqn,) = b.eqns
    assert eqn.prim.name == "constant"
    assert isinstance(eqn.params["value"], Constant)
    (got,) = ir.evaluate(b.build([], [atom]), [])
    assert got.dtype == value.dtype
    np.testing.assert_array_equal(got, value)
    assert np.signbit(got).tolist() == np.signbit(value).tolist()


def test_a_constant_keeps_its_value_when_the_source_array_changes():
    arr = np.arange(3.0)
    b = GraphBuilder()
    atom = b.constant(arr)
    arr[0] = 99.0
    (got,) = ir.evaluate(b.build([], [atom]), [])
    np.testing.assert_array_equal(got, [0.0, 1.0, 2.0])
    assert not b.eqns[0].params["value"].array.flags.writeable


# ---------------------------------------------------------------- builders
def test_numpy_builder_computes_at_once():
    nb = NumpyBuilder()
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(nb.exp(nb.mul(x, x)), np.exp(x * x))
    assert nb.and_(np.array([True, False]), np.array([True, True])).tolist() == [True, False]


def test_numpy_builder_checks_the_same_shape_rules_as_tracing():
    nb = NumpyBuilder()
    with pytest.raises(ir.ShapeError, match=r"add: operand shapes differ \(f64\[3\], f64\[4\]\)"):
        nb.add(np.ones(3), np.ones(4))
    with pytest.raises(ir.DTypeError, match=r"operands must share one dtype"):
        nb.add(np.ones(3), np.ones(3, f32))
    with pytest.raises(ir.ShapeError, match=r"axes \(2,\)"):
        nb.reduce_sum(np.ones((2, 2)), axes=(2,))
    with pytest.raises(ir.DTypeError, match=r"exp takes floating values"):
        nb.exp(np.arange(3))


def test_unknown_primitive_methods_raise_attribute_error():
    for b in (NumpyBuilder(), GraphBuilder()):
        with pytest.raises(AttributeError, match="no method or primitive 'frobnicate'"):
            b.frobnicate


def _rule(b, x, y):
    """A derivative-rule-like helper chain written once against the Builder interface."""
    z = b.mul(b.broadcast_to(y, (2, 3)), x)
    z = b.add(z, b.full((2, 3), 0.5, np.float64))
    return b.sum_to_shape(b.convert(z, np.dtype(f64)), (3,)), b.zeros_like(x)


def test_builder_helpers_give_the_same_result_on_both_builders():
    x = rng.standard_normal((2, 3))
    y = rng.standard_normal(3)
    eager = _rule(NumpyBuilder(), x, y)
    traced = _run(_rule, [T((2, 3), f64), T((3,), f64)], [x, y])
    for e, t in zip(eager, traced):
        np.testing.assert_allclose(e, t)
    np.testing.assert_allclose(eager[0], (x * y + 0.5).sum(axis=0))
    np.testing.assert_array_equal(eager[1], np.zeros((2, 3)))


def test_sum_to_shape_undoes_broadcasting_over_leading_and_size_one_dimensions():
    nb = NumpyBuilder()
    x = rng.standard_normal((4, 2, 3))
    np.testing.assert_allclose(nb.sum_to_shape(x, (1, 3)), x.sum(axis=(0, 1)).reshape(1, 3))
    np.testing.assert_allclose(nb.sum_to_shape(x, (2, 1)), x.sum(axis=(0, 2)).reshape(2, 1))
    np.testing.assert_allclose(nb.sum_to_shape(x, (3,)), x.sum(axis=(0, 1)))
    assert nb.sum_to_shape(x, (4, 2, 3)) is x
