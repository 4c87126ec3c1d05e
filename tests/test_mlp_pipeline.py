"""The pass pipeline on the program it exists for: value_and_grad of an MLP
training loss. Golden dumps pin each stage (regenerate with
TRACEGRAD_UPDATE_GOLDEN=1 after an intended change, and read the diff)."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(ROOT / "benchmarks"))
from passes import most_kernels_between_matmuls  # noqa: E402

from tracegrad.bench import _mlp_loss  # noqa: E402


mlp_loss = _mlp_loss(tnp)  # the benchmark's loss: ReLU layers and a stable softmax cross-entropy


def mlp_args(sizes=(4, 8, 8, 3), batch=2, seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for m, n in zip(sizes, sizes[1:]):
        params += [rng.standard_normal((m, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32)]
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    onehot = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], batch)]
    return params + [x, onehot]


VALUE_AND_GRAD = tg.value_and_grad(mlp_loss, argnums=tuple(range(6)))
STEP = tg.jit(VALUE_AND_GRAD)


@pytest.mark.parametrize("stage", ["traced", "optimized", "fused"])
def test_golden_dump_of_the_mlp_training_step(stage):
    text = STEP.lower(*mlp_args()).as_text(stage) + "\n"
    path = GOLDEN / f"mlp_step.{stage}.txt"
    if os.environ.get("TRACEGRAD_UPDATE_GOLDEN") or not path.exists():
        path.write_text(text)
    assert text == path.read_text()


def test_the_optimised_mlp_step_gives_the_traced_programs_numbers():
    """Bit for bit on the interpreter (the passes change no rounding); native code agrees to float32 rounding."""
    args = mlp_args(seed=3)
    ref_value, ref_grads = VALUE_AND_GRAD(*args)
    for step, exact in ((tg.jit(VALUE_AND_GRAD, backend="interpret"), True), (STEP, False)):
        value, grads = step(*args)
        for g, r in zip([value, *grads], [ref_value, *ref_grads]):
            if exact:
                np.testing.assert_array_equal(g, r)
            else:
                np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


def test_the_mlp_step_is_one_kernel_per_matmul_and_at_most_one_kernel_between_matmuls():
    passes = STEP.lower(*mlp_args(sizes=(784, 512, 512, 10), batch=128)).compile().passes
    fused = passes.fused
    assert len(fused.eqns) < len(passes.traced.eqns) / 4
    assert sum(e.prim.name == "dot_general" or e.params.get("kind") == "matmul" for e in fused.eqns) == 8
    assert most_kernels_between_matmuls(fused) <= 1
