"""The Grafana dashboard's panel queries and the autoscaler's trigger queries, asked of a real Prometheus.

Used by tests/test_prometheus_integration.py (a local `aetrig run --prometheus`) and
tests/test_containers_compose.py (Prometheus in the Compose stack): both prove the dashboard by its queries.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from emulator.ops.dashboard import PANELS, RATE
from emulator.ops.prometheus_local import query

#: what Grafana's $__rate_interval becomes for a 1 s scrape interval and a short time range
RATE_WINDOW = "10s"
KEDA_FILE = Path(__file__).resolve().parent.parent / "deploy/k8s/keda-scaledobject.yaml"


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel."""
    return [(panel.title, query.expr) for panel in PANELS for query in panel.queries]


def keda_queries() -> list[tuple[str, str]]:
    """(trigger name, PromQL) of every trigger of the KEDA ScaledObject (deploy/k8s)."""
    docs = yaml.safe_load_all(KEDA_FILE.read_text())
    return [(t["name"], t["metadata"]["query"]) for d in docs for t in d["spec"]["triggers"]]


def unanswered_queries(url: str) -> tuple[list[str], dict[tuple[str, str], list[str]]]:
    """Which of the dashboard's panel queries and the autoscaler's queries return no series from the
    Prometheus at ``url``; and the panels' values, by (panel title, query)."""
    empty, values = [], {}
    for title, expr in panel_queries():
        promql = expr.replace(RATE, RATE_WINDOW)
        result = query(url, promql)
        if not result:
            empty.append(f"panel {title!r}: query {promql!r} returned no series")
        values[(title, promql)] = [r["value"][1] for r in result]
    # the autoscaler's queries (deploy/k8s) work on the same labels
    for name, promql in keda_queries():
        if not query(url, promql):
            empty.append(f"KEDA trigger {name!r}: query {promql!r} returned no series")
    return empty, values
