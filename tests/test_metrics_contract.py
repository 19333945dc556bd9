"""The metric contract of docs/design.md, read back from the exposition text a scraper sees."""

from __future__ import annotations

import itertools
import math
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from emulator.runtime.metrics import make_metrics, start_metrics
from emulator.runtime.wire import REJECT_REASONS

STAGES = ("producer", "encoder", "sink")

#: family name (as the parser reports it) -> (type, label names), copied from design.md's table.
CONTRACT = {
    "aetrig_events": ("counter", {"stage"}),
    "aetrig_jets": ("counter", {"stage"}),
    "aetrig_anomalies": ("counter", set()),
    "aetrig_expected_anomalies": ("counter", set()),
    "aetrig_out_of_domain_jets": ("counter", set()),
    "aetrig_rejected_messages": ("counter", {"reason"}),
    "aetrig_quarantined_bytes": ("counter", set()),
    "aetrig_dropped_events": ("counter", {"stage"}),
    "aetrig_lost_events": ("counter", set()),
    "aetrig_duplicate_events": ("counter", set()),
    "aetrig_inference_seconds": ("histogram", set()),
    "aetrig_decision_latency_seconds": ("histogram", set()),
    "aetrig_decision_hop_seconds": ("histogram", {"hop"}),
    "aetrig_commit_latency_seconds": ("histogram", set()),
    "aetrig_batch_jets": ("histogram", set()),
    "aetrig_inflight_batches": ("gauge", set()),
    "aetrig_input_jets_dropped": ("counter", {"reason"}),
    "aetrig_input_events_altered": ("counter", {"reason"}),
}
LATENCY_HISTOGRAMS = ("aetrig_inference_seconds", "aetrig_decision_latency_seconds", "aetrig_commit_latency_seconds")


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.fixture(scope="module")
def exposition() -> str:
    return generate_latest(make_metrics().registry).decode()


def test_every_contract_metric_has_its_type_and_labels(exposition: str) -> None:
    families = _families(exposition)
    for name, (kind, labels) in CONTRACT.items():
        assert name in families, f"{name} missing from /metrics"
        family = families[name]
        assert family.type == kind, f"{name} is a {family.type}, contract says {kind}"
        value_samples = [s for s in family.samples if not s.name.endswith("_created")]
        assert value_samples, name
        for sample in value_samples:
            assert set(sample.labels) - {"le"} == labels, f"{sample.name} labels {sample.labels}"
    # exposition names follow the conventions: counters end in _total, histograms expose _bucket/_sum/_count
    for name in ("aetrig_events_total", "aetrig_lost_events_total", "aetrig_duplicate_events_total",
                 "aetrig_rejected_messages_total", "aetrig_decision_latency_seconds_bucket",
                 "aetrig_commit_latency_seconds_count", "aetrig_batch_jets_sum"):
        assert f"\n{name}" in exposition or exposition.startswith(name), name


def test_labelled_counters_are_precreated_at_zero(exposition: str) -> None:
    families = _families(exposition)

    def values(family: str, label: str) -> dict[str, float]:
        return {s.labels[label]: s.value for s in families[family].samples if s.name.endswith("_total")}

    for family in ("aetrig_events", "aetrig_jets", "aetrig_dropped_events"):
        assert values(family, "stage") == dict.fromkeys(STAGES, 0.0), family
    assert values("aetrig_rejected_messages", "reason") == dict.fromkeys(REJECT_REASONS, 0.0)
    for family in ("aetrig_anomalies", "aetrig_lost_events", "aetrig_duplicate_events", "aetrig_quarantined_bytes"):
        assert [s.value for s in families[family].samples if s.name.endswith("_total")] == [0.0], family


def test_latency_buckets_resolve_10_microseconds_to_10_seconds(exposition: str) -> None:
    families = _families(exposition)
    for name in LATENCY_HISTOGRAMS:
        bounds = sorted(float(s.labels["le"]) for s in families[name].samples if s.name.endswith("_bucket"))
        finite = [b for b in bounds if math.isfinite(b)]
        assert finite[0] <= 1e-5 and finite[-1] >= 10.0, (name, finite)
        assert bounds[-1] == math.inf
        ratios = [b / a for a, b in itertools.pairwise(finite)]
        assert max(ratios) <= 10.0 ** 0.5 + 1e-9, f"{name}: a bucket spans more than half a decade: {finite}"
        assert sum(b < 1e-3 for b in finite) >= 4, f"{name}: fewer than 4 sub-millisecond buckets"


def test_observations_land_in_the_right_buckets() -> None:
    metrics = make_metrics()
    for value in (2e-5, 3e-3, 7.0):
        metrics.decision_latency.observe(value)
    metrics.events.labels(stage="encoder").inc(5)
    metrics.rejected.labels(reason="non_finite").inc()
    fam = _families(generate_latest(metrics.registry).decode())
    buckets = {float(s.labels["le"]): s.value for s in fam["aetrig_decision_latency_seconds"].samples
               if s.name.endswith("_bucket")}
    # cumulative counts, computed independently from the three observations
    for le, count in buckets.items():
        assert count == sum(v <= le for v in (2e-5, 3e-3, 7.0)), (le, count)
    events = {s.labels["stage"]: s.value for s in fam["aetrig_events"].samples if s.name.endswith("_total")}
    assert events == {"producer": 0.0, "encoder": 5.0, "sink": 0.0}
    rejected = {s.labels["reason"]: s.value for s in fam["aetrig_rejected_messages"].samples
                if s.name.endswith("_total")}
    assert rejected["non_finite"] == 1.0 and sum(rejected.values()) == 1.0


def test_process_collector_is_present(exposition: str) -> None:
    families = _families(exposition)
    assert families["process_cpu_seconds"].type == "counter"
    assert families["process_resident_memory_bytes"].type == "gauge"
    rss = families["process_resident_memory_bytes"].samples[0].value
    assert 1e6 < rss < 1e11


def test_start_metrics_serves_http_on_the_configured_host(monkeypatch: pytest.MonkeyPatch, free_port) -> None:
    monkeypatch.setenv("AETRIG_METRICS_HOST", "127.0.0.1")
    port = free_port()
    metrics = start_metrics(port)
    metrics.jets.labels(stage="sink").inc(42)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'aetrig_jets_total{stage="sink"} 42.0' in text
    assert "process_cpu_seconds_total" in text
