"""Pytrees: nested tuples, lists and dicts of arrays, flattened to a list of
leaves plus a hashable description of the nesting (a TreeDef).

Dicts flatten in sorted-key order, as JAX does, so ``{'b': .., 'a': ..}`` and
``{'a': .., 'b': ..}`` are the same tree. ``None`` is an empty subtree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class TreeDef:
    """The shape of a pytree: a node kind, its keys or length, and children."""

    kind: str  # "leaf", "none", "tuple", "list", "dict", "namedtuple" (keys: (the class,))
    keys: tuple = ()
    children: tuple = ()

    @property
    def num_leaves(self) -> int:
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)

    def __str__(self) -> str:
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        inner = [str(c) for c in self.children]
        if self.kind == "dict":
            return "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(self.keys, inner)) + "}"
        if self.kind == "list":
            return "[" + ", ".join(inner) + "]"
        if self.kind == "namedtuple":
            cls = self.keys[0]
            return f"{cls.__name__}(" + ", ".join(f"{f}={c}" for f, c in zip(cls._fields, inner)) + ")"
        return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"


LEAF = TreeDef("leaf")


def flatten(tree: Any) -> tuple[list, TreeDef]:
    leaves: list = []
    treedef = _flatten(tree, leaves)
    return leaves, treedef


def _flatten(tree, leaves) -> TreeDef:
    if tree is None:
        return TreeDef("none")
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a namedtuple keeps its class
        return TreeDef("namedtuple", (type(tree),), tuple(_flatten(x, leaves) for x in tree))
    if isinstance(tree, (tuple, list)):
        return TreeDef("list" if isinstance(tree, list) else "tuple", (), tuple(_flatten(x, leaves) for x in tree))
    if isinstance(tree, dict):
        keys = tuple(sorted(tree))
        return TreeDef("dict", keys, tuple(_flatten(tree[k], leaves) for k in keys))
    leaves.append(tree)
    return LEAF


def unflatten(treedef: TreeDef, leaves) -> Any:
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"tree {treedef} has {treedef.num_leaves} leaves, got {len(leaves)}")
    return _unflatten(treedef, iter(leaves))


def _unflatten(td: TreeDef, it):
    if td.kind == "leaf":
        return next(it)
    if td.kind == "none":
        return None
    children = [_unflatten(c, it) for c in td.children]
    if td.kind == "dict":
        return dict(zip(td.keys, children))
    if td.kind == "namedtuple":
        return td.keys[0](*children)
    return list(children) if td.kind == "list" else tuple(children)


def leaf_paths(treedef: TreeDef, prefix: str = "") -> list[str]:
    """A readable path per leaf, e.g. ``params['w1']`` or ``batch[0]``, for error messages."""
    if treedef.kind == "leaf":
        return [prefix]
    if treedef.kind == "none":
        return []
    out = []
    for i, c in enumerate(treedef.children):
        if treedef.kind == "namedtuple":
            out.extend(leaf_paths(c, f"{prefix}.{treedef.keys[0]._fields[i]}"))
            continue
        key = treedef.keys[i] if treedef.kind == "dict" else i
        out.extend(leaf_paths(c, f"{prefix}[{key!r}]"))
    return out


def tree_map(fn: Callable, tree: Any, *rest: Any) -> Any:
    leaves, td = flatten(tree)
    others = [flatten(r)[0] for r in rest]
    return unflatten(td, [fn(*xs) for xs in zip(leaves, *others)])
