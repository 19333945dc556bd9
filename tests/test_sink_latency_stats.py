"""Weighted latency percentiles (every event carries its batch's latency) against an exact computation,
and the O(1) weighted Prometheus observation against repeated observe()."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from emulator.runtime.latency_stats import DECISION_HOPS, PERCENTILES, LatencyRecorder, decision_hops, observe_many
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


def test_observe_many_equals_repeated_observe() -> None:
    one, many = (Histogram("h", "h", buckets=LATENCY_BUCKETS, registry=CollectorRegistry()) for _ in range(2))
    for value, count in [(3e-4, 7), (0.02, 1), (4.0, 30), (20.0, 2)]:
        for _ in range(count):
            one.observe(value)
        observe_many(many, value, count)
    samples = lambda h: [(s.name, s.labels, round(s.value, 9)) for s in h.collect()[0].samples  # noqa: E731
                         if not s.name.endswith("_created")]
    assert samples(one) == samples(many)


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
