"""Every test runs the verifier after every pass of every jit compilation, and
compiled objects are cached in a directory of this test session's own (never
the user's cache)."""

import os
import tempfile

os.environ.setdefault("TRACEGRAD_VERIFY", "1")
os.environ.setdefault("TRACEGRAD_CACHE_DIR", tempfile.mkdtemp(prefix="tracegrad-test-cache-"))
