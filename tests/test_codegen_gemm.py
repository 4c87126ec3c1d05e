"""codegen.gemm: the generated matrix multiply against NumPy (a float64 product as the
reference) over every kind of tail, stride and flag; re-entrancy from two threads; and
the micro-kernel's machine code (zmm FMAs, nothing spilled in the k loop)."""

import ctypes
import re
import threading

import numpy as np
import pytest
from llvmlite import ir

from codegen import gemm
from codegen.target import assembly, compile_module

DTYPES = ["float32", "float64"]

_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                              ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                              ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p)


@pytest.fixture(scope="module")
def compiled():
    """Both dtypes in one module (so they must coexist), compiled once."""
    module = ir.Module(name="test_gemm")
    functions = {d: gemm.define_gemm(module, d) for d in DTYPES}
    engine, optimised = compile_module(str(module))
    calls = {d: _SIGNATURE(engine.address(functions[d].name)) for d in DTYPES}
    return engine, optimised, calls


def workspace(dtype: str) -> np.ndarray:
    raw = np.zeros(gemm.workspace_bytes(dtype) + 64, np.uint8)
    offset = (-raw.ctypes.data) % 64
    return raw[offset:offset + gemm.workspace_bytes(dtype)]


def run(call, a: np.ndarray, b: np.ndarray, c: np.ndarray, accumulate: bool, ws: np.ndarray) -> None:
    """C (=|+=) A @ B with whatever strides the arrays have (C's rows contiguous)."""
    item = a.itemsize
    assert c.size == 0 or c.strides[1] == item or c.shape[1] == 1
    call(a.shape[0], b.shape[1], a.shape[1], a.ctypes.data, a.strides[0] // item, a.strides[1] // item,
         b.ctypes.data, b.strides[0] // item, b.strides[1] // item, c.ctypes.data,
         c.strides[0] // item, int(accumulate), ws.ctypes.data)


def check(c: np.ndarray, a: np.ndarray, b: np.ndarray, c0: np.ndarray | None) -> None:
    """Within the worst-case rounding bound of a length-k sum of products, whatever its order."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = a64 @ b64
    scale = np.abs(a64) @ np.abs(b64)
    if c0 is not None:
        want = want + c0
        scale = scale + np.abs(c0)
    bound = 2 * (a.shape[1] + 2) * np.finfo(c.dtype).eps * scale + np.finfo(c.dtype).tiny
    err = np.abs(c.astype(np.float64) - want)
    assert np.all(err <= bound), f"max error {err.max():.3g}, at {np.unravel_index(np.argmax(err - bound), err.shape)}"


def operands(rng, m: int, k: int, n: int, dtype: str, a_t: bool, b_t: bool):
    """A (m x k) and B (k x n), each either row-major or the transpose of a row-major array."""
    a = rng.standard_normal((k, m) if a_t else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if b_t else (k, n)).astype(dtype)
    return (a.T if a_t else a), (b.T if b_t else b)


# Every block edge of both blockings: MR = 6; NR = 64 (float32) / 32 (float64) and one
# vector (16 / 8); KC = 128 and the unroll 4; MC = 720 / 384; NC = 1024; n <= NR reads A
# in place with k blocks up to 1024.
SHAPES = [  # (m, k, n)
    (1, 1, 1), (1, 7, 1), (2, 3, 5), (5, 4, 8), (6, 4, 16), (7, 5, 17), (13, 9, 31),
    (6, 128, 64), (7, 129, 65), (12, 127, 63), (11, 130, 33), (25, 257, 97),
    (1, 300, 200), (200, 300, 1), (19, 1030, 10), (31, 1025, 64), (9, 33, 1025),
    (385, 40, 70), (721, 20, 40), (64, 513, 130),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_numpy(compiled, dtype, shape):
    _, _, calls = compiled
    ws = workspace(dtype)
    rng = np.random.default_rng(hash(shape) % 2**32)
    m, k, n = shape
    for a_t in (False, True):
        for b_t in (False, True):
            a, b = operands(rng, m, k, n, dtype, a_t, b_t)
            c = np.full((m, n), np.nan, dtype)  # overwritten, never read, without accumulate
            run(calls[dtype], a, b, c, False, ws)
            check(c, a, b, None)
            c0 = rng.standard_normal((m, n)).astype(dtype)
            c = c0.copy()
            run(calls[dtype], a, b, c, True, ws)
            check(c, a, b, c0.astype(np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_sized(compiled, dtype):
    _, _, calls = compiled
    ws = workspace(dtype)
    rng = np.random.default_rng(1)
    for m, k, n in [(0, 5, 7), (5, 0, 7), (5, 7, 0), (0, 0, 0), (70, 0, 130)]:
        a, b = operands(rng, m, k, n, dtype, False, False)
        c0 = rng.standard_normal((m, n)).astype(dtype)
        c = np.full((m, n), np.nan, dtype)
        run(calls[dtype], a, b, c, False, ws)
        np.testing.assert_array_equal(c, np.zeros((m, n), dtype))  # an empty sum is zero
        c = c0.copy()
        run(calls[dtype], a, b, c, True, ws)
        np.testing.assert_array_equal(c, c0)  # ... and adds nothing


@pytest.mark.parametrize("dtype", DTYPES)
def test_general_strides(compiled, dtype):
    """Strides that are neither 1 nor the other dimension: steps, negative, broadcast (0)."""
    _, _, calls = compiled
    ws = workspace(dtype)
    rng = np.random.default_rng(2)
    big_a = rng.standard_normal((90, 300)).astype(dtype)
    big_b = rng.standard_normal((200, 260)).astype(dtype)
    cases = [
        (big_a[::2, ::3], big_b[::2, ::3]),  # every other row, every third column
        (big_a[::-3, 5:105], big_b[99::-1, ::-2]),  # negative strides
        (big_a[:40, ::-1].T[:100].T, big_b[:100, :70]),  # A reversed along k
        (np.broadcast_to(big_a[:1, :100], (37, 100)), big_b[:100, :70]),  # every row of A the same
        (big_a[:37, :100], np.broadcast_to(big_b[:100, :1], (100, 70))),  # every column of B the same
        (big_a[3:40, 7:107].T.copy().T, big_b[:100, 1:71].T.copy().T),  # column-major copies
    ]
    for a, b in cases:
        assert a.shape[1] == b.shape[0]
        c = np.full((a.shape[0], b.shape[1]), np.nan, dtype)
        run(calls[dtype], a, b, c, False, ws)
        check(c, a, b, None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_c_row_stride(compiled, dtype):
    """C may be a block of rows of a wider array; nothing outside the block is touched."""
    _, _, calls = compiled
    ws = workspace(dtype)
    rng = np.random.default_rng(3)
    a, b = operands(rng, 23, 50, 70, dtype, False, False)
    big = rng.standard_normal((30, 100)).astype(dtype)
    before = big.copy()
    block = big[4:27, 13:83]
    run(calls[dtype], a, b, block, True, ws)
    check(block, a, b, before[4:27, 13:83].astype(np.float64))
    outside = np.ones(big.shape, bool)
    outside[4:27, 13:83] = False
    np.testing.assert_array_equal(big[outside], before[outside])


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_threads_on_row_halves(compiled, dtype):
    """Re-entrant: two threads on disjoint row halves, each with its own workspace, give the
    result of one call bit for bit (the summation order depends only on k and the column)."""
    _, _, calls = compiled
    rng = np.random.default_rng(4)
    m, k, n = 301, 270, 333
    a, b = operands(rng, m, k, n, dtype, False, True)
    whole = np.empty((m, n), dtype)
    run(calls[dtype], a, b, whole, False, workspace(dtype))
    halves = np.full((m, n), np.nan, dtype)
    split = 150

    def work(rows: slice) -> None:
        for _ in range(3):  # long enough for the two calls to overlap
            run(calls[dtype], a[rows], b, halves[rows], False, workspace(dtype))

    threads = [threading.Thread(target=work, args=(rows,)) for rows in (slice(0, split), slice(split, m))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    np.testing.assert_array_equal(halves, whole)
    check(whole, a, b, None)


def test_define_gemm_is_idempotent():
    module = ir.Module()
    first = gemm.define_gemm(module, "float32")
    assert gemm.define_gemm(module, "float32") is first
    assert first.name == "tg_gemm_float32"
    assert [t for t in first.function_type.args] == [
        ir.IntType(64), ir.IntType(64), ir.IntType(64), ir.FloatType().as_pointer(), ir.IntType(64),
        ir.IntType(64), ir.FloatType().as_pointer(), ir.IntType(64), ir.IntType(64),
        ir.FloatType().as_pointer(), ir.IntType(64), ir.IntType(32), ir.IntType(8).as_pointer()]
    for dtype in DTYPES:
        assert gemm.workspace_bytes(dtype) > 0 and gemm.workspace_bytes(dtype) % 64 == 0


def _function_body(asm: str, name: str) -> str:
    start = asm.index(f"\n{name}:")
    return asm[start:asm.index(".Lfunc_end", start)]


@pytest.mark.parametrize("dtype, suffix", [("float32", "ps"), ("float64", "pd")])
def test_microkernel_is_zmm_fmas_without_spills(compiled, dtype, suffix):
    """The full-width kernel: its hottest block is the unrolled k loop of MR x NV FMAs per
    k step on zmm registers, with nothing spilled."""
    _, optimised, _ = compiled
    bl = gemm.BLOCKINGS[dtype]
    body = _function_body(assembly(optimised), f"{gemm.function_name(dtype)}.ukr.{bl.nv}")
    blocks = re.split(r"\n\.LBB\d+_\d+:", body)
    loop = max(blocks, key=lambda block: block.count("vfmadd"))
    fmas = re.findall(rf"vfmadd\d+{suffix}\s+([^\n]*)", loop)
    assert len(fmas) == bl.mr * bl.nv * bl.unroll
    assert all(re.search(r"%zmm\d+, %zmm\d+$", operands) for operands in fmas), fmas
    # (A scalar argument may be read from its stack slot; nothing is stored there, and no
    # vector register is spilled or reloaded.)
    assert not re.search(r",\s*-?\d*\(%rsp\)\s*$", loop, re.M), "the k loop stores to the stack"
    assert not re.search(r"^\s*v\S+\s[^\n]*\(%rsp\)", loop, re.M), "the k loop spills a vector register"
