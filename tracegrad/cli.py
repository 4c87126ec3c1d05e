"""``python -m tracegrad``: dump a function's IR, run the demo, run the benchmarks."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

import numpy as np

from ir import ShapedType


def load_function(spec: str):
    """``path/to/file.py:func`` -> the function object."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise SystemExit(f"error: expected FILE.py:FUNC, got {spec!r}")
    if not os.path.isfile(path):
        raise SystemExit(f"error: no such file: {path}")
    module_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    module_spec.loader.exec_module(module)
    fun = getattr(module, name, None)
    if not callable(fun):
        raise SystemExit(f"error: {path} has no function {name!r}")
    return fun


def example_args(types: list[str]) -> list[np.ndarray]:
    """Zeros of each requested type: tracing needs only shapes and dtypes."""
    try:
        parsed = [ShapedType.parse(t) for t in types]
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    return [np.zeros(t.shape, t.dtype) for t in parsed]


def cmd_ir(ns) -> int:
    from .jit import jit

    fun = load_function(ns.target)
    args = example_args(ns.args)
    if ns.grad:
        from .transforms import value_and_grad

        floats = tuple(i for i, a in enumerate(args) if a.dtype.kind == "f")
        if not floats:
            raise SystemExit("error: --grad needs at least one float argument")
        fun = value_and_grad(fun, argnums=floats)
    lowered = jit(fun).lower(*args)
    print(lowered.as_text(ns.stage, source=ns.source, explain=ns.explain))
    if ns.passes:
        print("\n# passes, in order:")
        print("\n".join(f"# {r.describe()}" for r in lowered.compile().passes.records))
    if ns.dot:
        with open(ns.dot, "w") as f:
            f.write(lowered.compile().graph.to_dot() + "\n")
        print(f"wrote {ns.dot}", file=sys.stderr)
    return 0


def cmd_demo(ns) -> int:
    from .demo import main

    return main()


def cmd_bench(ns) -> int:
    from .bench import main

    return main(quick=ns.quick, json_out=ns.json, threads=ns.threads, only=ns.only, plot_out=ns.plot)


def build_parser() -> argparse.ArgumentParser:
    from .jit import STAGES

    parser = argparse.ArgumentParser(prog="python -m tracegrad", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ir", help="print the IR of FILE.py:FUNC traced on the given argument types")
    p.add_argument("target", metavar="FILE.py:FUNC")
    p.add_argument("--args", nargs="*", default=[], metavar="TYPE", help="argument types, e.g. 'f32[128,784]' 'i64[]'")
    p.add_argument("--grad", action="store_true",
                   help="the forward and backward program: value_and_grad with respect to every float argument")
    p.add_argument("--stage", choices=STAGES, default="traced")
    p.add_argument("--source", action="store_true", help="show each equation's source line")
    p.add_argument("--passes", action="store_true", help="list the passes and what each did")
    p.add_argument("--explain", action="store_true", help="with --stage fused: why kernels were not fused further")
    p.add_argument("--dot", metavar="OUT.dot", help="also write the graph as Graphviz DOT")
    p.set_defaults(run=cmd_ir)
    p = sub.add_parser("demo", help="the main job: trace, print and run a small network")
    p.set_defaults(run=cmd_demo)
    p = sub.add_parser("bench", help="time native code and the interpreter against NumPy (and JAX / PyTorch when "
                                     "installed)")
    p.add_argument("--quick", action="store_true", help="smaller elementwise sizes, fewer repetitions")
    p.add_argument("--json", metavar="OUT", help="also write the results (and the machine) as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="also draw a bar chart of the times relative to NumPy's "
                                                     "(needs matplotlib: pip install -e '.[bench]')")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for every library's thread pool (default 1); the process is pinned to that "
                        "many CPUs")
    p.add_argument("--no-pin", action="store_true", help="do not pin the process to --threads CPUs")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="only the workloads whose name starts with NAME (repeatable), e.g. --only dispatch")
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    return ns.run(ns)
