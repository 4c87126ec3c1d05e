"""Graph -> graph passes."""

from .autodiff import backward, jvp_graph, jvp_inline, vjp_graph, vjp_inline

__all__ = ["backward", "jvp_graph", "jvp_inline", "vjp_graph", "vjp_inline"]
