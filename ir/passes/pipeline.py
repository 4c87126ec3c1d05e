"""The pass manager: an ordered pipeline of named graph -> graph passes.

``optimize(graph)`` runs inlining and loop merging, then constant folding,
algebraic simplification, CSE, DCE and loop-invariant hoisting to a
fixpoint, then fusion (inside loop and branch bodies too), and returns the
graph after each stage with statistics per pass: equations, kernels, bytes
of intermediates that reach memory, rules fired, time. With ``verify=True``
(tests, and TRACEGRAD_VERIFY=1) the verifier runs after every pass; with
TRACEGRAD_DUMP_DIR set, the graph after every pass is written there.
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from ..builder import graph_key
from ..graph import Graph, Var
from ..verifier import verify as verify_graph
from .cleanup import INLINE_RULES, cse, dce
from .fusion import fuse
from .loops import dedupe_scan_outputs, hoist_invariants, inline_known_branch, merge_loops
from .rewrite import NamedRule, rewrite
from .simplify import ALGEBRA_RULES, FOLD_RULES

# Equations that only relabel memory: no kernel runs for them.
FREE = {"reshape", "constant"}


@dataclass
class PassRecord:
    """What one pass did. The kernel and byte counts are worked out from the
    pass's output graph when first asked for: a compilation need not pay for them."""

    name: str
    eqns_before: int
    graph: Graph
    seconds: float
    fired: dict = field(default_factory=dict)

    @property
    def eqns_after(self) -> int:
        return len(self.graph.eqns)

    @functools.cached_property
    def kernels(self) -> int:
        return kernels(self.graph)

    @functools.cached_property
    def bytes_to_memory(self) -> int:
        return bytes_to_memory(self.graph)

    def describe(self) -> str:
        rules = ", ".join(f"{k} x{v}" for k, v in sorted(self.fired.items()) if v) or "no change"
        return (f"{self.name:<9} {self.eqns_before:>4} -> {self.eqns_after:<4} equations  {self.kernels:>3} kernels  "
                f"{self.bytes_to_memory:>10,} bytes of intermediates  {self.seconds * 1e3:6.1f} ms  {rules}")


@dataclass
class Optimized:
    traced: Graph
    optimized: Graph
    fused: Graph
    records: list[PassRecord]

    def report(self) -> str:
        return "\n".join(r.describe() for r in self.records)


def kernels(graph: Graph) -> int:
    """Equations that run a kernel: all but pure relabelling of memory."""
    return sum(1 for e in graph.eqns if e.prim.name not in FREE)


def bytes_to_memory(graph: Graph) -> int:
    """Bytes of the values one top-level equation writes and another reads:
    the intermediates that make a round trip through memory."""
    read = {a.id for e in graph.eqns for a in e.inputs if isinstance(a, Var)}
    outputs = {a.id for a in graph.outputs if isinstance(a, Var)}
    return sum(v.type.nbytes for e in graph.eqns if e.prim.name not in FREE for v in e.outputs
               if v.id in read and v.id not in outputs)


LOOP_RULES = [NamedRule(f.__name__, f, f.__doc__) for f in (inline_known_branch, dedupe_scan_outputs)]
PASSES: dict[str, Callable[[Graph, Counter], Graph]] = {
    "inline": lambda g, c: rewrite(g, INLINE_RULES, c),
    "merge": merge_loops,
    "fold": lambda g, c: rewrite(g, FOLD_RULES + LOOP_RULES, c),
    "simplify": lambda g, c: rewrite(g, ALGEBRA_RULES, c),
    "cse": cse,
    "dce": dce,
    "hoist": hoist_invariants,
    "fusion": fuse,
}
PASS_NAMES = tuple(PASSES)
FIXPOINT = ("fold", "simplify", "cse", "dce", "hoist")


def optimize(graph: Graph, *, verify: bool | None = None, dump_dir: str | None = None, max_rounds: int = 6
             ) -> Optimized:
    verify = os.environ.get("TRACEGRAD_VERIFY", "") not in ("", "0") if verify is None else verify
    dump_dir = dump_dir if dump_dir is not None else os.environ.get("TRACEGRAD_DUMP_DIR") or None
    records: list[PassRecord] = []
    global _compilations
    _compilations += 1
    compilation = _compilations  # in dump file names, so a second signature's dumps do not overwrite the first's

    def run(name: str, g: Graph) -> Graph:
        fired: Counter = Counter()
        start = time.perf_counter()
        out = PASSES[name](g, fired)
        seconds = time.perf_counter() - start
        if verify:
            verify_graph(out)
        records.append(PassRecord(name, len(g.eqns), out, seconds, dict(fired)))
        if dump_dir:
            os.makedirs(dump_dir, exist_ok=True)
            step = len(records)
            with open(os.path.join(dump_dir, f"{graph.name}.{compilation:03d}.{step:02d}.{name}.txt"), "w") as f:
                f.write(out.format(source=True) + "\n")
        return out

    g = run("merge", run("inline", graph))
    key = graph_key(g)
    for _ in range(max_rounds):
        for name in FIXPOINT:
            g = run(name, g)
        key, before = graph_key(g), key
        if key == before:
            break
    optimized = g
    fused = run("fusion", optimized)
    return Optimized(graph, optimized, fused, records)


_compilations = 0
