"""Grad mode and anomaly mode: per-thread switches, as PyTorch keeps them.

``no_grad``, ``enable_grad`` and ``set_grad_enabled`` work as context
managers and as decorators; a backward pass runs with grad mode set to its
``create_graph`` flag, so only a ``create_graph`` backward records a tape of
its own."""

from __future__ import annotations

import functools
import threading


class _State(threading.local):
    grad_enabled = True
    anomaly = False


STATE = _State()


def is_grad_enabled() -> bool:
    return STATE.grad_enabled


def is_anomaly_enabled() -> bool:
    return STATE.anomaly


class _Switch:
    """Sets one flag of STATE on entry and restores it on exit; usable as a decorator."""

    flag = ""

    def __init__(self, value: bool):
        self.value = bool(value)
        self._saved: list[bool] = []

    def __enter__(self):
        self._saved.append(getattr(STATE, self.flag))
        setattr(STATE, self.flag, self.value)
        return self

    def __exit__(self, *exc):
        setattr(STATE, self.flag, self._saved.pop())

    def __call__(self, fn):
        flag, value = self.flag, self.value

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            saved = getattr(STATE, flag)
            setattr(STATE, flag, value)
            try:
                return fn(*args, **kwargs)
            finally:
                setattr(STATE, flag, saved)

        return wrapper


class set_grad_enabled(_Switch):
    """``with tg.set_grad_enabled(False): ...`` — record a tape or not. Called
    on its own it sets the mode until changed, as in PyTorch."""

    flag = "grad_enabled"

    def __init__(self, mode: bool):
        super().__init__(mode)
        self._before = STATE.grad_enabled
        STATE.grad_enabled = self.value  # takes effect at once; __exit__ restores

    def __enter__(self):
        self._saved.append(self._before)
        return self

    def __call__(self, fn):
        STATE.grad_enabled = self._before  # as a decorator it only applies inside fn
        return super().__call__(fn)


class no_grad(_Switch):
    """Operations inside run without recording: for evaluation and for
    updating parameters in place. ``@no_grad`` and ``@no_grad()`` both decorate."""

    flag = "grad_enabled"

    def __new__(cls, fn=None):
        if fn is not None:
            return cls()(fn)
        return super().__new__(cls)

    def __init__(self, fn=None):
        super().__init__(False)


class enable_grad(_Switch):
    """Turns recording back on inside a ``no_grad`` region."""

    flag = "grad_enabled"

    def __init__(self):
        super().__init__(True)


class detect_anomaly(_Switch):
    """Each operation remembers the line that created it, and the backward
    pass stops at the first gradient holding NaN or Inf, naming the forward
    operation and that line. Slower: for debugging."""

    flag = "anomaly"

    def __init__(self, mode: bool = True):
        super().__init__(mode)
