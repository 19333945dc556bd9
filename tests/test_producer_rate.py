"""Arrival schedules (producer.rate) and framing (producer.framing): pure functions, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from emulator.runtime import wire
from producer.framing import EventBlock, batch_bounds, message_columns
from producer.rate import Schedule, constant_times, live_to_wall


def _times(pattern: str, rate: float, n: int, calls: int = 10, **kw: float) -> np.ndarray:
    sched = Schedule(pattern, rate, seed=3, **kw)
    return np.concatenate([sched.next(n // calls) for _ in range(calls)])


def test_constant_schedule_is_exact_and_continuous_across_calls() -> None:
    t = _times("constant", 2500.0, 10000)
    np.testing.assert_allclose(t, np.arange(10000) / 2500.0)
    np.testing.assert_allclose(constant_times(100.0, 5, 3), [0.05, 0.06, 0.07])


@pytest.mark.parametrize("pattern", ["poisson", "trains"])
def test_random_patterns_keep_the_mean_rate(pattern: str) -> None:
    rate = 50000.0
    t = _times(pattern, rate, 200000)
    assert np.all(np.diff(t) >= 0)
    assert (len(t) - 1) / (t[-1] - t[0]) == pytest.approx(rate, rel=0.02)


def test_poisson_gaps_are_exponential() -> None:
    gaps = np.diff(_times("poisson", 1000.0, 100000))
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)  # coefficient of variation of an exponential


def test_trains_have_bursts_and_gaps() -> None:
    train, gap, rate = 0.008, 0.002, 20000.0
    t = _times("trains", rate, 100000, train_s=train, gap_s=gap)
    phase = np.mod(t, train + gap)
    assert np.all(phase <= train + 1e-9), "no arrival may fall in a gap"
    # in-burst rate is rate / duty: count arrivals in full cycles
    cycles = np.floor(t / (train + gap))
    per_cycle = np.bincount(cycles.astype(int))[1:-1]
    assert per_cycle.mean() == pytest.approx(rate * (train + gap), rel=0.02)
    # and the gaps are visible: the largest inter-arrival time is at least the gap
    assert np.diff(t).max() >= gap


def test_live_to_wall_inserts_gaps() -> None:
    np.testing.assert_allclose(live_to_wall(np.array([0.0, 0.5, 1.0, 1.5, 2.5]), 1.0, 3.0),
                               [0.0, 0.5, 4.0, 4.5, 8.5])


def test_rate_zero_means_as_fast_as_possible() -> None:
    for pattern in ("constant", "poisson", "trains"):
        assert not Schedule(pattern, 0.0).next(100).any()


def test_unknown_pattern_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown pattern"):
        Schedule("sawtooth", 10.0)


def test_batches_by_count_and_by_delay() -> None:
    # 1 kHz, 10 ms delay: 11 events per batch (t0 .. t0+10 ms), sent when the delay expires
    t = np.arange(50) / 1000.0
    bounds, used = batch_bounds(t, 1024, 0.010, final=False)
    assert [(a, b) for a, b, _ in bounds] == [(0, 11), (11, 22), (22, 33), (33, 44)]
    assert [s for *_, s in bounds] == pytest.approx([0.010, 0.021, 0.032, 0.043])
    assert used == 44  # the last 6 may still be joined by later arrivals
    bounds, used = batch_bounds(t, 1024, 0.010, final=True)
    assert used == 50 and bounds[-1] == (44, 50, pytest.approx(0.049))
    # full by count: sent at the arrival of its last event
    bounds, used = batch_bounds(t, 4, 0.010, final=False)
    assert bounds[0] == (0, 4, pytest.approx(0.003)) and used == 48
    # as fast as possible
    bounds, used = batch_bounds(np.zeros(10), 4, 0.010, final=True)
    assert [(a, b, s) for a, b, s in bounds] == [(0, 4, 0.0), (4, 8, 0.0), (8, 10, 0.0)]


def _block(counts: list[int], first_entry: int = 0) -> EventBlock:
    counts_a = np.array(counts, dtype="<u4")
    n = int(counts_a.sum())
    return EventBlock(np.zeros(len(counts), "<u4"), np.arange(first_entry, first_entry + len(counts), dtype="<u8"),
                      np.arange(len(counts), dtype="<u8"), counts_a, np.zeros(len(counts)),
                      {"pt": np.arange(n, dtype="<f4") + 1000 * first_entry, "eta": np.ones(n, "<f4")})


def test_slice_and_concat_keep_jets_with_their_events() -> None:
    block = _block([2, 0, 3, 1])
    part = block.slice(1, 3)
    np.testing.assert_array_equal(part.n_jets, [0, 3])
    np.testing.assert_array_equal(part.jets["pt"], [2, 3, 4])
    joined = EventBlock.concat([block.slice(0, 2), block.slice(2, 4)])
    np.testing.assert_array_equal(joined.jets["pt"], block.jets["pt"])
    np.testing.assert_array_equal(joined.entry, block.entry)


def test_message_columns_make_a_valid_wire_message() -> None:
    block = _block([2, 0, 3, 1])
    cols = message_columns(block, 77)
    frames = wire.encode(wire.KIND_EVENTS, 5, 0, cols, t_send=1.0, rate_hz=10.0, manifest_sha256="5" * 64)
    batch = wire.validate(wire.decode([bytes(f) for f in frames]))
    np.testing.assert_array_equal(batch.columns["event_id"], [77, 78, 79, 80])
    np.testing.assert_array_equal(batch.columns["jet_pt"], np.arange(6))
    assert batch.n_jets == 6 and batch.header["manifest_sha256"] == "5" * 64
