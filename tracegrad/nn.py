"""Neural-network functions: activations, (log-)softmax, losses and weight
initialisers, in the manner of ``jax.nn`` and ``torch.nn.functional``.

Every function is written with ``tracegrad.numpy``, so it runs on NumPy
arrays, on tracers (under ``jit`` and the transformations) and on eager
Tensors, and its derivative comes from the primitives' rules. The forms are
chosen so that neither the value nor the derivative overflows for large |x|:
an exponential is only ever taken of a non-positive number.
"""

from __future__ import annotations

import math

import numpy as np

from . import numpy as tnp
from .core import as_operand, bind1
from .errors import ShapeError
from .numpy._base import dtype_of, shape_of

__all__ = [
    "relu", "sigmoid", "softplus", "gelu", "logsumexp", "softmax", "log_softmax", "one_hot", "cross_entropy", "mse",
    "zeros", "ones", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "xavier_uniform",
    "xavier_normal", "kaiming_uniform", "kaiming_normal",
]


def _stop(x):
    """x with a zero derivative, on arrays, tracers and Tensors alike (the
    primitive leaves no tape node, so an eager Tensor comes out detached)."""
    return bind1("stop_gradient", x)


# ----------------------------------------------------------------- activations
def relu(x):
    """max(x, 0), with derivative 0 at 0 (as PyTorch and JAX); NaN stays NaN."""
    x = as_operand(x)
    return tnp.where(x <= 0, 0, x)


def sigmoid(x):
    """1 / (1 + e^-x), computed from z = e^-|x| <= 1 on both sides
    (1 / (1 + z) for x >= 0, z / (1 + z) below), so neither the value nor the
    derivative overflows and tiny results keep their relative precision.
    ``where`` picks -x or x (rather than taking abs) so the derivative at 0 is right."""
    x = as_operand(x)
    nonneg = x >= 0
    z = tnp.exp(tnp.where(nonneg, -x, x))
    return tnp.where(nonneg, 1 / (1 + z), z / (1 + z))


def softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): exact for large |x| (x above,
    e^x below) and overflow-free. The derivative is sigmoid(x), 1/2 at 0."""
    x = as_operand(x)
    pos = x > 0
    s = tnp.log1p(tnp.exp(tnp.where(pos, -x, x)))
    return tnp.where(pos, x + s, s)


def gelu(x, approximate: bool = False):
    """x * Phi(x), Phi the standard normal CDF (PyTorch's default). With
    ``approximate=True``, the tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    (``jax.nn.gelu``'s default, PyTorch's ``approximate='tanh'``), computed as
    x sigmoid(2 inner) = 0.5 x (1 + tanh(inner)), which keeps its relative
    precision for x << 0, where 1 + tanh cancels."""
    x = as_operand(x)
    if approximate:
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
        return x * sigmoid(2 * inner)
    return x * _normal_cdf(x)


def _normal_cdf(x):
    """Phi(x) = erfc(-x / sqrt 2) / 2, from erfc of a non-negative argument only:
    below 0 that is accurate relative to the (tiny) result, above 0 it is
    subtracted from 1 with no cancellation. ``where`` rather than abs keeps the
    derivative at 0."""
    neg = x < 0
    half_tail = 0.5 * _erfc_nonneg(tnp.where(neg, -x, x) * (1 / math.sqrt(2)))
    return tnp.where(neg, half_tail, 1 - half_tail)


# erfc(z) for z >= 0 as t * exp(-z^2 + C(u)), t = 2 / (2 + z) (Numerical Recipes' form), with C a
# Chebyshev series in u = t mapped from [2/29, 1] (z in [0, 27], beyond which float64 erfc underflows)
# to [-1, 1]. The coefficients interpolate log(erfc(z) e^(z^2) / t) at 23 Chebyshev points, computed
# with mpmath at 40 digits (numpy.polynomial.chebyshev.chebinterpolate); the relative error of erfc is
# below 5e-15 for z < 4 and grows like z^2 * eps beyond (the rounding of z^2, as erfc's own condition).
# tnp has no erf primitive; this stands in for one.
_ERFC_TMIN = 2 / 29
_ERFC_CHEB = (
    -0.6107401523665622, 0.6053584463434446, 0.013897604733136965, -0.008264970081574036, -0.0005419707831840879,
    0.0002885732989560551, 1.564486797986526e-05, -1.3803272978048714e-05, -4.201552626346429e-09,
    7.160979139205722e-07, -5.7738870375677744e-08, -3.4360013006930264e-08, 6.75837429679447e-09,
    1.2157195896113902e-09, -5.347824630292544e-10, -2.122333898298436e-12, 3.115627336439229e-11,
    -4.307419457348578e-12, -1.129084446711173e-12, 4.167044125217338e-13, -4.334696852666915e-15,
    -2.297226418752243e-14, 5.876790600050472e-15,
)


def _erfc_nonneg(z):
    """erfc(z) for z >= 0 (see _ERFC_CHEB). In float32 the series stops at the
    last coefficient that float32 can see, about half of them."""
    eps = float(np.finfo(dtype_of(z)).eps)
    last = max(i for i, c in enumerate(_ERFC_CHEB) if abs(c) > eps / 8)
    coeffs = _ERFC_CHEB[:last + 1]
    t = 2 / (2 + z)
    u = (2 * t - (1 + _ERFC_TMIN)) * (1 / (1 - _ERFC_TMIN))
    b1, b2 = 0.0, 0.0  # Clenshaw's recurrence: the stable way to sum a Chebyshev series
    for c in coeffs[:0:-1]:
        b1, b2 = 2 * u * b1 - b2 + c, b1
    return t * tnp.exp(u * b1 - b2 + coeffs[0] - z * z)


# ------------------------------------------------------ softmax and logsumexp
def _max_shift(x, axis):
    """The max along ``axis`` (kept), as a constant: the shift that keeps exp() <= 1.
    Softmax and logsumexp are exactly shift-invariant, so the shift carries no
    derivative; stopping it also keeps ties in the max out of the gradient. A
    non-finite max (a row of -inf, or a +inf) is replaced by 0 so that x - shift
    stays -inf / +inf rather than becoming NaN."""
    m = tnp.max(x, axis=axis, keepdims=True)
    return _stop(tnp.where(tnp.isfinite(m), m, 0))


def logsumexp(x, axis=None, keepdims: bool = False):
    """log(sum(exp(x))) over ``axis`` (all axes by default), as
    ``m + log(sum(exp(x - m)))`` with m the stopped max: no overflow, -inf for
    an all -inf slice, and a gradient of exactly softmax(x)."""
    m = _max_shift(x, axis)
    out = tnp.log(tnp.sum(tnp.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else tnp.squeeze(out, axis=axis)


def softmax(x, axis: int = -1):
    """exp(x) / sum(exp(x)) along ``axis``, shifted by the max. -inf entries get
    probability 0 (an all -inf slice is NaN, as in PyTorch)."""
    e = tnp.exp(x - _max_shift(x, axis))
    return e / tnp.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis: int = -1):
    """x - logsumexp(x) along ``axis``, computed on the shifted x so that large
    logits neither overflow nor lose the small differences between them."""
    shifted = x - _max_shift(x, axis)
    return shifted - tnp.log(tnp.sum(tnp.exp(shifted), axis=axis, keepdims=True))


# ---------------------------------------------------------------------- losses
def one_hot(labels, num_classes: int, dtype=np.float32):
    """labels[..., None] == arange(num_classes), as ``dtype``: a row of zeros
    for a label outside [0, num_classes), as ``jax.nn.one_hot``."""
    hit = tnp.expand_dims(labels, -1) == tnp.arange(num_classes, dtype=dtype_of(labels))
    return tnp.astype(hit, dtype)


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy over the examples; classes on the last axis of
    ``logits`` (shape [..., C]).

    ``labels`` is either integer class indices of shape logits.shape[:-1]
    (``torch.nn.functional.cross_entropy``'s usual form, ``optax``'s
    ``softmax_cross_entropy_with_integer_labels``) or float probabilities of
    logits' shape (one-hot or soft targets, ``optax.softmax_cross_entropy``).
    A class with zero probability contributes 0, even when its logit is -inf.
    The gradient in the logits is (softmax(logits) - probabilities) / N."""
    logits_shape, labels_shape = shape_of(logits), shape_of(labels)
    log_p = log_softmax(logits)
    if np.issubdtype(dtype_of(labels), np.integer):
        if labels_shape != logits_shape[:-1]:
            raise ShapeError(f"cross_entropy: integer labels must have shape logits.shape[:-1] = "
                             f"{logits_shape[:-1]}, got {labels_shape}")
        probs = one_hot(labels, logits_shape[-1], dtype=dtype_of(log_p))
    else:
        if labels_shape != logits_shape:
            raise ShapeError(f"cross_entropy: probability labels must have the logits' shape {logits_shape}, got "
                             f"{labels_shape} (integer class indices have shape logits.shape[:-1])")
        probs = tnp.astype(labels, dtype_of(log_p))
    # Select before multiplying: 0 * -inf is NaN, and a masked product would still send NaN back.
    log_p = tnp.where(probs > 0, log_p, 0)
    n = math.prod(logits_shape[:-1])
    return -tnp.sum(probs * log_p) / n


def mse(pred, target):
    """Mean squared error, mean((pred - target)^2) over all elements."""
    return tnp.mean(tnp.square(as_operand(pred) - as_operand(target)))


# ---------------------------------------------------------------- initialisers
# Each takes (key, shape, dtype=float32) like jax.nn.initializers, so they are
# interchangeable; ``key`` is a numpy Generator or a seed. A kernel of shape
# (..., fan_in, fan_out) is the JAX layout for ``x @ w`` (PyTorch's Linear.weight
# is (out, in)); leading axes are a receptive field (convolution) and multiply both fans.
def _rng(key) -> np.random.Generator:
    return key if isinstance(key, np.random.Generator) else np.random.default_rng(key)


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def zeros(key, shape, dtype=np.float32) -> np.ndarray:
    """All zeros (``key`` is unused; it keeps the initialisers' common signature)."""
    return np.zeros(shape, dtype)


def ones(key, shape, dtype=np.float32) -> np.ndarray:
    """All ones (``key`` is unused)."""
    return np.ones(shape, dtype)


def glorot_uniform(key, shape, dtype=np.float32) -> np.ndarray:
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)): variance 2 / (fan_in + fan_out) (Glorot & Bengio 2010)."""
    fan_in, fan_out = _fans(tuple(shape))
    limit = math.sqrt(6 / (fan_in + fan_out))
    return _rng(key).uniform(-limit, limit, shape).astype(dtype)


def glorot_normal(key, shape, dtype=np.float32) -> np.ndarray:
    """N(0, 2 / (fan_in + fan_out)), untruncated (as PyTorch's xavier_normal_)."""
    fan_in, fan_out = _fans(tuple(shape))
    return (_rng(key).standard_normal(shape) * math.sqrt(2 / (fan_in + fan_out))).astype(dtype)


def he_uniform(key, shape, dtype=np.float32) -> np.ndarray:
    """U(-a, a), a = sqrt(6 / fan_in): variance 2 / fan_in, for ReLU layers (He et al. 2015)."""
    limit = math.sqrt(6 / _fans(tuple(shape))[0])
    return _rng(key).uniform(-limit, limit, shape).astype(dtype)


def he_normal(key, shape, dtype=np.float32) -> np.ndarray:
    """N(0, 2 / fan_in), untruncated (as PyTorch's kaiming_normal_), for ReLU layers."""
    return (_rng(key).standard_normal(shape) * math.sqrt(2 / _fans(tuple(shape))[0])).astype(dtype)


xavier_uniform, xavier_normal = glorot_uniform, glorot_normal
kaiming_uniform, kaiming_normal = he_uniform, he_normal
