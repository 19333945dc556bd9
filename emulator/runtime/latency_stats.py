"""Weighted latency statistics: per-event percentiles when every event carries its batch's latency.

:class:`LatencyRecorder` keeps a fixed log-spaced histogram (1 us to 1000 s, 0.5 % wide bins), so
memory is bounded whatever the run length and percentiles are exact to the bin width.
:class:`WeightedHistogram` is a Prometheus histogram (a custom Collector, prometheus_client's extension point)
that takes one value with a weight in O(1) - every event of a batch carries the batch's latency - and keeps a
:class:`LatencyRecorder` of the same observations for the stage report's percentiles.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterator, Sequence

import numpy as np
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

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


class WeightedSeries:
    """One labelled series of a :class:`WeightedHistogram`: Prometheus bucket counts, their sum, and the
    fine-binned :class:`LatencyRecorder` of the same observations (both updated under one lock, since the
    /metrics thread reads them)."""

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0
        self.recorder = LatencyRecorder()
        self.lock = threading.Lock()

    def observe(self, value: float, count: int = 1) -> None:
        """Count ``count`` observations of ``value`` (seconds); nothing when ``count`` <= 0."""
        if count <= 0:
            return
        index = bisect.bisect_left(self.bounds, value)  # the first bound >= value: Prometheus' ``le``
        with self.lock:
            self.counts[index] += count
            self.sum += value * count
            self.recorder.add(value, count)

    def percentiles(self) -> dict[str, float | None]:
        """:meth:`LatencyRecorder.percentiles` of everything observed."""
        with self.lock:
            return self.recorder.percentiles()

    def cumulative(self) -> tuple[list[tuple[str, float]], float]:
        """(``le`` label, cumulative count) per bucket, +Inf last, and the sum: one consistent snapshot."""
        with self.lock:
            counts, total = list(self.counts), self.sum
        labels = [repr(float(b)) for b in self.bounds] + ["+Inf"]
        return list(zip(labels, np.cumsum(counts).astype(float).tolist(), strict=True)), total


class WeightedHistogram(Collector):
    """A Prometheus histogram of weighted observations, exposed like ``prometheus_client.Histogram`` (family
    ``name``, samples ``name_bucket{le}``, ``name_sum``, ``name_count``, label names ``labelnames``), with
    ``observe(value, count)`` and ``labels(**values)`` like it."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], labelnames: Sequence[str] = (),
                 registry: CollectorRegistry | None = None):
        self.name, self.documentation = name, documentation
        self.bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        self.labelnames = tuple(labelnames)
        self.series: dict[tuple[str, ...], WeightedSeries] = {}
        self.lock = threading.Lock()
        if not self.labelnames:
            self.series[()] = WeightedSeries(self.bounds)
        if registry is not None:
            registry.register(self)

    def labels(self, **values: str) -> WeightedSeries:
        """The series of these label values (created at the first call)."""
        if set(values) != set(self.labelnames):
            raise ValueError(f"{self.name}: labels {sorted(values)}, expected {list(self.labelnames)}")
        key = tuple(str(values[n]) for n in self.labelnames)
        with self.lock:
            return self.series.setdefault(key, WeightedSeries(self.bounds))

    def observe(self, value: float, count: int = 1) -> None:
        """Observe the unlabelled histogram (see :meth:`WeightedSeries.observe`)."""
        self.series[()].observe(value, count)

    def percentiles(self) -> dict[str, float | None]:
        """The unlabelled histogram's :meth:`WeightedSeries.percentiles`."""
        return self.series[()].percentiles()

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self.lock:
            series = sorted(self.series.items())
        for key, one in series:
            buckets, total = one.cumulative()
            family.add_metric(list(key), buckets, total)
        yield family
