"""Arrival schedules: when each event "arrives", in seconds since the start of the run.

Pure functions of (rate, count, random generator) so they are unit-testable; the replay loop
sleeps to these absolute times, so timing errors never accumulate. A rate of 0 means as fast as
possible (every arrival time is 0).

* constant: event i at i / rate.
* poisson: exponential gaps with mean 1 / rate.
* trains: LHC-like bunch trains. Poisson arrivals during bursts of ``train_s`` seconds separated
  by gaps of ``gap_s`` seconds; the in-burst rate is rate / duty so the mean rate stays ``rate``.
"""

from __future__ import annotations

import numpy as np

from producer.config import PATTERNS


def constant_times(rate: float, start_index: int, n: int) -> np.ndarray:
    """Arrival times of events ``start_index .. start_index + n - 1`` at a constant rate."""
    if rate <= 0:
        return np.zeros(n)
    return (start_index + np.arange(n, dtype=np.float64)) / rate


def poisson_times(rate: float, t0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """The next ``n`` arrival times of a Poisson process of ``rate`` after time ``t0``."""
    if rate <= 0:
        return np.zeros(n)
    return t0 + np.cumsum(rng.exponential(1.0 / rate, n))


def live_to_wall(live: np.ndarray, train_s: float, gap_s: float) -> np.ndarray:
    """Map "beam-on" time to wall time: each ``train_s`` of live time is followed by a ``gap_s`` gap."""
    trains = np.floor(live / train_s)
    return trains * (train_s + gap_s) + (live - trains * train_s)


def train_times(rate: float, live_t0: float, n: int, rng: np.random.Generator, train_s: float,
                gap_s: float) -> tuple[np.ndarray, float]:
    """The next ``n`` arrival times of the bunch-train pattern, and the new live-time cursor."""
    if rate <= 0:
        return np.zeros(n), live_t0
    duty = train_s / (train_s + gap_s)
    live = live_t0 + np.cumsum(rng.exponential(duty / rate, n))
    return live_to_wall(live, train_s, gap_s), float(live[-1]) if n else live_t0


class Schedule:
    """A stateful stream of arrival times for one pattern (deterministic for a given seed)."""

    def __init__(self, pattern: str, rate: float, seed: int = 1, train_s: float = 0.008, gap_s: float = 0.002):
        if pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {pattern!r}, expected one of {PATTERNS}")
        self.pattern, self.rate = pattern, float(rate)
        self.train_s, self.gap_s = train_s, gap_s
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self._cursor = 0.0  # last arrival (poisson) or live time (trains)

    def next(self, n: int) -> np.ndarray:
        """Arrival times of the next ``n`` events (non-decreasing, seconds since start)."""
        if self.pattern == "constant" or self.rate <= 0:
            times = constant_times(self.rate, self.count, n)
        elif self.pattern == "poisson":
            times = poisson_times(self.rate, self._cursor, n, self.rng)
            self._cursor = float(times[-1]) if n else self._cursor
        else:
            times, self._cursor = train_times(self.rate, self._cursor, n, self.rng, self.train_s, self.gap_s)
        self.count += n
        return times
