"""The live status line of `aetrig run`, read from the stages' Prometheus /metrics endpoints.

Once a second: events/s in and recorded, decision latency (p50/p99 over the last interval, from
the sink's histogram bucket deltas), anomaly rate in Hz and the anomaly model's name (from the run
settings), the share of jets outside the anomaly model's training domain, in-flight batches and CPU per
stage; and, when the flagged fraction since the start is more than 10x off the fraction the threshold was
set for (emulator/runtime/threshold_check.py, on the encoders' cumulative counters), the warning.

It asks each stage for only the series it shows (``/metrics?name[]=...``, :data:`LIVE_SERIES`): the stage
renders about 2 kB instead of its whole 12 kB exposition, in about a fifth of the time its handler thread
holds the GIL, which the stage's own work (and so the decision latency) would otherwise wait for once a second.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import urlencode

from emulator.runtime import prom_text, threshold_check
from emulator.runtime.prom_text import Samples, buckets, histogram_quantile, value

#: The series the status line reads (sample names, as the ``name[]`` filter of the stages' /metrics takes them).
LIVE_SERIES = ("aetrig_events_total", "aetrig_jets_total", "aetrig_anomalies_total", "aetrig_expected_anomalies_total",
               "aetrig_out_of_domain_jets_total", "aetrig_inflight_batches", "aetrig_sink_full",
               "process_cpu_seconds_total", "aetrig_decision_latency_seconds_bucket")


def live_url(url: str) -> str:
    """``url`` (a stage's /metrics) restricted to :data:`LIVE_SERIES`."""
    return f"{url}{'&' if '?' in url else '?'}{urlencode([('name[]', n) for n in LIVE_SERIES])}"


def scrape(url: str, timeout: float = 0.5) -> Samples | None:
    """All samples of one /metrics endpoint; None while it is unreachable."""
    try:
        return prom_text.scrape(url, timeout)
    except OSError:
        return None


def _fmt_seconds(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x * 1e3:.1f}ms" if x < 1 else f"{x:.2f}s"


class LiveStatus:
    """Keeps the previous scrape of each stage and renders the change since then."""

    def __init__(self, urls: Mapping[str, str], anomaly_model: str | None = None, anomaly_path: str | None = None):
        self.urls = {name: live_url(url) for name, url in urls.items()}
        self.anomaly_model = anomaly_model
        self.anomaly_path = anomaly_path or (f"models/zoo/{anomaly_model}" if anomaly_model else "MODEL_DIR")
        self.prev: dict[str, Samples] = {}
        self.prev_t = 0.0

    def line(self) -> str:
        now = time.monotonic()
        cur = {name: scrape(url) for name, url in self.urls.items()}
        dt = now - self.prev_t if self.prev_t else 0.0
        prev = self.prev

        def rate(stage_name: str | None, metric: str, **labels: str) -> float:
            names = [stage_name] if stage_name else list(cur)
            total = 0.0
            for n in names:
                if cur.get(n) is None or prev.get(n) is None:
                    continue
                now_v, old_v = value(cur[n], metric, **labels), value(prev.get(n), metric, **labels)
                total += now_v - old_v if now_v >= old_v else now_v  # a restarted stage counts from 0 again
            return total / dt if dt > 0 else 0.0

        sink = next((n for n in cur if n.startswith("sink")), None)
        produced = rate("producer", "aetrig_events_total", stage="producer")
        recorded = rate(sink, "aetrig_events_total", stage="sink") if sink else 0.0
        encoded = rate(None, "aetrig_events_total", stage="encoder")
        anomalies = rate(None, "aetrig_anomalies_total")
        latency = "-"
        if sink and cur.get(sink) is not None:
            now_b = buckets(cur[sink], "aetrig_decision_latency_seconds")
            old_b = dict(buckets(prev.get(sink), "aetrig_decision_latency_seconds"))
            delta = [(b, c - old_b.get(b, 0.0)) for b, c in now_b]
            if now_b and now_b[-1][1] < old_b.get(now_b[-1][0], 0.0):
                delta = now_b  # the sink was restarted: its histogram counts from 0 again
            latency = (f"{_fmt_seconds(histogram_quantile(0.5, delta))}/"
                       f"{_fmt_seconds(histogram_quantile(0.99, delta))}")
        inflight = value(cur.get("producer"), "aetrig_inflight_batches")
        cpu = []
        for n in cur:
            c = rate(n, "process_cpu_seconds_total")
            cpu.append(f"{n.replace('encoder-', 'enc')}:{100 * c:.0f}%")
        anomaly_frac = anomalies / encoded if encoded > 0 else 0.0
        full = "  SINK FULL (backpressure)" if sink and value(cur.get(sink), "aetrig_sink_full") >= 1 else ""
        self.prev = {k: (v if v is not None else self.prev.get(k)) for k, v in cur.items()}
        self.prev_t = now
        model = f" {self.anomaly_model}" if self.anomaly_model else ""
        return (f"in {produced:,.0f}/s  rec {recorded:,.0f}/s  decision p50/p99 {latency}  "
                f"anomalies{model} {anomalies:,.1f} Hz ({100 * anomaly_frac:.2f}%){self.domain_text(cur)}  "
                f"inflight {inflight:.0f}  cpu {' '.join(cpu)}{full}{self.warning(cur)}")

    @staticmethod
    def _encoders(cur: Mapping[str, Samples | None], metric: str, **labels: str) -> float:
        """``metric`` summed over the encoders (cumulative since their start)."""
        return sum(value(v, metric, **labels) for n, v in cur.items() if n.startswith("encoder") and v is not None)

    def domain_text(self, cur: Mapping[str, Samples | None]) -> str:
        """'  out-of-domain jets 4.1%' (cumulative), or '' while every jet is inside."""
        jets = self._encoders(cur, "aetrig_jets_total", stage="encoder")
        out = self._encoders(cur, "aetrig_out_of_domain_jets_total")
        return f"  out-of-domain jets {100 * out / jets:.1f}%" if jets and out else ""

    def warning(self, cur: Mapping[str, Samples | None]) -> str:
        """'  WARNING: ...' (threshold_check) on the encoders' cumulative counts, or ''."""
        events = int(self._encoders(cur, "aetrig_events_total", stage="encoder"))
        jets = self._encoders(cur, "aetrig_jets_total", stage="encoder")
        out = self._encoders(cur, "aetrig_out_of_domain_jets_total")
        text = threshold_check.warning_text(events, int(self._encoders(cur, "aetrig_anomalies_total")),
                                            self._encoders(cur, "aetrig_expected_anomalies_total"),
                                            out / jets if jets else None, self.anomaly_path)
        return f"  WARNING: {text}" if text else ""
