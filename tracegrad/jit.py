"""``jit``: trace once per signature, cache, run.

A jitted function is traced the first time it sees a signature (argument
tree, shapes, dtypes, static values) and the program is reused for every
later call with the same signature. Re-tracing is the commonest surprise of
trace-and-compile systems, so every miss is explained: ``cache_info()``
keeps the reasons, and ``config.explain_cache_misses`` warns with them.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from numpy import ndarray  # a global: NumPy's module __getattr__ keeps Python from caching np.ndarray

from ir import evaluate
from ir.interpreter import FINITE_CHECK, describe_eqn, nonfinite_error
from ir.passes.pipeline import Optimized, optimize

from codegen.runtime import Executable, MemoryStats, nonfinite_equation, source_key

from . import tree
from .config import config
from .core import Tracer, find_trace
from .errors import ArgumentError
from .tracing import ArgSplit, Signature, Traced, concrete_leaves, split_args, trace

BACKENDS = ("llvm", "interpret")
# NumPy scalars of the supported dtypes: a call's key treats one as the 0-d array of its dtype, which is how
# tracing types it, so np.float32(0) takes the fast path that np.array(0, np.float32) does.
NUMPY_SCALARS = frozenset({np.float32, np.float64, np.int32, np.int64, np.bool_})
STAGES = ("traced", "optimized", "fused", "llvm", "asm")


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
        # The passes run when first needed: a program found in the compile cache by its traced graph
        # needs none. A dump of every pass (TRACEGRAD_DUMP_DIR) is made whether the cache has it or not.
        self._passes = optimize(traced.graph) if os.environ.get("TRACEGRAD_DUMP_DIR") else None
        self._native = None
        self._checked = None
        if backend == "llvm":
            self._native = Executable(lambda: self.passes.fused, key=source_key(traced.graph))
        self._one_array = traced.out_tree.kind == "leaf"

    @property
    def passes(self) -> Optimized:
        """The pass pipeline: each stage's graph and what each pass did."""
        if self._passes is None:
            self._passes = optimize(self.traced.graph)
        return self._passes

    @property
    def graph(self):
        """The traced program, before any pass."""
        return self.traced.graph

    @property
    def program(self):
        """What runs: the program after the whole pipeline."""
        return self.passes.fused

    def run(self, split: ArgSplit):
        return self.run_leaves(tuple(concrete_leaves(split)))

    def run_leaves(self, inputs: tuple):
        """Run on the dynamic leaves, a tuple of arrays of the signature's shapes and dtypes."""
        native = self._native
        if native is not None and not FINITE_CHECK.enabled:
            outs = native.run(inputs, config.threads)[0]
            return outs[0] if self._one_array else tree.unflatten(self.traced.out_tree, outs)
        if native is not None:
            return tree.unflatten(self.traced.out_tree, self._run_checked(inputs))
        given = {id(a) for a in inputs}
        # Under debug_nans the interpreter runs what the checked native build runs, so both name a NaN's variable
        # as as_text("optimized") does.
        outs = evaluate(self.passes.optimized if FINITE_CHECK.enabled else self.program, list(inputs))
        return tree.unflatten(self.traced.out_tree, [_result(o, given) for o in outs])

    def _run_checked(self, inputs: tuple) -> tuple[np.ndarray, ...]:
        """debug_nans on native code: a build with one kernel per equation, each output checked."""
        if self._checked is None:
            self._checked = Executable(self.passes.optimized, checked=True)
        outs, status = self._checked.run(inputs, config.threads)
        if status:
            kind, eqn = nonfinite_equation(self._checked, status)
            where = describe_eqn(eqn, self._checked.program.graph)
            raise nonfinite_error(eqn.prim.name, kind, where, bool(eqn.derivative_of))
        return outs

    def memory_stats(self) -> MemoryStats:
        """Bytes the compiled program holds: its planned arena of intermediates and its outputs."""
        if self._native is None:
            raise ValueError("memory_stats() describes native code; this program runs on the 'interpret' backend")
        return self._native.memory_stats()

    def __call__(self, *args, **kwargs):
        split = split_args(self._fun, args, kwargs, *self._static)
        if split.signature != self.traced.signature:
            raise ArgumentError(f"this compiled program was built for {_describe(self.traced.signature)}; "
                                f"it was called with {_describe(split.signature)}. Call the jitted function "
                                f"instead, which traces again for new shapes and dtypes")
        return self.run(split)


class Lowered:
    """A traced program for one signature, before it is run: read it with
    ``as_text(stage)``, build it with ``compile()``."""

    def __init__(self, compiled: Compiled):
        self._compiled = compiled

    def as_text(self, stage: str = "traced", *, source: bool = False, explain: bool = False) -> str:
        """The program at ``stage``: "traced" (as recorded), "optimized" (after
        folding, simplification, CSE and DCE, with what each pass did), "fused"
        (as kernels; ``explain=True`` adds why each boundary between kernels
        stayed), or, on the llvm backend, "llvm" (the optimised LLVM IR) and
        "asm" (the machine code for this CPU)."""
        stages = STAGES if self._compiled.backend == "llvm" else STAGES[:3]
        if stage not in stages:
            raise ValueError(f"stage {stage!r} is not available with the {self._compiled.backend!r} backend; "
                             f"stages: {', '.join(stages)}")
        passes = self._compiled.passes
        if stage == "llvm":
            return self._compiled._native.llvm_ir()
        if stage == "asm":
            return self._compiled._native.assembly()
        if stage == "traced":
            return passes.traced.format(source=source)
        if stage == "optimized":
            fired = [r for r in passes.records if r.name != "fusion" and r.fired]
            summary = "\n".join(f"# {r.name}: " + ", ".join(f"{k} x{v}" for k, v in sorted(r.fired.items()) if v)
                                for r in fired if any(r.fired.values()))
            head = f"# {len(passes.traced.eqns)} equations traced, {len(passes.optimized.eqns)} after the passes\n"
            return head + (summary + "\n" if summary else "") + passes.optimized.format(source=source)
        text = passes.fused.format(source=source)
        if explain:
            boundaries = passes.fused.meta.get("boundaries", [])
            text += "\n# why these kernels were not fused further:\n" + "\n".join(f"#   {b}" for b in boundaries)
        return text

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
        # Without static arguments, every leaf is dynamic and in call order, so a cheap key serves.
        self._fast: dict | None = None if self.static_argnums or self.static_argnames else {}
        self._info = CacheInfo()
        functools.update_wrapper(self, fun)

    def _compiled_for(self, split: ArgSplit) -> Compiled:
        compiled = self._cache.get(split.signature)
        if compiled is not None:
            self._info.hits += 1
            return compiled
        if self._cache:
            name = getattr(self.fun, "__name__", type(self.fun).__name__)  # a functools.partial has none
            reason = explain_miss(name, split.signature, list(self._cache))
            self._info.miss_reasons.append(reason)
            if config.explain_cache_misses:
                warnings.warn(reason, CacheMissWarning, stacklevel=3)  # at the user's call
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
        # The fast path: a call like an earlier one, keyed by what the leaves are without inspecting the signature.
        fast = self._fast
        key = None
        if fast is not None and not kwargs:
            key = ()
            scalars = False
            for a in args:  # flat arrays, the commonest call, need no tree walk: their shapes and dtypes
                t = type(a)
                if t is ndarray:
                    key += (a.shape, a.dtype)
                elif t in NUMPY_SCALARS:  # typed like a 0-d array of its dtype (not weakly, as a Python float is)
                    key += ((), a.dtype)
                    scalars = True
                else:
                    key = None
                    break
            else:
                compiled = fast.get(key)
                if compiled is not None:  # the key holds their dtypes: they are the signature's already
                    self._info.hits += 1
                    return compiled.run_leaves(tuple(np.asarray(a) for a in args) if scalars else args)
        leaves, treedef = tree.flatten((args, kwargs))
        if key is None and fast is not None:
            key = _fast_key(treedef, leaves)
            compiled = fast.get(key) if key is not None else None
            if compiled is not None:
                self._info.hits += 1
                return compiled.run_leaves(tuple(leaf if type(leaf) is np.ndarray else np.asarray(leaf, dt)
                                                 for leaf, (_, dt, _) in zip(leaves, compiled.traced.signature.leaves)))
        if any(isinstance(leaf, Tracer) for leaf in leaves):
            return self._inline(args, kwargs, find_trace(leaves))
        split = self._split(args, kwargs)
        compiled = self._compiled_for(split)
        if key is not None:
            self._fast[key] = compiled
        return compiled.run(split)

    def _inline(self, args, kwargs, outer):
        """Called on tracers (inside another jit or a transformation): trace fun
        abstractly, as jit always does — so Python control flow on values fails
        here too — and inline its graph into the enclosing trace."""
        split = self._split(args, kwargs)
        traced = trace(self.fun, split)
        inputs = [outer.atom(leaf) for leaf in split.leaves] + [outer.atom(t) for t in traced.captured]
        outs, _ = outer.builder.inline(traced.graph, inputs)
        return tree.unflatten(traced.out_tree, [Tracer(outer, a) for a in outs])

    def lower(self, *args, **kwargs) -> Lowered:
        return Lowered(self._compiled_for(self._split(args, kwargs)))

    def cache_info(self) -> CacheInfo:
        """A snapshot: later calls do not change the object returned."""
        return dataclasses.replace(self._info, miss_reasons=list(self._info.miss_reasons))

    def clear_cache(self) -> None:
        self._cache.clear()
        if self._fast is not None:
            self._fast.clear()
        self._info = CacheInfo()


def jit(fun: Callable | None = None, *, static_argnums=(), static_argnames=(), backend: str = "llvm"):
    """Trace ``fun`` once per argument signature and run the cached program:
    native code by default, or the reference interpreter with ``backend="interpret"``.

    Usable as ``jit(f)``, ``@jit`` or ``@jit(static_argnums=1)``."""
    if fun is None:
        return lambda f: JitFunction(f, static_argnums, static_argnames, backend)
    return JitFunction(fun, static_argnums, static_argnames, backend)


def _fast_key(treedef, leaves: list):
    """(tree, per-leaf shape and dtype or Python type), or None when a leaf needs the full checks."""
    kinds = []
    for leaf in leaves:
        t = type(leaf)
        if t is np.ndarray:
            kinds.append((leaf.shape, leaf.dtype))
        elif t in NUMPY_SCALARS:
            kinds.append(((), leaf.dtype))
        elif t is float or t is int or t is bool:
            kinds.append(t)
        else:
            return None
    return treedef, tuple(kinds)


def _describe(sig: Signature) -> str:
    parts = [f"{p}: {sig.leaf_text(i)}" for i, p in enumerate(sig.paths)]
    parts += [f"'{name}'={value!r} (static)" for name, value in sig.static]
    return "(" + ", ".join(parts) + ")"


def explain_miss(name: str, new: Signature, old: list[Signature]) -> str:
    """Why ``new`` found no cached trace: the changes against the closest cached signature."""

    def changes(prev: Signature) -> list[str]:
        found = []
        if prev.in_tree != new.in_tree:
            before, after = prev.arg_trees(), new.arg_trees()
            found = [f"argument '{k}': structure changed from {before.get(k, '(not given)')} to "
                     f"{after.get(k, '(not given)')}" for k in list(after) + [k for k in before if k not in after]
                     if before.get(k) != after.get(k)]
            return found or [f"the argument structure changed from {prev.in_tree} to {new.in_tree}"]
        for i, path in enumerate(new.paths):
            (ps, pd, pw), (ns, nd, nw) = prev.leaves[i], new.leaves[i]
            what = [w for w, changed in (("shape", ps != ns), ("dtype", pd != nd), ("weak type", pw != nw)) if changed]
            if what:
                found.append(f"argument {path}: {' and '.join(what)} changed from {prev.leaf_text(i)} to "
                             f"{new.leaf_text(i)}")
        prev_static, new_static = dict(prev.static), dict(new.static)
        shown = lambda d, key: repr(d[key]) if key in d else "(not given)"
        for key in sorted(set(prev_static) | set(new_static)):
            if (key in prev_static) != (key in new_static) or prev_static.get(key) != new_static.get(key):
                found.append(f"static argument '{key}' changed from {shown(prev_static, key)} to "
                             f"{shown(new_static, key)}")
        return found

    closest = min((changes(s) for s in old), key=len)
    return (f"jit: {name}() is traced again (cache of {len(old)} trace{'s' if len(old) > 1 else ''} missed): "
            + "; ".join(closest))
