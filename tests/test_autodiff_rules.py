"""The derivative rules of the primitive table, through the tnp functions and
tracer operators that bind them: every rule exists, every rule agrees with
central differences to second order in forward and reverse mode (float32 and
float64), the conventions at non-differentiable points are pinned (ties,
abs at 0, the where trap, debug_nans), and the graph-level passes
(jvp_graph, vjp_graph) give verified graphs that compute what the
transformations compute."""

from __future__ import annotations

import numpy as np
import pytest

import ir
import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad import lax
from ir.passes import jvp_graph, vjp_graph
from tnp_helpers import FLOATS, dt_name, make
from tracegrad.core import bind1

f64 = np.float64


# ------------------------------------------------------------------ registry
def missing_rules(registry) -> list[str]:
    """Problems with the derivative rules of a primitive table: a differentiable
    primitive without a JVP or VJP rule, or a non-differentiable one with rules
    (which autodiff would never call)."""
    problems = []
    for name, prim in sorted(registry.items()):
        if prim.differentiable:
            problems += [f"{name} has no {kind} rule" for kind in ("jvp", "vjp") if not callable(getattr(prim, kind))]
        elif prim.jvp is not None or prim.vjp is not None:
            problems.append(f"{name} is marked differentiable=False but has derivative rules")
    return problems


def test_every_differentiable_primitive_has_jvp_and_vjp_rules():
    assert missing_rules(ir.REGISTRY) == []


def test_registry_check_flags_a_differentiable_primitive_without_rules():
    """The check above is not vacuous: a new differentiable primitive that forgot
    its rules (or half of them) is reported by name."""
    noop = lambda *a, **k: None
    fake = dict(ir.REGISTRY)
    fake["frobnicate"] = ir.Primitive("frobnicate", noop, noop, "elementwise", "test only")
    fake["half_done"] = ir.Primitive("half_done", noop, noop, "elementwise", "test only", jvp=noop)
    fake["stale"] = ir.Primitive("stale", noop, noop, "elementwise", "test only", differentiable=False, vjp=noop)
    assert missing_rules(fake) == ["frobnicate has no jvp rule", "frobnicate has no vjp rule",
                                   "half_done has no vjp rule",
                                   "stale is marked differentiable=False but has derivative rules"]
    assert "frobnicate" not in ir.REGISTRY


# ------------------------------------------------- finite-difference checks
def _kernel_body(x, y):
    """A fusion pass's kernel body for operands shaped like x and y."""
    return tg.make_ir(lambda a, c: tnp.tanh(a) * c + a)(np.zeros(x.shape, x.dtype), np.zeros(y.shape, y.dtype))


def N(*shape, seed=0):
    """Normal data (mixed signs, distinct values: no ties)."""
    return make(shape, f64, kind="any", seed=("N", seed)) / 2


def P(*shape, seed=0):
    """Positive data in (0.1, 3): inside the domain of sqrt, log, power."""
    return make(shape, f64, kind="positive", seed=("P", seed))


def S(*shape, seed=0):
    """Small data, |x| < 0.9: where exp, sinh, tan stay moderate."""
    return make(shape, f64, kind="small", seed=("S", seed))


def NZ(*shape, seed=0):
    """Mixed signs, bounded away from 0 (abs, divisors)."""
    x = make(shape, f64, kind="any", seed=("NZ", seed))
    return np.where(np.abs(x) < 0.3, np.sign(x + 1e-9) * 0.7, x)


def Z1():
    """Product inputs with exactly one zero."""
    return np.array([[1.5, 0.0, -0.8], [0.7, 1.2, -1.1]])


def Z2():
    """Product inputs with two zeros in one row (and one zero in a column)."""
    return np.array([[0.0, 1.3, 0.0], [0.9, -1.4, 0.6]])


def ARANGE_DISTINCT(*shape):
    """Values 0.2 apart and shuffled: max/min/sort-like rules stay away from ties."""
    n = int(np.prod(shape))
    return np.random.default_rng(7).permutation(np.arange(n) * 0.2 - 0.1 * n).reshape(shape)


class Case:
    """One check_grads case. Its float64 arguments are converted to each float
    dtype in turn, unless ``mixed``: then they are used with their own dtypes."""

    def __init__(self, name, fn, *args, modes=("fwd", "rev"), mixed=False):
        self.name, self.fn, self.args, self.modes, self.mixed = name, fn, args, modes, mixed


IDX = np.array([2, 0, 2, 2, 1])  # repeated indices: their cotangents accumulate

CASES = [
    # --- elementwise arithmetic, with broadcasting ------------------------
    Case("add_broadcast", tnp.add, N(2, 3), N(3, seed=1)),
    Case("add_operator_column", lambda x, y: x + y, N(2, 1), N(1, 3, seed=1)),
    Case("radd_scalar", lambda x: 1.5 + x, N(3)),
    Case("subtract_broadcast", tnp.subtract, N(2, 3), N(2, 1, seed=1)),
    Case("sub_operators", lambda x, y: (x - y, 2.0 - x, -x), N(3), N(3, seed=1)),
    Case("negative", tnp.negative, N(2, 2)),
    Case("multiply_broadcast", tnp.multiply, N(2, 3), N(1, 3, seed=1)),
    Case("mul_operators", lambda x, y: (x * y, 3.0 * x, x * x), N(2, 3), N(3, seed=1)),
    Case("divide_broadcast", tnp.divide, N(2, 3), NZ(3, seed=1)),
    Case("div_operators", lambda x, y: (x / y, 1.0 / y, y / 2.0), N(2, 3), NZ(2, 3, seed=1)),
    Case("true_divide_and_reciprocal", lambda x: tnp.true_divide(1.0, x) + tnp.reciprocal(x), NZ(4)),
    # remainder and floor jump where x / y is a whole number: these inputs stay away from that
    Case("remainder", lambda x, y: (tnp.remainder(x, y), x % 0.7, tnp.mod(1.5, y), x // 0.7 * x),
         np.array([0.5, 2.3, 4.1, 1.25]),
         np.array([0.7, 1.1, 1.9, 2.0])),
    Case("power_float_exponent_array", tnp.power, P(2, 3), N(2, 3, seed=1)),
    Case("power_broadcast_exponent", lambda x, y: x ** y, P(2, 3), N(3, seed=1)),
    Case("rpow_positive_base", lambda y: 2.5 ** y, N(4)),
    Case("integer_powers", lambda x: (x ** 2, x ** 3, x ** 0, x ** 1, tnp.power(x, 5)), N(3)),
    Case("negative_integer_powers", lambda x: (x ** -1, x ** -2, x ** -3), NZ(4)),
    Case("square", tnp.square, N(2, 2)),
    # a 0-d variable operand: the primitive broadcasts it, its cotangent is summed back to ()
    Case("scalar_operand_broadcast", lambda x, s: (x * s, s - x, x / s, tnp.maximum(x, s), tnp.where(x > 0, s, x),
                                                   s ** (x * x), x ** s), P(3), P(seed=1)),
    Case("maximum_away_from_ties", tnp.maximum, N(2, 3), N(3, seed=1)),
    Case("minimum_away_from_ties", tnp.minimum, N(2, 3), N(2, 3, seed=1)),
    Case("clip_scalar_bounds", lambda x: tnp.clip(x, -0.5, 0.6), np.array([-1.2, -0.3, 0.1, 0.4, 0.9, 2.0])),
    Case("clip_array_bounds", lambda x, lo: tnp.clip(x, lo, 0.8), np.array([-1.0, 0.0, 0.5, 1.5]),
         np.array([-0.5, 0.3, -0.2, 0.1])),
    Case("clip_method_one_sided", lambda x: x.clip(0.0), np.array([-1.0, -0.2, 0.3, 1.5])),
    Case("where_both_branches", lambda x, y: tnp.where(x > 0, x * y, tnp.sin(y)), N(2, 3), N(2, 3, seed=1)),
    Case("where_broadcast_scalar_branch", lambda x: tnp.where(x < 0.1, 0.0, x ** 2), N(2, 3)),
    Case("where_broadcast_operands", lambda x, y: tnp.where(np.array([True, False, True]), x, y), N(2, 3),
         N(2, 1, seed=1)),
    # --- unary maths ------------------------------------------------------
    Case("sqrt", tnp.sqrt, P(2, 3)),
    Case("exp", tnp.exp, S(2, 3)),
    Case("log", tnp.log, P(2, 3)),
    Case("log1p", tnp.log1p, S(2, 3)),
    Case("expm1", tnp.expm1, S(2, 3)),
    Case("sin", tnp.sin, N(2, 3)),
    Case("cos", tnp.cos, N(2, 3)),
    Case("tan", tnp.tan, S(2, 3)),
    Case("tanh", tnp.tanh, N(2, 3)),
    Case("sinh", tnp.sinh, S(2, 3)),
    Case("cosh", tnp.cosh, S(2, 3)),
    Case("arctan", tnp.arctan, N(2, 3)),
    Case("abs_away_from_zero", lambda x: (tnp.abs(x), abs(x), tnp.absolute(x)), NZ(2, 3)),
    Case("positive", lambda x: (tnp.positive(x) * x, +x), N(3)),
    # zero-derivative functions composed with differentiable ones: their rule is "no rule"
    Case("sign_floor_ceil_round_are_flat",
         lambda x: x * tnp.sign(x) + tnp.floor(x) * x + tnp.ceil(x) + tnp.round(x) * x + tnp.around(x, 1),
         np.array([-1.37, -0.62, 0.23, 1.71])),  # away from the jumps of floor, round and around(x, 1)
    Case("floor_divide_is_flat", lambda x: tnp.floor_divide(x, 0.7) * x, np.array([0.3, 1.0, 1.6, 2.5])),
    # --- reductions: axis / keepdims variants ---------------------------------
    *[Case(f"{name}_axis{ax}{'_keepdims' if kd else ''}",
           (lambda name, ax, kd: lambda x: getattr(tnp, name)(x, axis=ax, keepdims=kd))(name, ax, kd),
           ARANGE_DISTINCT(2, 3, 2) if name in ("max", "min") else P(2, 3, 2) if name == "prod" else N(2, 3, 2))
      for name in ("sum", "mean", "prod", "max", "min", "var", "std")
      for ax, kd in ((None, False), (1, False), (-1, True), ((0, 2), False), ((0, 2), True))],
    Case("prod_one_zero_all", tnp.prod, Z1()),
    Case("prod_one_zero_axis", lambda x: tnp.prod(x, axis=1), Z1()),
    Case("prod_one_zero_keepdims", lambda x: tnp.prod(x, axis=0, keepdims=True), Z1()),
    Case("prod_two_zeros_axis", lambda x: tnp.prod(x, axis=1), Z2()),
    Case("prod_two_zeros_all", tnp.prod, Z2()),
    Case("prod_odd_length", lambda x: tnp.prod(x, axis=0), N(5, 2) + 0.1),
    Case("var_std_ddof", lambda x: (tnp.var(x, ddof=1), tnp.std(x, axis=0, ddof=1)), N(3, 2)),
    Case("amax_amin", lambda x: tnp.amax(x, axis=0) - tnp.amin(x, axis=1, keepdims=True), ARANGE_DISTINCT(3, 3)),
    Case("reduction_methods",
         lambda x: (x.sum(axis=0), x.mean(), x.prod(axis=1), x.max(axis=0), x.min(), x.var(axis=1), x.std()),
         ARANGE_DISTINCT(2, 3) + 3.0),
    # --- slicing and indexing ---------------------------------------------------
    Case("basic_slices", lambda x: (x[1:, :2], x[0], x[-1, 1:3], x[..., 1], x[None, 0, :]), N(3, 4)),
    Case("slice_steps", lambda x: (x[::2], x[1::3, ::2], x[0:4:2, 1]), N(5, 4)),
    Case("slice_negative_steps", lambda x: (x[::-1], x[::-2, ::-3], x[3:0:-2, -1]), N(5, 4)),
    Case("integer_array_repeated_indices", lambda x: x[IDX], N(3, 2)),
    Case("integer_array_second_axis", lambda x: x[:, np.array([1, 1, 0])], N(2, 3)),
    Case("integer_arrays_pair", lambda x: x[np.array([0, 2, 0]), np.array([1, 1, 1])], N(3, 2)),
    Case("integer_array_negative", lambda x: x[np.array([-1, 0, -1])], N(3)),
    Case("take_flat_and_axis",
         lambda x: (tnp.take(x, np.array([5, 0, 5])), tnp.take(x, np.array([2, 2, 0]), axis=1), x.take([1, 1])),
         N(2, 3)),
    Case("traced_index", lambda x: x[tnp.argmax(x)] * x, ARANGE_DISTINCT(4)),
    # --- shapes -----------------------------------------------------------------
    Case("reshape", lambda x: (tnp.reshape(x, (3, 2)), x.reshape(-1), x.reshape(1, 6), tnp.ravel(x), x.ravel(),
                               x.flatten()), N(2, 3)),
    Case("transpose", lambda x: (tnp.transpose(x), tnp.transpose(x, (1, 2, 0)), x.T, x.transpose(0, 2, 1), x.mT),
         N(2, 3, 2)),
    Case("swapaxes_moveaxis", lambda x: (tnp.swapaxes(x, 0, 2), x.swapaxes(1, -1), tnp.moveaxis(x, 0, -1)),
         N(2, 3, 2)),
    Case("expand_dims_squeeze", lambda x: (tnp.expand_dims(x, 1), tnp.squeeze(x[None]), tnp.squeeze(x, axis=1),
                                           x.squeeze()), N(2, 1, 3)),
    Case("broadcast_to", lambda x: tnp.broadcast_to(x, (2, 3, 3)), N(3, 1)),
    Case("concatenate", lambda x, y: (tnp.concatenate([x, y, x]), tnp.concatenate([x, y], axis=None)),
         N(2, 2), N(1, 2, seed=1)),
    Case("concatenate_axis1", lambda x, y: tnp.concatenate([x, y], axis=1), N(2, 2), N(2, 3, seed=1)),
    Case("stack", lambda x, y: (tnp.stack([x, y]), tnp.stack([x, y, x], axis=-1)), N(2, 2), N(2, 2, seed=1)),
    Case("split", lambda x: (*tnp.split(x, 3, axis=1), *tnp.split(x, [1], axis=0)), N(2, 3)),
    Case("flip", lambda x: (tnp.flip(x), tnp.flip(x, axis=1)), N(2, 3)),
    Case("tile", lambda x: (tnp.tile(x, 2), tnp.tile(x, (2, 1, 2))), N(2, 2)),
    Case("repeat", lambda x: (tnp.repeat(x, 2), tnp.repeat(x, 3, axis=1), tnp.repeat(x, [2, 0], axis=0),
                              x.repeat(2, axis=0)), N(2, 2)),
    Case("atleast_1d", lambda x: tnp.atleast_1d(x) * 2.0, N()),
    # --- dtype conversion between floats --------------------------------------
    Case("astype_to_own_float", lambda x: x.astype(x.dtype) * x, N(3)),
    Case("astype_up_to_float64", lambda x: tnp.astype(x, np.float64) ** 2, N(3)),
    # float32 and float64 arguments at once (check_grads then uses float32's tolerances)
    Case("astype_between_floats", lambda a, b: (a.astype(np.float64) * b, b.astype(np.float32) * a,
                                                tnp.astype(a * a, "float64")),
         N(3).astype(np.float32), N(3, seed=1), mixed=True),
    # --- products -----------------------------------------------------------------
    Case("matmul_1d_1d", lambda a, b: a @ b, N(3), N(3, seed=1)),
    Case("matmul_1d_2d", lambda a, b: a @ b, N(3), N(3, 2, seed=1)),
    Case("matmul_2d_1d", lambda a, b: tnp.matmul(a, b), N(2, 3), N(3, seed=1)),
    Case("matmul_2d_2d", lambda a, b: a @ b, N(2, 3), N(3, 2, seed=1)),
    Case("matmul_batched", lambda a, b: a @ b, N(2, 2, 3), N(2, 3, 2, seed=1)),
    Case("matmul_batched_broadcast", lambda a, b: tnp.matmul(a, b), N(2, 1, 2, 3), N(3, 3, 2, seed=1)),
    Case("matmul_batched_with_vector", lambda a, b: (a @ b, b[:2] @ a), N(2, 2, 3), N(3, seed=1)),
    Case("rmatmul_constant", lambda a: (np.eye(2)[:, :2] @ a, [[1.0, 2.0], [0.5, -1.0]] @ a), N(2, 3)),
    Case("dot", lambda a, b: (tnp.dot(a, b), tnp.dot(b[:, 0], b), a.dot(b), tnp.dot(a, 2.0)), N(2, 3),
         N(3, 3, seed=1)),
    Case("dot_nd", lambda a, b: tnp.dot(a, b), N(2, 2, 3), N(2, 3, 2, seed=1)),
    Case("outer", tnp.outer, N(3), N(2, 2, seed=1)),
    Case("inner", lambda a, b: (tnp.inner(a, b), tnp.inner(a[0], b[1])), N(2, 3), N(2, 3, seed=1)),
    Case("tensordot", lambda a, b: (tnp.tensordot(a, b, axes=1), tnp.tensordot(a, b.transpose(2, 1, 0), axes=2),
                                    tnp.tensordot(a, b, axes=([0, 2], [1, 0]))), N(2, 3, 2), N(2, 2, 3, seed=1)),
    Case("einsum_matmul_and_batch", lambda a, b: (tnp.einsum("ij,jk->ik", a[0], b[0]),
                                                  tnp.einsum("bij,bjk->bik", a, b),
                                                  tnp.einsum("bij,bkj->kib", a, b.transpose(0, 2, 1)),
                                                  tnp.einsum("ibj,jbk->bik", a.transpose(1, 0, 2),
                                                             b.transpose(1, 0, 2))),
         N(2, 2, 3), N(2, 3, 2, seed=1)),
    Case("einsum_reductions_and_outer", lambda a, b: (tnp.einsum("ij->j", a), tnp.einsum("ij->ji", a),
                                                      tnp.einsum("ij,k->ijk", a, b), tnp.einsum("ij,j", a, b),
                                                      tnp.einsum("ij,kl->", a, a)), N(2, 3), N(3, seed=1)),
    # --- primitives no tnp function binds directly ---------------------------------
    Case("pad_primitive", lambda x, v: bind1("pad", x, v, padding_config=((1, 0, 1), (0, 2, 0))), N(2, 3), N()),
    Case("scatter_add_primitive", lambda x, u: bind1("scatter_add", x, u, IDX[:3]), N(3, 2), N(3, 2, seed=1)),
    Case("gather_two_axes_primitive", lambda x: bind1("gather", x, np.array([1, 0, 1]), np.array([2, 2, 0])),
         N(2, 3, 2)),
    Case("fused_kernel_primitive", lambda x, y: bind1("fused", x, y, kind="elementwise", body=_kernel_body(x, y)),
         N(2, 3), N(2, 3, seed=1)),
    # --- structured control flow: each primitive's rules on the bodies' derivatives -------------
    Case("cond_true_branch", lambda x, y: lax.cond(tnp.sum(x) > 0, lambda a, b: tnp.sin(a) * b, lambda a, b: a - b,
                                                   x, y), P(3), N(3, seed=1)),
    Case("cond_false_branch_closing_over_y", lambda x, y: lax.cond(tnp.sum(x) < 0, lambda a: a * y,
                                                                   lambda a: tnp.exp(a) + y * y, x), P(3), N(3, seed=1)),
    Case("switch_index_clamped", lambda x: lax.switch(5, [lambda a: a * a, tnp.tanh, lambda a: a ** 3], x), N(3)),
    Case("scan_tanh_rnn", lambda h, xs, w: lax.scan(lambda c, x: (tnp.tanh(c @ w + x), tnp.sum(c * x)), h, xs),
         N(2, 3), N(4, 2, 3, seed=1), N(3, 3, seed=2)),
    Case("scan_reverse_two_carries_and_ys", lambda a, xs: lax.scan(
        lambda c, x: ((c[0] * tnp.cos(x), c[1] + c[0] * x), (c[1] * x, tnp.sin(c[0]))), (a, a * 2), xs,
        reverse=True), N(2), N(3, 2, seed=1)),
    Case("fori_loop_static_bounds", lambda x: lax.fori_loop(0, 3, lambda i, v: tnp.sin(v) * (i + 1), x), N(3)),
    Case("while_loop_forward_mode", lambda x: lax.while_loop(lambda c: c[0] < 3,
                                                             lambda c: (c[0] + 1, c[1] * tnp.cos(c[1])), (0, x))[1],
         N(3), modes=("fwd",)),
    Case("scan_inside_scan_and_cond_inside_scan", lambda x, w: lax.scan(
        lambda c, row: (lax.scan(lambda d, e: (d * tnp.tanh(e * w), d), c, row)[0]
                        + lax.cond(tnp.sum(row) > 0, lambda r: r * c, lambda r: r - c, row), None),
        x[0], x)[0], N(3, 3), N(3, seed=1)),
    # --- a small model: composite of everything above --------------------------------
    Case("mlp_loss", lambda w, x: tnp.mean((tnp.tanh(x @ w[:3]) @ w[3:].T - 1.0) ** 2), N(5, 2), N(4, 3, seed=1)),
]


@pytest.mark.parametrize("case,dt", [(c, dt) for c in CASES for dt in ((None,) if c.mixed else FLOATS)],
                         ids=lambda v: v.name if isinstance(v, Case) else dt_name(v) if v else "mixed")
def test_derivatives_agree_with_central_differences_to_second_order(case, dt):
    args = [np.asarray(a, dt or a.dtype) for a in case.args]
    tg.check_grads(case.fn, args, order=2, modes=case.modes)


def test_astype_down_to_float32_and_back_has_identity_derivative():
    """x.astype(f32).astype(f64): the rounding is invisible to the rule (the
    derivative is 1), but central differences with float64's default step (1e-6)
    measure the rounding steps of float32 instead; float32's step (1e-3) and
    tolerances are the right ones for a function that computes in float32."""
    x = N(4)
    f = lambda x: x.astype(np.float32).astype(np.float64) * x
    tg.check_grads(f, (x,), order=2, eps=1e-3, rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(tg.grad(lambda x: tnp.sum(x.astype(np.float32).astype(np.float64)))(x), np.ones(4))
    down = tg.grad(lambda x: tnp.sum(x.astype(np.float32)))(x)
    assert down.dtype == np.float64  # the cotangent converts back to the input's dtype
    np.testing.assert_array_equal(down, np.ones(4))


def _primitives_of(graph):
    return {eqn.prim.name for eqn in graph.walk_eqns()}


def test_every_differentiable_primitive_is_checked_by_some_case():
    """A new differentiable primitive fails here until a case above (or a
    custom-rule / checkpoint test) exercises its rules."""
    seen = set()
    for case in CASES:
        seen |= _primitives_of(tg.make_ir(case.fn)(*case.args))
    covered_elsewhere = {"checkpoint", "custom_vjp_call", "custom_jvp_call"}  # tests/test_custom_and_checkpoint.py
    differentiable = {name for name, p in ir.REGISTRY.items() if p.differentiable}
    assert differentiable - covered_elsewhere - seen == set()


def test_check_grads_detects_a_wrong_rule(monkeypatch):
    """The finite-difference checks above catch a wrong rule: sin's derivative
    scaled by 1.01 fails check_grads in the mode whose rule is wrong."""
    sin = ir.REGISTRY["sin"]
    wrong = ir.primitives.core.elementwise_rules(
        lambda b, t, x, y: b.mul(b.mul(t, b.cos(x)), b.literal(1.01, b.type_of(x).dtype)))
    for kind, mode in (("jvp", "fwd"), ("vjp", "rev")):
        with monkeypatch.context() as m:
            m.setattr(sin, kind, wrong[kind])
            with pytest.raises(AssertionError, match="disagrees with central differences"):
                tg.check_grads(tnp.sin, (N(3),), order=1, modes=(mode,))
    tg.check_grads(tnp.sin, (N(3),), order=1)  # restored


def test_check_grads_honours_an_explicit_zero_tolerance():
    """rtol=0 / atol=0 mean exact agreement, not 'use the default'."""
    f = lambda x: x ** 3
    tg.check_grads(f, (np.array([1.3]),), order=1)
    with pytest.raises(AssertionError):
        tg.check_grads(f, (np.array([1.3]),), order=1, rtol=0.0, atol=0.0)


# ------------------------------------------------- hand-derived derivatives
def test_elementwise_rules_match_hand_derived_formulas():
    x = P(5)
    cases = {
        tnp.sqrt: 0.5 / np.sqrt(x), tnp.log: 1 / x, tnp.exp: np.exp(x), tnp.tanh: 1 - np.tanh(x) ** 2,
        tnp.arctan: 1 / (1 + x ** 2), tnp.log1p: 1 / (1 + x), tnp.sin: np.cos(x), tnp.cos: -np.sin(x),
        tnp.tan: 1 / np.cos(x) ** 2, tnp.sinh: np.cosh(x), tnp.cosh: np.sinh(x), tnp.expm1: np.exp(x),
        (lambda x: x ** 2.5): 2.5 * x ** 1.5, (lambda x: 3.0 ** x): np.log(3.0) * 3.0 ** x,
        (lambda x: x ** -2): -2 * x ** -3.0, tnp.reciprocal: -1 / x ** 2,
    }
    for fn, expected in cases.items():
        np.testing.assert_allclose(tg.grad(lambda x: tnp.sum(fn(x)))(x), expected, rtol=1e-12)
        np.testing.assert_allclose(tg.jvp(fn, (x,), (np.ones_like(x),))[1], expected, rtol=1e-12)


def test_prod_gradient_is_the_product_of_the_others_even_with_zeros():
    for x in (np.array([2.0, 3.0, 5.0]), np.array([2.0, 0.0, 5.0]), np.array([0.0, 3.0, 0.0])):
        others = np.array([np.prod(np.delete(x, i)) for i in range(3)])
        np.testing.assert_array_equal(tg.grad(tnp.prod)(x), others)
    # second derivative of x0*x1*x2 at x0 = x1 = 0: d2/dx0 dx1 = x2, not 0
    h = tg.hessian(tnp.prod)(np.array([0.0, 0.0, 5.0]))
    np.testing.assert_array_equal(h, [[0, 5, 0], [5, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(tg.jit(tg.hessian(tnp.prod))(np.array([0.0, 0.0, 5.0])), h)
    x = np.arange(1.0, 13.0).reshape(2, 3, 2)
    g = tg.jit(tg.grad(lambda x: tnp.sum(tnp.prod(x, axis=(0, 2)))))(x)
    np.testing.assert_allclose(g, np.prod(x, axis=(0, 2), keepdims=True) / x, rtol=1e-14)


def test_var_and_std_gradients_match_numpy_formulas():
    x = N(6)
    n = x.size
    np.testing.assert_allclose(tg.grad(tnp.var)(x), 2 * (x - x.mean()) / n, rtol=1e-12)
    np.testing.assert_allclose(tg.grad(tnp.std)(x), (x - x.mean()) / (n * x.std()), rtol=1e-12)


def test_gather_cotangents_accumulate_at_repeated_indices():
    g = tg.grad(lambda x: tnp.sum(x[np.array([2, 0, 2, 2])] * np.array([1.0, 10.0, 100.0, 1000.0])))(N(3))
    np.testing.assert_array_equal(g, [10.0, 0.0, 1101.0])


def test_negative_step_slice_cotangent_lands_in_place():
    g = tg.grad(lambda x: tnp.sum(x[::-2] * np.array([1.0, 2.0, 3.0])))(N(5))
    np.testing.assert_array_equal(g, [3.0, 0.0, 2.0, 0.0, 1.0])


def test_broadcasting_cotangents_sum_over_the_stretched_axes():
    gx, gy = tg.grad(lambda x, y: tnp.sum((x * y) * np.arange(6.0).reshape(2, 3)), argnums=(0, 1))(
        np.ones((2, 1)), np.ones(3))
    np.testing.assert_array_equal(gx, [[3.0], [12.0]])
    np.testing.assert_array_equal(gy, [3.0, 5.0, 7.0])


# ------------------------------------- conventions at non-differentiable points
def test_maximum_and_minimum_share_the_derivative_equally_at_ties():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 5.0, 0.0])
    for op, expected_a, expected_b in ((tnp.maximum, [0.5, 0, 1], [0.5, 1, 0]),
                                       (tnp.minimum, [0.5, 1, 0], [0.5, 0, 1])):
        ga, gb = tg.grad(lambda a, b: tnp.sum(op(a, b)), argnums=(0, 1))(a, b)
        np.testing.assert_array_equal(ga, expected_a)
        np.testing.assert_array_equal(gb, expected_b)
        _, t = tg.jvp(op, (a, b), (np.array([2.0, 0, 0]), np.array([4.0, 0, 0])))
        assert t[0] == 3.0  # the mean of the tied tangents
    # the same value as both operands: the two halves add back up to 1
    np.testing.assert_array_equal(tg.grad(lambda x: tnp.sum(tnp.maximum(x, x)))(a), np.ones(3))


def test_reduce_max_and_min_share_the_derivative_between_tied_extrema():
    x = np.array([3.0, 1.0, 3.0, -2.0])
    np.testing.assert_array_equal(tg.grad(tnp.max)(x), [0.5, 0, 0.5, 0])
    np.testing.assert_array_equal(tg.grad(tnp.min)(-x), [0.5, 0, 0.5, 0])
    np.testing.assert_array_equal(tg.jacrev(tnp.max)(x), tg.jacfwd(tnp.max)(x))
    m = np.array([[1.0, 4.0, 4.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(tg.grad(lambda m: tnp.sum(tnp.max(m, axis=1)))(m),
                               [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(tg.jit(tg.grad(lambda m: tnp.sum(tnp.max(m, axis=1, keepdims=True))))(m),
                               [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_abs_has_derivative_zero_at_zero():
    x = np.array([0.0, -2.0, 3.0, -0.0])
    np.testing.assert_array_equal(tg.grad(lambda x: tnp.sum(tnp.abs(x)))(x), [0, -1, 1, 0])
    np.testing.assert_array_equal(tg.jvp(tnp.abs, (x,), (np.ones(4),))[1], [0, -1, 1, 0])
    np.testing.assert_array_equal(tg.jit(tg.grad(lambda x: tnp.sum(abs(x))))(x), [0, -1, 1, 0])


def unguarded(x):
    return tnp.sum(tnp.where(x > 0, tnp.sqrt(x), 0.0))


def guarded(x):
    return tnp.sum(tnp.where(x > 0, tnp.sqrt(tnp.where(x > 0, x, 1.0)), 0.0))


def test_where_trap_gives_nan_unguarded_and_finite_with_the_double_where():
    x = np.array([0.0, 4.0, -1.0])
    g = tg.grad(unguarded)(x)
    assert np.isnan(g[0]) and g[1] == 0.25  # as JAX: 0 * inf in the discarded branch
    np.testing.assert_array_equal(tg.grad(guarded)(x), [0.0, 0.25, 0.0])
    np.testing.assert_array_equal(tg.jit(tg.grad(guarded))(x), [0.0, 0.25, 0.0])
    assert np.isnan(tg.jit(tg.grad(unguarded))(x)[0])
    assert tg.jvp(guarded, (x,), (np.ones(3),))[1] == 0.25


def test_debug_nans_names_the_derivative_and_explains_the_double_where():
    x = np.array([0.0, 4.0])
    with tg.debug_nans():
        with pytest.raises(FloatingPointError) as info:
            tg.grad(unguarded)(x)
        tg.grad(guarded)(x)  # the guarded version passes the check
    message = str(info.value)
    assert "derivative of sqrt" in message
    assert "'div'" in message  # the primitive that produced the NaN
    assert "where(x > 0, sqrt(where(x > 0, x, 1)), 0)" in message
    assert "tnp.sqrt(x)" in message  # the user's line
    with tg.debug_nans():  # forward mode too: the tangent of sqrt at 0 is 1 / 0
        with pytest.raises(FloatingPointError, match="derivative of sqrt") as info:
            tg.jvp(unguarded, (x,), (np.ones(2),))
    assert "sqrt(where(x > 0, x, 1))" in str(info.value)
    tg.grad(unguarded)(x)  # outside the context: no check


def test_debug_nans_under_jit_names_the_primitive_and_the_user_line():
    x = np.array([0.0, 4.0])
    with tg.debug_nans():
        with pytest.raises(FloatingPointError) as info:
            tg.jit(tg.grad(unguarded))(x)
    message = str(info.value)
    assert "'div'" in message
    line = unguarded.__code__.co_firstlineno + 1
    assert f"test_autodiff_rules.py:{line}" in message
    assert "tnp.sqrt(x)" in message


def test_stop_gradient_has_zero_derivative():
    x = N(3)
    np.testing.assert_array_equal(tg.grad(lambda x: tnp.sum(tg.stop_gradient(x) * x))(x), x)
    np.testing.assert_array_equal(tg.grad(lambda x: tnp.sum(tg.stop_gradient(x ** 2)))(x), np.zeros(3))
    np.testing.assert_array_equal(tg.jit(tg.grad(lambda x: tnp.sum(tg.stop_gradient(x) * x)))(x), x)
    np.testing.assert_array_equal(tg.jvp(tg.stop_gradient, (x,), (np.ones(3),))[1], np.zeros(3))
    tree = tg.grad(lambda p: tnp.sum(tg.stop_gradient(p)["a"] * p["b"]))({"a": x, "b": 2 * x})
    np.testing.assert_array_equal(tree["a"], np.zeros(3))
    np.testing.assert_array_equal(tree["b"], x)


def test_integer_and_bool_intermediates_carry_no_derivative():
    x = np.array([1.7, -2.4, 3.2])
    through_int = lambda x: tnp.sum(x.astype(np.int64).astype(np.float64) * 2.0)
    np.testing.assert_array_equal(tg.grad(through_int)(x), np.zeros(3))
    np.testing.assert_array_equal(tg.jvp(through_int, (x,), (np.ones(3),))[1], 0.0)
    mask = lambda x: tnp.sum((x > 0).astype(np.float64) * x)
    np.testing.assert_array_equal(tg.grad(mask)(x), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(tg.grad(lambda x: tnp.sum(tnp.argmax(x) * x))(x), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(tg.jit(tg.grad(through_int))(x), np.zeros(3))


# --------------------------------------------------- graph-level passes
def model(x, w, k):
    h = tnp.tanh(x @ w)
    return tnp.sum(h * h) + tnp.sum(k), h[:, ::-1] * 2.0, k * 2


def _model_data():
    x, w = N(2, 3), N(3, 4, seed=1)
    k = np.arange(3)
    return x, w, k


def test_vjp_graph_verifies_and_matches_the_vjp_transform():
    x, w, k = _model_data()
    graph = tg.make_ir(model)(x, w, k)
    vg = ir.verify(vjp_graph(graph))
    # inputs: primals, then a cotangent per float output; outputs: outputs, then a cotangent per float input
    assert vg.in_types == graph.in_types + [graph.out_types[0], graph.out_types[1]]
    assert vg.out_types == graph.out_types + [graph.in_types[0], graph.in_types[1]]
    assert vg.eqns[:len(graph.eqns)] == graph.eqns  # the forward equations are shared, unchanged
    cts = (np.array(1.5), N(2, 4, seed=2))
    results = ir.evaluate(vg, [x, w, k, *cts])
    outs, pullback = tg.vjp(lambda x, w: model(x, w, k)[:2], x, w)
    np.testing.assert_allclose(results[0], outs[0])
    np.testing.assert_allclose(results[1], outs[1])
    for got, want in zip(results[3:], pullback(cts)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_vjp_graph_with_wrt_differentiates_only_those_inputs():
    x, w, k = _model_data()
    graph = tg.make_ir(model)(x, w, k)
    vg = ir.verify(vjp_graph(graph, wrt=[1]))
    assert vg.out_types[3:] == [graph.in_types[1]]
    results = ir.evaluate(vg, [x, w, k, np.array(1.0), np.zeros((2, 4))])
    expected = tg.grad(lambda w: model(x, w, k)[0])(w)
    np.testing.assert_allclose(results[3], expected, rtol=1e-12)


def test_jvp_graph_verifies_and_matches_the_jvp_transform():
    x, w, k = _model_data()
    graph = tg.make_ir(model)(x, w, k)
    jg = ir.verify(jvp_graph(graph))
    assert jg.in_types == graph.in_types + [graph.in_types[0], graph.in_types[1]]
    assert jg.out_types == graph.out_types + [graph.out_types[0], graph.out_types[1]]
    tx, tw = N(2, 3, seed=3), N(3, 4, seed=4)
    results = ir.evaluate(jg, [x, w, k, tx, tw])
    outs, tangents = tg.jvp(lambda x, w: model(x, w, k)[:2], (x, w), (tx, tw))
    np.testing.assert_allclose(results[0], outs[0])
    for got, want in zip(results[3:], tangents):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_graph_passes_compose_into_second_derivatives():
    """jvp_graph of vjp_graph is a Hessian-vector product program."""
    f = lambda x: tnp.sum(tnp.sin(x) * x ** 2)
    x, v = N(4), N(4, seed=1)
    vg = vjp_graph(tg.make_ir(f)(x))
    hvp = ir.verify(jvp_graph(vg, wrt=[0]))  # (x, ct, tx) -> (f, grad, tangent of f, tangent of grad)
    value, g, df, hv = ir.evaluate(hvp, [x, np.array(1.0), v])
    np.testing.assert_allclose(g, tg.grad(f)(x), rtol=1e-12)
    np.testing.assert_allclose(df, g @ v, rtol=1e-12)
    np.testing.assert_allclose(hv, tg.hessian(f)(x) @ v, rtol=1e-12)


def test_graph_passes_on_a_graph_with_zero_derivatives():
    """Outputs that do not depend on the inputs get zero cotangents / tangents."""
    graph = tg.make_ir(lambda x, y: (tnp.sum(y * 0.0 + 1.0), tg.stop_gradient(x) * 3.0))(N(2), N(2))
    vg = ir.verify(vjp_graph(graph))
    results = ir.evaluate(vg, [N(2), N(2), np.array(1.0), np.ones(2)])
    np.testing.assert_array_equal(results[2], np.zeros(2))
    np.testing.assert_array_equal(results[3], np.zeros(2))
    jg = ir.verify(jvp_graph(graph))
    results = ir.evaluate(jg, [N(2), N(2), np.ones(2), np.ones(2)])
    np.testing.assert_array_equal(results[2], 0.0)
    np.testing.assert_array_equal(results[3], np.zeros(2))


def test_derivative_graphs_of_the_transformations_verify():
    x, w, k = _model_data()
    for fn, args in ((tg.grad(lambda x, w: model(x, w, k)[0], argnums=(0, 1)), (x, w)),
                     (tg.hessian(lambda x: model(x, w, k)[0]), (x,)),
                     (tg.jacfwd(lambda x, w: model(x, w, k)[1]), (x, w))):
        ir.verify(tg.make_ir(fn)(*args))
