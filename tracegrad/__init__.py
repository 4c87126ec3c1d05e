"""tracegrad: a trace-and-compile automatic-differentiation compiler for
NumPy-style Python.

    import tracegrad as tg
    import tracegrad.numpy as tnp

    @tg.jit
    def loss(w, x):
        return tnp.sum(tnp.tanh(x @ w) ** 2)

    print(tg.make_ir(loss)(w, x))    # the traced program
    loss(w, x)                       # traced once per signature, then cached
"""

from ir import Graph, ShapedType
from ir.dtypes import bool_, float32, float64, int32, int64

from . import eager, lax, numpy
from . import nn, optim
from .checking import check_grads, debug_nans
from .config import config
from .core import Tracer
from .errors import (ArgumentError, AxisError, ConcretizationError, DTypeError, EscapedTracerError, ShapeError,
                     TracegradError, VerificationError)
from .jit import CacheInfo, CacheMissWarning, JitFunction, Lowered, jit
from .numpy._methods import install as _install_array_methods
from .custom import checkpoint, custom_jvp, custom_vjp
from .eager import (Function, Tensor, detect_anomaly, enable_grad, is_grad_enabled, no_grad, set_grad_enabled,
                    tensor)
from .tracing import make_ir
from .transforms import grad, hessian, jacfwd, jacrev, jvp, stop_gradient, value_and_grad, vjp

_install_array_methods(Tracer)
_install_array_methods(Tensor)

__version__ = "0.1.0"

__all__ = [
    "jit", "make_ir", "grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev", "hessian", "stop_gradient",
    "custom_vjp", "custom_jvp", "checkpoint", "check_grads", "debug_nans", "config", "numpy", "Graph", "ShapedType",
    "Tracer", "Tensor", "tensor", "Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
    "detect_anomaly", "eager", "lax", "nn", "optim", "JitFunction", "Lowered", "CacheInfo",
    "CacheMissWarning", "TracegradError", "ShapeError", "DTypeError", "AxisError", "ConcretizationError",
    "ArgumentError", "EscapedTracerError", "VerificationError", "float32", "float64", "int32", "int64", "bool_",
]
