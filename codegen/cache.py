"""The on-disk cache of compiled objects.

An entry is keyed by a hash of what was compiled, the code generator's own
source, the compiler version and the CPU with its features; it lives in
``TRACEGRAD_CACHE_DIR`` (default ``$XDG_CACHE_HOME/tracegrad`` or
``~/.cache/tracegrad``). Each file starts with a magic line, the CPU
fingerprint and a SHA-256 of the object, all checked before the object is
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


@functools.cache
def _generator_digest() -> str:
    """The code generator's own source: a change to it invalidates every cached object."""
    h = hashlib.sha256()
    here = pathlib.Path(__file__).parent
    for path in sorted(here.glob("*.py")) + [here.parent / "ir" / "passes" / "fusion.py"]:
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_dir() -> pathlib.Path:
    configured = os.environ.get("TRACEGRAD_CACHE_DIR")
    if configured:
        return pathlib.Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "tracegrad"


def digest(text: str) -> str:
    """A cache key: ``text`` (what is compiled) with the generator's source and the machine."""
    return hashlib.sha256(f"{text}|{_generator_digest()}|{target.fingerprint()}".encode()).hexdigest()


def load_cached(key: str) -> bytes | None:
    """The object stored under ``key``, or None when absent, corrupt or built for another machine."""
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


def store_cached(key: str, obj: bytes) -> None:
    """Write atomically; a cache that cannot be written is skipped, never an error."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        blob = MAGIC + target.fingerprint().encode() + b"\n" + hashlib.sha256(obj).hexdigest().encode() + b"\n" + obj
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, directory / f"{key}.o")
    except OSError:
        pass
