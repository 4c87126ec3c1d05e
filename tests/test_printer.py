"""Golden tests of the text dump, and the networkx and DOT views of a graph."""

import inspect
import os
import re

import numpy as np
import pytest

import ir
import tracegrad as tg
import tracegrad.numpy as tnp
from ir import GraphBuilder, Primitive, ShapedType

f32 = np.float32


def _line_of(fn, marker: str) -> int:
    """Line number in this file of the line of ``fn`` that contains ``marker``."""
    lines, start = inspect.getsourcelines(fn)
    (offset,) = [i for i, text in enumerate(lines) if marker in text]
    return start + offset


# ------------------------------------------------------------------ programs
def affine(x, b):
    y = tnp.exp(x + b) * 2.0  # marker: first
    return y.sum(axis=1)  # marker: second


def two_outputs(x, y):
    c = x * y
    d = tnp.exp(c)
    e = d - x
    f = tnp.sum(e)
    return e, f


AFFINE = """\
def affine(a: f32[3,4], b: f32[4]) -> f32[3]:
    c: f32[3,4] = broadcast_in_dim[shape=(3, 4), broadcast_dimensions=(1,)] b
    d: f32[3,4] = add a c
    e: f32[3,4] = exp d
    f: f32[3,4] = mul e 2.0:f32
    g: f32[3] = reduce_sum[axes=(1,)] f
    return g"""


def test_dump_types_every_variable_and_writes_params_in_brackets_and_literals_inline():
    g = tg.make_ir(affine)(np.ones((3, 4), f32), np.ones(4, f32))
    assert str(g) == AFFINE


def test_dump_with_source_adds_the_users_file_and_line_to_each_equation():
    g = tg.make_ir(affine)(np.ones((3, 4), f32), np.ones(4, f32))
    first, second = _line_of(affine, "marker: first"), _line_of(affine, "marker: second")
    here = os.path.basename(__file__)
    expected = AFFINE.splitlines()
    for i in range(1, 5):
        expected[i] += f"  # {here}:{first}"
    expected[5] += f"  # {here}:{second}"
    assert g.format(source=True) == "\n".join(expected)
    assert g.format(source=False) == str(g)


def test_dump_of_several_outputs_lists_their_types_and_returns_a_tuple():
    g = tg.make_ir(two_outputs)(np.ones(3, f32), np.ones(3, f32))
    assert str(g) == """\
def two_outputs(a: f32[3], b: f32[3]) -> (f32[3], f32[]):
    c: f32[3] = mul a b
    d: f32[3] = exp c
    e: f32[3] = sub d a
    f: f32[] = reduce_sum[axes=(0,)] e
    return (e, f)"""


def test_two_traces_of_one_function_print_the_same_names():
    x = np.ones((3, 4), f32)
    b = np.ones(4, f32)
    first = tg.make_ir(affine)(x, b)
    second = tg.make_ir(affine)(x, b)
    assert first.inputs[0] is not second.inputs[0]  # different Vars...
    assert str(first) == str(second)  # ...the same text


def test_literals_print_with_their_dtype_including_ints_bools_and_negative_zero():
    def f(x):
        return x > 0.0, x.astype(np.int32) * 3, tnp.where(x > 0.0, x, -0.0), tnp.logical_and(x > 0.0, True)

    text = str(tg.make_ir(f)(np.ones(2, f32)))
    assert "gt a 0.0:f32" in text
    assert "mul c 3:i32" in text
    assert "-0.0:f32" in text
    assert "True:bool" in text
    assert "-> (bool[2], i32[2], f32[2], bool[2])" in text.splitlines()[0]


def test_small_constants_print_inline_and_large_ones_abridged():
    small = np.array([1.0, 2.0, 3.0], f32)
    large = np.arange(12, dtype=f32).reshape(3, 4)

    def f(x, y):
        return x * small, y + large

    assert str(tg.make_ir(f)(np.ones(3, f32), np.ones((3, 4), f32))) == """\
def f(a: f32[3], b: f32[3,4]) -> (f32[3], f32[3,4]):
    c: f32[3] = constant[value=[1.,2.,3.]]
    d: f32[3] = mul a c
    e: f32[3,4] = constant[value=<f32[3,4] array>]
    f: f32[3,4] = add b e
    return (d, f)"""


def test_a_uniform_constant_prints_as_a_broadcast_literal():
    g = tg.make_ir(lambda x: x + np.full(3, 0.5, f32))(np.ones(3, f32))
    assert "broadcast_in_dim[shape=(3,), broadcast_dimensions=()] 0.5:f32" in str(g)
    assert "constant" not in str(g)


def test_a_graph_that_returns_its_input_and_a_literal():
    b = GraphBuilder()
    x = b.new_input(ShapedType((2,), np.float64))
    g = b.build([x], [x, ir.Literal(1.5, np.float32)], name="g")
    assert str(g) == "def g(a: f64[2]) -> (f64[2], f32[]):\n    return (a, 1.5:f32)"


# ------------------------------------------------------------ sub-graphs
@pytest.fixture
def test_call():
    """A tiny control-flow-like primitive whose ``body`` param is a Graph,
    registered for one test and removed afterwards."""

    def rule(*in_types, body, tag=None):
        if list(in_types) != body.in_types:
            raise ir.ShapeError(f"test_call: operands {in_types} do not match body inputs {body.in_types}")
        return list(body.out_types)

    prim = Primitive("test_call", rule, lambda *xs, body, tag=None: ir.evaluate(body, xs), "test",
                     "call the `body` graph on the operands")
    assert "test_call" not in ir.REGISTRY
    ir.REGISTRY["test_call"] = prim
    yield prim
    del ir.REGISTRY["test_call"]


@pytest.fixture
def test_switch():
    """Like test_call with a tuple of graphs (``branches``) in its params; runs the first."""
    prim = Primitive("test_switch", lambda *ts, branches: list(branches[0].out_types),
                     lambda *xs, branches: ir.evaluate(branches[0], xs), "test", "run branches[0]")
    ir.REGISTRY["test_switch"] = prim
    yield prim
    del ir.REGISTRY["test_switch"]


def _body(name="body"):
    b = GraphBuilder()
    x = b.new_input(ShapedType((3,), f32))
    y = b.exp(x)
    return b.build([x], [b.mul(y, x)], name=name)


def _caller(prim):
    b = GraphBuilder()
    x = b.new_input(ShapedType((3,), f32))
    (o,) = b.bind(prim, x, body=_body())
    z = b.add(o, x)
    return b.build([x], [z, o], name="caller")


def test_a_sub_graph_prints_as_an_indented_block_under_its_equation(test_call):
    g = _caller(test_call)
    assert str(g) == """\
def caller(a: f32[3]) -> (f32[3], f32[3]):
    b: f32[3] = test_call a
        body(c: f32[3]) -> f32[3]:
            d: f32[3] = exp c
            e: f32[3] = mul d c
            return e
    f: f32[3] = add b a
    return (f, b)"""
    ir.verify(g)
    x = np.array([0.0, 1.0, 2.0], f32)
    got_z, got_o = ir.evaluate(g, [x])
    np.testing.assert_allclose(got_o, np.exp(x) * x, rtol=1e-6)
    np.testing.assert_allclose(got_z, np.exp(x) * x + x, rtol=1e-6)


def test_nested_sub_graphs_and_other_params_print_at_their_depth(test_call):
    inner = _caller(test_call)  # holds a sub-graph of its own
    b = GraphBuilder()
    x = b.new_input(ShapedType((3,), f32))
    outs = b.bind(test_call, x, body=inner, tag="loop")
    s = b.reduce_sum(outs[0], axes=(0,))
    g = b.build([x], [s], name="outer")
    assert str(g) == """\
def outer(a: f32[3]) -> f32[]:
    b: f32[3], c: f32[3] = test_call[tag='loop'] a
        body(d: f32[3]) -> (f32[3], f32[3]):
            e: f32[3] = test_call d
                body(f: f32[3]) -> f32[3]:
                    g: f32[3] = exp f
                    h: f32[3] = mul g f
                    return h
            i: f32[3] = add e d
            return (i, e)
    j: f32[] = reduce_sum[axes=(0,)] b
    return j"""
    ir.verify(g)


def test_a_tuple_of_sub_graphs_prints_one_block_per_graph_labelled_by_index(test_switch):
    b = GraphBuilder()
    x = b.new_input(ShapedType((3,), f32))
    (o,) = b.bind(test_switch, x, branches=(_body("left"), _body("right")))
    g = b.build([x], [b.neg(o)], name="sw")
    assert str(g) == """\
def sw(a: f32[3]) -> f32[3]:
    b: f32[3] = test_switch a
        branches[0](c: f32[3]) -> f32[3]:
            d: f32[3] = exp c
            e: f32[3] = mul d c
            return e
        branches[1](f: f32[3]) -> f32[3]:
            g: f32[3] = exp f
            h: f32[3] = mul g f
            return h
    i: f32[3] = neg b
    return i"""


# --------------------------------------------------------------- networkx
def test_to_networkx_has_a_node_per_variable_and_equation_and_edges_through_them():
    g = tg.make_ir(two_outputs)(np.ones(3, f32), np.ones(3, f32))
    nxg = g.to_networkx()
    var_nodes = {n for n, d in nxg.nodes(data=True) if d["kind"] == "var"}
    eqn_nodes = {n for n, d in nxg.nodes(data=True) if d["kind"] == "eqn"}
    assert var_nodes == set("abcdef")
    assert eqn_nodes == {"eqn0", "eqn1", "eqn2", "eqn3"}
    assert [nxg.nodes[f"eqn{k}"]["prim"] for k in range(4)] == ["mul", "exp", "sub", "reduce_sum"]
    assert nxg.nodes["eqn3"]["params"] == {"axes": (0,)}
    assert nxg.nodes["a"]["type"] == "f32[3]" and nxg.nodes["f"]["type"] == "f32[]"
    assert nxg.nodes["a"]["graph_input"] and nxg.nodes["b"]["graph_input"]
    assert nxg.nodes["e"].get("graph_output") and nxg.nodes["f"].get("graph_output")
    assert not nxg.nodes["c"].get("graph_output")
    assert set(nxg.edges()) == {
        ("a", "eqn0"), ("b", "eqn0"), ("eqn0", "c"),
        ("c", "eqn1"), ("eqn1", "d"),
        ("d", "eqn2"), ("a", "eqn2"), ("eqn2", "e"),
        ("e", "eqn3"), ("eqn3", "f"),
    }
    import networkx as nx

    assert nx.is_directed_acyclic_graph(nxg)


def test_to_networkx_records_source_lines_and_the_parent_of_sub_graph_equations(test_call):
    g = tg.make_ir(affine)(np.ones((3, 4), f32), np.ones(4, f32))
    line = _line_of(affine, "marker: second")
    assert g.to_networkx().nodes["eqn4"]["source"] == f"{os.path.basename(__file__)}:{line}"

    nxg = _caller(test_call).to_networkx()
    assert nxg.nodes["eqn0"]["prim"] == "test_call" and "parent" not in nxg.nodes["eqn0"]
    assert nxg.nodes["eqn1"]["prim"] == "exp" and nxg.nodes["eqn1"]["parent"] == "eqn0"
    assert nxg.nodes["eqn2"]["prim"] == "mul" and nxg.nodes["eqn2"]["parent"] == "eqn0"
    assert nxg.nodes["eqn3"]["prim"] == "add" and "parent" not in nxg.nodes["eqn3"]
    assert nxg.nodes["c"]["graph_input"] is False  # the body's input is not the program's


# -------------------------------------------------------------------- DOT
_NODE = re.compile(r'^  "([^"]+)" \[(shape=(?:ellipse|box)), label="([^"]*)"(, style=bold)?\];$')
_EDGE = re.compile(r'^  "([^"]+)" -> "([^"]+)";$')


def _parse_dot(text: str):
    lines = text.splitlines()
    assert re.fullmatch(r'digraph "[^"]+" \{', lines[0])
    assert lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if line in ("  rankdir=TB;", '  node [fontname="monospace"];'):
            continue
        if m := _NODE.match(line):
            nodes[m.group(1)] = (m.group(2), m.group(3))
        elif m := _EDGE.match(line):
            edges.append((m.group(1), m.group(2)))
        else:
            raise AssertionError(f"not a DOT statement: {line!r}")
    for a, b in edges:
        assert a in nodes and b in nodes, "an edge names an undeclared node"
    return nodes, edges


def test_to_dot_is_dot_text_with_every_variable_and_equation():
    g = tg.make_ir(affine)(np.ones((3, 4), f32), np.ones(4, f32))
    nodes, edges = _parse_dot(g.to_dot())
    here = os.path.basename(__file__)
    assert {n: label for n, (shape, label) in nodes.items() if shape == "shape=ellipse"} == {
        "a": "a: f32[3,4]", "b": "b: f32[4]", "c": "c: f32[3,4]", "d": "d: f32[3,4]",
        "e": "e: f32[3,4]", "f": "f: f32[3,4]", "g": "g: f32[3]"}
    boxes = [label.split("\\n") for n, (shape, label) in sorted(nodes.items()) if shape == "shape=box"]
    assert [b[0] for b in boxes] == ["broadcast_in_dim", "add", "exp", "mul", "reduce_sum"]
    assert all(len(b) == 2 and b[1].startswith(f"{here}:") for b in boxes)
    assert len(edges) == g.to_networkx().number_of_edges() == 11


def test_to_dot_quotes_a_lambdas_name_and_includes_sub_graph_equations(test_call):
    nodes, _ = _parse_dot(tg.make_ir(lambda x: x * 2.0)(np.ones(2, f32)).to_dot())
    assert sorted(label.split("\\n")[0] for _, label in nodes.values()) == ["a: f32[2]", "b: f32[2]", "mul"]
    assert tg.make_ir(lambda x: x)(np.ones(2, f32)).to_dot().startswith('digraph "<lambda>" {')
    nodes, _ = _parse_dot(_caller(test_call).to_dot())
    assert sorted(label for shape, label in nodes.values() if shape == "shape=box") == ["add", "exp", "mul",
                                                                                       "test_call"]
    assert {n for n, (shape, _) in nodes.items() if shape == "shape=ellipse"} == set("abcdef")


# ------------------------------------------------------------------ types
@pytest.mark.parametrize("text", ["f32[3,4]", "f64[]", "i32[0]", "i64[2,1,5]", "bool[7]"])
def test_a_printed_type_reads_back(text):
    t = ShapedType.parse(text)
    assert str(t) == text
    assert ShapedType.parse(str(t)) == t


@pytest.mark.parametrize("text, words", [
    ("float32[3]", "write it as dtype[dims]"),
    ("f32[3", "write it as dtype[dims]"),
    ("f32[a]", "must be integers"),
    ("f32[-1]", "negative dimension"),
])
def test_an_unreadable_type_says_how_to_write_it(text, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        ShapedType.parse(text)
