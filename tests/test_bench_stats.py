"""The benchmark's own arithmetic on known synthetic timings (rates, percentiles, ratios, cycles), not speed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.bench import stats
from emulator.bench.cycles import parse_cpuinfo_mhz, parse_perf_csv, parse_proc_stat


def test_rate_and_ratio_on_known_numbers() -> None:
    assert stats.rate(1_000_000, 0.5) == 2_000_000.0
    assert stats.ratio(0.8e6, 1.0e6) == pytest.approx(0.8)
    assert stats.ratio(1.0, 0.0) is None and stats.ratio(None, 2.0) is None
    with pytest.raises(ValueError):
        stats.rate(10, 0.0)


def test_throughput_per_cpu_second_and_cycles() -> None:
    # 1e6 jets in 2 s wall, 1.5 CPU s: 5e5 jets/s, 6.67e5 jets per CPU s, 1.5 us per jet
    tp = stats.throughput(1_000_000, 2.0, 1.5)
    assert tp["per_s"] == 500_000.0
    assert tp["per_cpu_s"] == pytest.approx(666_666.667)
    assert tp["cpu_s_per_unit"] == pytest.approx(1.5e-6)
    # 1.5 us at 2.6 GHz = 3900 cycles per jet
    cycles = stats.cycles_from_cpu_seconds(1.5, 2.6e9)
    assert stats.cycles_per_unit(cycles, 1_000_000) == pytest.approx(3900.0)
    assert stats.throughput(10, 1.0, None)["per_cpu_s"] is None


def test_weighted_percentiles_known_values() -> None:
    # one batch of 99 events at 1 ms and one of 1 event at 50 ms: p50 = p99 = 1 ms, p99.9 = 50 ms
    assert stats.weighted_percentiles([0.001, 0.050], [99, 1], [50, 99, 99.9]) == [0.001, 0.001, 0.050]
    # order of input does not matter
    assert stats.weighted_percentiles([0.050, 0.001], [1, 99], [50, 99.9]) == [0.001, 0.050]
    # uniform 1..100: p50 = 50, p99 = 99, p100 = 100, p0 = 1
    v = np.arange(1, 101, dtype=float)
    assert stats.weighted_percentiles(v, None, [0, 50, 99, 100]) == [1.0, 50.0, 99.0, 100.0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10, allow_nan=False), st.integers(0, 50)), min_size=1, max_size=40),
       st.floats(0, 100))
def test_weighted_percentile_equals_percentile_of_repeated_values(pairs, q) -> None:
    values = [p[0] for p in pairs]
    weights = [p[1] for p in pairs]
    if sum(weights) == 0:
        with pytest.raises(ValueError):
            stats.weighted_percentiles(values, weights, [q])
        return
    expected = np.percentile(np.repeat(values, weights), q, method="inverted_cdf")
    assert stats.weighted_percentiles(values, weights, [q])[0] == pytest.approx(float(expected))


def test_latency_summary_keys_and_event_count() -> None:
    s = stats.latency_summary([0.002, 0.004, 0.2], [500, 490, 10])
    assert s["n"] == 1000
    assert s["p50"] == 0.002 and s["p90"] == 0.004 and s["p99"] == 0.004 and s["p999"] == 0.2


def test_weighted_percentiles_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        stats.weighted_percentiles([1.0, 2.0], [1.0], [50])
    with pytest.raises(ValueError):
        stats.weighted_percentiles([1.0], [-1.0], [50])
    with pytest.raises(ValueError):
        stats.weighted_percentiles([1.0], [1.0], [101])


def test_median_rate_ignores_one_preempted_call() -> None:
    # four calls of 1000 jets at 1 ms, one stretched to 100 ms by another process: median stays 1e6/s
    assert stats.median_rate([1000] * 5, [0.001, 0.001, 0.1, 0.001, 0.001]) == pytest.approx(1e6)


def test_relative_deviation_and_saturation() -> None:
    assert stats.relative_deviation(100_000, 99_000) == pytest.approx(-0.01)
    offered = [1e3, 1e4, 1e5, 2e5, 4e5]
    achieved = [1e3, 0.999e4, 0.97e5, 1.5e5, 1.6e5]
    assert stats.saturation(offered, achieved, tolerance=0.05) == 1e5
    assert stats.saturation([1e3], [10.0]) is None


def test_rss_growth_uses_window_medians() -> None:
    t = np.arange(0, 600, 5.0)
    rss = np.full_like(t, 100e6)
    rss[t >= 540] = 103e6
    rss[10] = 500e6  # one spike inside the first window does not move its median
    g = stats.rss_growth(t, rss, warmup_s=30, window_s=60)
    assert g["start_bytes"] == 100e6 and g["end_bytes"] == 103e6
    assert g["growth"] == pytest.approx(0.03)


def test_goal_verdicts() -> None:
    assert stats.goal(0.85, 0.8, higher_is_better=True) == {"measured": 0.85, "goal": 0.8,
                                                            "ratio_to_goal": pytest.approx(1.0625), "met": True}
    assert stats.goal(12e-3, 10e-3, higher_is_better=False)["met"] is False
    assert stats.goal(None, 1.0, True)["met"] is False


def test_parse_proc_stat_with_spaces_in_command_name() -> None:
    fields = ["S", "42"] + ["0"] * 9 + ["250", "50"] + ["0"] * 8 + ["1000"]
    text = "1234 (aetrig encode) " + " ".join(fields) + " 0 0"
    st_ = parse_proc_stat(text, clk_tck=100)
    assert st_["ppid"] == 42 and st_["utime"] == 2.5 and st_["stime"] == 0.5 and st_["rss_pages"] == 1000


def test_parse_perf_and_cpuinfo() -> None:
    assert parse_perf_csv("<not supported>,,cycles,0,100.00,,\n") is None
    assert parse_perf_csv("123456789,,cycles:u,1000,100.00,,\n") == 123456789.0
    assert parse_cpuinfo_mhz("cpu MHz\t\t: 2000.0\nfoo\ncpu MHz\t\t: 3000.0\n") == 2500.0
    assert parse_cpuinfo_mhz("nothing") is None


def test_histogram_window_subtracts_the_first_scrape() -> None:
    name = "aetrig_decision_latency_seconds"

    def scrape(counts: tuple[float, float, float]) -> dict:
        return {(f"{name}_bucket", (("le", le),)): c for le, c in zip(("0.005", "0.01", "+Inf"), counts, strict=True)}

    before, after = scrape((100.0, 100.0, 200.0)), scrape((1100.0, 1200.0, 1300.0))
    w = stats.histogram_window(before, after, name)
    # the window gained 1000 events <= 5 ms and 100 in (5, 10] ms: p50 inside the first bucket, p99 <= 10 ms
    assert w["n"] == 1100.0
    assert w["p50"] == pytest.approx(0.005 * 550 / 1000)
    assert 0.005 < w["p99"] <= 0.01
