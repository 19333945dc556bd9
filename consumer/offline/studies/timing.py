"""CPU timing of a call: process CPU seconds (all threads of this process) and wall seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def timed(fn: Callable[..., object], *args: object, repeat: int = 1) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) of ``repeat`` calls of ``fn(*args)``."""
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        fn(*args)
    return time.process_time() - c0, time.perf_counter() - w0


def cpu_per_call(fn: Callable[[], T], min_seconds: float = 0.2, max_repeat: int = 20) -> tuple[float, T]:
    """(process CPU seconds of one call, the first call's result): repeated until ``min_seconds`` of CPU
    in all (at most ``max_repeat`` calls), so a slow call runs once."""
    total, n, first = 0.0, 0, None
    while n < max_repeat and (n == 0 or total < min_seconds):
        c0 = time.process_time()
        out = fn()
        total += time.process_time() - c0
        if n == 0:
            first = out
        n += 1
    return total / n, first  # type: ignore[return-value]
