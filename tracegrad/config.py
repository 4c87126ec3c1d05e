"""Global switches. ``config.explain_cache_misses`` (or the environment
variable TRACEGRAD_EXPLAIN_CACHE_MISSES=1) makes every re-trace of a jitted
function warn with the argument whose shape, dtype or static value changed."""

import os
from dataclasses import dataclass


@dataclass
class Config:
    explain_cache_misses: bool = os.environ.get("TRACEGRAD_EXPLAIN_CACHE_MISSES", "") not in ("", "0")


config = Config()
