"""Tensor arithmetic with a short path to the tape.

Every Tensor operator is a ``tracegrad.numpy`` function (installed by the
package). The four arithmetic ones are also the commonest operations of a
model, and on operands of one float type — or a float tensor and a Python
number — there is nothing to promote or broadcast, so they bind the
primitive on the tape directly; anything else takes the tnp path.
"""

from __future__ import annotations

import numpy as np

from ir.primitives import REGISTRY

from .tape import TAPE
from .tensor import Tensor


def _operator(name: str, prim_name: str, swap: bool):
    prim = REGISTRY[prim_name]

    def op(self: Tensor, other):
        a = self.data
        kind = type(other)
        if a.dtype.kind == "f" and (kind is float or kind is int or (
                kind is Tensor and other.data.dtype is a.dtype and other.data.shape == a.shape)):
            if kind is not Tensor:
                other = np.asarray(other, a.dtype)  # a Python number takes the tensor's dtype (NumPy 2)
            return TAPE.run(prim, (other, self) if swap else (self, other), {}, check=False)[0]
        from ..numpy._methods import METHODS

        return METHODS[name](self, other)

    op.__name__ = op.__qualname__ = name
    return op


for _name, _prim, _swap in [("__add__", "add", False), ("__radd__", "add", True), ("__sub__", "sub", False),
                            ("__rsub__", "sub", True), ("__mul__", "mul", False), ("__rmul__", "mul", True),
                            ("__truediv__", "div", False), ("__rtruediv__", "div", True)]:
    setattr(Tensor, _name, _operator(_name, _prim, _swap))
