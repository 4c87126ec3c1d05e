"""The native runtime and the build around it: the text of each stage (LLVM
IR, and machine code that uses AVX-512 registers), the disk cache across
processes (corrupt and foreign entries ignored and rebuilt), the memory plan,
debug_nans on compiled code, argument checking, threads, no leak per call,
and two Python threads in one executable at once."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from codegen import program, runtime, target

try:  # the disk cache has a module of its own (codegen/cache.py) since the runtime was split
    from codegen import cache as _disk
except ImportError:  # pragma: no cover - the runtime before the split
    _disk = runtime
MAGIC, cache_dir, load_cached = _disk.MAGIC, _disk.cache_dir, _disk.load_cached

F32, F64 = np.float32, np.float64
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------ text of stages
def scaled_tanh(x):
    return tnp.tanh(x) * 2.0 + x


def sum_of_squares(x):
    return tnp.sum(x * x)


X4096 = np.linspace(-3.0, 3.0, 4096, dtype=F32)


def test_llvm_text_defines_the_entry_point_and_its_kernels():
    text = tg.jit(scaled_tanh).lower(X4096).as_text("llvm")
    assert re.search(r"^define .*@\"?tg_main\"?\(", text, re.MULTILINE), "no definition of the entry point"
    assert len(re.findall(r"^define ", text, re.MULTILINE)) >= 2, "the kernel is not a function of its own"


ZMM = r"\b(v(?:mul|add|fmadd\d*|fmsub\d*|fnmadd\d*)ps)\s+[^\n]*%zmm\d+"


@pytest.mark.skipif("+avx512f" not in target._features(), reason="the CPU has no AVX-512")
@pytest.mark.parametrize("fn", [scaled_tanh, sum_of_squares], ids=lambda f: f.__name__)
def test_asm_of_an_elementwise_kernel_and_of_a_reduction_uses_zmm_vectors(fn):
    """Full-width vectors: packed single-precision multiplies, adds or FMAs on 512-bit registers."""
    asm = tg.jit(fn).lower(X4096).as_text("asm")
    found = set(re.findall(ZMM, asm))
    assert found, f"no packed float arithmetic on %zmm registers in:\n{asm[:3000]}"
    if fn is sum_of_squares:
        assert found & {"vaddps"} or any(op.startswith("vfmadd") for op in found), found


@pytest.mark.parametrize("stage", ["llvm", "asm"])
def test_the_interpret_backend_refuses_native_stages_and_names_the_ones_it_has(stage):
    lowered = tg.jit(scaled_tanh, backend="interpret").lower(X4096)
    with pytest.raises(ValueError, match=rf"'{stage}'.*'interpret'.*traced, optimized, fused"):
        lowered.as_text(stage)
    assert "tanh" in lowered.as_text("fused")


# ---------------------------------------------------------------- disk cache
CACHE_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import tracegrad as tg
    import tracegrad.numpy as tnp
    from codegen.cache import cache_dir
    from codegen.runtime import source_key

    x = np.linspace(-2.0, 2.0, 1000, dtype=np.float32)
    report = {"threads": tg.config.threads, "programs": []}
    for k in range(int(sys.argv[1])):
        jf = tg.jit(lambda x, k=k: tnp.tanh(x) * (k + 2.0) + tnp.sum(x * x))
        compiled = jf.lower(x).compile()
        assert compiled._native.key == source_key(compiled.graph), "keyed by the traced graph"
        path = str(cache_dir() / (compiled._native.key + ".o"))
        report["programs"].append({"path": path, "from_disk": compiled._native.from_disk,
                                   "result": jf(x).tolist(), "passes_ran": compiled._passes is not None})
    print(json.dumps(report))
""")


def run_cache_script(cache: str, n: int, **env) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != "TRACEGRAD_THREADS"}
    environment.update(TRACEGRAD_CACHE_DIR=cache, **env)
    done = subprocess.run([sys.executable, "-c", CACHE_SCRIPT, str(n)], capture_output=True, text=True,
                          env=environment, cwd=REPO, timeout=300, check=False)
    assert done.returncode == 0, f"the subprocess failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def _truncate(blob: bytes) -> bytes:
    return blob[:len(blob) // 2]


def _scribble(blob: bytes) -> bytes:
    middle = len(blob) // 2
    return blob[:middle] + bytes(b ^ 0xFF for b in blob[middle:middle + 64]) + blob[middle + 64:]


def _garbage(blob: bytes) -> bytes:
    return os.urandom(len(blob))


def _foreign(blob: bytes) -> bytes:
    """Intact, but built on another machine: its fingerprint line is not this CPU's."""
    magic, fingerprint, rest = blob.split(b"\n", 2)
    assert fingerprint == target.fingerprint().encode()
    return magic + b"\n" + b"0123456789abcdef" + b"\n" + rest


CORRUPTIONS = [_truncate, _scribble, _garbage, _foreign]


def test_disk_cache_is_reused_by_another_process_and_bad_entries_are_rebuilt(tmp_path, monkeypatch):
    """Process 1 compiles and stores one program per corruption plus one; the
    files are damaged in every way but one; process 2 loads the intact one from
    disk and rebuilds the others (same results, no crash), which repairs them.
    TRACEGRAD_THREADS sets config.threads; without it, every core we may use."""
    cache = str(tmp_path / "cache")
    first = run_cache_script(cache, len(CORRUPTIONS) + 1, TRACEGRAD_THREADS="3")
    assert first["threads"] == 3
    paths = [p["path"] for p in first["programs"]]
    assert len(set(paths)) == len(paths) and all(p.startswith(cache) for p in paths)
    assert not any(p["from_disk"] for p in first["programs"])
    assert all(p["passes_ran"] for p in first["programs"])
    for path in paths:
        assert os.path.exists(path), "the first process stored nothing"
        with open(path, "rb") as f:
            assert f.read().startswith(MAGIC)
    for path, corrupt in zip(paths[1:], CORRUPTIONS):
        with open(path, "rb") as f:
            blob = f.read()
        with open(path, "wb") as f:
            f.write(corrupt(blob))

    second = run_cache_script(cache, len(CORRUPTIONS) + 1)
    assert second["threads"] == len(os.sched_getaffinity(0))
    assert [p["from_disk"] for p in second["programs"]] == [True] + [False] * len(CORRUPTIONS), \
        "the intact entry must be loaded, every damaged one rebuilt"
    assert [p["passes_ran"] for p in second["programs"]] == [False] + [True] * len(CORRUPTIONS), \
        "a program found by its traced graph needs no pass"
    x = np.linspace(-2.0, 2.0, 1000, dtype=F32)
    for k, (a, b) in enumerate(zip(first["programs"], second["programs"])):
        assert a["result"] == b["result"], f"program {k}: another result after the cache"
        want = tg.jit(lambda x, k=k: tnp.tanh(x) * (k + 2.0) + tnp.sum(x * x), backend="interpret")(x)
        np.testing.assert_allclose(np.array(b["result"], F32), want, rtol=1e-5, atol=1e-3)
    monkeypatch.setenv("TRACEGRAD_CACHE_DIR", cache)
    assert str(cache_dir()) == cache
    for path in paths:  # every entry is whole again
        assert load_cached(os.path.basename(path)[:-2]) is not None, f"{path} was not rewritten"


TABLE = np.linspace(-1.0, 1.0, 12)  # a constant of the program, longer than its printed form shows


def every_kind_of_result(x):
    y = tnp.tanh(x) * TABLE
    return y, y, x, 2.5, TABLE + 0.0  # a kernel's output twice, an input, a literal, a constant


def test_a_program_read_back_from_the_disk_cache_keeps_its_constants_and_every_kind_of_result(monkeypatch):
    x = np.linspace(0.0, 1.0, 12)
    want = tg.jit(every_kind_of_result, backend="interpret")(x)
    tg.jit(every_kind_of_result)(x)  # compiled (or found on disk), and in memory
    monkeypatch.setattr(runtime, "_LOADED", runtime._Loaded())  # as in a new process
    jf = tg.jit(every_kind_of_result)
    got = jf(x)
    assert jf.lower(x).compile()._native.from_disk
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert type(g) is np.ndarray and g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-12)
    assert got[0] is not got[1] and not np.shares_memory(got[2], x)
    got[4][0] = 99.0  # the caller owns every result, the constant's copy too
    np.testing.assert_allclose(jf(x)[4], TABLE)


def test_programs_that_differ_only_in_the_values_of_a_constant_are_cached_apart():
    x = np.ones((3, 3))
    keys = set()
    for k in (0, -1, 1):
        compiled = tg.jit(lambda a, k=k: a * tnp.eye(3, k=k)).lower(x).compile()
        keys.add(compiled._native.key)
        np.testing.assert_array_equal(compiled(x), np.eye(3, k=k))
    assert len(keys) == 3


def test_an_unwritable_cache_directory_is_skipped_without_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a file, not a directory"
    blocker.write_text("")
    monkeypatch.setenv("TRACEGRAD_CACHE_DIR", str(blocker / "cache"))
    x = np.arange(5.0)
    np.testing.assert_allclose(tg.jit(lambda x: tnp.cos(x) * 3.0 - 1.0)(x), np.cos(x) * 3.0 - 1.0, rtol=1e-12)


# -------------------------------------------------------------------- LLVM
def test_loops_are_unrolled_only_in_programs_with_a_row_kernel_over_long_rows():
    """Unrolling is a third of LLVM's time; it pays where a row kernel runs several short loops per row."""
    def softmax(x):
        e = tnp.exp(x - tnp.max(x, axis=-1, keepdims=True))
        return e / tnp.sum(e, axis=-1, keepdims=True)

    def unrolls(fn, shape):
        return tg.jit(fn).lower(np.ones(shape, F32)).compile()._native.program.unroll

    assert unrolls(softmax, (64, program.LONG_ROW))
    assert not unrolls(softmax, (64, program.LONG_ROW - 1))
    assert not unrolls(scaled_tanh, (4096,)) and not unrolls(sum_of_squares, (4096,))


# ------------------------------------------------------------------- memory
def four_matmuls(x, w):
    return tnp.tanh(x @ w @ w.T @ w @ w.T)


def transposes(x):
    return tnp.sum((x.T @ x).T @ x.T, axis=0)


def test_peak_bytes_is_the_arena_plus_the_outputs():
    x = np.ones((64, 48), F32)
    compiled = tg.jit(lambda x: (tnp.tanh(x @ x.T), tnp.sum(x, axis=0))).lower(x).compile()
    stats = compiled.memory_stats()
    assert stats.output_bytes == 64 * 64 * 4 + 48 * 4
    assert stats.peak_bytes == stats.arena_bytes + stats.output_bytes
    with pytest.raises(ValueError, match="interpret"):
        tg.jit(lambda x: x @ x.T, backend="interpret").lower(x).compile().memory_stats()


@pytest.mark.parametrize("fn, args", [
    (four_matmuls, ((256, 256), (256, 256))),
    (transposes, ((128, 128),)),
], ids=["matmuls in sequence", "transposes and matmuls"])
def test_the_arena_reuses_buffers_whose_lifetimes_do_not_overlap(fn, args):
    r = np.random.default_rng(1)
    arrays = [r.standard_normal(s) / np.sqrt(s[-1]) for s in args]
    jf = tg.jit(fn)
    stats = jf.lower(*arrays).compile().memory_stats()
    assert stats.arena_bytes < stats.unplanned_intermediate_bytes, stats
    assert stats.peak_bytes == stats.arena_bytes + stats.output_bytes
    want = tg.jit(fn, backend="interpret")(*arrays)
    np.testing.assert_allclose(jf(*arrays), want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


# -------------------------------------------------------------- debug_nans
def logarithm(x):
    y = x * 2.0
    return tnp.log(y) + 1.0


LOG_LINE = inspect.getsourcelines(logarithm)[1] + 2


def test_debug_nans_names_the_primitive_nan_and_the_users_line_in_compiled_code():
    jf = tg.jit(logarithm)
    with tg.debug_nans(), pytest.raises(FloatingPointError) as error:
        jf(np.array([1.0, -1.0, 3.0]))
    message = str(error.value)
    assert "'log'" in message and "nan" in message, message
    assert f"{__file__}:{LOG_LINE}" in message and "tnp.log(y)" in message, message
    with tg.debug_nans():  # a clean input runs, with the right values
        np.testing.assert_allclose(jf(np.array([0.5, 2.0])), np.log([1.0, 4.0]) + 1.0, rtol=1e-12)
    jf(np.array([1.0, -1.0]))  # and outside the context, a NaN is only a value


def test_debug_nans_reports_inf_too():
    with tg.debug_nans(), pytest.raises(FloatingPointError, match=r"'div' produced inf"):
        tg.jit(lambda x: 1.0 / x)(np.array([1.0, 0.0], F32))


def _sqrt_where(x):
    return tnp.sum(tnp.where(x > 0, tnp.sqrt(x), 0.0))


def _logs_in_a_loop(x):
    return tnp.sum(tg.lax.fori_loop(0, 3, lambda i, c: c + tnp.log(x - 1.0 * i), tnp.zeros_like(x)))


@pytest.mark.parametrize("fn, x", [
    (tg.grad(_sqrt_where), np.array([0.0, 1.0, 4.0])),
    (logarithm, np.array([1.0, -1.0])),
    (lambda x: tnp.exp(x) - tnp.exp(x), np.array([1.0, 1000.0])),
    (_logs_in_a_loop, np.array([1.5, 2.5])),
], ids=["derivative of sqrt under where", "log", "exp overflows", "log in a loop body"])
def test_debug_nans_says_in_compiled_code_what_the_interpreter_says(fn, x):
    messages = {}
    for backend in ("interpret", "llvm"):
        with tg.debug_nans(), pytest.raises(FloatingPointError) as error:
            tg.jit(fn, backend=backend)(x)
        messages[backend] = str(error.value)
    assert messages["llvm"] == messages["interpret"]


# --------------------------------------------------------------- arguments
def test_a_compiled_program_refuses_arguments_of_another_shape_or_dtype():
    x = np.ones((3, 4), F32)
    compiled = tg.jit(lambda x: x * 2.0).lower(x).compile()
    for wrong, what in ((np.ones((4, 3), F32), r"f32\[4,3\]"), (np.ones((3, 4), F64), r"f64\[3,4\]"),
                        (np.ones(12, F32), r"f32\[12\]")):
        with pytest.raises(tg.ArgumentError, match=what):
            compiled(wrong)
    native = compiled._native
    with pytest.raises(TypeError, match=r"argument 0 .* float64\[3, 4\], expected float32\[3, 4\]"):
        native([np.ones((3, 4), F64)])
    with pytest.raises(TypeError, match="takes 1 arrays, got 2"):
        native([x, x])
    np.testing.assert_array_equal(compiled(x), x * 2.0)  # still fine afterwards


def test_native_code_runs_only_on_contiguous_aligned_arrays_whatever_the_callers_layout():
    """On the fast path of a cached signature too: the native bridge refuses a reversed,
    Fortran-order or misaligned argument without running anything, and the runtime runs
    the program again on a copy; a C-contiguous aligned array is passed as it is."""
    jf = tg.jit(lambda x, y: x * 2.0 + y)
    x, y = np.arange(12.0).reshape(3, 4), np.ones((3, 4))
    jf(x, y)
    native = jf.lower(x, y).compile()._native
    calls, call = [], native._call

    def spy(held, arena, threads):
        status = call(held, arena, threads)
        calls.append((held[0], held[1], status))
        return status

    native._call = spy
    raw = np.zeros(x.nbytes + 1, np.uint8)
    misaligned = np.frombuffer(raw[1:].data, x.dtype, x.size).reshape(x.shape)
    misaligned[...] = x
    for arg in (np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1], np.asfortranarray(x), misaligned):
        assert not (arg.flags.c_contiguous and arg.flags.aligned)
        np.testing.assert_array_equal(jf(arg, y), x * 2.0 + y)
        (refused, _, first), (copy, passed_y, second) = calls
        assert refused is arg and first == program.NOT_READABLE
        assert copy is not arg and copy.flags.c_contiguous and copy.flags.aligned and second == 0
        assert passed_y is y
        calls.clear()
    np.testing.assert_array_equal(jf(x, y), x * 2.0 + y)
    assert [(a is x, status) for a, _, status in calls] == [(True, 0)]
    assert jf.cache_info().misses == 1


def test_python_scalars_and_lists_are_arguments_like_arrays():
    """Python scalars are weakly typed 0-d leaves; a list is a pytree of leaves, each of which may be a scalar."""
    def f(x, parts):
        return x * parts[0] + tnp.sum(parts[1]) * 2.0

    jf, ref = tg.jit(f), tg.jit(f, backend="interpret")
    for args in ((2.0, [3.0, 4.0]), (np.arange(3, dtype=F32), [2.0, np.ones(2, F32)]), (3, [True, 1.5]),
                 (np.ones((2, 2)), [np.arange(2.0), -1])):
        got, want = jf(*args), ref(*args)
        assert type(got) is np.ndarray and (got.dtype, got.shape) == (want.dtype, want.shape), args
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert tg.jit(lambda x, y: x * y + 1.0)(2.0, 3.0) == 7.0
    assert tg.jit(lambda xs: xs[0] - xs[1])([5, 3]) == 2


# ------------------------------------------------------------------ threads
def _threads_agree(fn, *args, rtol: float) -> None:
    jf = tg.jit(fn)
    saved = tg.config.threads
    try:
        tg.config.threads = 1
        one = jf(*args)
        tg.config.threads = 2
        two = jf(*args)
        again = jf(*args)
    finally:
        tg.config.threads = saved
    want = tg.jit(fn, backend="interpret")(*args)
    scale = np.abs(want).max()
    np.testing.assert_allclose(two, one, rtol=rtol, atol=rtol * scale, err_msg="2 threads against 1")
    np.testing.assert_allclose(again, two, rtol=0, atol=0, err_msg="2 threads, twice")
    np.testing.assert_allclose(one, want, rtol=rtol, atol=rtol * scale, err_msg="1 thread against the interpreter")


def test_config_threads_is_an_integer_every_core_by_default():
    assert isinstance(tg.config.threads, int) and tg.config.threads >= 1


N = 2 ** 20
RNG = np.random.default_rng(7)
BIG = RNG.standard_normal(N).astype(F32)


@pytest.mark.parametrize("fn, shape", [
    (lambda x: tnp.tanh(x) * 2.0 + tnp.exp(-x * x), (N,)),
    (lambda x: tnp.sum(x * x), (N,)),
    (lambda x: tnp.sum(x, axis=1), (1024, 1024)),
    (lambda x: tnp.sum(x, axis=1), (512, 1024, 2)),
    (lambda x: tnp.max(x * 2.0, axis=(0, 2)), (64, 1024, 16)),
    (lambda x: x - tnp.mean(x, axis=-1, keepdims=True), (1024, 1024)),
    (lambda x: tnp.max(tnp.tanh(x)) + tnp.sum(tnp.exp(-x * x).astype(np.float64)) * tnp.min(x), (N,)),
    (lambda x: tnp.sum((x * 8.0).astype(np.int32)).astype(np.float32) + tnp.sum(tnp.sqrt(tnp.abs(x))), (N,)),
    (lambda x: tnp.mean(tnp.log(tnp.sum(tnp.exp(x - tnp.max(x, axis=1, keepdims=True)), axis=1))), (2048, 512)),
    (lambda x: tnp.sum(x - tnp.max(x, axis=1, keepdims=True), axis=0), (2048, 512)),
], ids=["elementwise", "sum of everything", "sum of rows", "sum over the middle axis", "max over the outer axes",
        "centred rows", "several whole-array reductions in one split stage", "integer and float whole sums",
        "row kernel with a mean across rows", "row kernel with a sum across rows"])
def test_one_and_two_threads_agree_on_large_programs(fn, shape):
    _threads_agree(fn, BIG[:int(np.prod(shape))].reshape(shape), rtol=1e-5)


def test_a_split_whole_array_sum_and_its_gradient_agree_with_one_thread():
    """The value and the gradient come from one stage split across threads: the sum combines per-chunk partials."""
    def value_and_gradient(x):
        value, grad = tg.value_and_grad(lambda y: tnp.sum(tnp.tanh(y) * y))(x)
        return tnp.concatenate([tnp.reshape(value, (1,)), grad])

    _threads_agree(value_and_gradient, BIG, rtol=1e-5)


def test_one_and_two_threads_agree_on_a_row_kernel():
    def softmax(x):
        e = tnp.exp(x - tnp.max(x, axis=-1, keepdims=True))
        return e / tnp.sum(e, axis=-1, keepdims=True)
    x = BIG.reshape(2048, 512)
    assert "row" in [e.params["kind"] for e in tg.jit(softmax).lower(x).compile().program.eqns
                     if e.prim.name == "fused"]
    _threads_agree(softmax, x, rtol=1e-5)


def test_one_and_two_threads_agree_on_a_matmul():
    a, b = BIG[:512 * 512].reshape(512, 512), BIG[-512 * 512:].reshape(512, 512)
    _threads_agree(lambda a, b: tnp.maximum(a @ b, 0.0), a, b, rtol=1e-4)


# ---------------------------------------------------------------- no leak
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_ten_thousand_calls_do_not_grow_the_resident_set():
    jf = tg.jit(lambda x, y: (tnp.tanh(x) * y, tnp.sum(x)))
    x, y = np.ones((4, 8), F32), np.ones(8, F32)
    for _ in range(1000):
        jf(x, y)
    before = _rss_bytes()
    for _ in range(10_000):
        jf(x, y)
    grown = _rss_bytes() - before
    assert grown < 5 * 2 ** 20, f"the resident set grew by {grown / 2 ** 20:.1f} MB over 10,000 calls"


# -------------------------------------------------------- python threads
# Run in a subprocess: a caller whose memory is freed under it may crash rather than fail.
CONCURRENT_SCRIPT = textwrap.dedent("""
    import sys, threading
    import numpy as np
    import tracegrad as tg
    import tracegrad.numpy as tnp

    size, direct = int(sys.argv[1]), sys.argv[2] == "direct"

    def chain(x, w):
        return tnp.tanh(x @ w) @ w.T

    r = np.random.default_rng(3)
    w = r.standard_normal((size, size)) / np.sqrt(size)
    inputs = [r.standard_normal((size, size)) for _ in range(2)]
    jf = tg.jit(chain)
    wants = [tg.jit(chain, backend="interpret")(x, w) for x in inputs]
    compiled = jf.lower(inputs[0], w).compile()
    assert compiled.memory_stats().arena_bytes >= size * size * 8, "the program needs an arena"
    call = (lambda x: compiled._native([x, w])[0][0]) if direct else (lambda x: jf(x, w))
    start = threading.Barrier(2)
    errors = []

    def work(k):
        start.wait()
        for i in range(60):
            got = call(inputs[k])
            if not np.allclose(got, wants[k], rtol=1e-10, atol=1e-10):
                errors.append(f"thread {k}, call {i}: max error {np.abs(got - wants[k]).max():.3g}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"arenas {len(compiled._native._arenas)}")
    print("ok" if not errors else f"{len(errors)} wrong results: " + "; ".join(errors[:3]))
""")


@pytest.mark.parametrize("size, how", [(192, "jit"), (48, "direct")],
                         ids=["jit, a large arena", "Executable, a small arena"])
def test_two_python_threads_in_one_executable_both_get_their_own_results(size, how):
    """Two threads call one compiled program at once on different inputs: the
    second finds the arena busy and must get one of its own, alive until its call returns.
    Native code runs without the GIL, so calls of a millisecond do overlap: the executable
    made a second arena (and keeps it for the next time)."""
    done = subprocess.run([sys.executable, "-c", CONCURRENT_SCRIPT, str(size), how], capture_output=True,
                          text=True, cwd=REPO, timeout=300, check=False)
    assert done.returncode == 0, f"the process died (exit {done.returncode}):\n{done.stderr[-2000:]}"
    *_, arenas, verdict = done.stdout.strip().splitlines()
    assert verdict == "ok", done.stdout
    if size >= 192:
        assert arenas == "arenas 2", "the calls never overlapped: is the GIL held in native code?"
