"""Reading a Prometheus /metrics page (the one copy): scrape, sample values, histogram buckets, quantiles.

Samples are keyed ``(name, sorted (label, value) pairs)``, e.g.
``("aetrig_events_total", (("stage", "sink"),))``; bucket bounds come from the ``le`` label.
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Sequence

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics_url(port: int, host: str = "127.0.0.1") -> str:
    """The /metrics address of a stage serving on ``port``."""
    return f"http://{host}:{port}/metrics"


def parse(text: str) -> Samples:
    """All samples of an exposition text."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def scrape(port_or_url: int | str, timeout: float = 5.0) -> Samples:
    """All samples of one /metrics endpoint (a port on 127.0.0.1, or a URL); OSError when unreachable."""
    url = port_or_url if isinstance(port_or_url, str) else metrics_url(port_or_url)
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return parse(resp.read().decode())


def value(samples: Samples | None, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when absent)."""
    if not samples:
        return 0.0
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def buckets(samples: Samples | None, name: str) -> list[tuple[float, float]]:
    """Cumulative buckets ``[(upper bound, count)]`` of histogram ``name``, sorted by bound."""
    if not samples:
        return []
    out = []
    for (n, lab), v in samples.items():
        if n == name + "_bucket":
            out.append((float(dict(lab)["le"]), v))  # float() reads "+Inf"
    return sorted(out)


def bucket_increase(before: Samples | None, after: Samples | None, name: str) -> list[tuple[float, float]]:
    """The cumulative buckets of the observations histogram ``name`` gained from ``before`` to ``after``.

    A histogram whose total fell was reset (its process restarted): it counts from 0 again, so the
    gain is ``after`` itself, as PromQL's ``increase`` treats counter resets.
    """
    new, old = buckets(after, name), dict(buckets(before, name))
    if new and new[-1][1] < old.get(new[-1][0], 0.0):
        return new
    return [(bound, count - old.get(bound, 0.0)) for bound, count in new]


def histogram_quantile(q: float, cumulative: Sequence[tuple[float, float]]) -> float | None:
    """Quantile ``q`` (0..1) of a histogram given as cumulative buckets ``[(upper bound, count)]``.

    PromQL's rule: the quantile lies in the first bucket whose cumulative count reaches ``q`` times
    the total (empty buckets never hold it, so ``q = 0`` gives the lower edge of the first non-empty
    bucket), linearly interpolated inside it; the first bucket's lower edge is 0; a quantile in the
    +Inf bucket is the last finite bound. None when the histogram is empty.
    """
    pairs = sorted(cumulative)
    if not pairs or pairs[-1][1] <= 0:
        return None
    rank = q * pairs[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in pairs:
        if count >= rank and count > lower_count:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
