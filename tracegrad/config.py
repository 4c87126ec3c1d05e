"""Global switches. ``config.explain_cache_misses`` (or the environment
variable TRACEGRAD_EXPLAIN_CACHE_MISSES=1) makes every re-trace of a jitted
function warn with the argument whose shape, dtype or static value changed.
``config.threads`` (or TRACEGRAD_THREADS) is how many threads compiled code
may use for a large kernel; by default, every core this process may run on."""

import os
from dataclasses import dataclass


@dataclass
class Config:
    explain_cache_misses: bool = os.environ.get("TRACEGRAD_EXPLAIN_CACHE_MISSES", "") not in ("", "0")
    threads: int = int(os.environ.get("TRACEGRAD_THREADS") or len(os.sched_getaffinity(0)))


config = Config()
