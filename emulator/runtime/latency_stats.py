"""Weighted latency statistics: per-event percentiles when every event carries its batch's latency.

:class:`LatencyRecorder` keeps a fixed log-spaced histogram (1 us to 1000 s, 0.5 % wide bins), so
memory is bounded whatever the run length and percentiles are exact to the bin width.
:func:`observe_many` adds one value with a weight to a Prometheus histogram in O(1).
"""

from __future__ import annotations

import math

import numpy as np
from prometheus_client import Histogram

PERCENTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p999": 0.999}
_LO, _HI, _RATIO = 1e-6, 1e3, 1.005
_NBINS = math.ceil(math.log(_HI / _LO) / math.log(_RATIO)) + 2


class LatencyRecorder:
    """Weighted histogram of latencies in seconds; ``percentiles()`` gives p50/p90/p99/p999."""

    def __init__(self) -> None:
        self.counts = np.zeros(_NBINS, dtype=np.int64)
        self.total = 0
        self.sum = 0.0
        self.max = 0.0

    @staticmethod
    def _bin(value: float) -> int:
        if value <= _LO:
            return 0
        return min(_NBINS - 1, 1 + int(math.log(value / _LO) / math.log(_RATIO)))

    @staticmethod
    def _centre(index: int) -> float:
        if index == 0:
            return _LO
        return _LO * _RATIO ** (index - 0.5)

    def add(self, value: float, weight: int = 1) -> None:
        """Count ``weight`` events of latency ``value`` seconds."""
        if weight <= 0:
            return
        self.counts[self._bin(value)] += weight
        self.total += weight
        self.sum += value * weight
        self.max = max(self.max, value)

    def quantile(self, q: float) -> float | None:
        """The latency below which a fraction ``q`` of the weighted events lie (None when empty)."""
        if self.total == 0:
            return None
        rank = q * self.total
        index = int(np.searchsorted(np.cumsum(self.counts), rank, side="left"))
        return min(self._centre(min(index, _NBINS - 1)), self.max)

    def percentiles(self) -> dict[str, float | None]:
        """p50, p90, p99, p999 plus mean, max and the event count behind them."""
        out: dict[str, float | None] = {k: self.quantile(q) for k, q in PERCENTILES.items()}
        out["mean"] = self.sum / self.total if self.total else None
        out["max"] = self.max if self.total else None
        out["events"] = self.total
        return out


#: The hops of the decision latency, in order, each from one header time stamp to the next (same clock:
#: one host; across hosts clock offsets add to one hop and subtract from the next).
DECISION_HOPS = ("to_encoder", "in_encoder", "to_sink")
#: Each hop in words, for status lines and plots.
HOP_LABELS = {"to_encoder": "producer->encoder", "in_encoder": "in encoder", "to_sink": "encoder->sink"}


def decision_hops(header: dict, t_arrival: float) -> dict[str, float] | None:
    """The decision latency of a scored message split by hop, from its header's ``t_send`` (producer),
    ``t_received`` (encoder took it off its socket), ``t_encoded`` (encoder built the scored message) and
    the sink's arrival time: {to_encoder, in_encoder, to_sink} seconds; None when a stamp is missing or
    not a number (an encoder that does not stamp ``t_received``)."""
    stamps = [header.get(k) for k in ("t_send", "t_received", "t_encoded")]
    if not all(isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) for t in stamps):
        return None
    t_send, t_received, t_encoded = (float(t) for t in stamps)
    return dict(zip(DECISION_HOPS, (t_received - t_send, t_encoded - t_received, t_arrival - t_encoded),
                    strict=True))


def observe_many(histogram: Histogram, value: float, count: int) -> None:
    """``histogram.observe(value)`` ``count`` times, in O(1) where the client allows it."""
    if count <= 0:
        return
    buckets = getattr(histogram, "_buckets", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    total = getattr(histogram, "_sum", None)
    if buckets is None or bounds is None or total is None:
        for _ in range(count):
            histogram.observe(value)
        return
    total.inc(value * count)
    for i, bound in enumerate(bounds):
        if value <= bound:
            buckets[i].inc(count)
            break
