"""Anomaly thresholds from background error distributions (pure numpy).

Flag rule (shared with the encoder): an event is flagged when its score is strictly greater than
the threshold. Event score = max of its jets' errors; a zero-jet event scores 0 and is never
flagged. For a false-positive rate ``f`` on ``N`` background entries the threshold is the
``k+1``-th largest value with ``k = floor(f * N)``, so at most ``k`` background entries lie above
it. ``n`` in a table row is that tail count ``k``: the number of background entries the threshold
rests on. A row is ``reliable`` when ``k >= MIN_TAIL`` (10), i.e. when ``N >= 10 / f``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TABLE_FPRS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
MIN_TAIL = 10
CURVE_POINTS_PER_DECADE = 20


def event_scores(jet_errors: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-event score = max of the event's per-jet errors; 0 for zero-jet events."""
    counts = np.asarray(counts, dtype=np.int64)
    jet_errors = np.asarray(jet_errors, dtype=np.float64)
    if counts.sum() != len(jet_errors):
        raise ValueError(f"jet counts sum to {counts.sum()} but {len(jet_errors)} jet errors were given")
    scores = np.zeros(len(counts), dtype=np.float64)
    nonempty = counts > 0
    if nonempty.any():
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[nonempty]
        scores[nonempty] = np.maximum.reduceat(jet_errors, starts)
    return scores


def threshold_at(sorted_desc: np.ndarray, fpr: float) -> tuple[float, int]:
    """Threshold and tail count for ``fpr`` on values sorted in descending order."""
    n = len(sorted_desc)
    if n == 0:
        raise ValueError("cannot compute a threshold on an empty sample")
    k = min(int(np.floor(fpr * n)), n - 1)
    return float(sorted_desc[k]), k


def threshold_rows(values: np.ndarray, fprs: tuple[float, ...] = TABLE_FPRS) -> list[dict[str, Any]]:
    """One row per fpr: ``{"fpr", "threshold", "n", "reliable"}``."""
    sorted_desc = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    rows = []
    for fpr in fprs:
        threshold, tail = threshold_at(sorted_desc, fpr)
        rows.append({"fpr": fpr, "threshold": threshold, "n": tail, "reliable": tail >= MIN_TAIL})
    return rows


def dense_curve(values: np.ndarray, max_fpr: float = 0.5) -> dict[str, list[float]]:
    """Thresholds on a log grid of fpr from ``1/N`` (one entry above) to ``max_fpr``."""
    sorted_desc = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    n = len(sorted_desc)
    lo = np.log10(1.0 / n)
    hi = np.log10(max_fpr)
    if lo >= hi:
        raise ValueError(f"background too small for a curve ({n} entries)")
    n_points = max(2, int(np.ceil((hi - lo) * CURVE_POINTS_PER_DECADE)) + 1)
    fprs = np.logspace(lo, hi, n_points)
    thresholds = [threshold_at(sorted_desc, f)[0] for f in fprs]
    return {"fpr": [float(f) for f in fprs], "threshold": thresholds}


def threshold_table(jet_errors: np.ndarray, counts: np.ndarray, sample: dict[str, Any]) -> dict[str, Any]:
    """The card's ``thresholds`` entry: per-jet and per-event rows plus the dense per-event curve."""
    scores = event_scores(jet_errors, counts)
    return {
        "sample": {**sample, "n_events": len(counts), "n_jets": len(jet_errors)},
        "rule": f"flag if event_score > threshold; n = background entries above threshold; reliable if n >= {MIN_TAIL}",
        "per_jet": threshold_rows(jet_errors),
        "per_event": threshold_rows(scores),
        "per_event_curve": dense_curve(scores),
    }


def event_threshold_table(scores: np.ndarray, counts: np.ndarray, sample: dict[str, Any],
                          rule: str | None = None) -> dict[str, Any]:
    """The card's ``thresholds`` entry of an event-level model: per-event rows and dense curve of its scores
    (one per event, zero-jet events included); ``rule`` says what the score is (default: the event AE's error)."""
    return {
        "sample": {**sample, "n_events": len(scores), "n_jets": int(np.sum(counts))},
        "rule": rule or (f"flag if event_score > threshold; event_score = the event AE's error (zero-jet events are "
                         f"scored too); n = background events above; reliable if n >= {MIN_TAIL}"),
        "per_jet": [],
        "per_event": threshold_rows(scores),
        "per_event_curve": dense_curve(scores),
    }
