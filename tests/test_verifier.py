"""The verifier: one malformed graph per rule, each rejected with a message
that names the problem; and every traced program verifies."""

import numpy as np
import pytest

import ir
import tracegrad as tg
import tracegrad.numpy as tnp
from ir import Eqn, Graph, GraphBuilder, Literal, Primitive, ShapedType, Var

F3 = ShapedType((3,), np.float32)
F4 = ShapedType((4,), np.float32)
F = ir.REGISTRY


def _raises(graph: Graph, *words: str) -> str:
    with pytest.raises(ir.VerificationError) as info:
        ir.verify(graph)
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    return msg


def _good():
    b = GraphBuilder()
    x, y = b.new_input(F3), b.new_input(F3)
    return b.build([x, y], [b.mul(b.add(x, y), x)], name="good")


def test_a_well_formed_graph_verifies_and_is_returned_unchanged():
    g = _good()
    before = str(g)
    assert ir.verify(g) is g
    assert str(g) == before


def test_verification_error_is_an_assertion_error():
    assert issubclass(ir.VerificationError, AssertionError)
    assert issubclass(ir.VerificationError, ir.TracegradError)


def test_use_before_definition():
    x, y, z = Var(F3), Var(F3), Var(F3)
    # z is read by the first equation but only defined by the second
    g = Graph([x], [Eqn(F["add"], [x, z], {}, [y]), Eqn(F["neg"], [x], {}, [z])], [y], name="early")
    _raises(g, "graph 'early'", "equation 0", "used before it is defined")


def test_a_variable_read_but_never_defined():
    x, y, ghost = Var(F3), Var(F3), Var(F3)
    g = Graph([x], [Eqn(F["mul"], [x, ghost], {}, [y])], [y])
    _raises(g, "used before it is defined")


def test_a_variable_defined_twice_breaks_ssa():
    x, y = Var(F3), Var(F3)
    g = Graph([x], [Eqn(F["neg"], [x], {}, [y]), Eqn(F["exp"], [x], {}, [y])], [y])
    _raises(g, "equation 1", "defined more than once (SSA)")


def test_an_equation_may_not_redefine_a_graph_input():
    x = Var(F3)
    g = Graph([x], [Eqn(F["neg"], [x], {}, [x])], [x])
    _raises(g, "defined more than once (SSA)")


def test_the_same_input_listed_twice_breaks_ssa():
    x = Var(F3)
    g = Graph([x, x], [], [x])
    _raises(g, "defined more than once")


def test_output_type_must_be_what_the_shape_rule_derives():
    x = Var(F3)
    wrong = Var(ShapedType((3,), np.float64))
    g = Graph([x], [Eqn(F["exp"], [x], {}, [wrong])], [wrong])
    _raises(g, "output 0 is declared f64[3] but exp produces f32[3]")


def test_output_shape_must_be_what_the_shape_rule_derives():
    x = Var(ShapedType((3, 4), np.float32))
    wrong = Var(F4)
    g = Graph([x], [Eqn(F["reduce_sum"], [x], {"axes": (1,)}, [wrong])], [wrong])
    _raises(g, "declared f32[4] but reduce_sum produces f32[3]")


def test_wrong_number_of_outputs():
    x, y, z = Var(F3), Var(F3), Var(F3)
    g = Graph([x], [Eqn(F["neg"], [x], {}, [y, z])], [y])
    _raises(g, "neg produces 1 outputs, the equation has 2")


def test_the_shape_rule_rejects_mismatched_operands():
    x, y, z = Var(F3), Var(F4), Var(F3)
    g = Graph([x, y], [Eqn(F["add"], [x, y], {}, [z])], [z])
    _raises(g, "the shape rule rejects the inputs", "f32[3]", "f32[4]")


def test_the_shape_rule_rejects_mixed_dtypes_and_bad_params():
    x, y, z = Var(F3), Var(ShapedType((3,), np.float64)), Var(F3)
    _raises(Graph([x, y], [Eqn(F["mul"], [x, y], {}, [z])], [z]), "the shape rule rejects", "dtype")
    x, z = Var(F3), Var(ShapedType((), np.float32))
    _raises(Graph([x], [Eqn(F["reduce_sum"], [x], {"axes": (2,)}, [z])], [z]), "the shape rule rejects", "axes")
    _raises(Graph([x], [Eqn(F["reduce_sum"], [x], {}, [z])], [z]), "the shape rule rejects", "axes")


def test_an_unregistered_primitive_is_rejected():
    rogue = Primitive("rogue", lambda x: [x], lambda x: [x], "test", "not in the table")
    x, y = Var(F3), Var(F3)
    _raises(Graph([x], [Eqn(rogue, [x], {}, [y])], [y]), "primitive rogue is not registered")


def test_a_look_alike_of_a_registered_primitive_is_rejected():
    impostor = Primitive("exp", F["exp"].shape_rule, np.exp, "test", "same name, not the registered record")
    x, y = Var(F3), Var(F3)
    _raises(Graph([x], [Eqn(impostor, [x], {}, [y])], [y]), "is not registered")


def test_an_undefined_graph_output_is_rejected():
    x, y = Var(F3), Var(F3)
    _raises(Graph([x], [], [y]), "graph output", "used before it is defined")


def test_a_literal_output_is_allowed():
    x = Var(F3)
    ir.verify(Graph([x], [], [x, Literal(1.0, np.float32)]))


def test_an_input_that_is_neither_var_nor_literal_is_rejected():
    x, y = Var(F3), Var(F3)
    g = Graph([x], [Eqn(F["add"], [x, np.ones(3, np.float32)], {}, [y])], [y])
    _raises(g, "is neither a Var nor a Literal")


def test_params_must_be_hashable():
    x, y = Var(F3), Var(ShapedType((), np.float32))
    g = Graph([x], [Eqn(F["reduce_sum"], [x], {"axes": np.array([0])}, [y])], [y])
    _raises(g, "params must be hashable", "ndarray")


# ----------------------------------------------------------- sub-graphs
@pytest.fixture
def test_call():
    prim = Primitive("test_call", lambda *ts, body: list(body.out_types),
                     lambda *xs, body: ir.evaluate(body, xs), "test", "call `body`")
    assert "test_call" not in ir.REGISTRY
    ir.REGISTRY["test_call"] = prim
    yield prim
    del ir.REGISTRY["test_call"]


def _call(prim, body: Graph, name="outer") -> Graph:
    x, out = Var(F3), Var(F3)
    return Graph([x], [Eqn(prim, [x], {"body": body}, [out])], [out], name=name)


def test_a_well_formed_sub_graph_verifies(test_call):
    ir.verify(_call(test_call, _good()))


def test_an_error_inside_a_sub_graph_is_found_and_located(test_call):
    a, b, c = Var(F3), Var(F4), Var(F3)
    body = Graph([a, b], [Eqn(F["add"], [a, b], {}, [c])], [c], name="bad_body")
    _raises(_call(test_call, body), "in graph 'bad_body'", "the shape rule rejects")


def test_a_sub_graph_may_not_read_a_variable_of_the_enclosing_graph(test_call):
    x, out = Var(F3), Var(F3)
    a, c = Var(F3), Var(F3)
    body = Graph([a], [Eqn(F["mul"], [a, x], {}, [c])], [c], name="closure")  # x belongs to the outer graph
    g = Graph([x], [Eqn(test_call, [x], {"body": body}, [out])], [out])
    _raises(g, "in graph 'closure'", "used before it is defined")


def test_a_sub_graph_may_not_redefine_an_outer_variable(test_call):
    x, out = Var(F3), Var(F3)
    c = Var(F3)
    body = Graph([x], [Eqn(F["neg"], [x], {}, [c])], [c], name="reuse")  # x is also the outer input
    g = Graph([x], [Eqn(test_call, [x], {"body": body}, [out])], [out])
    _raises(g, "defined more than once")


def test_one_sub_graph_shared_by_two_equations_verifies(test_call):
    body = _good()
    b = GraphBuilder()
    x = b.new_input(F3)
    (o1,) = b.bind(test_call, x, x, body=body)
    (o2,) = b.bind(test_call, o1, x, body=body)
    ir.verify(b.build([x], [o2]))


# ----------------------------------------------------- traced programs verify
def _mlp(x, w1, b1, w2):
    h = tnp.tanh(x @ w1 + b1)
    return tnp.mean((h @ w2) ** 2)


SAMPLES = [
    (lambda x, y: x * y + 1.0, [(3, 4), (4,)]),
    (lambda x: tnp.sum(tnp.exp(x) / tnp.sum(tnp.exp(x), axis=1, keepdims=True), axis=0), [(3, 4)]),
    (_mlp, [(5, 4), (4, 8), (8,), (8, 2)]),
    (lambda x: (x.T @ x, x.reshape(12), x[1:, ::2], tnp.max(x, axis=0)), [(3, 4)]),
    (lambda x: tnp.where(x > 0, x, 0.1 * x).astype(np.float64), [(6,)]),
    (lambda x: (tnp.concatenate([x, -x], axis=0), tnp.stack([x, x]), tnp.argmax(x, axis=1)), [(2, 3)]),
    (lambda x: x + np.arange(12.0).reshape(3, 4) + np.zeros((3, 4)), [(3, 4)]),
]


@pytest.mark.parametrize("fn, shapes", SAMPLES)
def test_every_traced_program_verifies(fn, shapes):
    args = [np.ones(s, np.float32) for s in shapes]
    g = tg.make_ir(fn)(*args)
    assert ir.verify(g) is g


def test_messages_use_the_names_of_the_text_dump():
    x, y, z = Var(F3), Var(F3), Var(F3)
    g = Graph([x], [Eqn(F["add"], [x, z], {}, [y]), Eqn(F["neg"], [x], {}, [z])], [y], name="early")
    # str(g) calls x 'a', z 'b' and y 'c' (inputs are named before outputs)
    assert str(g).splitlines()[1].strip() == "c: f32[3] = add a b"
    _raises(g, "`c: f32[3] = add a b`", "input b: f32[3] is used before it is defined")


def test_a_graph_output_that_is_not_an_atom_is_rejected():
    x = Var(F3)
    _raises(Graph([x], [], [x, np.ones(3)]), "graph output", "is neither a Var nor a Literal")
