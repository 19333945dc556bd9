"""Judge an anomaly score against simple triggers at the same rate (pure numerics, numpy only).

For each false-positive rate (FPR) on the background, every trigger gets its own threshold from
the background (``anomaly.threshold_at_fpr``; flag = score > threshold, as everywhere), so the
anomaly score, the HT trigger and the leading-jet-pT trigger each accept the same fraction of the
background. Per FPR: the model's TPR (68% Wilson interval from the signal count; the spread
from the background count behind the threshold is ``tpr_err_background``), the HT and
leading-jet-pT TPRs at that FPR, and the *pure* TPR: signal flagged by the model and by neither simple trigger. A row is
reliable when each of the three triggers has at least ``MIN_BACKGROUND`` background events above
its threshold (FPR 1e-5 needs >= 1 M background events).

Rates in Hz are FPR x input rate: a fraction of the background *stream* the background sample
stands for (e.g. QCD above a pT-hat cut), not of zero-bias collisions, unless it is zero-bias.

Trigger variables (one definition, :class:`JetSelection`): HT = scalar sum of the pT of jets with
pT > 30 GeV and |eta| < 2.5; leading-jet pT = the largest pT among the same jets (0 when none).
The AXOL1TL-style latent score is sum_i ((z_i - mean_i) / sigma_i)^2 over the encoder's latent z,
standardised with the background's mean and sigma (:func:`latent_score`); no decoder is involved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.runtime import anomaly

FPRS = (1e-2, 1e-3, 1e-4, 1e-5)
INPUT_RATES_HZ = (100e3, 1e6)
MIN_BACKGROUND = 10
HT_EDGES = (0.0, 300.0, 500.0, 800.0, 1200.0, 1800.0, 1.0e5)


@dataclass(frozen=True)
class JetSelection:
    """The jets the HT and leading-jet-pT triggers see: pT > ``min_pt`` GeV and |eta| < ``max_abs_eta``."""

    min_pt: float = 30.0
    max_abs_eta: float = 2.5

    def mask(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        return (np.asarray(pt) > self.min_pt) & (np.abs(np.asarray(eta)) < self.max_abs_eta)

    def describe(self) -> str:
        return f"jets pT > {self.min_pt:g} GeV, |eta| < {self.max_abs_eta:g}"


@dataclass(frozen=True)
class TriggerScores:
    """Per-event scores of one sample: the anomaly score and the two simple trigger variables."""

    model: np.ndarray
    ht: np.ndarray
    lead_pt: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.model) == len(self.ht) == len(self.lead_pt):
            raise ValueError(f"score arrays differ in length: model {len(self.model)}, ht {len(self.ht)}, "
                             f"lead_pt {len(self.lead_pt)}")

    def subset(self, keep: np.ndarray) -> TriggerScores:
        return TriggerScores(np.asarray(self.model)[keep], np.asarray(self.ht)[keep], np.asarray(self.lead_pt)[keep])


def trigger_variables(pt: np.ndarray, eta: np.ndarray, counts: np.ndarray,
                      selection: JetSelection = JetSelection()) -> tuple[np.ndarray, np.ndarray]:
    """(HT, leading-jet pT) per event from flat jets + per-event counts, over the selected jets."""
    kept = np.where(selection.mask(pt, eta), np.asarray(pt, dtype=np.float64), 0.0)
    return scalar_ht(pt, eta, counts, selection), anomaly.event_scores(kept, counts)


def scalar_ht(pt: np.ndarray, eta: np.ndarray, counts: np.ndarray,
              selection: JetSelection = JetSelection()) -> np.ndarray:
    """HT per event (the first number of :func:`trigger_variables`) from flat jets + per-event counts."""
    counts = np.asarray(counts, dtype=np.int64)
    kept = np.where(selection.mask(pt, eta), np.asarray(pt, dtype=np.float64), 0.0)
    return np.bincount(np.repeat(np.arange(counts.size), counts), weights=kept, minlength=counts.size)


def standardisation(z_background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-coordinate mean and standard deviation of the background latent (sigma 0 -> 1)."""
    z = np.asarray(z_background, dtype=np.float64)
    mean, std = z.mean(axis=0), z.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def latent_score(z: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """AXOL1TL-style score: sum over latent coordinates of ((z - mean) / std)^2."""
    z = np.asarray(z, dtype=np.float64)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    out = np.zeros(len(z))
    for i in range(z.shape[1]):  # coordinate by coordinate: np.sum's order over a short row, fewer passes
        u = (z[:, i] - mean[i]) / std[i]
        out += u * u
    return out


def rate_key(rate_hz: float) -> str:
    """'100kHz', '1MHz', ...: the JSON key of an input rate."""
    for scale, unit in ((1e6, "MHz"), (1e3, "kHz")):
        if rate_hz >= scale:
            return f"{rate_hz / scale:g}{unit}"
    return f"{rate_hz:g}Hz"


def background_needed(fpr: float, min_background: int = MIN_BACKGROUND) -> int:
    """Background events needed for ``min_background`` of them above the threshold at ``fpr``."""
    return math.ceil(min_background / fpr - 1e-9)


def compare_at_fpr(background: TriggerScores, signal: TriggerScores, fpr: float,
                   input_rates: Sequence[float] = INPUT_RATES_HZ,
                   min_background: int = MIN_BACKGROUND) -> dict[str, object]:
    """Model, HT and leading-jet-pT triggers at one FPR, and the model's pure TPR (see the module doc)."""
    rows = {name: anomaly.tpr_at_fpr(getattr(background, name), getattr(signal, name), fpr)
            for name in ("model", "ht", "lead_pt")}

    def passes(scores: TriggerScores) -> dict[str, np.ndarray]:
        return {name: np.asarray(getattr(scores, name)) > rows[name]["threshold"] for name in rows}

    pb, ps = passes(background), passes(signal)
    pure_b = pb["model"] & ~pb["ht"] & ~pb["lead_pt"]
    pure_s = ps["model"] & ~ps["ht"] & ~ps["lead_pt"]
    n_b, n_s = len(background.model), len(signal.model)
    k_pure = int(pure_s.sum())
    n_pass = {name: int(r["n_background_above"]) for name, r in rows.items()}
    pure_lo, pure_hi = anomaly.wilson_interval(k_pure, n_s)
    m = rows["model"]
    out: dict[str, object] = {
        "fpr": fpr, "n_background": n_b, "n_signal": n_s,
        "background_needed": background_needed(fpr, min_background),
        "rate_hz": {rate_key(r): fpr * r for r in input_rates},
        "threshold": m["threshold"], "n_background_pass": n_pass["model"], "fpr_achieved": m["fpr_achieved"],
        "tpr": m["tpr"], "tpr_low": m["tpr_wilson_low"], "tpr_high": m["tpr_wilson_high"],
        "tpr_err_background": m["tpr_err_background"],
        "n_signal_pass": int(ps["model"].sum()),
        "pure_tpr": k_pure / n_s if n_s else float("nan"), "pure_tpr_low": pure_lo, "pure_tpr_high": pure_hi,
        "n_signal_pure": k_pure, "pure_fpr": float(pure_b.mean()) if n_b else float("nan"),
        "pure_rate_hz": {rate_key(r): float(pure_b.mean()) * r if n_b else float("nan") for r in input_rates},
    }
    for name in ("ht", "lead_pt"):
        r = rows[name]
        out.update({f"{name}_threshold": r["threshold"], f"{name}_n_background_pass": n_pass[name],
                    f"{name}_tpr": r["tpr"], f"{name}_tpr_low": r["tpr_wilson_low"],
                    f"{name}_tpr_high": r["tpr_wilson_high"]})
    out["reliable"] = min(n_pass.values()) >= min_background
    return out


def judge(background: TriggerScores, signal: TriggerScores, fprs: Sequence[float] = FPRS,
          input_rates: Sequence[float] = INPUT_RATES_HZ, min_background: int = MIN_BACKGROUND,
          ht_edges: Sequence[float] = HT_EDGES) -> dict[str, object]:
    """AUC (overall, Hanley-McNeil error; inside HT bins) and one :func:`compare_at_fpr` row per FPR."""
    a = anomaly.auc(background.model, signal.model)
    return {"auc": a, "auc_err": anomaly.auc_uncertainty(a, len(background.model), len(signal.model)),
            "auc_vs_ht": anomaly.binned_auc(background.model, signal.model, background.ht, signal.ht, list(ht_edges)),
            "fpr": {f"{f:g}": compare_at_fpr(background, signal, f, input_rates, min_background) for f in fprs}}

