"""The on-disk cache of compiled objects.

An entry is keyed by a hash of what was compiled (a program, or the traced
graph the passes made it from), the source of the code that compiled it, the
compiler version and the CPU with its features; it lives in
``TRACEGRAD_CACHE_DIR`` (default ``$XDG_CACHE_HOME/tracegrad`` or
``~/.cache/tracegrad``). Each file starts with a magic line, the CPU
fingerprint and a SHA-256 of the payload, all checked before the payload is
loaded: a truncated, corrupted or foreign file is ignored (and rebuilt by the
caller). Writes go to a temporary file renamed into place, so a concurrent
reader never sees half a file, and a cache that cannot be written is skipped.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import tempfile

from . import target

MAGIC = b"tracegrad-object-1\n"

ROOT = pathlib.Path(__file__).parent.parent
# What a compiled object depends on besides what it was compiled from: the code generator's own source ...
GENERATOR = ("codegen/*.py", "ir/passes/fusion.py")
# ... and, for a program keyed by its traced graph, everything that turns that graph into the program:
# the passes, the primitives' rules they apply and the IR itself.
COMPILER = ("codegen/*.py", "ir/**/*.py")


@functools.cache
def _source_digest(patterns: tuple[str, ...]) -> str:
    """The source files ``patterns`` match: a change to any invalidates every object keyed with them."""
    h = hashlib.sha256()
    for path in sorted({p for pattern in patterns for p in ROOT.glob(pattern)}):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def cache_dir() -> pathlib.Path:
    configured = os.environ.get("TRACEGRAD_CACHE_DIR")
    if configured:
        return pathlib.Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "tracegrad"


def digest(text: str, sources: tuple[str, ...] = GENERATOR) -> str:
    """A cache key: ``text`` (what is compiled) with the ``sources`` that compile it and the machine."""
    return hashlib.sha256(f"{text}|{_source_digest(sources)}|{target.fingerprint()}".encode()).hexdigest()


def load_cached(key: str) -> bytes | None:
    """The payload stored under ``key`` (an object, or a program with its object), or None when absent,
    corrupt or built for another machine."""
    try:
        blob = (cache_dir() / f"{key}.o").read_bytes()
    except OSError:
        return None
    head, _, rest = blob.partition(b"\n")
    header = head + b"\n"
    fingerprint, _, rest = rest.partition(b"\n")
    digest, _, payload = rest.partition(b"\n")
    if header != MAGIC or fingerprint.decode(errors="replace") != target.fingerprint() or \
            hashlib.sha256(payload).hexdigest().encode() != digest:
        return None
    return payload


def store_cached(key: str, payload: bytes) -> None:
    """Write atomically; a cache that cannot be written is skipped, never an error."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        check = hashlib.sha256(payload).hexdigest().encode()
        blob = MAGIC + target.fingerprint().encode() + b"\n" + check + b"\n" + payload
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, directory / f"{key}.o")
    except OSError:
        pass
