"""Finding the user's line: the innermost stack frame outside tracegrad."""

from __future__ import annotations

import functools
import io
import linecache
import os
import sys
import tokenize

from ir.graph import SourceInfo

_here = os.path.dirname(os.path.abspath(__file__))
_root = os.path.dirname(_here)
INTERNAL_DIRS = tuple(os.path.join(_root, pkg) + os.sep for pkg in ("tracegrad", "ir", "codegen"))
# Modules of the package that are user code of tracegrad: the models of the demo and the benchmarks.
USER_FILES = tuple(os.path.join(_here, name) for name in ("demo.py", "bench.py"))


def _internal(filename: str) -> bool:
    hit = _internal_cache.get(filename)
    if hit is None:
        path = os.path.abspath(filename) if not filename.startswith("<") else filename
        hit = _internal_cache[filename] = path not in USER_FILES and (
            path.startswith(INTERNAL_DIRS) or path.startswith("<frozen "))
    return hit


_internal_cache: dict[str, bool] = {}


def user_source() -> SourceInfo | None:
    """SourceInfo of the innermost frame that belongs to user code (not to tracegrad, ir or codegen)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _internal(filename):
            code = linecache.getline(filename, frame.f_lineno).strip()
            if "#" in code:
                code = _without_comment(code)
            return SourceInfo(filename, frame.f_lineno, frame.f_code.co_name, code)
        frame = frame.f_back
    return None


@functools.lru_cache(maxsize=4096)
def _without_comment(code: str) -> str:
    """A line of code without its trailing ``# comment`` (a ``#`` inside a string stays)."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.COMMENT:
                return code[:tok.start[1]].rstrip()
    except (tokenize.TokenError, SyntaxError):  # a line that opens a bracket or a string it does not close
        pass
    return code


def at_user_line() -> str:
    """`` at file.py:12 (in f): y = x + z`` for appending to an error message, or ''."""
    src = user_source()
    return f"\n  at {src.describe()}" if src is not None else ""
