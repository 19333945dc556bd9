"""Run summary merge and the live status line (real Prometheus endpoints served in the test)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from prometheus_client import start_http_server

from emulator.run.live_status import LIVE_SERIES, LiveStatus, buckets, histogram_quantile, live_url, scrape, value
from emulator.run.summary import combine_sink_reports, merge
from emulator.runtime.metrics import LATENCY_BUCKETS, make_metrics

DESIGN_KEYS = {
    "events": {"produced", "encoded", "recorded", "flagged", "dropped", "lost", "duplicates_discarded",
               "duplicates_recorded"},
    "batches": {"sent", "resent"},
}


def test_merge_has_exactly_the_design_keys_and_sums_stages() -> None:
    producer = {"produced": 1000, "batches_sent": 10, "batches_resent": 2, "dropped": 5, "duration_s": 4.0,
                "rejected": {"bad_header": 1}}
    encoders = [{"events": 600, "rejected": {"non_finite": 2, "bad_header": 0}, "jet_error_computed": False},
                {"events": 500, "jet_error_computed": False}]
    sink = {"duplicates_discarded": 100, "jet_error_recorded": False, "rejected": {"non_finite": 1},
            "latency_seconds": {"decision": {"p50": 0.001, "p90": 0.002, "p99": 0.005, "p999": 0.01, "mean": 1},
                                "commit": {"p50": 0.1, "p90": 0.2, "p99": 0.3, "p999": 0.4}}}
    s = merge(producer, encoders, sink, {"recorded": 1000, "flagged": 3, "duplicates_recorded": 0, "lost": 0})
    assert set(s) == {"events", "batches", "rejected", "throughput_events_per_s", "latency_seconds", "restarts",
                      "anomaly", "jet_error", "input", "threshold_check"}
    assert s["jet_error"] == {"computed": False, "recorded": False}
    assert set(s["events"]) == DESIGN_KEYS["events"] and set(s["batches"]) == DESIGN_KEYS["batches"]
    assert s["events"] == {"produced": 1000, "encoded": 1100, "recorded": 1000, "flagged": 3, "dropped": 5,
                           "lost": 0, "duplicates_discarded": 100, "duplicates_recorded": 0}
    assert s["batches"] == {"sent": 10, "resent": 2}
    assert s["rejected"] == {"bad_header": 1, "non_finite": 3}
    assert s["throughput_events_per_s"] == 250.0
    assert s["latency_seconds"]["decision"] == {"p50": 0.001, "p90": 0.002, "p99": 0.005, "p999": 0.01}
    json.dumps(s)


def test_threshold_check_sums_the_encoders_and_applies_the_rule_to_the_sums() -> None:
    """Two encoders each below the rule's 1 000 events: only their sum (1 200 events, 30 flagged where 1.2 were
    expected) warns; the out-of-domain jets are summed into the share the warning names."""
    def enc(events: int, flagged: int, ood: int) -> dict:
        return {"events": events, "out_of_domain_jets": ood, "anomaly": {"model": "EVT_AE_4v"},
                "threshold_check": {"events": events, "flagged": flagged, "expected_flagged": events * 1e-3,
                                    "out_of_domain_jets": ood, "jets": 4 * events, "model_path": "models/zoo/X"}}
    encoders = [enc(600, 15, 240), enc(600, 15, 0)]
    assert all(e["threshold_check"]["events"] < 1000 for e in encoders)
    s = merge(None, encoders, None, {"recorded": 1200, "flagged": 30, "duplicates_recorded": 0, "lost": 0})
    check = s["threshold_check"]
    assert (check["events"], check["flagged"], check["jets"], check["out_of_domain_jets"]) == (1200, 30, 4800, 240)
    assert check["expected_flagged"] == pytest.approx(1.2) and check["mismatch"] == "above"
    assert "5.0% of the jets are outside" in check["warning"]
    assert "aetrig calibrate --model models/zoo/X" in check["warning"]
    assert s["anomaly"]["out_of_domain_jets"] == 240
    quiet = merge(None, [enc(1200, 1, 0)], None, {"recorded": 1200, "flagged": 1, "duplicates_recorded": 0, "lost": 0})
    assert quiet["threshold_check"]["warning"] is None and quiet["threshold_check"]["mismatch"] is None


def test_merge_without_reports_of_killed_stages() -> None:
    s = merge(None, [], None, {"recorded": 0, "flagged": 0, "duplicates_recorded": 0, "lost": 0})
    assert s["events"]["produced"] == 0 and s["latency_seconds"]["commit"]["p99"] is None
    assert s["anomaly"]["scoring"] is None
    assert s["jet_error"] == {"computed": None, "recorded": None}


def test_jet_error_recorded_survives_combining_sink_reports() -> None:
    combined = combine_sink_reports([{"recorded_events": 5, "jet_error_recorded": False},
                                     {"recorded_events": 9, "jet_error_recorded": False}])
    s = merge(None, [], combined, {"recorded": 0, "flagged": 0, "duplicates_recorded": 0, "lost": 0})
    assert s["jet_error"]["recorded"] is False


def test_jet_error_computed_is_mixed_when_encoders_differ() -> None:
    encoders = [{"jet_error_computed": True}, {"jet_error_computed": False}, {}]
    s = merge(None, encoders, None, {"recorded": 0, "flagged": 0, "duplicates_recorded": 0, "lost": 0})
    assert s["jet_error"]["computed"] == "mixed"


def test_merge_says_which_anomaly_model_scored() -> None:
    event = {"scoring": "event-level model EVT_AE_k1", "model": "EVT_AE_k1", "level": "event", "card_sha256": "ab",
             "threshold_source": "--fpr 0.001", "threshold": 6.04, "setting": "default"}
    fallback = {**event, "scoring": "per-jet max error of M (fallback: stream lacks jet_width needed by EVT_AE_k1)",
                "model": "M", "level": "jet"}
    rec = {"recorded": 0, "flagged": 0, "duplicates_recorded": 0, "lost": 0}
    s = merge(None, [{"anomaly": event}, {"anomaly": event}], None, rec)
    assert s["anomaly"]["scoring"] == "event-level model EVT_AE_k1" and "encoders_disagree" not in s["anomaly"]
    assert "setting" not in s["anomaly"] and s["anomaly"]["card_sha256"] == "ab"
    s = merge(None, [{"anomaly": fallback}, {"anomaly": fallback}, {"anomaly": event}], None, rec)
    assert "fallback: stream lacks jet_width" in s["anomaly"]["scoring"] and len(s["anomaly"]["encoders_disagree"]) == 2


def test_histogram_quantile_matches_interpolated_numpy() -> None:
    rng = np.random.default_rng(5)
    data = rng.exponential(0.004, 20000)
    bounds = [*LATENCY_BUCKETS, math.inf]
    cumulative = [(b, float(np.count_nonzero(data <= b))) for b in bounds]
    for q in (0.5, 0.9, 0.99):
        est = histogram_quantile(q, cumulative)
        exact = float(np.quantile(data, q))
        i = next(k for k, b in enumerate(bounds) if b >= exact)
        lo = bounds[i - 1] if i else 0.0
        assert lo <= est <= bounds[i], (q, est, exact)  # within the bucket holding the exact quantile
    assert histogram_quantile(0.5, []) is None


def test_live_status_reads_real_metrics_endpoints(free_port) -> None:
    regs = {name: make_metrics() for name in ("producer", "encoder-0", "sink")}
    urls = {}
    for name, m in regs.items():
        port = free_port()
        start_http_server(port, addr="127.0.0.1", registry=m.registry)
        urls[name] = f"http://127.0.0.1:{port}/metrics"
    samples = scrape(urls["sink"])
    assert value(samples, "aetrig_events_total", stage="sink") == 0  # pre-created label reads 0
    assert scrape("http://127.0.0.1:1/metrics") is None
    status = LiveStatus(urls, anomaly_model="EVT_AE_k1")
    status.line()
    regs["producer"].events.labels(stage="producer").inc(5000)
    regs["encoder-0"].events.labels(stage="encoder").inc(4000)
    regs["encoder-0"].anomalies.inc(40)
    regs["sink"].events.labels(stage="sink").inc(3000)
    for _ in range(100):
        regs["sink"].decision_latency.observe(0.003)
    regs["producer"].inflight_batches.set(7)
    time.sleep(0.5)  # the interval the live rate is measured over (a duration, not a wait)
    line = status.line()
    dt_rate = float(line.split("in ")[1].split("/s")[0].replace(",", ""))
    assert 5000 / 1.5 < dt_rate < 5000 / 0.45
    assert "inflight 7" in line and "(1.00%)" in line and "anomalies EVT_AE_k1 " in line
    anomaly_hz = float(line.split("anomalies EVT_AE_k1 ")[1].split(" Hz")[0].replace(",", ""))
    assert 40 / 1.5 < anomaly_hz < 40 / 0.45
    p50 = line.split("decision p50/p99 ")[1].split("/")[0]
    assert p50.endswith("ms") and 2.5 <= float(p50[:-2]) <= 5.0
    assert len(buckets(scrape(urls["sink"]), "aetrig_decision_latency_seconds")) == len(LATENCY_BUCKETS) + 1
    live = scrape(live_url(urls["sink"]))  # the status line's restricted scrape: its series, nothing else
    names = {n for n, _ in live}
    assert names <= set(LIVE_SERIES) and {"aetrig_events_total", "process_cpu_seconds_total"} <= names
    assert value(live, "aetrig_events_total", stage="sink") == 3000 and len(scrape(urls["sink"])) > 3 * len(live)
    assert len(buckets(live, "aetrig_decision_latency_seconds")) == len(LATENCY_BUCKETS) + 1
    # the jets outside the anomaly model's domain and the threshold check, on the encoders' cumulative counters
    enc = regs["encoder-0"]
    enc.expected_anomalies.inc(4.0)  # 40 flagged where 4 were expected: 10x, not more than 10x
    enc.jets.labels(stage="encoder").inc(1000)
    enc.out_of_domain_jets.inc(250)
    line = status.line()
    assert "out-of-domain jets 25.0%" in line and "WARNING" not in line
    enc.anomalies.inc(20)  # 60 of 4000 where 4 were expected
    line = status.line()
    assert "WARNING: THRESHOLD MAY NOT FIT THIS STREAM: 1.5% of 4000 events flagged" in line
    assert "25.0% of the jets are outside" in line and "aetrig calibrate --model models/zoo/EVT_AE_k1" in line


@pytest.mark.parametrize("argv", [["--encoders", "0"]])
def test_run_rejects_bad_arguments(argv: list[str]) -> None:
    from emulator import cli

    assert cli.main(["run", *argv]) == 2
