"""gradcheck: the tape's gradients against central differences, element by element."""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from .engine import grad
from .mode import no_grad
from .tensor import Tensor


class GradcheckError(RuntimeError):
    """The analytical Jacobian differs from the numerical one."""


def _outputs(fn, inputs) -> tuple:
    out = fn(*inputs)
    return out if isinstance(out, tuple) else (out,)


def gradcheck(fn: Callable, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True) -> bool:
    """Compare the Jacobian of every Tensor output with respect to every input
    that requires grad, computed by backward, with central differences. Returns
    True, or raises GradcheckError showing both (False with ``raise_exception=False``).
    Use float64 inputs: float32 rounding swamps a step of 1e-6."""
    from ..checking import mismatch

    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but none of them have "
                         "requires_grad=True.")
    for i in wrt:
        if inputs[i].dtype != np.float64:
            warnings.warn(f"Input #{i} requires gradient and is not a double precision floating point; gradcheck "
                          f"compares against central differences with eps={eps}, which need float64.", UserWarning,
                          stacklevel=2)
    outputs = [o for o in _outputs(fn, inputs)]
    for k, out in enumerate(outputs):
        if not isinstance(out, Tensor) or out.dtype.kind != "f":
            continue
        for i in wrt:
            x = inputs[i]
            numerical = np.zeros((x.size, out.size))
            for j in range(x.size):
                columns = []
                for sign in (1, -1):
                    shifted = x.data.copy()
                    shifted.reshape(-1)[j] += sign * eps
                    args = list(inputs)
                    args[i] = Tensor._make(shifted)
                    with no_grad():
                        columns.append(np.asarray(_outputs(fn, args)[k].data, np.float64).reshape(-1))
                numerical[j] = (columns[0] - columns[1]) / (2 * eps)
            analytical = np.zeros_like(numerical)
            if out.requires_grad:
                for m in range(out.size):
                    seed = np.zeros(out.shape, out.dtype)
                    seed.reshape(-1)[m] = 1
                    (g,) = grad(out, x, Tensor._make(seed), retain_graph=True, allow_unused=True)
                    if g is not None:
                        analytical[:, m] = g.data.reshape(-1)
            if mismatch(analytical, numerical, rtol, atol).any():
                if not raise_exception:
                    return False
                raise GradcheckError(f"Jacobian mismatch for output {k} with respect to input {i},\n"
                                     f"numerical:{numerical}\nanalytical:{analytical}\n")
    return True
