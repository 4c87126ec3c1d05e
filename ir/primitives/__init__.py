"""The primitive table. Importing this package registers every primitive."""

from . import calls, control, elementwise, linalg, reduction, shape  # noqa: F401  (registration)
from .core import REGISTRY, Primitive, register

__all__ = ["REGISTRY", "Primitive", "register"]
