"""The user-facing surface outside the library: examples run, the README shows
what its example prints, the command line works, the IR reference lists every
primitive."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ir.primitives import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_every_example_runs(script):
    result = run(str(script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


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


def test_demo_runs_and_agrees_with_numpy():
    result = run("-m", "tracegrad", "demo")
    assert result.returncode == 0, result.stderr
    assert "AGREE" in result.stdout and "def mlp_loss(" in result.stdout


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


def test_bench_quick_checks_agreement_and_writes_every_workload(tmp_path):
    out = tmp_path / "bench.json"
    result = run("-m", "tracegrad", "bench", "--quick", "--json", str(out))
    assert result.returncode == 0, result.stderr
    import json

    rows = json.loads(out.read_text())
    timed = {(r["workload"], r["impl"]) for r in rows}
    for workload in ("mlp loss", "mlp value_and_grad", "elementwise", "dispatch"):
        assert (workload, "tracegrad jit") in timed and (workload, "numpy") in timed
    assert "| mlp value_and_grad | tracegrad jit |" in result.stdout
