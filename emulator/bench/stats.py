"""Pure arithmetic of the benchmark: rates, ratios, weighted percentiles, CPU cost per jet, RSS growth.

No I/O and no clocks here, so that every number the benchmark reports can be checked on known
synthetic timings (tests/test_bench_stats.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from emulator.runtime.prom_text import Samples, bucket_increase, histogram_quantile

#: Percentiles reported for every latency distribution, by their key in results.json.
LATENCY_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}


def rate(count: float, seconds: float) -> float:
    """Units per second; ``seconds`` must be positive."""
    if not seconds > 0:
        raise ValueError(f"rate needs a positive duration, got {seconds!r}")
    return float(count) / float(seconds)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or not denominator > 0:
        return None
    return float(numerator) / float(denominator)


def weighted_percentiles(values: Sequence[float] | np.ndarray, weights: Sequence[float] | np.ndarray | None,
                         qs: Sequence[float]) -> list[float]:
    """Percentiles ``qs`` (0..100) of ``values`` where value i counts ``weights[i]`` times.

    Inverted-CDF definition: the smallest value whose cumulative weight reaches q% of the total,
    i.e. exactly ``np.percentile(np.repeat(values, weights), q, method="inverted_cdf")`` for integer
    weights, without materialising the repetition (a batch latency weighted by its events).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if v.shape != w.shape:
        raise ValueError(f"{v.size} values but {w.size} weights")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and non-negative")
    keep = w > 0
    v, w = v[keep], w[keep]
    if v.size == 0:
        raise ValueError("no values with positive weight")
    order = np.argsort(v, kind="stable")
    v, cum = v[order], np.cumsum(w[order])
    total = cum[-1]
    out = []
    for q in qs:
        if not 0 <= q <= 100:
            raise ValueError(f"percentile {q!r} outside 0..100")
        target = total * q / 100.0
        idx = int(np.searchsorted(cum, target * (1 - 1e-12), side="left")) if q > 0 else 0
        out.append(float(v[min(idx, v.size - 1)]))
    return out


def latency_summary(values: Sequence[float] | np.ndarray,
                    weights: Sequence[float] | np.ndarray | None = None) -> dict[str, float]:
    """p50/p90/p99/p999 (seconds) of per-batch latencies weighted by events, plus the event count ``n``."""
    qs = list(LATENCY_PERCENTILES.values())
    ps = weighted_percentiles(values, weights, qs)
    n = float(np.sum(weights)) if weights is not None else float(len(values))
    return {**dict(zip(LATENCY_PERCENTILES, ps, strict=True)), "n": n}


def throughput(units: float, wall_seconds: float, cpu_seconds: float | None = None) -> dict[str, float | None]:
    """Units per wall second and, when CPU time is known, per CPU second and CPU seconds per unit."""
    out: dict[str, float | None] = {"per_s": rate(units, wall_seconds), "per_cpu_s": None, "cpu_s_per_unit": None}
    if cpu_seconds is not None and cpu_seconds > 0 and units > 0:
        out["per_cpu_s"] = units / cpu_seconds
        out["cpu_s_per_unit"] = cpu_seconds / units
    return out


def cycles_per_unit(cycles: float, units: float) -> float:
    """Cycles divided by jets (or events); ``units`` must be positive."""
    if not units > 0:
        raise ValueError("cycles per unit needs a positive count")
    return float(cycles) / float(units)


def cycles_from_cpu_seconds(cpu_seconds: float, clock_hz: float) -> float:
    """Estimate of cycles spent: CPU seconds times the nominal clock (no turbo or stall accounting)."""
    if not clock_hz > 0:
        raise ValueError("clock must be positive")
    return float(cpu_seconds) * float(clock_hz)


def relative_deviation(requested: float, achieved: float) -> float:
    """(achieved - requested) / requested: the rate accuracy of a producer run."""
    if not requested > 0:
        raise ValueError("requested rate must be positive")
    return (float(achieved) - float(requested)) / float(requested)


def median_rate(units_per_call: Sequence[float], seconds_per_call: Sequence[float]) -> float:
    """Median of per-call rates: robust against calls stretched by another process taking the core."""
    units, secs = np.asarray(units_per_call, float), np.asarray(seconds_per_call, float)
    if units.shape != secs.shape or units.size == 0 or np.any(secs <= 0):
        raise ValueError("need matching, non-empty units and positive durations")
    return float(np.median(units / secs))


def rss_growth(times: Sequence[float], rss: Sequence[float], warmup_s: float, window_s: float) -> dict[str, float]:
    """Relative growth of resident memory between the first window after warm-up and the last window.

    Medians over each window keep a single allocation spike from deciding the verdict. Returns
    ``{"start_bytes", "end_bytes", "growth"}`` with growth = end / start - 1.
    """
    t, r = np.asarray(times, float), np.asarray(rss, float)
    if t.shape != r.shape or t.size < 2:
        raise ValueError("need at least two (time, rss) samples")
    first = r[(t >= warmup_s) & (t < warmup_s + window_s)]
    last = r[t >= t[-1] - window_s]
    if first.size == 0 or last.size == 0:
        raise ValueError("no samples in the first or the last window")
    start, end = float(np.median(first)), float(np.median(last))
    return {"start_bytes": start, "end_bytes": end, "growth": end / start - 1.0}


def saturation(offered: Sequence[float], achieved: Sequence[float], tolerance: float = 0.05) -> float | None:
    """Highest offered rate the system kept up with (achieved >= (1 - tolerance) x offered), or None."""
    best = None
    for o, a in zip(offered, achieved, strict=True):
        if o > 0 and a >= (1 - tolerance) * o and (best is None or o > best):
            best = float(o)
    return best


def histogram_window(before: Samples, after: Samples, name: str) -> dict[str, float | None]:
    """p50/p90/p99/p999 and count of the observations a histogram gained between two scrapes."""
    gained = bucket_increase(before, after, name)
    out: dict[str, float | None] = {k: histogram_quantile(p / 100, gained) if gained else None
                                    for k, p in LATENCY_PERCENTILES.items()}
    out["n"] = max((count for _, count in gained), default=0.0)
    return out


def goal(measured: float | None, target: float, higher_is_better: bool) -> dict[str, object]:
    """A goal verdict: measured value, target, measured/target ratio and whether it is met."""
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return {"measured": None, "goal": target, "ratio_to_goal": None, "met": False}
    met = measured >= target if higher_is_better else measured <= target
    return {"measured": float(measured), "goal": float(target), "ratio_to_goal": ratio(measured, target), "met": met}


def verdict(result: Mapping[str, object]) -> str:
    """How a goal stands: "met", "not met", or "not measured" when this run did not measure it."""
    if result.get("measured") is None:
        return "not measured"
    return "met" if result.get("met") else "not met"


def pick(mapping: Mapping[str, object], *keys: str) -> object:
    """Nested lookup ``mapping[k1][k2]...`` returning None where a level is missing."""
    cur: object = mapping
    for key in keys:
        if not isinstance(cur, Mapping) or key not in cur:
            return None
        cur = cur[key]
    return cur
