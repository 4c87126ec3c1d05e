"""Elementary functions as inline, branch-free LLVM IR.

The code generator emits scalar loop bodies and leaves the widening to
<16 x float> / <8 x double> to LLVM's loop vectoriser. A call to libm (or to
an ``llvm.exp.*``-style intrinsic, which lowers to one) stops that, so every
function here is straight-line scalar IR: arithmetic, ``fcmp`` + ``select``
for the special cases, integer operations on the bits for exponents, and only
intrinsics that are single vector instructions (fma, fabs, copysign,
rint, trunc, sqrt). The one table, 2/pi's bits for the reduction of huge
trigonometric arguments, is read with a gather.

Accuracy policy (docs/math.md has the measured figures): NumPy is the
reference. float32 results are within 4 ulp of NumPy's and float64 results
within 1e-13 relative error over the whole range, and NaN, infinities and
signed zeros come out as NumPy's. The only fast-math flag used is
``contract`` (so that FMAs form); nothing assumes that NaN or Inf cannot occur.

Method: range reduction, a polynomial fitted at development time, and
reconstruction. float32 and float64 share each implementation and differ only
in the coefficient set. Most float32 functions run in float32; sin, cos, tan,
pow and erf of float32 run in double with float32-grade coefficients and are
rounded once at the end, which makes them nearly correctly rounded: their
reductions need double anyway (pow's y log x, the trigonometric Payne-Hanek),
NumPy's own float32 tan is up to 3.6 ulp from the true value, which leaves no
room for an error of our own, and erf computed in float32 reached 3.7 ulp.
"""

from __future__ import annotations

import struct
from fractions import Fraction

from llvmlite import ir

__all__ = ["NAMES", "call", "kernel_ir"]

F32, F64 = ir.FloatType(), ir.DoubleType()
CONTRACT = ("contract",)

# ------------------------------------------------------------------------------------------------ coefficients
# Every polynomial was fitted at development time with numpy: a weighted minimax fit by Lawson's iteratively
# reweighted least squares on a 3000-point Chebyshev grid of the interval, the targets (Taylor series, or
# long-double libm) and residuals in x87 long double. Sets are keyed by the precision of the result: "f" for
# float32, "d" for float64. Each comment gives the form, the interval, and the fit's maximum error (of the
# approximation alone, before the rounding of its evaluation).

# expm1(r) = r + r^2 Q(r), |r| <= ln2/2. Relative error f 1.7e-8 (rounded to float32, as it runs in float32),
# d 1.4e-15.
EXPM1 = {
    "f": [0.4999999701976776, 0.16666541993618011, 0.04166720435023308, 0.00836664717644453,
          0.0013882496859878302],
    "d": [0.4999999999999963, 0.16666666666629923, 0.04166666666711044, 0.008333333363023547,
          0.0013888888763418927, 0.00019841195337024772, 2.4801696705129798e-05, 2.763094665684651e-06,
          2.755417899895655e-07],
}
# log(1+f) = 2 atanh(s) = 2s + s^3 R(s^2), s = f/(2+f), |s| <= 3 - 2 sqrt(2). Relative error of log(1+f)
# f 9.8e-10 (rounded to float32), d 1.7e-18 (d also serves pow's double-double logarithm, which needs the digits).
LOG = {
    "f": [0.6666677594184875, 0.3997744917869568, 0.29874420166015625],
    "d": [0.6666666666666735, 0.3999999999940741, 0.28571428744155725, 0.22222198377177765, 0.18183575226657125,
          0.15313754316741018, 0.14799079596051087],
}
# sin(r) = r + r^3 S(r^2) and cos(r) = 1 - r^2/2 + r^4 C(r^2), |r| <= pi/4. Relative error sin f 3.8e-9,
# d 5.1e-15; cos f 1.2e-10, d 9.5e-17.
SIN = {
    "f": [-0.1666665453663603, 0.008332156054169289, -0.0001951463193842269],
    "d": [-0.16666666666629984, 0.008333333325011242, -0.00019841263691773066, 2.755533171812208e-06,
          -2.4759871714401355e-08],
}
COS = {
    "f": [0.04166664555446675, -0.0013887309866541166, 2.443241297678296e-05],
    "d": [0.041666666666595825, -0.0013888888877519945, 2.4801580667168024e-05, -2.755551584238347e-07,
          2.0644652064953648e-09],
}
# atan(t) = t + t^3 A(t^2), |t| <= tan(pi/8). Relative error f 3.1e-9 (rounded to float32), d 1.0e-15.
ATAN = {
    "f": [-0.33333316445350647, 0.199984610080719, -0.14243310689926147, 0.10592078417539597,
          -0.06073610484600067],
    "d": [-0.33333333333258863, 0.19999999982429617, -0.14285712855009514, 0.11111053804260271,
          -0.09089603804874337, 0.07674197323314227, -0.06509492875474551, 0.05034904857902996,
          -0.02543953131201459],
}
# erf(a) = a E(a^2) for 0 <= a < 1.5. Relative error f 8.2e-10, d 3.4e-15.
ERF_SMALL = {
    "f": [1.1283791661771854, -0.3761263257684836, 0.11283718746717532, -0.026862889584065762,
          0.005216482300317763, -0.000845058608405354, 0.0001128888700622359, -1.1273014255101003e-05,
          6.144748287570726e-07],
    "d": [1.128379167095509, -0.37612638903131007, 0.11283791669678549, -0.026866170522923862,
          0.005223977014025941, -0.0008548308716920742, 0.00012054979107874407, -1.4921035740994869e-05,
          1.6420565725076333e-06, -1.6105714983446385e-07, 1.3684068296164159e-08, -9.032360407849968e-10,
          3.3725142062729187e-11],
}
# erf(a) = 1 - exp(-a^2) G(a - centre) for 1.5 <= a <= 4 (f, centre 2.75) or 6 (d, centre 3.75), where erf
# rounds to 1; weighted by exp(-a^2)/erf(a), so the error is relative to erf: f 3.5e-10, d 6.9e-15.
ERF_LARGE = {
    "f": (2.75, [0.1936617434565053, -0.06323514095236718, 0.01978649925834554, -0.0058737843295563405,
                 0.0017102249331800475, -0.000660405912912475, -9.27312967376423e-05, -0.0001371731520990374]),
    "d": (3.75, [0.14558971370748883, -0.036456278226148206, 0.008879035657993702, -0.0021055849394071434,
                 0.0004918656335279337, -0.00010825944536912947, 1.9729765077146107e-05, -1.8358751427406497e-05,
                 -1.410012180098361e-05, -1.1046481891430794e-05, -4.914670205844723e-06, -1.4699370162878497e-06,
                 -2.5256797462654265e-07, -2.1106817933346752e-08]),
}


# --------------------------------------------------------------------------------------------------- constants
def _machin_pi(bits: int) -> Fraction:
    """pi to ``bits`` bits, from Machin's formula pi = 16 atan(1/5) - 4 atan(1/239) in integers."""
    one = 1 << (bits + 64)

    def atan_inv(n: int) -> int:
        total, term, k, sign = 0, one // n, 1, 1
        while term:
            total += sign * (term // k)
            term //= n * n
            k, sign = k + 2, -sign
        return total

    return Fraction(16 * atan_inv(5) - 4 * atan_inv(239), one)


def _ln2(bits: int) -> Fraction:
    """ln 2 = sum 1/(k 2^k) to ``bits`` bits."""
    one = 1 << (bits + 64)
    return Fraction(sum(one // (k << k) for k in range(1, bits + 64)), one)


PI = _machin_pi(1300)
LN2 = _ln2(200)


def _to_f32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def _hi_lo(value: Fraction, double: bool, hi_bits: int | None = None) -> tuple[float, float]:
    """value = hi + lo: hi the nearest number of the type (or with only ``hi_bits`` significant bits, so
    that its products with small integers are exact), lo the nearest to the rest."""
    hi = float(value) if double else _to_f32(float(value))
    if hi_bits is not None:
        exponent = Fraction(hi).numerator.bit_length() - Fraction(hi).denominator.bit_length()
        quantum = Fraction(2) ** (exponent - hi_bits + 1)
        hi = float(round(value / quantum) * quantum)
    lo = float(value - Fraction(hi))
    return hi, (lo if double else _to_f32(lo))


def _two_over_pi_tables(entries: int) -> list[float]:
    """Payne-Hanek tables: for window i, the 212 bits of 2/pi's fraction after its first 24*i bits, as four
    doubles of 53 bits each scaled to [0, 1), [0, 2^-53), ... (so none is subnormal); flattened as [i*4 + j]."""
    nbits = 24 * entries + 4 * 53 + 64
    fixed = (2 * PI.denominator << nbits) // PI.numerator  # floor(2/pi * 2^nbits)
    table = []
    for i in range(entries):
        for j in range(4):
            top = 24 * i + 53 * (j + 1)                   # the fraction's bits top-52 .. top
            chunk = (fixed >> (nbits - top)) & ((1 << 53) - 1)
            table.append(float(Fraction(chunk, 1 << (53 * (j + 1)))))
    return table


# Windows start every 24 bits; 41 of them reach past the largest double's exponent.
PH_ENTRIES = 41
PH_TABLE = _two_over_pi_tables(PH_ENTRIES)


# ------------------------------------------------------------------------------------------------------ emitter
class _Emitter:
    """An IRBuilder bound to one float type (the type the arithmetic runs in) and one coefficient set
    (``prec``, the precision the result is wanted to)."""

    def __init__(self, b: ir.IRBuilder, ty: ir.Type, prec: str):
        self.b, self.ty, self.prec = b, ty, prec
        self.double = isinstance(ty, ir.DoubleType)
        self.ity = ir.IntType(64 if self.double else 32)
        self.mant = 52 if self.double else 23
        self.bias = 1023 if self.double else 127
        # Adding 1.5 * 2^mant rounds to an integer and leaves it in the low bits of the sum.
        self.shifter = 1.5 * 2.0 ** self.mant

    # constants
    def k(self, value: float) -> ir.Constant:
        """A constant of the float type (rounded to it)."""
        return ir.Constant(self.ty, float(value))

    def i(self, value: int) -> ir.Constant:
        return ir.Constant(self.ity, value)

    def pick(self, f32_value, f64_value):
        return f64_value if self.double else f32_value

    # arithmetic
    def add(self, x, y):
        return self.b.fadd(x, y, flags=CONTRACT)

    def sub(self, x, y):
        return self.b.fsub(x, y, flags=CONTRACT)

    def mul(self, x, y):
        return self.b.fmul(x, y, flags=CONTRACT)

    def mul_rounded(self, x, y):
        """A product that must stay rounded: the high part of an exact split (its low part comes from an FMA),
        which must not be fused into the sums that follow."""
        return self.b.fmul(x, y)

    def div(self, x, y):
        return self.b.fdiv(x, y)

    def neg(self, x):
        return self.b.fneg(x)

    def _intrinsic(self, name: str, *args):
        fnty = ir.FunctionType(self.ty, [self.ty] * len(args))
        fn = self.b.module.declare_intrinsic(name, [self.ty], fnty)
        return self.b.call(fn, args)

    def fma(self, x, y, z):
        return self._intrinsic("llvm.fma", x, y, z)

    def abs(self, x):
        return self._intrinsic("llvm.fabs", x)

    def copysign(self, x, sign):
        return self._intrinsic("llvm.copysign", x, sign)

    def rint(self, x):
        return self._intrinsic("llvm.rint", x)

    def trunc(self, x):
        return self._intrinsic("llvm.trunc", x)

    def sqrt(self, x):
        return self._intrinsic("llvm.sqrt", x)

    def poly(self, x, coeffs):
        """c0 + c1 x + c2 x^2 + ..., by Horner's rule with FMAs."""
        acc = self.k(coeffs[-1])
        for c in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, self.k(c))
        return acc

    # comparisons and selection (ordered: false when either side is NaN)
    def lt(self, x, y):
        return self.b.fcmp_ordered("<", x, y)

    def gt(self, x, y):
        return self.b.fcmp_ordered(">", x, y)

    def eq(self, x, y):
        return self.b.fcmp_ordered("==", x, y)

    def ne(self, x, y):
        return self.b.fcmp_unordered("!=", x, y)

    def select(self, cond, x, y):
        return self.b.select(cond, x, y)

    def clamp_above(self, x, hi: float):
        """min(x, hi), NaN kept."""
        return self.select(self.gt(x, self.k(hi)), self.k(hi), x)

    def clamp_below(self, x, lo: float):
        """max(x, lo), NaN kept."""
        return self.select(self.lt(x, self.k(lo)), self.k(lo), x)

    # bits
    def bits(self, x):
        return self.b.bitcast(x, self.ity)

    def from_bits(self, n):
        return self.b.bitcast(n, self.ty)

    def two_sum(self, x, y):
        """x + y = s + err exactly (Knuth)."""
        s = self.add(x, y)
        yy = self.sub(s, x)
        err = self.add(self.sub(x, self.sub(s, yy)), self.sub(y, yy))
        return s, err


# -------------------------------------------------------------------------------------------------- exp family
def _exp_reduce(e: _Emitter, x, lo=None):
    """x (+ lo) = n ln2 + r, |r| <= ln2/2, n from the shifter; returns (expm1(r) by its polynomial, the
    integer bits carrying n)."""
    ln2_hi, ln2_lo = _hi_lo(LN2, e.double)
    t = e.fma(x, e.k(1 / float(LN2)), e.k(e.shifter))
    n = e.sub(t, e.k(e.shifter))
    r = e.fma(n, e.k(-ln2_hi), x)       # exact
    r = e.fma(n, e.k(-ln2_lo), r)
    if lo is not None:
        r = e.add(r, lo)
    q = e.poly(r, EXPM1[e.prec])
    return e.fma(e.mul(r, r), q, r), e.bits(t)


def _pow2(e: _Emitter, tbits, offset):
    """2^(n + offset) from the shifter's bits (its low bits are n; shifted up they are n's exponent field).
    ``offset`` is a Python int, or an integer Value already holding (bias + offset) << mantissa bits."""
    bias = e.i((e.bias + offset) << e.mant) if isinstance(offset, int) else offset
    return e.from_bits(e.b.add(e.b.shl(tbits, e.i(e.mant)), bias))


# Arguments beyond which exp overflows / underflows below the smallest subnormal, for each arithmetic type.
EXP_MAX = {False: 89.0, True: 710.0}
EXP_MIN = {False: -104.0, True: -746.0}


def _exp_scaled(e: _Emitter, x, lo=None):
    """exp(x + lo) over the whole range: x is clamped (NaN kept), and 2^n is applied as two normal factors,
    2^(n+K) * 2^-K below zero (down to the subnormals, rounded once) and 2^(n-1) * 2 above (up to the
    overflow); one factor alone would not reach both ends."""
    big = e.pick(64, 256)
    x = e.clamp_below(e.clamp_above(x, EXP_MAX[e.double]), EXP_MIN[e.double])
    if lo is not None:      # the low part is meaningless where x was clamped or is not finite
        lo = e.select(e.b.and_(e.gt(x, e.k(EXP_MIN[e.double])), e.lt(x, e.k(EXP_MAX[e.double]))), lo, e.k(0))
    p, tbits = _exp_reduce(e, x, lo)
    neg = e.lt(x, e.k(0))
    offset = e.select(neg, e.i((e.bias + big) << e.mant), e.i((e.bias - 1) << e.mant))
    s = _pow2(e, tbits, offset)
    return e.mul(e.fma(p, s, s), e.select(neg, e.k(2.0 ** -big), e.k(2.0)))


# exp: x = n ln2 + r (Cody-Waite, two-part ln2), e^r = 1 + expm1(r) by a minimax polynomial, scaled by 2^n.
def _exp(e: _Emitter, x):
    return _exp_scaled(e, x)


# expm1: the same reduction and polynomial; 2^n (1 + p) - 1 = 2 (p 2^(n-1) + (2^(n-1) - 1/2)), all exact but the
# FMA, and p itself for small |x| (n = 0). copysign gives expm1(-0) = -0.
def _expm1(e: _Emitter, x):
    x = e.clamp_below(e.clamp_above(x, EXP_MAX[e.double]), e.pick(-40.0, -50.0))   # expm1 = -1 below
    p, tbits = _exp_reduce(e, x)
    s = _pow2(e, tbits, -1)
    scaled = e.mul(e.fma(p, s, e.sub(s, e.k(0.5))), e.k(2.0))
    result = e.select(e.lt(e.abs(x), e.k(0.25)), p, scaled)
    return e.copysign(result, x)


# tanh|x| = E / (E + 2) with E = expm1(2|x|) >= 0 from the exp reduction and polynomial: nothing cancels, and the
# quotient amplifies E's error by 2/(E + 2) <= 1. Sign (and tanh(-0) = -0) restored by copysign.
def _tanh(e: _Emitter, x):
    a = e.clamp_above(e.abs(x), e.pick(9.1, 19.1))  # tanh rounds to 1 beyond 9.011 / 19.06
    p, tbits = _exp_reduce(e, e.add(a, a))
    s = _pow2(e, tbits, 0)  # 2^n, n in [0, 27] / [0, 56]
    em1 = e.fma(p, s, e.sub(s, e.k(1.0)))
    return e.copysign(e.div(em1, e.add(em1, e.k(2.0))), x)


# sigmoid = 2^-64 / (2^-64 + e^-x 2^-64): one quotient for both signs that neither overflows nor cancels, and
# rounds once into the subnormals for very negative x (-x is clamped to [-40, 104] / [-40, 746], where
# e^-x 2^-64 is a normal number).
def _sigmoid(e: _Emitter, x):
    z = e.clamp_below(e.clamp_above(e.neg(x), -EXP_MIN[e.double]), -40.0)   # sigmoid = 0 / 1 beyond
    p, tbits = _exp_reduce(e, z)
    s = _pow2(e, tbits, -64)
    tiny = e.k(2.0 ** -64)
    return e.div(tiny, e.add(e.fma(p, s, s), tiny))


def _half_exp(e: _Emitter, a):
    """For a >= 0 (NaN kept): (e^a / 2, (e^a - 1) / 2), finite until e^a / 2 overflows."""
    a = e.clamp_above(a, e.pick(90.0, 711.0))
    p, tbits = _exp_reduce(e, a)
    s = _pow2(e, tbits, -3)                             # 2^(n-3) * 4: n reaches 130 / 1026
    half = e.mul(e.fma(p, s, s), e.k(4.0))
    half_m1 = e.mul(e.fma(p, s, e.sub(s, e.k(0.125))), e.k(4.0))
    return half, half_m1


# cosh = H + 1/(4H), H = e^|x|/2 from the exp reduction (scaled so that it overflows only with cosh).
def _cosh(e: _Emitter, x):
    half, _ = _half_exp(e, e.abs(x))
    return e.add(half, e.div(e.k(0.25), half))


# sinh|x| = h + h/(2H) with h = (e^|x| - 1)/2 (no cancellation for small |x|), = H - 1/(4H) for |x| >= 1;
# x itself below 2^-12 / 2^-26, where the scaled h would lose subnormal bits.
def _sinh(e: _Emitter, x):
    a = e.abs(x)
    half, half_m1 = _half_exp(e, a)
    large = e.gt(a, e.k(1.0))
    num = e.select(large, e.k(-0.25), e.mul(half_m1, e.k(0.5)))
    result = e.add(e.select(large, half, half_m1), e.div(num, half))
    result = e.select(e.lt(a, e.k(e.pick(2.0 ** -12, 2.0 ** -26))), a, result)
    return e.copysign(result, x)


# ------------------------------------------------------------------------------------------------ log family
def _log_parts(e: _Emitter, x):
    """For x > 0 finite: x = 2^k m, m in [sqrt(1/2), sqrt(2)); returns (k as a float, f = m - 1 exactly)."""
    tiny = e.lt(x, e.k(e.pick(2.0 ** -126, 2.0 ** -1022)))
    x = e.select(tiny, e.mul(x, e.k(2.0 ** 54)), x)
    sqrt_half = e.bits(e.k(e.pick(0.70710677, 0.7071067811865476)))
    ib = e.b.sub(e.bits(x), sqrt_half)
    k = e.b.sub(e.b.ashr(ib, e.i(e.mant)), e.b.select(tiny, e.i(54), e.i(0)))
    m = e.from_bits(e.b.add(e.b.and_(ib, e.i((1 << e.mant) - 1)), sqrt_half))
    return e.b.sitofp(k, e.ty), e.sub(m, e.k(1.0))


def _log_special(e: _Emitter, x, result):
    """log's values outside (0, inf): -inf at +-0, +inf at +inf, NaN below 0 and at NaN."""
    ok = e.b.and_(e.gt(x, e.k(0)), e.lt(x, e.k(float("inf"))))
    special = e.select(e.eq(x, e.k(0)), e.k(float("-inf")),
                       e.select(e.eq(x, e.k(float("inf"))), x, e.k(float("nan"))))
    return e.select(ok, result, special)


def _log1pf(e: _Emitter, f, extra=None):
    """log(1 + f) for f in [sqrt(1/2) - 1, sqrt(2) - 1]: f - s (f - s^2 R(s^2)), s = f/(2+f), (+ extra)."""
    s = e.div(f, e.add(f, e.k(2.0)))
    z = e.mul(s, s)
    inner = e.sub(f, e.mul(z, e.poly(z, LOG[e.prec])))
    if extra is not None:
        return e.add(e.fma(e.neg(s), inner, f), extra)
    return e.fma(e.neg(s), inner, f)


# log: x = 2^k m, log m = 2 atanh((m-1)/(m+1)) by a minimax polynomial in s^2, plus k ln2 in two parts.
def _log(e: _Emitter, x):
    kf, f = _log_parts(e, x)
    ln2_hi, ln2_lo = _hi_lo(LN2, e.double)
    result = e.fma(kf, e.k(ln2_hi), e.fma(kf, e.k(ln2_lo), _log1pf(e, f)))
    return _log_special(e, x, result)


# log1p: u = 1 + x with its rounding error c (TwoSum), log1p = log u + c/u; copysign gives log1p(-0) = -0.
def _log1p(e: _Emitter, x):
    u, c = e.two_sum(e.k(1.0), x)
    kf, f = _log_parts(e, u)
    ln2_hi, ln2_lo = _hi_lo(LN2, e.double)
    result = e.fma(kf, e.k(ln2_hi), e.fma(kf, e.k(ln2_lo), _log1pf(e, f, e.div(c, u))))
    return e.copysign(_log_special(e, u, result), x)


def _log_dd(e: _Emitter, x):
    """log x for x > 0 as hi + lo, good to about 2^-60 relative (for pow): 2s + (2 s_lo + s^3 R(s^2)) with
    s + s_lo = f/(2+f) in double-double and k ln2 with ln2's high part short enough for k*hi to be exact."""
    kf, f = _log_parts(e, x)
    d = e.add(f, e.k(2.0))
    d_lo = e.sub(f, e.sub(d, e.k(2.0)))                 # exact: 2 + f = d + d_lo
    s = e.div(f, d)
    rem = e.sub(e.fma(e.neg(s), d, f), e.mul(s, d_lo))  # f - s (d + d_lo)
    s_lo = e.div(rem, d)
    z = e.mul(s, s)
    tail = e.fma(e.mul(s, z), e.poly(z, LOG[e.prec]), e.add(s_lo, s_lo))
    ln2_hi, ln2_lo = _hi_lo(LN2, e.double, hi_bits=e.pick(12, 40))
    kh = e.mul(kf, e.k(ln2_hi))                         # exact
    hi = e.add(kh, e.add(s, s))
    err = e.sub(e.add(s, s), e.sub(hi, kh))             # Fast2Sum: |k ln2| > |2s| unless k = 0
    lo = e.add(err, e.fma(kf, e.k(ln2_lo), tail))
    total = e.add(hi, lo)                               # renormalised: |lo| <= ulp(hi)/2
    return total, e.sub(lo, e.sub(total, hi))


# pow: |x|^y = exp(y log|x|), with log|x| and the product in double-double so that the error of y log|x| stays
# below 2^-53 relative to the result; then the sign for odd integral y, and IEEE's special cases.
def _pow(e: _Emitter, x, y):
    ax = e.abs(x)
    lh, ll = _log_dd(_Emitter(e.b, e.ty, "d"), ax)     # y log|x| reaches 745: log needs the double set
    lh = _log_special(e, ax, lh)
    zh = e.mul_rounded(y, lh)
    zl = e.fma(y, ll, e.fma(y, lh, e.neg(zh)))
    result = _exp_scaled(e, zh, zl)
    inf = e.k(float("inf"))
    y_int = e.eq(e.trunc(y), y)
    half = e.mul(y, e.k(0.5))
    y_odd = e.b.and_(y_int, e.ne(e.trunc(half), half))
    x_neg = e.b.icmp_signed("<", e.bits(x), e.i(0))     # sign bit, so -0 and -inf too
    result = e.select(e.b.and_(x_neg, y_odd), e.neg(result), result)
    finite_neg = e.b.and_(e.lt(x, e.k(0)), e.gt(x, e.neg(inf)))
    result = e.select(e.b.and_(finite_neg, e.b.not_(y_int)), e.k(float("nan")), result)
    result = e.select(e.b.and_(e.eq(x, e.k(-1.0)), e.eq(e.abs(y), inf)), e.k(1.0), result)
    return e.select(e.b.or_(e.eq(y, e.k(0)), e.eq(x, e.k(1.0))), e.k(1.0), result)


# ----------------------------------------------------------------------------------------------- trigonometric
def _ph_table(e: _Emitter):
    module = e.b.module
    name = "tracegrad.mathlib.two_over_pi"
    if name not in module.globals:
        ty = ir.ArrayType(F64, len(PH_TABLE))
        table = ir.GlobalVariable(module, ty, name)
        table.global_constant, table.linkage, table.unnamed_addr = True, "private", True
        table.initializer = ir.Constant(ty, PH_TABLE)
    return module.globals[name]


def _reduce_pio2(e: _Emitter, x):
    """Payne-Hanek in double: x 2/pi = K + y with |y| <= 1/2; returns (r_hi, r_lo, K mod 4) with r = y pi/2 in
    double-double. The bits of 2/pi that matter at x's exponent are read from the table: a window starting
    24*i bits in, i from the exponent of x's last bit, so that x 2^(-24 i) is a multiple of 4 and the integral
    bits before the window fall away mod 4; x 2^(-24 i) < 2^79 then meets 2, 3 (float32) or 4 (float64) chunks
    of 53 bits. Each product is split exactly by an FMA, the integral parts of the large terms are dropped one
    by one (mod 4, exactly), and the fractions summed in double-double, so nothing cancels inexactly."""
    b = e.b
    i64 = ir.IntType(64)
    # The exponent of x's last significant bit: float32 data has 23 bits below its leading one, not 52.
    last_bit = 23 if e.prec == "f" else 52
    exponent = b.and_(b.lshr(e.bits(x), e.i(52)), e.i(0x7FF))
    v = b.sub(exponent, e.i(1023 + last_bit + 2))
    v = b.select(b.icmp_signed("<", v, e.i(0)), e.i(0), b.select(b.icmp_signed(">", v, e.i(970)), e.i(970), v))
    window = b.lshr(b.mul(v, e.i(2731)), e.i(16))       # floor(v / 24) for 0 <= v <= 970
    scale = e.from_bits(b.shl(b.sub(e.i(1023), b.mul(window, e.i(24))), e.i(52)))
    xs = e.mul(x, scale)                                 # x 2^(-24 i), exact
    table = _ph_table(e)
    base = b.mul(window, e.i(4))
    products = []                                        # x 2/pi as exact hi + lo pairs, largest first
    for j in range(2 if e.prec == "f" else 4):
        chunk = b.load(b.gep(table, [i64(0), b.add(base, e.i(j))], inbounds=True))
        hi = e.mul_rounded(xs, chunk)
        products += [hi, e.fma(xs, chunk, e.neg(hi))]
    # float32: x 2^(-24 i) < 2^50, hi0 is the only large term, lo0 and hi1 are below 1/8, the rest below 2^-56.
    # float64: x 2^(-24 i) < 2^79: hi0, lo0, hi1 large; lo1, hi2 below 2^-27; lo2, hi3 below 2^-80.
    large, medium, small = (products[:1], products[1:3], []) if e.prec == "f" else \
        (products[:3], products[3:5], products[5:7])
    quadrant, parts = e.k(0), []
    for term in large:
        term = e.fma(e.rint(e.mul(term, e.k(0.25))), e.k(-4.0), term)   # mod 4, exact
        whole = e.rint(term)
        quadrant = e.add(quadrant, whole)
        parts.append(e.sub(term, whole))
    s, tail = parts[0], e.k(0)
    for term in parts[1:] + medium:
        s, err = e.two_sum(s, term)
        tail = e.add(tail, err)
    for term in small:
        tail = e.add(tail, term)
    whole = e.rint(s)
    quadrant = e.add(quadrant, whole)
    s = e.sub(s, whole)
    y = e.add(s, tail)
    y_lo = e.sub(tail, e.sub(y, s))
    pio2_hi, pio2_lo = _hi_lo(PI / 2, True)
    r = e.mul_rounded(y, e.k(pio2_hi))
    r_lo = e.fma(y, e.k(pio2_hi), e.neg(r))
    r_lo = e.fma(y, e.k(pio2_lo), e.fma(y_lo, e.k(pio2_hi), r_lo))
    qbits = e.bits(e.add(quadrant, e.k(e.shifter)))
    return r, r_lo, b.and_(qbits, e.i(3))


def _sincos(e: _Emitter, x):
    """(sin r, cos r, quadrant) with x = r + quadrant pi/2 (mod 2 pi), |r| <= pi/4; r = x below pi/4."""
    r, r_lo, quadrant = _reduce_pio2(e, x)
    small = e.lt(e.abs(x), e.k(0.7853981633974483))
    r = e.select(small, x, r)
    r_lo = e.select(small, e.k(0), r_lo)
    quadrant = e.select(small, e.i(0), quadrant)
    z = e.mul(r, r)
    sin = e.add(r, e.fma(e.mul(r, z), e.poly(z, SIN[e.prec]), r_lo))
    cos = e.fma(e.mul(z, z), e.poly(z, COS[e.prec]), e.fma(z, e.k(-0.5), e.k(1.0)))
    cos = e.fma(e.neg(r), r_lo, cos)
    return sin, cos, quadrant


def _quadrant_pick(e: _Emitter, sin, cos, quadrant):
    """sin of (r + quadrant pi/2): sin r, cos r, -sin r, -cos r."""
    b = e.b
    value = e.select(b.icmp_unsigned("!=", b.and_(quadrant, e.i(1)), e.i(0)), cos, sin)
    return e.select(b.icmp_unsigned("!=", b.and_(quadrant, e.i(2)), e.i(0)), e.neg(value), value)


# sin: Payne-Hanek reduction by pi/2 (table of 2/pi read by exponent, exact for every finite x), minimax
# polynomials for sin and cos on [-pi/4, pi/4], picked and signed by the quadrant.
def _sin(e: _Emitter, x):
    sin, cos, quadrant = _sincos(e, x)
    result = _quadrant_pick(e, sin, cos, quadrant)
    return e.select(e.eq(x, e.k(0)), x, result)         # sin(-0) = -0


# cos: as sin, a quadrant further on.
def _cos(e: _Emitter, x):
    sin, cos, quadrant = _sincos(e, x)
    return _quadrant_pick(e, sin, cos, e.b.add(quadrant, e.i(1)))


# tan: as sin; sin r / cos r, or -cos r / sin r in odd quadrants.
def _tan(e: _Emitter, x):
    sin, cos, quadrant = _sincos(e, x)
    odd = e.b.icmp_unsigned("!=", e.b.and_(quadrant, e.i(1)), e.i(0))
    result = e.div(e.select(odd, e.neg(cos), sin), e.select(odd, sin, cos))
    return e.select(e.eq(x, e.k(0)), x, result)


# atan: |x| reduced to |t| <= tan(pi/8) by atan a = pi/4 + atan((a-1)/(a+1)) or pi/2 - atan(1/a), minimax
# polynomial, offset added with pi/2 and pi/4 in two parts; copysign for the sign and atan(-0) = -0.
def _atan(e: _Emitter, x):
    a = e.abs(x)
    big = e.gt(a, e.k(2.414213562373095))
    mid = e.gt(a, e.k(0.41421356237309503))
    one = e.k(1.0)
    num = e.select(big, e.k(-1.0), e.select(mid, e.sub(a, one), a))
    den = e.select(big, a, e.select(mid, e.add(a, one), one))
    t = e.div(num, den)
    pio2_hi, pio2_lo = _hi_lo(PI / 2, e.double)
    pio4_hi, pio4_lo = _hi_lo(PI / 4, e.double)
    off_hi = e.select(big, e.k(pio2_hi), e.select(mid, e.k(pio4_hi), e.k(0)))
    off_lo = e.select(big, e.k(pio2_lo), e.select(mid, e.k(pio4_lo), e.k(0)))
    z = e.mul(t, t)
    result = e.add(off_hi, e.add(t, e.fma(e.mul(t, z), e.poly(z, ATAN[e.prec]), off_lo)))
    return e.copysign(result, x)


# erf: a E(a^2) below 1.5; above, 1 - exp(-a^2) G(a) with the exp reduction; copysign for the sign.
def _erf(e: _Emitter, x):
    a = e.clamp_above(e.abs(x), 6.0 if e.prec == "d" else 4.0)     # erf rounds to 1 beyond
    z = e.mul(a, a)
    small = e.mul(a, e.poly(z, ERF_SMALL[e.prec]))
    centre, coeffs = ERF_LARGE[e.prec]
    p, tbits = _exp_reduce(e, e.neg(z))
    s = _pow2(e, tbits, 0)                              # exp(-a^2) >= exp(-36): no scaling trouble
    g = e.poly(e.sub(a, e.k(centre)), coeffs)
    large = e.fma(e.neg(e.fma(p, s, s)), g, e.k(1.0))
    return e.copysign(e.select(e.lt(a, e.k(1.5)), small, large), x)


# sqrt: llvm.sqrt, correctly rounded like NumPy's.
def _sqrt(e: _Emitter, x):
    return e.sqrt(x)


# ------------------------------------------------------------------------------------------------------- public
# name -> (implementation, number of arguments, float32 computed in double)
_FUNCTIONS = {
    "exp": (_exp, 1, False),
    "expm1": (_expm1, 1, False),
    "log": (_log, 1, False),
    "log1p": (_log1p, 1, False),
    "tanh": (_tanh, 1, False),
    "sigmoid": (_sigmoid, 1, False),
    "sin": (_sin, 1, True),
    "cos": (_cos, 1, True),
    "tan": (_tan, 1, True),
    "sinh": (_sinh, 1, False),
    "cosh": (_cosh, 1, False),
    "atan": (_atan, 1, False),
    "pow": (_pow, 2, True),
    "sqrt": (_sqrt, 1, False),
    "erf": (_erf, 1, True),
}
NAMES: tuple[str, ...] = tuple(_FUNCTIONS)


def call(b: ir.IRBuilder, name: str, args: list[ir.Value]) -> ir.Value:
    """Emit ``name(*args)`` at the builder's position; the arguments are scalars of one float type, and the
    result has that type."""
    fn, arity, widen = _FUNCTIONS[name]
    if len(args) != arity:
        raise TypeError(f"{name} takes {arity} argument(s), got {len(args)}")
    ty = args[0].type
    if not isinstance(ty, (ir.FloatType, ir.DoubleType)) or any(a.type != ty for a in args):
        raise TypeError(f"{name}: arguments must all be float or all double, got {[str(a.type) for a in args]}")
    prec = "d" if isinstance(ty, ir.DoubleType) else "f"
    if prec == "f" and widen:
        wide = [b.fpext(a, F64) for a in args]
        return b.fptrunc(fn(_Emitter(b, F64, prec), *wide), F32)
    return fn(_Emitter(b, ty, prec), *args)


def kernel_ir(name: str, ty: ir.Type, symbol: str = "kernel") -> str:
    """LLVM IR text of ``void symbol(T *out, const T *x[, const T *y], i64 n)``: out[i] = name(x[i][, y[i]]),
    the loop the tests and the accuracy benchmark compile."""
    arity = _FUNCTIONS[name][1]
    module = ir.Module(name=f"mathlib_{name}")
    i64 = ir.IntType(64)
    ptr = ty.as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr] * (arity + 1) + [i64]), symbol)
    *arrays, n = fn.args
    for arg in arrays:
        arg.add_attribute("noalias")
    entry, loop, done = fn.append_basic_block("entry"), fn.append_basic_block("loop"), fn.append_basic_block("done")
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, i64(0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64)
    i.add_incoming(i64(0), entry)
    values = [b.load(b.gep(arr, [i], inbounds=True)) for arr in arrays[1:]]
    b.store(call(b, name, values), b.gep(arrays[0], [i], inbounds=True))
    following = b.add(i, i64(1), flags=["nuw", "nsw"])
    i.add_incoming(following, loop)
    b.cbranch(b.icmp_signed("<", following, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
    return str(module)
