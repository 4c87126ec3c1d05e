"""Exceptions raised by the IR layer.

Each subclasses the built-in a Python user would catch for the same mistake
(a bad shape is a ValueError, a bad dtype a TypeError, a bad axis an
IndexError), so ``except ValueError`` keeps working around tracegrad code.
"""


class TracegradError(Exception):
    """Base class of every exception tracegrad raises on purpose."""


class ShapeError(TracegradError, ValueError):
    """Operand shapes do not fit the operation (broadcasting, matmul, reshape...)."""


class DTypeError(TracegradError, TypeError):
    """An unsupported dtype, or a dtype the operation does not accept."""


class AxisError(TracegradError, IndexError, ValueError):
    """An axis out of range for the operand's rank (NumPy's AxisError is both)."""


class VerificationError(TracegradError, AssertionError):
    """A graph breaks an IR invariant; raised by :func:`ir.verify`."""
