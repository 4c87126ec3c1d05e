"""The eager Tensor: a NumPy array plus what PyTorch's autograd keeps beside it.

A Tensor computes at once. Operators and methods come from ``tracegrad.numpy``
(installed by the package), whose functions reach the primitives through
``core.bind``; there a Tensor operand sends the primitive to the tape
(``tape.TAPE``), which runs it with NumPy and records a node when grad mode
is on and an operand requires grad. A non-leaf tensor's history is its
``grad_fn`` node; a leaf's gradient lands in ``.grad``.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from ir import dtypes

from .mode import STATE

DEFAULT_FLOAT = dtypes.float32  # a Python float becomes float32, as torch.tensor makes it


class VersionCounter:
    """Counts in-place writes to one block of memory. A view shares its base's
    counter (``shared`` is then set), so a write through either is seen by the
    saved-value checks of the backward pass."""

    __slots__ = ("value", "shared")

    def __init__(self):
        self.value = 0
        self.shared = False


class RemovableHandle:
    """What ``register_hook`` returns: ``handle.remove()`` takes the hook off."""

    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


def as_array(data, dtype=None) -> np.ndarray:
    """A fresh C-contiguous array of a supported dtype. Without ``dtype``, Python
    floats become float32 (PyTorch's default) and NumPy data keeps its dtype."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dt = dtypes.canonicalize(dtype)
    else:
        probe = np.asarray(data)
        is_numpy = isinstance(data, (np.ndarray, np.generic))
        dt = DEFAULT_FLOAT if probe.dtype.kind == "f" and not is_numpy else dtypes.canonicalize(probe.dtype,
                                                                                               "tensor dtype")
    return np.array(data, dtype=dt, order="C", copy=True)


class Tensor:
    """An array that records the operations on it when it requires grad.

    ``Tensor(data, dtype=None, requires_grad=False)`` copies ``data``, as
    ``tg.tensor`` does."""

    __slots__ = ("data", "_grad", "_requires_grad", "grad_fn", "_output_nr", "_counter", "_base", "_accumulator",
                 "_hooks", "__weakref__")
    __array_priority__ = 1000

    def __new__(cls, data, dtype=None, requires_grad: bool = False):
        t = cls._make(as_array(data, dtype))
        return t.requires_grad_(True) if requires_grad else t

    @classmethod
    def _make(cls, data: np.ndarray, grad_fn=None, output_nr: int = 0, requires_grad: bool = False,
              counter: VersionCounter | None = None, base: "Tensor | None" = None) -> "Tensor":
        """A Tensor around ``data`` without copying it (the tape's results)."""
        t = object.__new__(cls)
        t.data, t._grad, t._requires_grad, t.grad_fn, t._output_nr = data, None, requires_grad, grad_fn, output_nr
        t._counter = counter if counter is not None else VersionCounter()
        t._base, t._accumulator, t._hooks = base, None, None
        return t

    # -- what a NumPy array knows ---------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)

    def __len__(self) -> int:
        if not self.data.ndim:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        if not self.data.ndim:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    # -- autograd state -------------------------------------------------------
    @property
    def is_leaf(self) -> bool:
        """A tensor the user made (or one that does not require grad): backward fills its ``.grad``."""
        return self.grad_fn is None

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if self.grad_fn is not None:
            if requires_grad:
                return self
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use a "
                               "computed variable in a subgraph that doesn't require differentiation use "
                               "var_no_grad = var.detach().")
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients (this one is "
                               f"{self.data.dtype}); convert it first, for example with .astype(np.float32)")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def grad(self) -> "Tensor | None":
        if self.grad_fn is not None and not self.retains_grad:
            warnings.warn("The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
                          "attribute won't be populated during backward(). If you want the gradient of a non-leaf "
                          "Tensor, call .retain_grad() on it before backward().", UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value: "Tensor | None") -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type "
                                f"{type(value).__name__}")
            if value.shape != self.shape:
                raise RuntimeError(f"assigned grad has data of a different size: {value.shape} for a tensor of "
                                   f"shape {self.shape}")
            if value.dtype != self.dtype:
                raise RuntimeError(f"assigned grad has data of a different type: {value.dtype} for a tensor of "
                                   f"dtype {self.dtype}")
        self._grad = value

    @property
    def retains_grad(self) -> bool:
        return self.grad_fn is not None and self.grad_fn.retains(self._output_nr, self)

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward (leaves keep theirs anyway)."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            self.grad_fn.retain(self._output_nr, self)

    def register_hook(self, hook: Callable) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a Tensor
        it returns replaces the gradient."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            return self.grad_fn.add_hook(self._output_nr, hook)
        if self._hooks is None:
            self._hooks = {}
        self._hooks[id(hook)] = hook
        return RemovableHandle(self._hooks, id(hook))

    @property
    def _version(self) -> int:
        return self._counter.value

    def backward(self, gradient: "Tensor | None" = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs=None) -> None:
        """Run the tape backwards from this tensor and add the gradients into
        the leaves' ``.grad``. ``gradient`` is required unless the tensor has one element."""
        from .engine import backward

        backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    # -- leaving the tape ------------------------------------------------------
    def detach(self) -> "Tensor":
        """The same memory, without history: changes to either are seen by both."""
        return Tensor._make(self.data, counter=self._counter)

    def detach_(self) -> "Tensor":
        if self._base is not None and self._base.requires_grad:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self.grad_fn, self._output_nr, self._requires_grad = None, 0, False
        return self

    def clone(self) -> "Tensor":
        """A copy that stays on the tape (its gradient flows back to this tensor)."""
        from ..core import bind1

        return bind1("convert_element_type", self, dtype=self.dtype)  # NumPy's astype copies

    def numpy(self) -> np.ndarray:
        if self._requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self.data

    def __array__(self, dtype=None, copy=None):
        data = self.numpy()
        return data if dtype is None else data.astype(dtype)

    def item(self):
        if self.data.size != 1:
            raise RuntimeError(f"a Tensor with {self.data.size} elements cannot be converted to Scalar")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.data.size} values is ambiguous")
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return self.data.item()

    __hash__ = object.__hash__  # tensors are keys by identity (for sets of parameters), as in PyTorch

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        extras = []
        default = {"f": DEFAULT_FLOAT, "i": dtypes.int64, "b": dtypes.bool_}[self.data.dtype.kind]
        if self.data.dtype != default:
            extras.append(f"dtype={self.data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return f"Tensor({body}{''.join(', ' + e for e in extras)})"

    # -- in place ---------------------------------------------------------------
    def _inplace(self, compute: Callable, *others) -> "Tensor":
        """Write ``compute(self, *others)`` into this tensor's memory and bump its
        version. When the write is recorded, the tensor's history becomes the
        new operation (PyTorch's rebase); the operation reads a copy of the old
        value, so its own backward is unaffected by the write."""
        recording = STATE.grad_enabled and (
            self._requires_grad or any(isinstance(o, Tensor) and o._requires_grad for o in others))
        if recording and self._requires_grad and self.grad_fn is None:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation. Wrap "
                               "the update in `with tg.no_grad():` (as an optimiser step does), or work on a copy.")
        if not self.data.flags.writeable:
            raise RuntimeError("unsupported operation: more than one element of the written-to tensor refers to a "
                               "single memory location (it is a broadcast view). Please clone() the tensor before "
                               "performing the operation.")
        source = self
        if recording:
            source = Tensor._make(self.data.copy(), self.grad_fn, self._output_nr, self._requires_grad)
        result = compute(source, *others)
        if not isinstance(result, Tensor):
            result = Tensor._make(np.asarray(result))
        if result.shape != self.shape:
            raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the broadcast shape "
                               f"{list(result.shape)}")
        if result.dtype != self.dtype:
            if not np.can_cast(result.dtype, self.dtype, "same_kind"):
                raise RuntimeError(f"result type {result.dtype} can't be cast to the desired output type "
                                   f"{self.dtype}")
            from .. import numpy as tnp

            result = tnp.astype(result, self.dtype)
        if result.grad_fn is not None and self._counter.shared:
            raise RuntimeError("an in-place operation on a tensor that shares memory with a view (or is one) cannot "
                               "be recorded by tracegrad's eager mode: the other tensor's history would not see it. "
                               "Use the out-of-place operation (y = x + 1), or clone() first.")
        np.copyto(self.data, result.data)
        self._counter.value += 1
        if result.grad_fn is not None:
            self.grad_fn, self._output_nr, self._requires_grad = result.grad_fn, result._output_nr, True
            result.grad_fn.adopt_output(result._output_nr, self)
        return self

    def add_(self, other) -> "Tensor":
        return self._inplace(type(self).__add__, other)

    def sub_(self, other) -> "Tensor":
        return self._inplace(type(self).__sub__, other)

    def mul_(self, other) -> "Tensor":
        return self._inplace(type(self).__mul__, other)

    def div_(self, other) -> "Tensor":
        return self._inplace(type(self).__truediv__, other)

    def zero_(self) -> "Tensor":
        from .. import numpy as tnp

        return self._inplace(lambda t: tnp.where(False, t, tnp.zeros_like(t.data)))

    def fill_(self, value) -> "Tensor":
        from .. import numpy as tnp

        return self._inplace(lambda t: tnp.where(False, t, tnp.full_like(t.data, value)))

    __iadd__, __isub__, __imul__, __itruediv__ = add_, sub_, mul_, div_

    def __setitem__(self, key, value) -> None:
        """``t[key] = value``, in place. The written elements stop depending on
        the tensor's history; ``value`` itself may not require grad."""
        if isinstance(value, Tensor) and value._requires_grad and STATE.grad_enabled:
            raise RuntimeError("assigning a tensor that requires grad into another (t[key] = value) is not "
                               "recorded by tracegrad's eager mode; build the result out of place instead, for "
                               "example with tnp.where or tnp.concatenate")
        from .. import numpy as tnp

        written = np.zeros(self.shape, dtype=bool)
        written[key] = True
        filled = self.data.copy()
        filled[key] = value.data if isinstance(value, Tensor) else value
        self._inplace(lambda t: tnp.where(written, filled, t))


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new leaf Tensor holding a copy of ``data`` (a Python float becomes float32, as in PyTorch)."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)
