"""Pytrees: flatten / unflatten round trips, dict key order, None, leaf paths."""

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad import tree


@pytest.mark.parametrize("value", [
    1.0,
    (),
    [],
    {},
    (1, 2),
    [1, (2, 3), [4]],
    {"w": 1, "b": (2, 3)},
    {"layers": [{"w": 1, "b": 2}, {"w": 3, "b": 4}], "scale": 5},
    (None, 1, {"a": None}),
    ((1,),),
])
def test_flatten_then_unflatten_rebuilds_the_same_tree(value):
    leaves, td = tree.flatten(value)
    rebuilt = tree.unflatten(td, leaves)
    assert rebuilt == value
    assert type(rebuilt) is type(value)
    assert td.num_leaves == len(leaves)


def test_leaves_come_in_depth_first_order():
    leaves, _ = tree.flatten([1, (2, 3), {"z": 4, "a": 5}, 6])
    assert leaves == [1, 2, 3, 5, 4, 6]


def test_dicts_flatten_in_sorted_key_order_whatever_the_insertion_order():
    leaves1, td1 = tree.flatten({"b": 1, "a": 2, "c": 3})
    leaves2, td2 = tree.flatten({"c": 3, "a": 2, "b": 1})
    assert leaves1 == leaves2 == [2, 1, 3]
    assert td1 == td2 and hash(td1) == hash(td2)
    assert tree.unflatten(td1, [10, 20, 30]) == {"a": 10, "b": 20, "c": 30}


def test_none_is_an_empty_subtree_not_a_leaf():
    leaves, td = tree.flatten({"a": None, "b": (None, 7)})
    assert leaves == [7]
    assert tree.unflatten(td, [8]) == {"a": None, "b": (None, 8)}
    assert tree.flatten(None) == ([], tree.TreeDef("none"))


def test_tuple_and_list_are_different_structures():
    assert tree.flatten((1, 2))[1] != tree.flatten([1, 2])[1]
    assert tree.flatten((1, 2))[1] != tree.flatten((1, (2,)))[1]
    assert tree.flatten({"a": 1})[1] != tree.flatten({"b": 1})[1]


def test_arrays_are_leaves_and_are_returned_as_the_same_objects():
    a, b = np.ones(3), np.zeros((2, 2))
    leaves, td = tree.flatten({"x": a, "y": [b]})
    assert leaves[0] is a and leaves[1] is b
    out = tree.unflatten(td, leaves)
    assert out["x"] is a and out["y"][0] is b


def test_treedef_prints_its_structure():
    _, td = tree.flatten({"w": 1, "b": [2, None], "c": (3,)})
    assert str(td) == "{'b': [*, None], 'c': (*,), 'w': *}"


def test_leaf_paths_name_every_leaf_with_indices_and_keys():
    _, td = tree.flatten({"w": 1, "layers": [(2, 3), {"b": 4}], "none": None})
    assert tree.leaf_paths(td, "params") == [
        "params['layers'][0][0]", "params['layers'][0][1]", "params['layers'][1]['b']", "params['w']"]
    assert tree.leaf_paths(tree.flatten(5)[1], "x") == ["x"]


def test_tree_map_applies_a_function_leafwise_over_matching_trees():
    out = tree.tree_map(lambda a, b: a + 10 * b, {"a": (1, 2), "b": 3}, {"a": (4, 5), "b": 6})
    assert out == {"a": (41, 52), "b": 63}


@pytest.mark.parametrize("n", [1, 3])
def test_unflatten_refuses_the_wrong_number_of_leaves(n):
    _, td = tree.flatten({"a": 1, "b": (2,)})
    with pytest.raises(ValueError, match=r"has 2 leaves, got " + str(n)):
        tree.unflatten(td, list(range(n)))


def test_namedtuples_are_nodes_that_keep_their_class():
    from collections import namedtuple

    Params = namedtuple("Params", ["w", "b"])
    p = Params(np.ones(2), (np.zeros(1), None))
    leaves, td = tree.flatten(p)
    assert len(leaves) == 2 and str(td) == "Params(w=*, b=(*, None))"
    back = tree.unflatten(td, leaves)
    assert isinstance(back, Params) and back.b[1] is None
    assert tree.leaf_paths(td, "p") == ["p.w", "p.b[0]"]


def test_jit_and_grad_take_and_return_namedtuples():
    from collections import namedtuple

    Params = namedtuple("Params", ["w", "b"])
    p = Params(np.array([1.0, 2.0]), np.array(0.5))
    g = tg.jit(tg.grad(lambda p: tnp.sum(p.w * p.w) + p.b))(p)
    assert isinstance(g, Params)
    np.testing.assert_allclose(g.w, [2.0, 4.0])
    np.testing.assert_allclose(g.b, 1.0)
