"""Weighted latency percentiles (every event carries its batch's latency) against an exact computation,
and the weighted Prometheus histogram (a custom Collector) against prometheus_client's Histogram fed the same
observations one by one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from emulator.runtime.latency_stats import DECISION_HOPS, PERCENTILES, LatencyRecorder, WeightedHistogram, decision_hops
from emulator.runtime.metrics import LATENCY_BUCKETS


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(2e-6, 50.0), st.integers(1, 5000)), min_size=1, max_size=60))
def test_weighted_percentiles_match_exact_ones(batches: list[tuple[float, int]]) -> None:
    rec = LatencyRecorder()
    for latency, n in batches:
        rec.add(latency, n)
    per_event = np.sort(np.repeat([b[0] for b in batches], [b[1] for b in batches]))
    got = rec.percentiles()
    assert got["events"] == len(per_event)
    for key, q in PERCENTILES.items():
        exact = per_event[max(0, int(np.ceil(q * len(per_event))) - 1)]
        assert abs(got[key] - exact) <= 0.006 * exact, (key, got[key], exact)
    assert got["max"] == per_event[-1] and np.isclose(got["mean"], per_event.mean())


OBSERVATIONS = [(3e-4, 7), (0.02, 1), (4.0, 30), (20.0, 2), (1e-5, 3), (2.5e-3, 4), (0.0, 1), (0.3, 0)]


def _exposition_lines(registry: CollectorRegistry) -> list[str]:
    return sorted(line for line in generate_latest(registry).decode().splitlines() if "_created" not in line)


def test_weighted_histogram_exposes_what_a_histogram_fed_one_by_one_exposes() -> None:
    """Same family, help, type, label names, bucket bounds (``le`` text too), counts and sum, on a bound too."""
    one_reg, many_reg = CollectorRegistry(), CollectorRegistry()
    one = Histogram("x_seconds", "help", ["hop"], buckets=LATENCY_BUCKETS, registry=one_reg)
    plain = Histogram("y_seconds", "plain", buckets=LATENCY_BUCKETS, registry=one_reg)
    many = WeightedHistogram("x_seconds", "help", LATENCY_BUCKETS, ["hop"], registry=many_reg)
    plain_many = WeightedHistogram("y_seconds", "plain", LATENCY_BUCKETS, registry=many_reg)
    for hop in ("a", "b"):
        one.labels(hop=hop)
        many.labels(hop=hop)
    for value, count in OBSERVATIONS:
        for _ in range(count):
            one.labels(hop="a").observe(value)
            plain.observe(value)
        many.labels(hop="a").observe(value, count)
        plain_many.observe(value, count)
    assert _exposition_lines(many_reg) == _exposition_lines(one_reg)


def test_weighted_histogram_percentiles_are_the_recorder_of_the_same_observations() -> None:
    hist = WeightedHistogram("z_seconds", "z", LATENCY_BUCKETS)
    rec = LatencyRecorder()
    for value, count in OBSERVATIONS:
        hist.observe(value, count)
        rec.add(value, count)
    assert hist.percentiles() == rec.percentiles()
    assert hist.percentiles()["events"] == sum(c for _, c in OBSERVATIONS)


def test_weighted_histogram_refuses_other_label_names() -> None:
    hist = WeightedHistogram("w_seconds", "w", LATENCY_BUCKETS, ["hop"])
    with pytest.raises(ValueError, match="labels"):
        hist.labels(stage="sink")


def test_decision_hops_split_the_latency_at_the_header_stamps() -> None:
    header = {"t_send": 100.0, "t_received": 100.002, "t_encoded": 100.0055}
    hops = decision_hops(header, t_arrival=100.0061)
    assert list(hops) == list(DECISION_HOPS)
    assert np.allclose(list(hops.values()), [0.002, 0.0035, 0.0006], rtol=0, atol=1e-9)
    assert np.isclose(sum(hops.values()), 100.0061 - 100.0, rtol=0, atol=1e-12)


def test_decision_hops_need_every_stamp_as_a_finite_number() -> None:
    good = {"t_send": 1.0, "t_received": 2.0, "t_encoded": 3.0}
    assert decision_hops(good, 4.0) is not None
    for key in good:  # an encoder that does not stamp t_received, or a hostile header
        for bad in (None, "2.0", True, float("nan"), float("inf")):
            header = {**good, key: bad} if bad is not None else {k: v for k, v in good.items() if k != key}
            assert decision_hops(header, 4.0) is None, (key, bad)
