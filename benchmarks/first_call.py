"""The first call of the jitted MLP training step in a fresh process, imports excluded.

    PYTHONPATH=. python3 benchmarks/first_call.py [--repeats N]

Each repeat runs three fresh processes on a new cache directory: one compiles the machine's
matmul library alone (what a machine does once, cached apart from any program), one makes
the first call of the step on that directory (tracing, the passes, code generation, LLVM,
one run), and one makes it again, served from the on-disk cache the second filled. It prints
the median and the range of each. (``python -m tracegrad bench --only compile`` times the
first call on an empty directory, which includes compiling the library.)

``first_call.py --child CACHE_DIR`` is one such process: it prints its first call's seconds
and whether the program came from the disk cache; ``--library-only`` makes it compile the
library and stop."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def child(cache_dir: str, library_only: bool) -> None:
    os.environ["TRACEGRAD_CACHE_DIR"] = cache_dir
    import tracegrad as tg
    import tracegrad.numpy as tnp
    from codegen import library
    from tracegrad.bench import _mlp_inputs, _mlp_loss, _mlp_step

    if library_only:
        library.load(library.every_routine("float32"))
        return
    args = _mlp_inputs()
    start = time.perf_counter()
    jf = tg.jit(_mlp_step(tg.value_and_grad(_mlp_loss(tnp), argnums=tuple(range(6)))))
    jf(*args)
    seconds = time.perf_counter() - start
    print(json.dumps(dict(seconds=seconds, from_disk=jf.lower(*args).compile()._native.from_disk)))


def _run(cache_dir: str, *flags: str) -> dict | None:
    done = subprocess.run([sys.executable, __file__, "--child", cache_dir, *flags], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout) if done.stdout.strip() else None


def main(repeats: int) -> None:
    cold, disk = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="tracegrad-first-call-") as cache:
            _run(cache, "--library-only")
            first, again = _run(cache), _run(cache)
            assert not first["from_disk"] and again["from_disk"], (first, again)
            cold.append(first["seconds"])
            disk.append(again["seconds"])
    for name, samples in (("compiled, the matmul library cached", cold), ("from the disk cache", disk)):
        print(f"first call of the mlp step, {name}: {statistics.median(samples) * 1e3:.0f} ms "
              f"({min(samples) * 1e3:.0f}-{max(samples) * 1e3:.0f} ms over {repeats} processes)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], "--library-only" in sys.argv)
    else:
        main(int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 5)
