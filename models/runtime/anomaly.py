"""Anomaly-detection metrics: ROC, AUC, TPR at fixed FPR with sample-size uncertainties, rates.

Convention (same as the encoder): an event is flagged when its score is strictly greater than
the threshold. The event score is the maximum per-jet error; a zero-jet event scores 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np


def event_scores(jet_errors: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-event score = max over the event's jets of the per-jet error (0 for zero-jet events)."""
    counts = np.asarray(counts, dtype=np.int64)
    errors = np.asarray(jet_errors, dtype=np.float64)
    if counts.sum() != errors.size:
        raise ValueError(f"counts sum to {counts.sum()} but {errors.size} jet errors were given")
    scores = np.zeros(counts.size, dtype=np.float64)
    nonzero = counts > 0
    if nonzero.any():
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        scores[nonzero] = np.maximum.reduceat(errors, starts[nonzero]) if errors.size else 0.0
    return scores


def auc(background: np.ndarray, signal: np.ndarray) -> float:
    """Area under the ROC curve = P(signal > background) + 0.5 P(tie) (Mann-Whitney U / (n_b n_s))."""
    b = np.asarray(background, dtype=np.float64)
    s = np.asarray(signal, dtype=np.float64)
    if b.size == 0 or s.size == 0:
        return float("nan")
    allv = np.concatenate([b, s])
    order = np.argsort(allv, kind="mergesort")
    sorted_v = allv[order]
    ranks = np.empty(allv.size, dtype=np.float64)
    # average ranks for ties (1-based)
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[b.size:].sum() - s.size * (s.size + 1) / 2.0
    return float(u / (b.size * s.size))


def auc_uncertainty(auc_value: float, n_background: int, n_signal: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUC estimated from n_b and n_s samples."""
    a = auc_value
    if not (n_background > 0 and n_signal > 0) or math.isnan(a):
        return float("nan")
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_signal - 1) * (q1 - a * a) + (n_background - 1) * (q2 - a * a)) / (n_background * n_signal)
    return float(math.sqrt(max(var, 0.0)))


def roc_curve(background: np.ndarray, signal: np.ndarray, max_points: int = 2000) -> dict[str, np.ndarray]:
    """ROC points (fpr, tpr, threshold) for flag = score > threshold, at most ``max_points`` points."""
    b = np.sort(np.asarray(background, dtype=np.float64))
    s = np.sort(np.asarray(signal, dtype=np.float64))
    thresholds = np.unique(np.concatenate([b, s]))
    if thresholds.size > max_points:
        # keep the tail densely: log-spaced in background FPR plus uniform quantiles
        qs = np.unique(np.concatenate([1 - np.logspace(-6, 0, max_points // 2), np.linspace(0, 1, max_points // 2)]))
        thresholds = np.unique(np.quantile(np.concatenate([b, s]), np.clip(qs, 0, 1)))
    thresholds = np.concatenate([[-np.inf], thresholds])
    fpr = 1.0 - np.searchsorted(b, thresholds, side="right") / max(b.size, 1)
    tpr = 1.0 - np.searchsorted(s, thresholds, side="right") / max(s.size, 1)
    return {"fpr": fpr, "tpr": tpr, "threshold": thresholds}


def wilson_interval(k: int, n: int, z: float = 1.0) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (z=1: 68% coverage)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def binomial_error(k: int, n: int) -> float:
    """Standard binomial error sqrt(p (1 - p) / n) of p = k / n."""
    if n <= 0:
        return float("nan")
    p = k / n
    return math.sqrt(p * (1 - p) / n)


def threshold_at_fpr(background: np.ndarray, fpr: float) -> float:
    """Smallest background value t with at most floor(fpr * n) background events strictly above t."""
    b = np.sort(np.asarray(background, dtype=np.float64))[::-1]
    if b.size == 0:
        raise ValueError("empty background")
    k = math.floor(fpr * b.size + 1e-9)
    return float(b[min(k, b.size - 1)])


def tpr_at_fpr(background: np.ndarray, signal: np.ndarray, fpr: float) -> dict[str, float | int | bool]:
    """TPR at a target FPR with uncertainties from both sample sizes.

    - ``tpr_err_signal``: binomial error from the number of signal events;
    - ``tpr_err_background``: the spread of TPR when the threshold moves by +-sqrt(k) background
      events (k = number of background events above it), i.e. the finite-background error on
      where FPR = ``fpr`` really lies;
    - ``tpr_err``: both in quadrature; ``reliable``: k >= 10 background events above threshold.
    """
    b = np.asarray(background, dtype=np.float64)
    s = np.asarray(signal, dtype=np.float64)
    t = threshold_at_fpr(b, fpr)
    k_b = int((b > t).sum())
    k_s = int((s > t).sum())
    tpr = k_s / s.size if s.size else float("nan")
    desc = np.sort(b)[::-1]
    spread = max(1, round(math.sqrt(max(k_b, 1))))
    lo_t = desc[min(k_b + spread, b.size - 1)]
    hi_t = desc[max(k_b - spread, 0)]
    tpr_lo = float((s > hi_t).mean()) if s.size else float("nan")
    tpr_hi = float((s > lo_t).mean()) if s.size else float("nan")
    err_s = binomial_error(k_s, s.size)
    err_b = 0.5 * (tpr_hi - tpr_lo)
    lo, hi = wilson_interval(k_s, s.size)
    return {
        "fpr_target": fpr, "fpr_achieved": k_b / b.size, "threshold": t, "tpr": tpr,
        "tpr_err_signal": err_s, "tpr_err_background": err_b, "tpr_err": math.hypot(err_s, err_b),
        "tpr_wilson_low": lo, "tpr_wilson_high": hi,
        "n_background": int(b.size), "n_signal": int(s.size), "n_background_above": k_b,
        "reliable": k_b >= 10,
    }


def binned_auc(background: np.ndarray, signal: np.ndarray, bkg_var: np.ndarray, sig_var: np.ndarray,
               edges: Sequence[float], min_count: int = 20) -> list[dict[str, float | int]]:
    """AUC in bins of a per-event variable (e.g. leading-jet pT); bins with < min_count per class are NaN."""
    b, s = np.asarray(background), np.asarray(signal)
    bv, sv = np.asarray(bkg_var), np.asarray(sig_var)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        mb = (bv >= lo) & (bv < hi)
        ms = (sv >= lo) & (sv < hi)
        nb, ns = int(mb.sum()), int(ms.sum())
        a = auc(b[mb], s[ms]) if nb >= min_count and ns >= min_count else float("nan")
        rows.append({"low": float(lo), "high": float(hi), "n_background": nb, "n_signal": ns,
                     "auc": a, "auc_err": auc_uncertainty(a, nb, ns)})
    return rows


def flag_rate_curve(background: np.ndarray, thresholds: np.ndarray, input_rate_hz: float = 100e3,
                    signal: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Fraction of background flagged (score > t) and the accept rate in Hz at ``input_rate_hz``."""
    b = np.sort(np.asarray(background, dtype=np.float64))
    t = np.asarray(thresholds, dtype=np.float64)
    frac = 1.0 - np.searchsorted(b, t, side="right") / b.size
    out = {"threshold": t, "flag_fraction": frac, "accept_rate_hz": frac * input_rate_hz}
    if signal is not None:
        s = np.sort(np.asarray(signal, dtype=np.float64))
        out["signal_efficiency"] = 1.0 - np.searchsorted(s, t, side="right") / s.size
    return out
