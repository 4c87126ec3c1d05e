"""Exceptions of the front end. Each subclasses the built-in a user would
catch for the same mistake, and says what to change."""

from ir.errors import AxisError, DTypeError, ShapeError, TracegradError, VerificationError

__all__ = ["TracegradError", "ShapeError", "DTypeError", "AxisError", "VerificationError",
           "ConcretizationError", "ArgumentError", "EscapedTracerError"]


class ConcretizationError(TracegradError, TypeError):
    """A Python decision (``if``, ``bool()``, ``float()``, ``.item()``, NumPy
    conversion) needed the value of an array that is abstract under ``jit``."""


class ArgumentError(TracegradError, TypeError):
    """The arguments of a traced or jitted call do not fit (count, leaf type,
    static argument)."""


class EscapedTracerError(TracegradError, RuntimeError):
    """A traced value was used after the trace that made it had finished
    (stored in a global or in a closure and read by a later call)."""
