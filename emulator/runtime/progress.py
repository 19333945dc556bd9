"""A dependency-free progress bar for long work (generation, training, reports)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Print ``label [#####.....] done/total rate ETA extra`` on one line, at most every 0.2 s.

    Use as a context manager; ``update(n, **extra)`` adds ``n`` units and shows ``extra`` fields.
    On a non-terminal stream it prints a line roughly every 10% instead of redrawing.
    """

    def __init__(self, total: int | None, label: str, unit: str = "it", stream: TextIO | None = None):
        self.total, self.label, self.unit = total, label, unit
        self.stream = stream or sys.stderr
        self.done = 0
        self.extra: dict[str, object] = {}
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._last_decile = -1
        self._tty = self.stream.isatty()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def update(self, n: int = 1, **extra: object) -> None:
        self.done += n
        self.extra.update(extra)
        now = time.perf_counter()
        if self._tty and now - self._last_draw >= 0.2:
            self._last_draw = now
            self.stream.write("\r" + self.render())
            self.stream.flush()
        elif not self._tty and self.total:
            decile = int(10 * self.done / self.total)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(self.render() + "\n")

    def render(self) -> str:
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.extra.items())
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
            eta = (self.total - self.done) / self.rate if self.rate > 0 else float("nan")
            return (f"{self.label} [{bar}] {self.done}/{self.total} "
                    f"{self.rate:,.0f} {self.unit}/s ETA {eta:,.0f}s {extra}").rstrip()
        return f"{self.label} {self.done} {self.unit} {self.rate:,.0f} {self.unit}/s {extra}".rstrip()

    def close(self) -> None:
        if self._tty:
            self.stream.write("\r" + self.render() + "\n")
        self.stream.flush()
