"""Define-by-run execution with PyTorch's autograd semantics.

Tensors compute at once with NumPy; when grad mode is on and an operand
requires grad, each primitive leaves a node on a tape, and ``backward`` runs
the primitives' VJP rules — the same rules the IR autodiff pass uses — in
reverse. Nothing here imports the tracing core, which reaches in through
``core.bind`` when an operand is a Tensor.
"""

from . import operators  # noqa: F401  (installs the Tensor arithmetic operators)
from .engine import backward, grad
from .function import Function, FunctionCtx, checkpoint
from .gradcheck import GradcheckError, gradcheck
from .mode import detect_anomaly, enable_grad, is_anomaly_enabled, is_grad_enabled, no_grad, set_grad_enabled
from .tensor import Tensor, tensor

__all__ = ["Tensor", "tensor", "backward", "grad", "Function", "FunctionCtx", "checkpoint", "gradcheck",
           "GradcheckError", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "detect_anomaly",
           "is_anomaly_enabled"]
