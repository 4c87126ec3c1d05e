"""The user-facing surface outside the library: examples run, the README shows
what its example prints, the command line works, the IR reference lists every
primitive."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ir.primitives import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


LESSONS = [p for p in EXAMPLES if re.match(r"\d\d_", p.name)]


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_every_example_runs(script):
    start = time.perf_counter()
    result = run(str(script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert time.perf_counter() - start < 60, f"{script.name} should take a few seconds"
    if script in LESSONS:
        _check_sections(script, result.stdout)


def _check_sections(script: Path, stdout: str) -> None:
    """A lesson prints a "## N. title" header per section: every header the source
    prints appears once, in order, and each is followed by what the section teaches."""
    source = script.read_text()
    expected = re.findall(r'print\(f?"(?:\\n)*(## \d+\.[^"]*)"\)', source)
    assert expected, f"{script.name} prints no '## N. title' section headers"
    lines = stdout.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("## ")]
    assert [lines[i] for i in headers] == expected, f"{script.name}: the sections printed differ from its source"
    for i, end in zip(headers, headers[1:] + [len(lines)]):
        assert any(line.strip() for line in lines[i + 1:end]), f"{script.name}: section {lines[i]!r} printed nothing"


def test_the_lessons_are_numbered_in_order_and_say_how_to_run_them():
    numbers = [int(p.name[:2]) for p in LESSONS]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 12, [p.name for p in LESSONS]
    for path in LESSONS:
        source = path.read_text()
        doc = source[:source.index('"""', 3)]
        assert doc.startswith('"""Lesson ') and f"Run: .venv/bin/python examples/{path.name}" in doc, path.name


def test_readme_shows_what_its_example_prints():
    readme = (ROOT / "README.md").read_text()
    source = (ROOT / "examples" / "first_trace.py").read_text()
    code = source[source.index("import numpy"):].strip()
    assert code in readme, "README's example code differs from examples/first_trace.py"
    printed = run(str(ROOT / "examples" / "first_trace.py")).stdout.strip()
    assert f"```\n{printed}\n```" in readme, "README's example output differs from what the example prints"


def test_ir_reference_documents_every_primitive():
    doc = (ROOT / "docs" / "ir.md").read_text()
    documented = set(re.findall(r"`([a-z_0-9]+)`", doc))
    missing = sorted(set(REGISTRY) - documented)
    assert not missing, f"docs/ir.md does not describe {missing}"


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text("import tracegrad.numpy as tnp\n\n"
                    "def predict(w, x):\n"
                    "    return tnp.tanh(x @ w)\n")
    return path


def test_cli_ir_prints_the_dump(model_file):
    result = run("-m", "tracegrad", "ir", f"{model_file}:predict", "--args", "f32[3,2]", "f32[5,3]")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "def predict(a: f32[3,2], b: f32[5,3]) -> f32[5,2]:"
    assert "tanh" in result.stdout


def test_cli_ir_source_and_dot(model_file, tmp_path):
    dot = tmp_path / "out.dot"
    result = run("-m", "tracegrad", "ir", f"{model_file}:predict", "--args", "f64[3]", "f64[2,3]", "--source",
                 "--dot", str(dot))
    assert result.returncode == 0, result.stderr
    assert "# model.py:4" in result.stdout
    text = dot.read_text()
    assert text.startswith('digraph "predict"') and "dot_general" in text and "tanh" in text


def test_cli_ir_rejects_a_bad_type_with_the_accepted_form(model_file):
    result = run("-m", "tracegrad", "ir", f"{model_file}:predict", "--args", "float[3]", "f32[2,3]")
    assert result.returncode != 0
    assert "f32[128,784]" in result.stderr


def test_cli_ir_names_a_missing_function(model_file):
    result = run("-m", "tracegrad", "ir", f"{model_file}:nope", "--args", "f32[3]")
    assert result.returncode != 0 and "no function 'nope'" in result.stderr


def test_demo_trains_eager_and_compiled_and_the_runs_agree():
    start = time.perf_counter()
    result = run("-m", "tracegrad", "demo")
    assert result.returncode == 0, result.stderr
    assert time.perf_counter() - start < 60
    out = result.stdout
    assert "def value_and_grad_loss(" in out and "fused[kind=" in out and "more lines" in out  # the step's IR
    assert out.count("   eager epoch") == out.count("   jit   epoch") >= 5 and "steps/s" in out
    assert "AGREE" in out and "DISAGREE" not in out and "faster compiled" in out


def test_cli_ir_grad_prints_the_forward_and_backward_program(model_file):
    result = run("-m", "tracegrad", "ir", f"{model_file}:predict", "--args", "f32[3,2]", "f32[5,3]", "--grad")
    assert result.returncode != 0 and "scalar" in result.stderr  # predict is not scalar: grad says so
    loss_file = model_file.parent / "loss.py"
    loss_file.write_text("import tracegrad.numpy as tnp\n\n"
                         "def loss(w, x):\n"
                         "    return tnp.sum(tnp.tanh(x @ w))\n")
    result = run("-m", "tracegrad", "ir", f"{loss_file}:loss", "--args", "f32[3,2]", "f32[5,3]", "--grad")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "def value_and_grad_loss(a: f32[3,2], b: f32[5,3]) -> (f32[], f32[3,2], f32[5,3]):"
    body = "\n".join(lines[1:])
    assert body.count("tanh") == 1 and "sub 1.0:f32" in body  # the forward tanh, and its derivative 1 - y**2
    assert body.count("dot_general") == 3  # x @ w forward; cotangents of w and of x backward


def _bench(tmp_path, *flags: str):
    import json

    out = tmp_path / "bench.json"
    result = run("-m", "tracegrad", "bench", "--quick", "--json", str(out), *flags)
    assert result.returncode == 0, result.stderr
    return result, json.loads(out.read_text())


def test_bench_quick_checks_agreement_and_times_the_selected_workloads(tmp_path):
    # A subset keeps this fast: two small workloads, the training step, and its first calls in fresh processes.
    result, report = _bench(tmp_path, "--only", "dispatch", "--only", "mlp step", "--only", "compile")
    rows = report["rows"]
    timed = {(r["workload"], r["impl"]) for r in rows}
    for workload in ("dispatch x*2+1", "dispatch x*y+z", "mlp step"):
        for impl in ("tracegrad jit", "tracegrad interpreter", "numpy"):
            assert (workload, impl) in timed
    assert ("compile mlp step (cold)", "tracegrad jit") in timed
    assert ("compile mlp step (disk cache)", "tracegrad jit") in timed
    assert ("compile mlp step (library cached)", "tracegrad jit") in timed
    assert {r["workload"] for r in rows} == {"dispatch x*2+1", "dispatch x*y+z", "mlp step",
                                              "compile mlp step (cold)", "compile mlp step (library cached)",
                                              "compile mlp step (disk cache)"}
    assert all(0 < r["min"] <= r["median"] <= r["max"] for r in rows)
    assert "| mlp step | tracegrad jit |" in result.stdout
    assert "| compile mlp step (disk cache) | tracegrad jit |" in result.stdout
    assert report["machine"]["threads"] == 1 and "1 thread per library" in result.stdout
    assert "OpenBLAS 1 thread" in result.stdout  # set before NumPy was imported, though the package imports it
    from tracegrad.bench import summary

    assert summary(rows) in result.stdout  # the short table, medians by workload and implementation
    assert summary(rows).startswith("| workload | tracegrad jit | tracegrad eager | numpy |")  # no interpreter


def test_the_readmes_benchmark_table_is_the_latest_one_in_results():
    readme = (ROOT / "README.md").read_text()
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    section = readme.split("## Benchmarks", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    assert table.count("\n") > 10, "the README's Benchmarks section has no table"
    latest = results.split("\n## ")[1]  # the first section under the title is the latest run
    assert "(latest)" in latest.splitlines()[0]
    assert table in latest, "README.md's benchmark table is not the one in benchmarks/RESULTS.md's latest section"


def test_bench_plot_draws_a_chart_or_says_matplotlib_is_missing(tmp_path):
    chart = tmp_path / "bench.png"
    result, _ = _bench(tmp_path, "--only", "dispatch x*2", "--plot", str(chart))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in result.stderr and not chart.exists()
    else:
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote the chart to {chart}" in result.stdout


def test_bench_threads_sets_every_thread_pool(tmp_path):
    result, report = _bench(tmp_path, "--only", "dispatch x*2", "--threads", "2", "--no-pin")
    assert {r["workload"] for r in report["rows"]} == {"dispatch x*2+1"}
    assert report["machine"]["threads"] == 2 and "2 threads per library" in result.stdout
    blas = min(2, len(os.sched_getaffinity(0)))
    assert f"OpenBLAS {blas} thread" in result.stdout


def test_bench_covers_the_native_backends_the_eager_modes_and_the_rnns_workloads():
    from tracegrad.bench import FirstCall, select, workloads

    names = [w.name for w in workloads(quick=False)]
    assert names == ["elementwise 1e6", "elementwise 1e6 value_and_grad", "elementwise 1e7",
                     "elementwise 1e7 value_and_grad", "mlp loss", "mlp value_and_grad", "mlp step", "softmax xent",
                     "softmax xent value_and_grad", "eager overhead", "eager overhead value_and_grad",
                     "rnn value_and_grad", "dispatch x*2+1", "dispatch x*y+z", "compile mlp step (cold)",
                     "compile mlp step (library cached)", "compile mlp step (disk cache)"]
    assert [w.name for w in workloads(quick=True)][:4] == ["elementwise 1e5", "elementwise 1e5 value_and_grad",
                                                           "elementwise 1e6", "elementwise 1e6 value_and_grad"]
    for w in workloads(quick=True):
        if not isinstance(w, FirstCall):
            assert list(w.impls)[:4] == ["tracegrad jit", "tracegrad eager", "tracegrad interpreter", "numpy"]
    assert [w.name for w in select(workloads(quick=True), ["Dispatch"])] == ["dispatch x*2+1", "dispatch x*y+z"]
    with pytest.raises(SystemExit, match="matches no workload"):
        select(workloads(quick=True), ["nothing"])


def test_bench_check_compares_relative_to_each_outputs_magnitude():
    import numpy as np

    from tracegrad.bench import _mlp_inputs, _mlp_step_numpy, _step_check, disagreement

    big = [np.array([7.0e6]), np.array([1.0, -2.0])]
    assert disagreement([np.array([7.0e6 + 50.0]), np.array([1.0, -2.0])], big, 1e-3) is None
    assert "output 1" in disagreement([big[0], np.array([1.0, -2.1])], big, 1e-3)
    assert "output 0" in disagreement([np.array([np.nan]), big[1]], big, 1e-3)
    # The step's new parameters differ from the old by 0.01 * gradient: a gradient 5% off hides in the
    # parameters themselves, so the check compares each parameter's change.
    args = _mlp_inputs()
    loss, params = _mlp_step_numpy(*args)
    wrong = list(params)
    wrong[2] = args[2] - 1.05 * (args[2] - params[2])
    assert disagreement([np.ravel(p) for p in wrong], [np.ravel(p) for p in params], 1e-3) is None
    assert "output 3" in disagreement(_step_check(args, (loss, wrong)), _step_check(args, (loss, params)), 1e-3)


# ------------------------------------------------------------- the README's links and the tutorial's code

def test_readme_links_resolve_to_existing_files():
    readme = (ROOT / "README.md").read_text()
    links = [t for t in re.findall(r"\]\(([^)\s]+)\)", readme) if not re.match(r"[a-z]+:|#", t)]
    missing = [t for t in links if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"docs/{p.name}" not in links]
    assert not unlinked, f"README.md does not link to {unlinked}"


def _tutorial_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """The tutorial's ```python blocks: (the line number of the opening fence, the code, and the ```text
    block that follows it as what it prints, or None when none follows)."""
    lines = text.splitlines()
    fence = lambda start: next(j for j in range(start, len(lines)) if lines[j] == "```")
    blocks = []
    for i, line in enumerate(lines):
        if line == "```python":
            end = fence(i + 1)
            after = next((j for j in range(end + 1, len(lines)) if lines[j].strip()), None)
            shown = None
            if after is not None and lines[after] == "```text":
                shown = "\n".join(lines[after + 1:fence(after + 1)])
            blocks.append((i + 1, "\n".join(lines[i + 1:end]), shown))
    return blocks


# Runs the blocks in order in one namespace, as a reader's session does. Each is compiled as lines of
# tutorial.md at their own line numbers, so an error message that cites a line cites the tutorial's.
_RUN_BLOCKS = """
import contextlib, io, json, linecache, sys, traceback
text, blocks, out = sys.argv[1], json.loads(sys.stdin.read()), sys.argv[2]
source = open(text).read()
linecache.cache["tutorial.md"] = (len(source), None, source.splitlines(keepends=True), "tutorial.md")
namespace, printed = {"__name__": "__main__"}, []
for line, code in blocks:
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            exec(compile("\\n" * line + code, "tutorial.md", "exec"), namespace)
    except BaseException:
        sys.exit(f"the block at docs/tutorial.md:{line + 1} raised:\\n{traceback.format_exc()}")
    printed.append(buffer.getvalue())
open(out, "w").write(json.dumps(printed))
"""


def test_tutorial_code_runs_and_prints_what_it_shows(tmp_path):
    import json

    path = ROOT / "docs" / "tutorial.md"
    blocks = _tutorial_blocks(path.read_text())
    assert len(blocks) >= 10 and sum(shown is not None for _, _, shown in blocks) >= 10
    python = ROOT / ".venv" / "bin" / "python"
    out = tmp_path / "printed.json"
    result = subprocess.run([str(python if python.exists() else sys.executable), "-c", _RUN_BLOCKS, str(path),
                             str(out)], input=json.dumps([(line, code) for line, code, _ in blocks]), cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    for (line, _, shown), printed in zip(blocks, json.loads(out.read_text())):
        where = f"docs/tutorial.md:{line + 1}"
        if shown is None:
            assert printed == "", f"the block at {where} prints, but the tutorial shows no output:\n{printed}"
        else:
            assert printed.rstrip("\n") == shown, (
                f"the block at {where} prints something else than the tutorial shows (messages that cite a line "
                f"cite tutorial.md's, which shift when lines are added above):\n{printed}")
