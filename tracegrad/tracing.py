"""From a Python function and example arguments to a Graph.

Arguments are split into static ones (part of the cache key, passed to the
function as they are) and dynamic ones (flattened as pytrees, each leaf a
Tracer that knows only its shape and dtype)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ir import Graph, ShapedType

from . import tree
from .core import Tensor, Trace, Tracer, as_operand, type_and_weak
from .errors import ArgumentError, DTypeError


@dataclass(frozen=True)
class Signature:
    """What a trace depends on: the argument tree, each leaf's type and weak
    flag, and the static arguments' values. Equal signatures share a trace."""

    in_tree: tree.TreeDef
    leaves: tuple  # ((shape, dtype, weak), ...)
    static: tuple  # ((name, value), ...)
    paths: tuple  # readable path per leaf, for messages (not part of equality)
    labels: tuple = ()  # the name of each dynamic argument, for messages (not part of equality)

    def __eq__(self, other):
        return (self.in_tree, self.leaves, self.static) == (other.in_tree, other.leaves, other.static)

    def __hash__(self):
        return hash((self.in_tree, self.leaves, self.static))

    def arg_trees(self) -> dict[str, tree.TreeDef]:
        """The tree of each dynamic argument, by name (positional ones first)."""
        args_td, kwargs_td = self.in_tree.children
        return dict(zip(self.labels, args_td.children + kwargs_td.children))

    def leaf_text(self, i: int) -> str:
        shape, dt, weak = self.leaves[i]
        text = str(ShapedType(shape, dt))
        return text + " (a Python scalar)" if weak else text


@dataclass
class ArgSplit:
    """A call's arguments: dynamic leaves plus how to rebuild the call."""

    signature: Signature
    leaves: list  # the dynamic leaves, as given
    rebuild: Callable[[list], tuple[tuple, dict]]


def _param_names(fun) -> list[str] | None:
    try:
        return [p.name for p in inspect.signature(fun).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return None


def _takes_varargs(fun) -> bool:
    try:
        return any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        return True


def tensor_argument(which: str, fname: str) -> ArgumentError:
    """The error for an eager Tensor given to jit or a transformation, which take arrays."""
    return ArgumentError(
        f"{which} of {fname}() is an eager tg.Tensor: jit and the transformations trace NumPy "
        f"arrays and differentiate the graph themselves. Pass t.detach().numpy(), or call the function "
        f"directly on Tensors to run it define-by-run (its gradient then comes from backward())")


def split_args(fun: Callable, args: tuple, kwargs: dict, static_argnums=(), static_argnames=()) -> ArgSplit:
    fname = getattr(fun, "__name__", "function")
    try:
        inspect.signature(fun).bind(*args, **kwargs)
    except TypeError as e:
        raise ArgumentError(f"{fname}() called with the wrong arguments: {e}") from None
    except ValueError:
        pass  # no signature to check (a builtin); the call itself will say
    names = _param_names(fun) or []
    nargs = len(args)
    # Argnums count the function's positional parameters (negative ones from the last), as in JAX: a static
    # parameter passed by keyword is static by name, and one left to its default is simply not an argument.
    varargs = _takes_varargs(fun)
    npos = nargs if varargs else len(names)
    static_argnames = tuple(static_argnames)
    static_pos = set()
    for i in static_argnums:
        j = i + npos if i < 0 else i
        if not 0 <= j < max(npos, nargs):
            count = f"{npos} positional argument{'s' if npos != 1 else ''}"
            raise ArgumentError(
                f"static_argnums contains {i}, but {fname}() "
                + (f"was called with {count} (it takes *args): pass the static argument in the call"
                   if varargs else f"takes {count}: static_argnums counts its parameters from 0")
                + f", or remove {i} from static_argnums")
        if j < nargs:
            static_pos.add(j)
        elif j < len(names):
            static_argnames += (names[j],)
    static_pos |= {names.index(n) for n in static_argnames if n in names and names.index(n) < nargs}
    static = []
    for i in sorted(static_pos):
        label = names[i] if i < len(names) else f"args[{i}]"
        static.append((label, _hashable(label, args[i])))
    for k in sorted(kwargs):
        if k in static_argnames:
            static.append((k, _hashable(k, kwargs[k])))
    dyn_pos = [i for i in range(nargs) if i not in static_pos]
    dyn_kw = sorted(k for k in kwargs if k not in static_argnames)
    dynamic = ([args[i] for i in dyn_pos], {k: kwargs[k] for k in dyn_kw})
    leaves, in_tree = tree.flatten(dynamic)
    labels = [names[i] if i < len(names) else f"args[{i}]" for i in dyn_pos] + dyn_kw
    paths = _leaf_paths(in_tree, labels)
    types = []
    for path, leaf in zip(paths, leaves):
        if isinstance(leaf, Tensor):
            raise tensor_argument(f"argument {path}", fname)
        if not isinstance(leaf, (Tracer, np.ndarray, np.generic, bool, int, float, complex)):
            raise ArgumentError(
                f"argument {path} of {fname}() is a {type(leaf).__name__}, not an array: pass a NumPy array or a "
                f"Python number, or list it in static_argnums / static_argnames")
        try:
            as_operand(leaf)  # rejects unsupported dtypes (complex too) and ints beyond int64
            t, weak = type_and_weak(leaf)  # of the leaf itself: a Python scalar stays weak
        except DTypeError as e:
            raise DTypeError(f"argument {path} of {fname}(): {e}") from None
        types.append((t.shape, t.dtype, weak))
    signature = Signature(in_tree, tuple(types), tuple(static), tuple(paths), tuple(labels))

    def rebuild(new_leaves: list) -> tuple[tuple, dict]:
        dyn_args, dyn_kwargs = tree.unflatten(in_tree, new_leaves)
        full = list(args)
        for i, v in zip(dyn_pos, dyn_args):
            full[i] = v
        kw = dict(kwargs)
        kw.update(dyn_kwargs)
        return tuple(full), kw

    return ArgSplit(signature, leaves, rebuild)


def _leaf_paths(in_tree: tree.TreeDef, labels: list[str]) -> list[str]:
    """Readable leaf paths such as ``params['w1']`` from the (args, kwargs) tree."""
    args_td, kwargs_td = in_tree.children
    paths = []
    for label, td in list(zip(labels, args_td.children)) + list(zip(labels[len(args_td.children):],
                                                                      kwargs_td.children)):
        paths.extend(f"'{label}{p}'" if p else f"'{label}'" for p in tree.leaf_paths(td))
    return paths


def _hashable(label: str, value):
    try:
        hash(value)
    except TypeError:
        raise ArgumentError(f"static argument '{label}' must be hashable, got a {type(value).__name__}; pass a tuple "
                            f"instead of a list, or make it a dynamic (array) argument") from None
    return value


@dataclass
class Traced:
    """A traced function: its graph and how to rebuild the output pytree."""

    graph: Graph
    out_tree: tree.TreeDef
    signature: Signature
    captured: list = field(default_factory=list)  # enclosing-trace tracers read as the graph's last inputs


def trace(fun: Callable, split: ArgSplit, name: str | None = None) -> Traced:
    name = name or getattr(fun, "__name__", "f")
    t = Trace(name)
    tracers = [t.new_input(ShapedType(shape, dt), weak) for shape, dt, weak in split.signature.leaves]
    args, kwargs = split.rebuild(tracers)
    with t:
        graph, out_tree = t.finish_tree(fun(*args, **kwargs))
    return Traced(graph, out_tree, split.signature, [outer for outer, _ in t.captured])


def concrete_leaves(split: ArgSplit) -> list[np.ndarray]:
    """The dynamic leaves as arrays of their signature's dtypes."""
    return [np.asarray(leaf, dtype=dt) for leaf, (_, dt, _) in zip(split.leaves, split.signature.leaves)]


def make_ir(fun: Callable, *, static_argnums=(), static_argnames=()) -> Callable[..., Graph]:
    """``make_ir(f)(*args)`` traces f on the arguments' shapes and dtypes and
    returns its Graph; ``print()`` it to read the program."""
    static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)

    def traced(*args, **kwargs) -> Graph:
        return trace(fun, split_args(fun, args, kwargs, static_argnums, static_argnames)).graph

    return traced



