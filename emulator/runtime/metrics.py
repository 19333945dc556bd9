"""Prometheus metrics of the metric contract (docs/design.md), one registry per process.

Every stage calls :func:`start_metrics` once; labelled counters are pre-created for every known
label value so that they read 0 instead of being absent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

from emulator.runtime.latency_stats import DECISION_HOPS, WeightedHistogram
from emulator.runtime.metrics_server import serve_metrics
from emulator.runtime.wire import REJECT_REASONS

STAGES = ("producer", "encoder", "sink")
#: label values of aetrig_input_jets_dropped_total and aetrig_input_events_altered_total (producer.jet_screen)
INPUT_DROP_REASONS = ("non_finite", "sentinel", "over_cap", "zero_pt")
INPUT_EVENT_REASONS = ("bad_values", "over_cap")
#: environment variable with the address /metrics binds to (deploy files set 0.0.0.0)
METRICS_HOST_ENV = "AETRIG_METRICS_HOST"

#: 10 microseconds to 10 seconds, roughly 1-2.5-5 per decade, finer between 5 and 25 ms and 100 and
#: 250 ms, where the decision (10 ms) and commit (250 ms) latency goals sit, so p99 read from the
#: histogram is not a coarse interpolation there; 2 s is the producer's default resend timeout (a batch
#: committed and acknowledged later than that has been sent again).
LATENCY_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 7.5e-3, 1e-2, 1.5e-2, 2e-2,
                   2.5e-2, 5e-2, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0)
BATCH_JET_BUCKETS = (1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536)


@dataclass
class Metrics:
    registry: CollectorRegistry
    events: Counter
    jets: Counter
    anomalies: Counter
    expected_anomalies: Counter
    out_of_domain_jets: Counter
    rejected: Counter
    quarantined_bytes: Counter
    dropped: Counter
    lost: Counter
    duplicates: Counter
    inference_seconds: Histogram
    decision_latency: WeightedHistogram
    decision_hops: WeightedHistogram
    commit_latency: WeightedHistogram
    batch_jets: Histogram
    inflight_batches: Gauge
    input_jets_dropped: Counter
    input_events_altered: Counter


def make_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """Create the contract's metrics in ``registry`` (a fresh one by default), labels pre-created."""
    reg = registry or CollectorRegistry(auto_describe=True)  # ProcessCollector by name too (?name[]=...)
    ProcessCollector(registry=reg)
    m = Metrics(
        registry=reg,
        events=Counter("aetrig_events", "Events handled, by stage", ["stage"], registry=reg),
        jets=Counter("aetrig_jets", "Jets handled, by stage", ["stage"], registry=reg),
        anomalies=Counter("aetrig_anomalies", "Events flagged as anomalous", registry=reg),
        expected_anomalies=Counter("aetrig_expected_anomalies", "Events the threshold was set to flag: the sum over "
                                   "scored events of its background FPR (emulator/runtime/threshold_check.py)",
                                   registry=reg),
        out_of_domain_jets=Counter("aetrig_out_of_domain_jets", "Jets outside the anomaly model's training domain "
                                   "(card domain), not given to it unless --score-all-jets", registry=reg),
        rejected=Counter("aetrig_rejected_messages", "Messages rejected, by reason", ["reason"], registry=reg),
        quarantined_bytes=Counter("aetrig_quarantined_bytes", "Bytes of rejected messages (kept or not)",
                                  registry=reg),
        dropped=Counter("aetrig_dropped_events", "Events dropped on overload (deadtime), by stage",
                        ["stage"], registry=reg),
        lost=Counter("aetrig_lost_events", "Events known to be lost", registry=reg),
        duplicates=Counter("aetrig_duplicate_events", "Duplicate events discarded", registry=reg),
        inference_seconds=Histogram("aetrig_inference_seconds", "ONNX Runtime time per micro-batch",
                                    buckets=LATENCY_BUCKETS, registry=reg),
        decision_latency=WeightedHistogram("aetrig_decision_latency_seconds",
                                           "Producer send to latent and flag at the sink, per event",
                                           buckets=LATENCY_BUCKETS, registry=reg),
        decision_hops=WeightedHistogram("aetrig_decision_hop_seconds",
                                        "The decision latency's hops per event: producer send to encoder receive, in "
                                        "the encoder, encoder send to the sink", LATENCY_BUCKETS, ["hop"],
                                        registry=reg),
        commit_latency=WeightedHistogram("aetrig_commit_latency_seconds", "Producer send to durable commit, per event",
                                         buckets=LATENCY_BUCKETS, registry=reg),
        batch_jets=Histogram("aetrig_batch_jets", "Jets per batch", buckets=BATCH_JET_BUCKETS, registry=reg),
        inflight_batches=Gauge("aetrig_inflight_batches", "Unacknowledged batches in the producer window",
                               registry=reg),
        input_jets_dropped=Counter("aetrig_input_jets_dropped", "Jets the producer's input screen left out of "
                                   "their (kept) event, by reason", ["reason"], registry=reg),
        input_events_altered=Counter("aetrig_input_events_altered", "Events the producer's input screen kept with "
                                     "jets left out, by reason", ["reason"], registry=reg),
    )
    for stage in STAGES:
        m.events.labels(stage=stage)
        m.jets.labels(stage=stage)
        m.dropped.labels(stage=stage)
    for reason in REJECT_REASONS:
        m.rejected.labels(reason=reason)
    for hop in DECISION_HOPS:
        m.decision_hops.labels(hop=hop)
    for reason in INPUT_DROP_REASONS:
        m.input_jets_dropped.labels(reason=reason)
    for reason in INPUT_EVENT_REASONS:
        m.input_events_altered.labels(reason=reason)
    return m


@dataclass
class SinkMetrics:
    """The sink's own metrics (docs/design.md: backpressure and recording size), beside :class:`Metrics`."""

    full: Gauge
    backpressure_episodes: Counter
    recorded_bytes: Gauge
    bytes_per_jet: Gauge


def make_sink_metrics(registry: CollectorRegistry) -> SinkMetrics:
    """Create the sink's metrics in ``registry`` (the one of its :class:`Metrics`)."""
    return SinkMetrics(
        full=Gauge("aetrig_sink_full", "1 while the sink holds back commits and acks (disk/max-bytes)",
                   registry=registry),
        backpressure_episodes=Counter("aetrig_sink_backpressure_episodes", "Times the sink became full",
                                      registry=registry),
        recorded_bytes=Gauge("aetrig_sink_recorded_bytes", "Bytes of the recording's segments", registry=registry),
        bytes_per_jet=Gauge("aetrig_sink_bytes_per_jet", "Bytes of the recording's segments on disk per recorded "
                            "jet (0 before the first jet)", registry=registry),
    )


def start_metrics(port: int | None, host: str | None = None) -> Metrics:
    """Create the metrics and, when ``port`` is given (0 = none), serve them on http://host:port/metrics.

    ``host`` defaults to $AETRIG_METRICS_HOST, else 127.0.0.1 (containers set 0.0.0.0 to be scraped). The
    server times out slow clients (emulator/runtime/metrics_server.py).
    """
    metrics = make_metrics()
    if port:
        serve_metrics(metrics.registry, port, host or os.environ.get(METRICS_HOST_ENV, "127.0.0.1"))
    return metrics
