"""``jit``: trace once per signature, cache, run.

A jitted function is traced the first time it sees a signature (argument
tree, shapes, dtypes, static values) and the program is reused for every
later call with the same signature. Re-tracing is the commonest surprise of
trace-and-compile systems, so every miss is explained: ``cache_info()``
keeps the reasons, and ``config.explain_cache_misses`` warns with them.
"""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ir import evaluate

from . import tree
from .config import config
from .core import Tracer
from .tracing import ArgSplit, Signature, Traced, concrete_leaves, split_args, trace

BACKENDS = ("interpret",)
STAGES = ("traced",)


class CacheMissWarning(UserWarning):
    """A jitted function was traced again; the message says which argument changed."""


@dataclass
class CacheInfo:
    hits: int = 0
    misses: int = 0
    compile_seconds: float = 0.0
    miss_reasons: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.misses


def _result(value, inputs: set[int]) -> np.ndarray:
    """An output the caller owns: a fresh writable array, never one of the
    caller's inputs, a view into one, or a constant of the graph."""
    arr = np.asarray(value)
    if id(arr) in inputs or arr.base is not None or not arr.flags.writeable or not arr.flags.owndata:
        arr = arr.copy()
    return arr


class Compiled:
    """A program for one signature, ready to call with matching arguments."""

    def __init__(self, traced: Traced, fun: Callable, backend: str, static: tuple):
        self.traced = traced
        self.backend = backend
        self._fun = fun
        self._static = static

    @property
    def graph(self):
        return self.traced.graph

    def run(self, split: ArgSplit):
        inputs = concrete_leaves(split)
        given = {id(a) for a in inputs}
        outs = evaluate(self.traced.graph, inputs)
        return tree.unflatten(self.traced.out_tree, [_result(o, given) for o in outs])

    def __call__(self, *args, **kwargs):
        split = split_args(self._fun, args, kwargs, *self._static)
        if split.signature != self.traced.signature:
            raise TypeError(f"this compiled program was built for {_describe(self.traced.signature)}; "
                            f"it was called with {_describe(split.signature)}. Call the jitted function instead, "
                            f"which traces again for new shapes and dtypes")
        return self.run(split)


class Lowered:
    """A traced program for one signature, before it is run: read it with
    ``as_text(stage)``, build it with ``compile()``."""

    def __init__(self, compiled: Compiled):
        self._compiled = compiled

    def as_text(self, stage: str = "traced", *, source: bool = False) -> str:
        if stage not in STAGES:
            raise ValueError(f"stage {stage!r} is not available with the {self._compiled.backend!r} backend; "
                             f"stages: {', '.join(STAGES)}")
        return self._compiled.graph.format(source=source)

    def compile(self) -> Compiled:
        return self._compiled


class JitFunction:
    """The callable that ``jit`` returns."""

    def __init__(self, fun: Callable, static_argnums, static_argnames, backend: str):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
        self.fun = fun
        self.static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        self.backend = backend
        self._cache: dict[Signature, Compiled] = {}
        self._info = CacheInfo()
        functools.update_wrapper(self, fun)

    def _compiled_for(self, split: ArgSplit) -> Compiled:
        compiled = self._cache.get(split.signature)
        if compiled is not None:
            self._info.hits += 1
            return compiled
        if self._cache:
            reason = explain_miss(self.__name__, split.signature, list(self._cache))
            self._info.miss_reasons.append(reason)
            if config.explain_cache_misses:
                warnings.warn(reason, CacheMissWarning, stacklevel=4)
        start = time.perf_counter()
        compiled = Compiled(trace(self.fun, split), self.fun, self.backend,
                            (self.static_argnums, self.static_argnames))
        self._info.compile_seconds += time.perf_counter() - start
        self._info.misses += 1
        self._cache[split.signature] = compiled
        return compiled

    def _split(self, args, kwargs) -> ArgSplit:
        return split_args(self.fun, args, kwargs, self.static_argnums, self.static_argnames)

    def __call__(self, *args, **kwargs):
        if any(isinstance(leaf, Tracer) for leaf in tree.flatten((args, kwargs))[0]):
            return self.fun(*args, **kwargs)  # called inside another trace: inline into it
        split = self._split(args, kwargs)
        return self._compiled_for(split).run(split)

    def lower(self, *args, **kwargs) -> Lowered:
        return Lowered(self._compiled_for(self._split(args, kwargs)))

    def cache_info(self) -> CacheInfo:
        return self._info

    def clear_cache(self) -> None:
        self._cache.clear()
        self._info = CacheInfo()


def jit(fun: Callable | None = None, *, static_argnums=(), static_argnames=(), backend: str = "interpret"):
    """Trace ``fun`` once per argument signature and run the cached program.

    Usable as ``jit(f)``, ``@jit`` or ``@jit(static_argnums=1)``."""
    if fun is None:
        return lambda f: JitFunction(f, static_argnums, static_argnames, backend)
    return JitFunction(fun, static_argnums, static_argnames, backend)


def _describe(sig: Signature) -> str:
    parts = [f"{p}: {sig.leaf_text(i)}" for i, p in enumerate(sig.paths)]
    parts += [f"'{name}'={value!r} (static)" for name, value in sig.static]
    return "(" + ", ".join(parts) + ")"


def explain_miss(name: str, new: Signature, old: list[Signature]) -> str:
    """Why ``new`` found no cached trace: the changes against the closest cached signature."""

    def changes(prev: Signature) -> list[str]:
        found = []
        if prev.in_tree != new.in_tree:
            return [f"the argument structure changed from {prev.in_tree} to {new.in_tree}"]
        for i, path in enumerate(new.paths):
            (ps, pd, pw), (ns, nd, nw) = prev.leaves[i], new.leaves[i]
            what = [w for w, changed in (("shape", ps != ns), ("dtype", pd != nd), ("weak type", pw != nw)) if changed]
            if what:
                found.append(f"argument {path}: {' and '.join(what)} changed from {prev.leaf_text(i)} to "
                             f"{new.leaf_text(i)}")
        prev_static, new_static = dict(prev.static), dict(new.static)
        for key in sorted(set(prev_static) | set(new_static)):
            if prev_static.get(key, "<absent>") != new_static.get(key, "<absent>"):
                found.append(f"static argument '{key}' changed from {prev_static.get(key, '<absent>')!r} to "
                             f"{new_static.get(key, '<absent>')!r}")
        return found

    closest = min((changes(s) for s in old), key=len)
    return (f"jit: {name}() is traced again (cache of {len(old)} trace{'s' if len(old) > 1 else ''} missed): "
            + "; ".join(closest))
