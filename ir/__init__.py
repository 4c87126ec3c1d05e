"""tracegrad's typed graph IR: types, graphs, the primitive table, builders,
the printer, the verifier and the NumPy reference interpreter.

``ir`` knows nothing of tracing or of code generation."""

from . import dtypes
from .builder import Builder, GraphBuilder, NumpyBuilder
from .errors import AxisError, DTypeError, ShapeError, TracegradError, VerificationError
from .graph import Atom, Constant, Eqn, Graph, Literal, SourceInfo, Var
from .interpreter import InterpreterError, evaluate
from .primitives import REGISTRY, Primitive
from .types import ShapedType, type_of
from .verifier import verify

__all__ = [
    "dtypes", "Builder", "GraphBuilder", "NumpyBuilder", "AxisError", "DTypeError", "ShapeError",
    "TracegradError", "VerificationError", "Atom", "Constant", "Eqn", "Graph", "Literal", "SourceInfo",
    "Var", "InterpreterError", "evaluate", "REGISTRY", "Primitive", "ShapedType", "type_of", "verify",
]
