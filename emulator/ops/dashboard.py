"""The Grafana dashboard, defined once in code: panels, their PromQL queries, and the JSON Grafana loads.

``deploy/grafana/dashboards/aetrig.json`` is generated from :data:`PANELS` (a test keeps them equal);
regenerate it with ``python -m emulator.ops.dashboard deploy/grafana/dashboards/aetrig.json``.
Queries use only the contract metrics of emulator/runtime/metrics.py. They sum over pre-created label
values, so they return a series that reads 0 on an idle pipeline, and guard ratios against 0/0.
``$__rate_interval`` is Grafana's rate window (at least 4 scrape intervals).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

DATASOURCE_UID = "aetrig-prometheus"
DASHBOARD_UID = "aetrig-live"
TITLE = "aetrig — live pipeline"
RATE = "$__rate_interval"
#: selects the stage processes for the process collector's metrics (Prometheus scrapes itself too)
JOB = 'job="aetrig"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str = ""
    kind: str = "timeseries"
    width: int = 12
    extra: dict = field(default_factory=dict)


def _quantile(q: float, histogram: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket[{RATE}])))"


def _mean(histogram: str) -> str:
    """Mean per observation; 0 rather than 0/0 when nothing was observed."""
    return (f"(sum(rate({histogram}_sum[{RATE}])) / (sum(rate({histogram}_count[{RATE}])) > 0))"
            " or vector(0)")


def _distribution(histogram: str, quantiles: tuple[float, ...], mean: bool = False) -> tuple[Query, ...]:
    """One query per quantile of ``histogram`` (legend p50, p99, ...), and its mean when asked."""
    queries = tuple(Query(_quantile(q, histogram), f"p{round(q * 100)}") for q in quantiles)
    return (*queries, Query(_mean(histogram), "mean")) if mean else queries


PANELS: tuple[Panel, ...] = (
    Panel("Events/s per stage", "ops", (
        Query(f"sum by (stage) (rate(aetrig_events_total[{RATE}]))", "{{stage}}"),
    ), "Events handled per second by producer, encoders (summed) and sink."),
    Panel("Jets/s per stage", "ops", (
        Query(f"sum by (stage) (rate(aetrig_jets_total[{RATE}]))", "{{stage}}"),
    ), "Jets handled per second."),
    Panel("Decision latency", "s", _distribution("aetrig_decision_latency_seconds", (0.5, 0.9, 0.99)),
          "Producer send to the event's latent and flag reaching the sink, per event."),
    Panel("Decision latency p99 by hop", "s", (
        Query(f"histogram_quantile(0.99, sum by (le, hop) (rate(aetrig_decision_hop_seconds_bucket[{RATE}])))",
              "{{hop}}"),
    ), "Where the decision latency goes: to_encoder (producer send to the encoder taking the message, its queue "
       "included), in_encoder (micro-batch wait, both models, building the scored message), to_sink (encoder "
       "send to the sink's receiving thread)."),
    Panel("Commit latency p99", "s", _distribution("aetrig_commit_latency_seconds", (0.99,)),
          "Producer send to durable commit (fsync) at the sink, per event."),
    Panel("Inference latency per batch", "s", _distribution("aetrig_inference_seconds", (0.5, 0.99), mean=True),
          "ONNX Runtime time per micro-batch in the encoders."),
    Panel("Batch size (jets per inference batch)", "none", _distribution("aetrig_batch_jets", (0.5, 0.99), mean=True),
          "Jets per batch, histogram of aetrig_batch_jets."),
    Panel("CPU cores used per process", "none", (
        Query(f"sum by (instance) (rate(process_cpu_seconds_total{{{JOB}}}[{RATE}]))", "{{instance}}"),
        Query(f"sum(rate(process_cpu_seconds_total{{{JOB}}}[{RATE}]))", "all stages"),
    ), "rate(process_cpu_seconds_total): 1.0 = one core busy."),
    Panel("Resident memory per process", "bytes", (
        Query(f"sum by (instance) (process_resident_memory_bytes{{{JOB}}})", "{{instance}}"),
    ), "process_resident_memory_bytes of every stage process."),
    Panel("Anomaly rate", "hertz", (
        Query(f"sum(rate(aetrig_anomalies_total[{RATE}]))", "flagged events/s"),
    ), "Events flagged as anomalous per second (the trigger's accept rate)."),
    Panel("Flagged fraction", "percentunit", (
        Query(f"(sum(rate(aetrig_anomalies_total[{RATE}])) / "
              f"(sum(rate(aetrig_events_total{{stage=\"encoder\"}}[{RATE}])) > 0)) or vector(0)",
              "flagged / encoded"),
    ), "Flagged events over encoded events; 0 while nothing is encoded."),
    Panel("Rejected messages by reason", "short", (
        Query("sum by (reason) (aetrig_rejected_messages_total)", "{{reason}}"),
    ), "Messages rejected (and quarantined) since the stages started, by reason."),
    Panel("Dropped, lost and duplicate events", "short", (
        Query("sum by (stage) (aetrig_dropped_events_total)", "dropped at {{stage}}"),
        Query("sum(aetrig_lost_events_total)", "lost"),
        Query("sum(aetrig_duplicate_events_total)", "duplicates discarded"),
    ), "Dropped = trigger deadtime (--drop-on-overload); lost and duplicates come from the sink's gap "
       "and dedup accounting. All should stay 0 in a healthy recording run."),
    Panel("Recording bytes per jet", "bytes", (
        Query("sum(aetrig_sink_bytes_per_jet)", "bytes on disk / jets recorded"),
    ), "The recording's segments on disk (latents, identity, scores and flags, raw copies of flagged events, "
       "cards, ROOT overhead) over the jets they hold; `aetrig verify` splits it by category and compares it "
       "with the best lossless codec on the same jets."),
    Panel("In-flight window (unacknowledged batches)", "short", (
        Query("sum(aetrig_inflight_batches)", "in flight"),
    ), "Batches sent by the producer and not yet durably committed and acknowledged."),
)


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    datasource = {"type": "prometheus", "uid": DATASOURCE_UID}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit, "min": 0}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "none"}},
        "targets": [{"datasource": datasource, "expr": q.expr, "legendFormat": q.legend, "range": True,
                     "refId": chr(ord("A") + i)} for i, q in enumerate(panel.queries)],
        **panel.extra,
    }


def build_dashboard() -> dict:
    """The dashboard JSON model (Grafana schema 39), panels laid out two per row."""
    panels, x, y = [], 0, 0
    for i, panel in enumerate(PANELS, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(_panel_json(panel, i, x, y))
        x += panel.width
    return {
        "uid": DASHBOARD_UID,
        "title": TITLE,
        "description": "Throughput, latency, CPU, memory, anomaly rate and integrity counters of an aetrig "
                       "pipeline (generated by emulator/ops/dashboard.py).",
        "tags": ["aetrig"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "5s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-15m", "to": "now"},
        "timepicker": {"refresh_intervals": ["1s", "5s", "10s", "30s", "1m"]},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def dashboard_text() -> str:
    """The dashboard JSON as committed under deploy/ (stable key order, trailing newline)."""
    return json.dumps(build_dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the dashboard JSON to the given path (default: stdout)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        Path(argv[0]).write_text(dashboard_text(), encoding="utf-8")
    else:
        sys.stdout.write(dashboard_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
