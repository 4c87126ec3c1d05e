"""Every test runs the verifier after every pass of every jit compilation."""

import os

os.environ.setdefault("TRACEGRAD_VERIFY", "1")
