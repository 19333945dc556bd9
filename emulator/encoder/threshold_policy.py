"""The per-event flag threshold of one anomaly model: fixed (``--threshold``/``--fpr``) or per declared input rate.

Thresholds are rounded to float32, the precision of ``event_score``: the flag is ``event_score >
threshold`` computed in float32, and the value recorded per event (``event_threshold`` <f4) is exactly
the one the flag was computed with, so ``aetrig verify`` can redo the comparison bit for bit.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from emulator.encoder.config import DEFAULT_FPR
from emulator.runtime import wire

log = logging.getLogger("aetrig.encode")


def as_f4(value: float) -> float:
    """``value`` rounded to the nearest float32 (as a Python float)."""
    return float(np.float32(value))


def curve_fpr(model: Any, threshold: float) -> float | None:
    """The background FPR at ``threshold`` on the card's ``per_event_curve`` (log-log interpolation), or None
    outside the curve or without one."""
    curve = (model.card.get("thresholds") or {}).get("per_event_curve") or {}
    fpr, thr = np.asarray(curve.get("fpr") or [], float), np.asarray(curve.get("threshold") or [], float)
    keep = (fpr > 0) & (thr > 0)
    fpr, thr = fpr[keep], thr[keep]
    if threshold <= 0 or not len(thr) or not thr.min() <= threshold <= thr.max():
        return None
    order = np.argsort(thr)
    return float(10 ** np.interp(np.log10(threshold), np.log10(thr[order]), np.log10(fpr[order])))


class ThresholdPolicy:
    """The per-event threshold of ``model`` (a ModelDir with a per_event_curve in its card)."""

    def __init__(self, model: Any, fpr: float | None, accept_rate: float | None, threshold: float | None):
        self.model, self.accept_rate = model, accept_rate
        self.by_rate: dict[float, float] = {}
        self.fpr: float | None = None  # the fraction a fixed threshold was set for (threshold_check's baseline)
        if threshold is not None:
            self.fixed: float | None = as_f4(threshold)
            self.source = f"--threshold {threshold:g}"
            self.fpr = curve_fpr(model, threshold)
        elif accept_rate is not None:
            self.fixed = None
            self.source = f"--accept-rate {accept_rate:g} Hz at the producer's declared rate, from {model.name}'s card"
        else:
            fpr = DEFAULT_FPR if fpr is None else fpr
            self.fixed = as_f4(model.threshold(fpr=fpr))  # ModelError here is a start-up error
            self.source = f"--fpr {fpr:g} from {model.name}'s per_event_curve"
            self.fpr = fpr

    def fraction(self, rate_hz: float) -> float | None:
        """The fraction of background events this threshold was set to flag, for a message declaring ``rate_hz``
        (None when unknown: an explicit --threshold outside the card's curve)."""
        if self.accept_rate is not None and self.fixed is None:
            return min(1.0, self.accept_rate / rate_hz) if rate_hz > 0 else None
        return self.fpr

    def for_rate(self, rate_hz: float) -> float:
        """Threshold for a message declaring ``rate_hz``; raises WireError('no_threshold')."""
        if self.fixed is not None:
            return self.fixed
        if rate_hz not in self.by_rate:
            from models.runtime.card import ModelError

            try:
                self.by_rate[rate_hz] = as_f4(self.model.threshold(accept_rate=self.accept_rate, input_rate=rate_hz))
            except ModelError as exc:
                raise wire.WireError("no_threshold", str(exc)) from None
            log.info("threshold %.6g (%s) for declared input rate %g Hz", self.by_rate[rate_hz], self.model.name,
                     rate_hz)
        return self.by_rate[rate_hz]

    def report(self) -> dict[str, Any]:
        """What the report says about the threshold."""
        return {"threshold_source": self.source, "threshold": self.fixed,
                "thresholds_by_rate": {str(k): v for k, v in self.by_rate.items()}}
