"""What the pass pipeline does to value_and_grad of the MLP loss
(784-512-512-10, ReLU, softmax cross-entropy, batch 128, float32):
equations before and after, kernels, bytes of intermediates that reach
memory, and issue 4's target — at most one kernel per matmul plus at most one
fused elementwise/reduction kernel between consecutive matmuls.

    python benchmarks/passes.py
"""

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp
from ir.passes.pipeline import bytes_to_memory, kernels
from tracegrad.bench import _mlp_inputs, _mlp_loss


def is_matmul(eqn) -> bool:
    return eqn.prim.name == "dot_general" or eqn.params.get("kind") == "matmul"


def most_kernels_between_matmuls(graph) -> int:
    """The largest number of non-matmul kernels between two consecutive matmul kernels."""
    counts, current = [], 0
    for eqn in graph.eqns:
        if eqn.prim.name in ("reshape", "constant"):
            continue
        if is_matmul(eqn):
            counts.append(current)
            current = 0
        else:
            current += 1
    return max(counts[1:], default=0)  # before the first matmul there is nothing to fuse with


def main() -> int:
    args = _mlp_inputs()
    step = tg.jit(tg.value_and_grad(_mlp_loss(tnp), argnums=tuple(range(6))))
    passes = step.lower(*args).compile().passes
    traced, optimized, fused = passes.traced, passes.optimized, passes.fused
    matmuls = sum(is_matmul(e) for e in fused.eqns)
    print("value_and_grad of the MLP loss, 784-512-512-10, batch 128, float32\n")
    print("| stage | equations | kernels | bytes of intermediates written to memory |")
    print("|---|---|---|---|")
    for name, g in (("traced", traced), ("optimized", optimized), ("fused", fused)):
        print(f"| {name} | {len(g.eqns)} | {kernels(g)} | {bytes_to_memory(g):,} |")
    worst = most_kernels_between_matmuls(fused)
    print(f"\n{matmuls} matmul kernels; at most {worst} other kernel(s) between two consecutive matmuls "
          f"(target: at most 1) — {'MET' if worst <= 1 else 'MISSED'}")
    outs = step(*args)
    reference = tg.value_and_grad(_mlp_loss(tnp), argnums=tuple(range(6)))  # the same program without jit
    agree = all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in
                zip([outs[0], *outs[1]], [reference(*args)[0], *reference(*args)[1]]))
    print(f"results agree with the unoptimised program: {agree}")
    return 0 if agree and worst <= 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
