"""check_grads: derivatives against central differences, and debug_nans."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ir import dtypes
from ir.interpreter import FINITE_CHECK

from . import tree
from .transforms import jvp, vjp

# (finite-difference step, rtol, atol) by dtype: the step balances truncation (eps**2) against rounding (ulp/eps).
DEFAULTS = {dtypes.float32: (1e-3, 2e-2, 2e-2), dtypes.float64: (1e-6, 1e-5, 1e-5)}


def _as_arrays(args) -> list[np.ndarray]:
    return [np.asarray(x) for x in tree.flatten(args)[0]]


def _numeric_jvp(fun, args, tangents, eps) -> list[np.ndarray]:
    """Central differences of every output leaf along ``tangents``, in float64."""
    leaves, in_tree = tree.flatten(args)
    shift = lambda sign: tree.unflatten(in_tree, [(x + sign * eps * t).astype(x.dtype) for x, t in
                                                  zip(map(np.asarray, leaves), tangents)])
    plus, minus = _as_arrays(fun(*shift(1))), _as_arrays(fun(*shift(-1)))
    return [(p.astype(np.float64) - m.astype(np.float64)) / (2 * eps) for p, m in zip(plus, minus)]


def mismatch(analytic, numeric, rtol, atol) -> np.ndarray:
    """Where analytic and numeric values differ beyond tolerance (nan matches nan)."""
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    bad = ~(np.abs(analytic - numeric) <= atol + rtol * np.abs(numeric))
    return bad & ~(np.isnan(analytic) & np.isnan(numeric))


def _show(a: np.ndarray) -> str:
    """A short rendering of a direction or cotangent for an error message."""
    a = np.asarray(a)
    if a.size > 12:
        return f"a {a.dtype} array of shape {a.shape}"
    return np.array2string(a, precision=4, separator=", ", suppress_small=True)


def _fail(fun, mode: str, order: int, where: str, analytic, numeric, rtol, atol, compared: str = ""):
    name = getattr(fun, "__name__", "fun")
    raise AssertionError(
        f"check_grads({name}): {mode} derivative of order {order} disagrees with central differences at {where}: "
        f"analytic {float(analytic):.8g}, numeric {float(numeric):.8g} (|difference| "
        f"{abs(float(analytic) - float(numeric)):.3g}, allowed {atol:.1g} + {rtol:.1g} * |numeric|)" + compared)


def _explain_fwd(fun, v) -> str:
    """What a forward-mode mismatch compared, in terms the user can reproduce."""
    name = getattr(fun, "__name__", "fun")
    shown = _show(v[0]) if len(v) == 1 else "(" + ", ".join(_show(t) for t in v) + ", one per argument leaf)"
    return (f". These are directional derivatives J·v along the random tangent v = {shown}: analytic is "
            f"tg.jvp({name}, args, v)[1] at that element, numeric is ({name}(args + eps*v) - {name}(args - eps*v)) "
            f"/ (2*eps) there")


def _explain_rev(fun, i: int, element, u, analytic, numeric, arg_shape) -> str:
    """What a reverse-mode mismatch compared: a vector-Jacobian product with a
    random cotangent u (random, not ones, so that a rule that mishandles the
    incoming gradient is caught), which is why the numbers are not plain
    derivatives; where dividing by u recovers them, say so."""
    name = getattr(fun, "__name__", "fun")
    shown = _show(u[0]) if len(u) == 1 else "(" + ", ".join(_show(c) for c in u) + ", one per output leaf)"
    if element is None:
        return (f". These are u·J·d for the random cotangent u = {shown} and a random direction d: analytic is "
                f"sum(leaf {i} of pullback(u) * d) with `out, pullback = tg.vjp({name}, *args)`, numeric is the "
                f"central difference of sum(u * {name}(*args)) along d")
    at = "[" + ", ".join(str(int(k)) for k in element) + "]"
    text = (f". These are vector-Jacobian products u·J for the random cotangent u = {shown}, not plain "
            f"derivatives: analytic is element {at} of leaf {i} of pullback(u), with `out, pullback = "
            f"tg.vjp({name}, *args)`, numeric is the central difference of sum(u * {name}(*args)) in that element")
    scale = None
    if len(u) == 1 and np.ndim(u[0]) == 0:
        scale, what = float(u[0]), "the gradient itself"
    elif len(u) == 1 and np.shape(u[0]) == tuple(arg_shape):
        scale, what = float(u[0][element]), f"d out{at} / d x{at} if {name} is elementwise"
    if scale:
        text += (f". Divided by u{'' if np.ndim(u[0]) == 0 else at}, that is {what}: analytic "
                 f"{float(analytic) / scale:.8g}, numeric {float(numeric) / scale:.8g}")
    return text


def _check_fwd(fun, args, rng, eps, rtol, atol, order):
    leaves, in_tree = tree.flatten(args)
    v = [rng.standard_normal(np.shape(x)).astype(np.asarray(x).dtype) for x in leaves]
    _, analytic = jvp(fun, args, tuple(tree.unflatten(in_tree, v)))
    numeric = _numeric_jvp(fun, args, v, eps)
    for k, (a, n) in enumerate(zip(_as_arrays(analytic), numeric)):
        for idx in np.argwhere(mismatch(a, n, rtol, atol))[:1]:
            e = tuple(int(i) for i in idx)
            _fail(fun, "forward-mode (jvp)", order, f"output leaf {k}, element {e}, along a random tangent",
                  a[e], n[e], rtol, atol, _explain_fwd(fun, v))
    return v


def _check_rev(fun, args, rng, eps, rtol, atol, order):
    leaves, in_tree = tree.flatten(args)
    out, pullback = vjp(fun, *args)
    out_leaves, out_tree = tree.flatten(out)
    u = [rng.standard_normal(np.shape(o)).astype(np.asarray(o).dtype) for o in out_leaves]
    analytic = _as_arrays(pullback(tree.unflatten(out_tree, u)))
    inner = lambda tangents: sum(float(np.sum(n * uu)) for n, uu in zip(_numeric_jvp(fun, args, tangents, eps), u))
    for i, x in enumerate(map(np.asarray, leaves)):
        zeros = [np.zeros_like(np.asarray(y)) for y in leaves]
        if x.size <= 32:  # element by element: the message can name the element
            for j in np.ndindex(x.shape):
                e = list(zeros)
                e[i] = np.zeros_like(x)
                e[i][j] = 1
                numeric = inner(e)
                if mismatch(analytic[i][j], numeric, rtol, atol):
                    _fail(fun, "reverse-mode (vjp)", order, f"argument leaf {i}, element {j}", analytic[i][j],
                          numeric, rtol, atol, _explain_rev(fun, i, j, u, analytic[i][j], numeric, x.shape))
        else:  # along random directions: the message names the argument
            for _ in range(3):
                d = list(zeros)
                d[i] = rng.standard_normal(x.shape).astype(x.dtype)
                a, n = float(np.sum(analytic[i] * d[i])), inner(d)
                if mismatch(a, n, rtol, atol * np.sqrt(x.size)):
                    _fail(fun, "reverse-mode (vjp)", order, f"argument leaf {i}, along a random direction", a, n,
                          rtol, atol, _explain_rev(fun, i, None, u, a, n, x.shape))
    return u, out_tree


def check_grads(fun: Callable, args, order: int = 2, modes=("fwd", "rev"), eps=None, rtol=None, atol=None,
                _order: int = 1) -> None:
    """Check fun's derivatives against central differences, forward and
    reverse, up to ``order``; raise AssertionError with the analytic and the
    numeric value and the argument / element that differs."""
    args = tuple(args)
    for m in modes:
        if m not in ("fwd", "rev"):
            raise ValueError(f"check_grads: unknown mode {m!r}; modes are 'fwd' and 'rev'")
    leaves = [np.asarray(x) for x in tree.flatten(args)[0]]
    kinds = [x.dtype for x in leaves]
    if not all(dtypes.is_float(k) for k in kinds):
        raise TypeError(f"check_grads needs float arguments, got dtypes {[str(k) for k in kinds]}")
    worst = dtypes.float32 if dtypes.float32 in kinds else dtypes.float64
    d_eps, d_rtol, d_atol = DEFAULTS[worst]
    # `is None`, not `or`: an explicit rtol=0 or atol=0 asks for exact agreement, not for the default
    eps, rtol, atol = (d if v is None else v for v, d in ((eps, d_eps), (rtol, d_rtol), (atol, d_atol)))
    rng = np.random.default_rng(_order)
    if "fwd" in modes:
        v = _check_fwd(fun, args, rng, eps, rtol, atol, _order)
        if order > 1:
            in_tree = tree.flatten(args)[1]
            tangent = tuple(tree.unflatten(in_tree, v))
            along = lambda *a: jvp(fun, a, tangent)[1]
            along.__name__ = f"jvp_of_{getattr(fun, '__name__', 'fun')}"
            check_grads(along, args, order - 1, modes, eps, rtol, atol, _order + 1)
    if "rev" in modes:
        u, out_tree = _check_rev(fun, args, rng, eps, rtol, atol, _order)
        if order > 1:
            ct = tree.unflatten(out_tree, u)
            pulled = lambda *a: vjp(fun, *a)[1](ct)
            pulled.__name__ = f"vjp_of_{getattr(fun, '__name__', 'fun')}"
            check_grads(pulled, args, order - 1, modes, eps, rtol, atol, _order + 1)


class debug_nans:
    """Within this context, the first NaN or Inf that any equation produces —
    traced values, the interpreter, derivative programs — raises
    FloatingPointError naming the primitive, its IR variable and the user's
    source line. Also usable as a decorator."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __enter__(self):
        self.saved = FINITE_CHECK.enabled
        FINITE_CHECK.enabled = self.enabled
        return self

    def __exit__(self, *exc):
        FINITE_CHECK.enabled = self.saved

    def __call__(self, fun: Callable) -> Callable:
        def checked(*args, **kwargs):
            with debug_nans(self.enabled):
                return fun(*args, **kwargs)

        return checked
