"""Fusion and what the pipeline shows: the kernels of an MLP training step,
their bodies and the kernel graph, the shapes of fusion (elementwise chains,
matmul epilogues, reductions), the explanation of every boundary, the dumps
after every pass, the statistics, the verifier, and ``lower(...).as_text``."""

from __future__ import annotations

import re
import time
from collections import Counter

import networkx as nx
import numpy as np
import pytest

import ir
import tracegrad as tg
import tracegrad.numpy as tnp
from ir.passes import pipeline
from ir.passes.fusion import _free_to_recompute, fuse, kind_of, row_kernel
from ir.passes.pipeline import FIXPOINT, PASS_NAMES, PassRecord, kernels, optimize
from test_passes import SEEDS, assert_bit_identical, case

F32 = np.dtype(np.float32)
KINDS = {"elementwise", "reduction", "matmul", "row"}


def mlp_loss(w1, b1, w2, b2, x, onehot):
    h = tnp.maximum(x @ w1 + b1, 0.0)
    logits = h @ w2 + b2
    top = tnp.max(logits, axis=1, keepdims=True)
    log_z = tnp.log(tnp.sum(tnp.exp(logits - top), axis=1, keepdims=True)) + top
    return -tnp.mean(tnp.sum(onehot * (logits - log_z), axis=1))


def mlp_args(batch=5, sizes=(8, 16, 4), seed=0):
    r = np.random.RandomState(seed)
    (n_in, n_hidden, n_out) = sizes
    return [r.standard_normal((n_in, n_hidden)).astype(F32), r.standard_normal(n_hidden).astype(F32),
            r.standard_normal((n_hidden, n_out)).astype(F32), r.standard_normal(n_out).astype(F32),
            r.standard_normal((batch, n_in)).astype(F32), np.eye(n_out, dtype=F32)[r.randint(0, n_out, batch)]]


STEP = tg.value_and_grad(mlp_loss, argnums=(0, 1, 2, 3))


@pytest.fixture(scope="module")
def mlp():
    args = mlp_args()
    graph = tg.make_ir(STEP)(*args)
    return graph, args, optimize(graph, verify=True)


def kernel_eqns(graph):
    return [e for e in graph.eqns if e.prim.name == "fused"]


def kernel_graph(graph) -> nx.DiGraph:
    """A node per top-level equation (a kernel, or an equation left alone), an
    edge from the one that writes a value to each one that reads it."""
    g = nx.DiGraph()
    writer = {}
    for k, e in enumerate(graph.eqns):
        g.add_node(k, prim=e.prim.name)
        for a in e.inputs:
            if isinstance(a, ir.Var) and a.id in writer:
                g.add_edge(writer[a.id], k)
        writer.update((v.id, k) for v in e.outputs)
    return g


def only(graph):
    """The one equation of a fused graph, which must be a kernel."""
    (eqn,) = graph.eqns
    assert eqn.prim.name == "fused"
    return eqn, [e.prim.name for e in eqn.params["body"].eqns]


# ------------------------------------------------------------- the MLP step
def test_the_mlp_step_fuses_into_fewer_kernels_than_equations_with_the_same_numbers(mlp):
    graph, args, result = mlp
    fused = result.fused
    assert kernels(fused) < len(result.optimized.eqns) <= len(graph.eqns)
    assert len(kernel_eqns(fused)) >= 3
    assert_bit_identical(ir.evaluate(fused, args), ir.evaluate(graph, args), "fused MLP step")
    assert_bit_identical(ir.evaluate(result.optimized, args), ir.evaluate(graph, args), "optimized MLP step")


def test_every_kernel_body_verifies_and_matches_its_equation(mlp):
    _, _, result = mlp
    for eqn in kernel_eqns(result.fused):
        body = ir.verify(eqn.params["body"])
        assert eqn.params["kind"] in KINDS
        assert body.in_types == [a.type for a in eqn.inputs]
        assert body.out_types == [v.type for v in eqn.outputs]
        assert not any(e.prim.name == "fused" for e in body.eqns)
        assert sum(e.prim.name == "dot_general" for e in body.eqns) <= 1, "one matmul per kernel"
        if eqn.params["kind"] == "matmul":
            assert any(e.prim.name == "dot_general" for e in body.eqns)
    ir.verify(result.fused)


def test_the_kernel_graph_has_no_cycle(mlp):
    _, _, result = mlp
    g = kernel_graph(result.fused)
    assert nx.is_directed_acyclic_graph(g)
    assert g.number_of_nodes() == len(result.fused.eqns)
    # and the kernels run in an order that respects it
    assert all(i < j for i, j in g.edges)


def test_the_fused_mlp_step_writes_fewer_bytes_to_memory(mlp):
    _, _, result = mlp
    before, after = result.records[-2], result.records[-1]
    assert after.name == "fusion" and before.name != "fusion"
    assert after.bytes_to_memory < before.bytes_to_memory
    assert after.kernels < before.kernels


# ------------------------------------------------------------ fusion shapes
def test_an_elementwise_chain_with_a_broadcast_operand_is_one_kernel():
    x, y = np.ones((3, 4), F32), np.ones(4, F32)
    graph = tg.make_ir(lambda x, y: tnp.tanh(tnp.exp(x) * 2.0 + y) - tnp.sqrt(tnp.abs(x)))(x, y)
    fused = optimize(graph, verify=True).fused
    eqn, body = only(fused)
    assert eqn.params["kind"] == "elementwise"
    assert {"exp", "mul", "broadcast_in_dim", "add", "tanh", "abs", "sqrt", "sub"} == set(body)
    assert eqn.inputs == fused.inputs and eqn.outputs == fused.outputs  # reads x and y once, writes the result
    args = [np.array([[np.nan, -0.0, 1, 2]] * 3, F32), np.array([np.inf, 0, -1, 0.5], F32)]
    assert_bit_identical(ir.evaluate(fused, args), ir.evaluate(graph, args))


def test_a_matmul_with_its_bias_add_and_relu_is_one_kernel():
    x, w, b = np.ones((5, 3), F32), np.ones((3, 4), F32), np.ones(4, F32)
    graph = tg.make_ir(lambda x, w, b: tnp.maximum(x @ w + b, 0.0))(x, w, b)
    fused = optimize(graph, verify=True).fused
    eqn, body = only(fused)
    assert eqn.params["kind"] == "matmul"
    assert body == ["dot_general", "broadcast_in_dim", "add", "max"]
    r = np.random.RandomState(0)
    args = [r.standard_normal(s).astype(F32) for s in ((5, 3), (3, 4), (4,))]
    assert_bit_identical(ir.evaluate(fused, args), ir.evaluate(graph, args))


def test_two_matmuls_in_a_row_are_two_kernels_and_the_boundary_says_why():
    args = [np.ones((2, 3)), np.ones((3, 3)), np.ones((3, 2))]
    fused = optimize(tg.make_ir(lambda x, w1, w2: tnp.tanh(tnp.tanh(x @ w1) @ w2))(*args), verify=True).fused
    assert [e.params["kind"] for e in fused.eqns] == ["matmul", "matmul"]
    assert any(b.startswith("tanh -> dot_general") and "matmul is a fusion boundary" in b
               for b in fused.meta["boundaries"])


def test_an_elementwise_producer_fuses_into_its_reduction_and_its_epilogue():
    fused = optimize(tg.make_ir(lambda x: tnp.mean(tnp.exp(x) * 2.0))(np.ones((3, 4))), verify=True).fused
    eqn, body = only(fused)
    assert eqn.params["kind"] == "reduction" and body == ["exp", "mul", "reduce_sum", "div"]


def test_sibling_reductions_of_one_input_share_a_kernel():
    fused = optimize(tg.make_ir(lambda x: (tnp.sum(x, axis=1), tnp.max(x, axis=1)))(np.ones((3, 4))),
                     verify=True).fused
    eqn, body = only(fused)
    assert sorted(body) == ["reduce_max", "reduce_sum"] and len(eqn.outputs) == 2 and len(eqn.inputs) == 1


def test_a_broadcast_literal_is_recomputed_in_each_kernel_rather_than_written():
    def f(x, w):
        c = tnp.full_like(x, 2.5)
        return (tnp.exp(x) * c) @ w, tnp.tanh(x) + c  # two kernels read the broadcast of 2.5

    args = [np.ones((3, 3)), np.ones((3, 3))]
    graph = tg.make_ir(f)(*args)
    result = optimize(graph, verify=True)
    assert not any(e.prim.name == "broadcast_in_dim" for e in result.fused.eqns)  # none left at top level
    assert result.records[-1].fired.get("recomputed_broadcasts", 0) >= 2
    assert_bit_identical(ir.evaluate(result.fused, args), ir.evaluate(graph, args))


def test_a_merge_that_would_make_a_cycle_is_refused_and_explained():
    """a = exp(x) feeds both the matmul a @ w and the sum a + (a @ w): putting
    a in the epilogue's kernel would need the matmul's kernel before and after it."""
    args = [np.ones((3, 3), F32), np.ones((3, 3), F32)]
    graph = tg.make_ir(lambda x, w: tnp.exp(x) + tnp.exp(x) @ w)(*args)
    fused = fuse(optimize(graph, verify=True).optimized)
    ir.verify(fused)
    assert nx.is_directed_acyclic_graph(kernel_graph(fused))
    assert "exp -> add (f32[3,3]): merging would create a cycle between kernels" in fused.meta["boundaries"]
    r = np.random.RandomState(1)
    data = [r.standard_normal((3, 3)).astype(F32) for _ in range(2)]
    assert_bit_identical(ir.evaluate(fused, data), ir.evaluate(graph, data))


# ------------------------------------------------------ on random programs
def work(graph) -> Counter:
    """The equations a program runs, kernels opened, free broadcasts and iotas not counted."""
    found = Counter()
    for e in graph.eqns:
        if e.prim.name == "fused":
            found += work(e.params["body"])
        elif not _free_to_recompute(e):
            found[e.prim.name] += 1
    return found


def test_every_kernel_of_a_random_program_is_what_its_kind_says_and_no_work_is_duplicated():
    """What code generation will rely on: an elementwise kernel holds only
    elementwise work (broadcasts and reshapes included), a matmul kernel one
    matmul, a reduction kernel a reduction and no matmul, a row kernel has a
    leading loop shape; only broadcasts of literals and iotas are recomputed."""
    seen = Counter()
    for seed in SEEDS[::2]:
        program, graph, _ = case(seed, "vjp")
        result = optimize(graph)
        assert work(result.fused) == work(result.optimized), f"{program}: fusion duplicated or lost work"
        assert nx.is_directed_acyclic_graph(kernel_graph(result.fused)), program
        for eqn in kernel_eqns(result.fused):
            kind, body = eqn.params["kind"], eqn.params["body"].eqns
            kinds = Counter(kind_of(e) for e in body)
            seen[kind] += 1
            assert kinds["other"] == 0, f"{program}: {kind} kernel holds {[e.prim.name for e in body]}"
            if kind == "elementwise":
                assert set(kinds) == {"elementwise"}, program
            elif kind == "matmul":
                assert kinds["matmul"] == 1, program
            elif kind == "reduction":
                assert kinds["reduction"] >= 1 and kinds["matmul"] == 0, program
            else:
                assert kind == "row" and row_kernel(body) is not None, program
    assert set(seen) == KINDS  # the random programs make every kind of kernel


def rosenbrock(x):
    return tnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def test_fusing_a_hessian_of_3000_equations_takes_well_under_a_second():
    """jacfwd unrolls one JVP per input, so a Hessian is a long program whose
    kernels all read a few shared values: the cycle check before each merge
    must not walk everything downstream of them (it took seconds, growing
    with the square of the size)."""
    graph = optimize(tg.make_ir(tg.hessian(rosenbrock))(np.linspace(-1.0, 1.0, 190))).optimized
    assert len(graph.eqns) > 3000
    start = time.process_time()
    fused = fuse(graph)
    seconds = time.process_time() - start
    assert seconds < 0.5, f"fusing {len(graph.eqns)} equations took {seconds:.2f} s"
    assert nx.is_directed_acyclic_graph(kernel_graph(fused))


# ------------------------------------------------------------- explanations
BOUNDARY = re.compile(r"^(?P<producer>\w+) -> (?P<consumer>\w+) \((?P<type>\w+\[[\d,]*\])\): (?P<reason>\S.*)$")


def test_every_boundary_names_both_primitives_the_value_and_a_reason(mlp):
    _, _, result = mlp
    boundaries = result.fused.meta["boundaries"]
    assert boundaries and all(isinstance(b, str) for b in boundaries)
    for text in boundaries:
        m = BOUNDARY.match(text)
        assert m, f"boundary {text!r} does not read 'producer -> consumer (type): reason'"
        assert m["producer"] in ir.REGISTRY and m["consumer"] in ir.REGISTRY, text
        assert len(m["reason"].split()) >= 3, text


# -------------------------------------------------------------- the pipeline
def test_the_pipeline_records_each_pass_in_order_with_its_statistics(mlp):
    graph, _, result = mlp
    names = [r.name for r in result.records]
    assert names[:2] == ["inline", "merge"] and names[-1] == "fusion" and set(names) <= set(PASS_NAMES)
    rounds = names[2:-1]
    assert len(rounds) % len(FIXPOINT) == 0 and rounds[:len(FIXPOINT)] == list(FIXPOINT)
    assert result.records[0].eqns_before == len(graph.eqns)
    for prev, rec in zip(result.records, result.records[1:]):
        assert rec.eqns_before == prev.eqns_after
    assert result.records[-1].eqns_after == len(result.fused.eqns)
    for rec in result.records:
        assert isinstance(rec, PassRecord) and rec.seconds >= 0 and rec.kernels <= rec.eqns_after
        text = rec.describe()
        assert rec.name in text and f"{rec.kernels} kernels" in text
        for rule, count in rec.fired.items():
            assert not count or f"{rule} x{count}" in text
    assert "fused_edges" in result.records[-1].describe()
    assert result.report().splitlines() == [r.describe() for r in result.records]


def test_dump_dir_gets_the_graph_after_every_pass(tmp_path, monkeypatch, mlp):
    graph, _, _ = mlp
    monkeypatch.setenv("TRACEGRAD_DUMP_DIR", str(tmp_path / "dumps"))
    result = optimize(graph)
    files = sorted((tmp_path / "dumps").iterdir())
    assert len(files) == len(result.records)
    for path, rec in zip(files, result.records):
        assert rec.name in path.name and path.read_text().strip()
    assert files[-1].read_text() == result.fused.format(source=True) + "\n"
    # an explicit dump_dir serves too, and without either nothing is written
    result = optimize(graph, dump_dir=str(tmp_path / "explicit"))
    assert len(list((tmp_path / "explicit").iterdir())) == len(result.records)
    monkeypatch.delenv("TRACEGRAD_DUMP_DIR")
    before = set(tmp_path.rglob("*"))
    optimize(graph)
    assert set(tmp_path.rglob("*")) == before


def test_dumps_of_two_compilations_of_one_function_do_not_overwrite_each_other(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEGRAD_DUMP_DIR", str(tmp_path))
    jf = tg.jit(lambda x: tnp.exp(x) * 2.0)
    jf(np.ones(3))
    first = len(list(tmp_path.iterdir()))
    jf(np.ones(4))  # traced and optimised again
    dumps = [p.read_text() for p in tmp_path.iterdir()]
    assert len(dumps) == 2 * first
    assert any("f64[3]" in d for d in dumps) and any("f64[4]" in d for d in dumps)


def test_the_verifier_runs_after_every_pass_when_asked(monkeypatch, mlp):
    graph, _, _ = mlp
    calls = []
    monkeypatch.setattr(pipeline, "verify_graph", lambda g: calls.append(g))
    monkeypatch.setenv("TRACEGRAD_VERIFY", "1")
    result = optimize(graph)
    assert len(calls) == len(result.records)
    assert calls[-1] is result.fused
    calls.clear()
    monkeypatch.setenv("TRACEGRAD_VERIFY", "0")
    optimize(graph)
    assert calls == []
    optimize(graph, verify=True)
    assert len(calls) > 0


def test_the_verifier_catches_a_pass_that_breaks_the_graph(monkeypatch):
    def broken_dce(graph, fired=None):  # drops the first equation, whose value is still read
        return ir.Graph(graph.inputs, graph.eqns[1:], graph.outputs, graph.name)

    monkeypatch.setitem(pipeline.PASSES, "dce", broken_dce)
    graph = tg.make_ir(lambda x: tnp.tanh(tnp.exp(x)))(np.ones(3))
    with pytest.raises(ir.VerificationError, match="used before it is defined"):
        optimize(graph, verify=True)


# ------------------------------------------------------------- lower / text
def test_lower_shows_the_optimized_and_the_fused_program_with_explanations():
    args = mlp_args()
    lowered = tg.jit(STEP).lower(*args)
    traced = lowered.as_text("traced")
    optimized = lowered.as_text("optimized")
    fused = lowered.as_text("fused", explain=True)
    assert traced.startswith("def ") and "dot_general" in traced
    assert optimized.startswith("# ") and "equations traced" in optimized and "def " in optimized
    assert "fused[" in fused and "why" in fused and "body(" in fused
    for boundary in lowered.compile().passes.fused.meta["boundaries"]:
        assert boundary in fused
    assert "why" not in lowered.as_text("fused")


def test_the_interpreted_pipeline_gives_the_traced_programs_numbers_bit_for_bit():
    args = mlp_args(seed=4)
    jf = tg.jit(STEP, backend="interpret")
    value, grads = jf(*args)
    compiled = jf.lower(*args).compile()
    assert compiled.program is compiled.passes.fused and kernel_eqns(compiled.program)
    want = ir.evaluate(compiled.graph, args)
    assert_bit_identical([value, *grads], want, "jit")
