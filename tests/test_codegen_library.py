"""codegen.library: the matmul library in pieces, built on demand and cached on disk one by one.

The pieces are process-wide state (their symbols and the driver's table of micro-kernels),
so every test runs a fresh Python process on a cache directory of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from codegen import gemm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script: str, cache: str, *args: str) -> dict:
    environment = dict(os.environ, TRACEGRAD_CACHE_DIR=cache)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True,
                          env=environment, cwd=REPO, timeout=600, check=False)
    assert done.returncode == 0, f"the subprocess failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [0, 1, 10, 15, 16, 17, 33, 64, 65, 130, 1030, 2100])
def test_micro_kernels_names_one_kernel_per_panel_width(dtype, n):
    bl = gemm.BLOCKINGS[dtype]
    names = gemm.micro_kernels(dtype, n)
    widths = {min(bl.nr, min(bl.nc, n - jc) - jr) for jc in range(0, n, bl.nc) for jr in range(0, min(bl.nc, n - jc), bl.nr)}
    assert names == {gemm.microkernel_name(dtype, -(-w // bl.lanes)) for w in widths}
    assert names <= set(gemm.every_microkernel(dtype))


# Each case runs with only the micro-kernels ``micro_kernels`` names in the driver's table (the
# others null): a kernel the listing missed would be a call through a null pointer, and the
# process would die. Every result is checked against NumPy.
ONLY_LISTED = """
    import ctypes, json
    import numpy as np
    from codegen import gemm, library

    SIG = ctypes.CFUNCTYPE(None, *([ctypes.c_int64] * 3 + [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                           ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                           ctypes.c_int32, ctypes.c_void_p]))
    cases = [(m, k, n, at, bt) for m, k, n in [(1, 1, 1), (7, 5, 10), (13, 130, 17), (40, 64, 64), (9, 33, 65),
                                              (70, 20, 130), (5, 9, 1030)]
             for at in (False, True) for bt in (False, True)]
    rng = np.random.default_rng(0)
    checked = 0
    for dtype in ("float32", "float64"):
        driver = gemm.function_name(dtype)
        library.load(library.every_routine(dtype))
        table = library._LOADED[driver].global_address(gemm.table_name(dtype))
        call = SIG(library._LOADED[driver].address(driver))
        raw = np.zeros(gemm.workspace_bytes(dtype) + 64, np.uint8)
        ws = raw.ctypes.data + (-raw.ctypes.data) % 64
        for m, k, n, at, bt in cases:
            ctypes.memset(table, 0, 8 * len(gemm.every_microkernel(dtype)))
            a_cs = m if at else 1
            for name in gemm.micro_kernels(dtype, n):
                library._link(name)
            a = rng.standard_normal((k, m) if at else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if bt else (k, n)).astype(dtype)
            c = np.empty((m, n), dtype)
            call(m, n, k, a.ctypes.data, 1 if at else k, a_cs, b.ctypes.data, 1 if bt else n, k if bt else 1,
                 c.ctypes.data, n, 0, ws)
            want = (a.T if at else a).astype(np.float64) @ (b.T if bt else b).astype(np.float64)
            np.testing.assert_allclose(c, want, rtol=1e-4, atol=1e-4 * k)
            checked += 1
        for name in gemm.every_microkernel(dtype):  # the table whole again
            library._link(name)
    print(json.dumps({"checked": checked}))
"""


def test_a_call_runs_only_the_micro_kernels_its_shape_names(tmp_path):
    assert run(ONLY_LISTED, str(tmp_path))["checked"] == 2 * 7 * 4


PIECES = """
    import json, sys
    import numpy as np
    import tracegrad as tg
    import tracegrad.numpy as tnp
    from codegen import library
    from codegen.cache import cache_dir

    x = np.linspace(-1.0, 1.0, 64 * 70, dtype=np.float32).reshape(64, 70)
    w = np.linspace(-2.0, 2.0, 70 * int(sys.argv[1]), dtype=np.float32).reshape(70, int(sys.argv[1]))
    jf = tg.jit(lambda x, w: tnp.tanh(x @ w))
    out = jf(x, w)
    native = jf.lower(x, w).compile()._native
    np.testing.assert_allclose(out, np.tanh(x.astype(np.float64) @ w), rtol=1e-4, atol=1e-5)
    print(json.dumps({"routines": list(native.interface.routines), "from_disk": native.from_disk,
                      "loaded": sorted(library._LOADED),
                      "files": {r: str(cache_dir() / (library._key(r) + ".o")) for r in library._LOADED}}))
"""


def test_library_pieces_are_built_on_demand_cached_one_by_one_and_a_corrupt_one_is_rebuilt(tmp_path):
    cache = str(tmp_path)
    first = run(PIECES, cache, "10")  # n = 10: one panel of one vector
    assert first["routines"] == ["tg_gemm_float32", "tg_gemm_float32.ukr.1"]
    assert first["loaded"] == first["routines"], "only the pieces the program calls are built"
    assert not first["from_disk"]
    for path in first["files"].values():
        assert os.path.exists(path), "every piece is cached on its own"

    second = run(PIECES, cache, "100")  # 64 + 36 columns: the driver from disk, two more kernels built
    assert second["routines"] == ["tg_gemm_float32", "tg_gemm_float32.ukr.3", "tg_gemm_float32.ukr.4"]
    assert second["files"]["tg_gemm_float32"] == first["files"]["tg_gemm_float32"]
    assert os.path.exists(second["files"]["tg_gemm_float32.ukr.3"])

    kernel = first["files"]["tg_gemm_float32.ukr.1"]
    with open(kernel, "rb") as f:
        blob = f.read()
    with open(kernel, "wb") as f:
        f.write(blob[:len(blob) // 2])  # truncated: ignored, rebuilt, and stored whole again
    third = run(PIECES, cache, "10")
    assert third["from_disk"], "the program itself is still cached"
    with open(kernel, "rb") as f:
        assert len(f.read()) == len(blob)


def test_a_build_that_fails_on_the_library_thread_fails_the_compile_that_waits_for_it(monkeypatch):
    from codegen import library

    def broken(routine):
        raise RuntimeError(f"cannot build {routine}")

    monkeypatch.setattr(library, "_build", broken)
    monkeypatch.setattr(library, "load_cached", lambda key: None)
    pending = library.start(["tg_gemm_float32.ukr.9"])
    with pytest.raises(RuntimeError, match="cannot build tg_gemm_float32.ukr.9"):
        pending.wait()
    assert "tg_gemm_float32.ukr.9" not in library._BUILDING, "a failed build may be tried again"


CONCURRENT = """
    import json, threading
    import numpy as np
    import tracegrad as tg
    import tracegrad.numpy as tnp
    from codegen import library

    rng = np.random.default_rng(0)
    cases = [(rng.standard_normal((40, 30)).astype(np.float32), rng.standard_normal((30, n)).astype(np.float32))
             for n in (10, 20, 64, 100)]
    results = [None] * len(cases)

    def compile_and_run(i):
        a, b = cases[i]
        results[i] = tg.jit(lambda a, b: a @ b + float(i))(a, b)

    threads = [threading.Thread(target=compile_and_run, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (a, b) in enumerate(cases):
        np.testing.assert_allclose(results[i], a.astype(np.float64) @ b + i, rtol=1e-4, atol=1e-4)
    print(json.dumps({"loaded": sorted(library._LOADED)}))
"""


def test_programs_compiled_at_once_on_several_threads_share_the_pieces_they_need(tmp_path):
    loaded = run(CONCURRENT, str(tmp_path))["loaded"]
    assert loaded == ["tg_gemm_float32", "tg_gemm_float32.ukr.1", "tg_gemm_float32.ukr.2",
                      "tg_gemm_float32.ukr.3", "tg_gemm_float32.ukr.4"]
