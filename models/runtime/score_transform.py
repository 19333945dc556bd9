"""HT-conditional anomaly score of an event-level model: raw scores flattened in HT bins of the background.

A raw score (the event AE's ``error``, or the standardised latent sum of z^2) grows with HT on QCD,
so at a fixed rate a raw-score trigger largely re-selects what an HT trigger takes. The transformed
score measures each raw score against background of the same HT: in HT bin b (edges fitted on the
training background, equal population)

    p_b,t(s) = fraction of training-background events of bin b whose raw score t is > s
    score    = sum_t w_t * (-log10 p_b,t(raw_t)) + ht_weight * (-log10 P_bkg(HT' > HT))

over the block's ``terms`` t (raw ``error`` and/or ``latent``, weight w_t). ``p_b,t`` is the empirical
survival function at knots (the k-th largest raw score of the bin has p = k / n_b, k on a log grid
from ``min_tail`` to n_b - 1), interpolated linearly in (log10 raw, log10 p); above the last knot it
continues with the power law fitted to the bin's top ``tail_fraction`` (slope forced negative);
below the first knot p = its value (about 1). The HT term uses the same machinery on
log10(HT + 1) over the whole training background. With ``ht_weight = 0`` the score is decorrelated
from HT (about the same fraction of background above any threshold in every HT bin); with
``ht_weight = 1`` and one term it is -log10 of the product of the two tail probabilities (a
Fisher-type combination that keeps the HT information).

Events below the first HT edge go to the first bin, above the last to the last bin. HT is the
trigger menu's (models.runtime.trigger_menu: scalar sum of the pT of all the event's jets with
pT > 30 GeV and |eta| < 2.5, not only the model's J leading jets); :func:`event_ht` computes it.
Everything is vectorised numpy over the events of a batch (loops run over terms and bins only),
so a micro-batch gives the same numbers as the whole sample. The card's ``score_transform`` block
holds every parameter (:func:`fit` builds it); :func:`score` is the one call a consumer needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.runtime import trigger_menu as tm

KIND = "ht_conditional_pvalue"
RAW_KINDS = ("error", "latent")
MIN_BIN_EVENTS = 20000
MIN_TAIL = 10
KNOTS_PER_DECADE = 10
TAIL_FRACTION = 0.01
_TINY = 1e-30
#: the trigger menu's jets (pT > 30 GeV, |eta| < 2.5): the HT of the bins
SELECTION = tm.JetSelection()


def survival_knots(values: np.ndarray, offset: float = 0.0, min_tail: int = MIN_TAIL,
                   knots_per_decade: int = KNOTS_PER_DECADE, tail_fraction: float = TAIL_FRACTION) -> dict[str, Any]:
    """Knots of the empirical survival function of ``values`` in (log10(v + offset), log10 p) and its tail slope."""
    v = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    n = len(v)
    if n <= min_tail + 2:
        raise ValueError(f"need more than {min_tail + 2} values for a survival curve, got {n}")
    decades = np.log10((n - 1) / min_tail)
    k = np.unique(np.round(np.logspace(np.log10(min_tail), np.log10(n - 1),
                                       max(2, int(np.ceil(decades * knots_per_decade)) + 1))).astype(np.int64))
    t = np.log10(np.maximum(v[k] + offset, _TINY))
    lp = np.log10(k / n)
    # ascending in t; of tied values (several knots on one raw value) keep the smallest k (fraction strictly above)
    t, first = np.unique(t, return_index=True)
    lp = lp[first]
    tail_k = max(min_tail * 10, int(tail_fraction * n))
    sel = np.arange(min_tail, min(tail_k, n - 1) + 1)
    slope = -1.0
    if len(sel) >= 3:
        tt = np.log10(np.maximum(v[sel] + offset, _TINY))
        if np.ptp(tt) > 0:
            slope = float(np.polyfit(tt, np.log10(sel / n), 1)[0])
    return {"n": int(n), "offset": float(offset), "log10_x": t.tolist(), "log10_p": lp.tolist(),
            "tail_slope": float(min(slope, -0.1))}


def log10_survival(knots: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """log10 of the background fraction above ``x`` from :func:`survival_knots` (vectorised, monotone in x)."""
    tk = np.asarray(knots["log10_x"], dtype=np.float64)
    lpk = np.asarray(knots["log10_p"], dtype=np.float64)
    t = np.log10(np.maximum(np.asarray(x, dtype=np.float64) + float(knots["offset"]), _TINY))
    out = np.interp(t, tk, lpk)
    beyond = t > tk[-1]
    out[beyond] = lpk[-1] + float(knots["tail_slope"]) * (t[beyond] - tk[-1])
    return np.minimum(out, 0.0)


def equal_population_edges(ht: np.ndarray, min_events: int = MIN_BIN_EVENTS, max_bins: int = 12) -> list[float]:
    """Interior HT edges of equal-population bins with >= ``min_events`` each (at most ``max_bins`` bins)."""
    ht = np.asarray(ht, dtype=np.float64)
    n_bins = int(max(1, min(max_bins, len(ht) // min_events)))
    return [float(e) for e in np.quantile(ht, np.arange(1, n_bins) / n_bins)]


def ht_bin(edges: Sequence[float], ht: np.ndarray) -> np.ndarray:
    """Bin index of each HT (below the first edge: 0; at or above the last: len(edges))."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(ht, dtype=np.float64), side="right")


def raw_score(block: Mapping[str, Any], error: np.ndarray, latent: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """{term raw kind: raw score} of the block's terms from the scorer's ``error`` [N] and ``latent`` [N, k]."""
    out = {}
    for term in transform_block(block)["terms"]:
        if term["raw"] == "error":
            out["error"] = np.asarray(error, dtype=np.float64)
        elif latent is None:
            raise ValueError("this score_transform needs the latent (a term has raw = latent)")
        else:
            out["latent"] = tm.latent_score(latent, np.asarray(term["latent_mean"]), np.asarray(term["latent_std"]))
    return out


def event_ht(block: Mapping[str, Any], pt: np.ndarray, eta: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The HT the block bins in, from flat jets (pt, eta) + per-event counts (all the event's jets)."""
    sel = transform_block(block)["ht"]
    return tm.trigger_variables(pt, eta, counts, tm.JetSelection(sel["min_pt"], sel["max_abs_eta"]))[0]


def fit(raw: Mapping[str, np.ndarray], ht: np.ndarray, weights: Mapping[str, float], ht_weight: float = 0.0,
        min_events: int = MIN_BIN_EVENTS, latent_mean: Sequence[float] | None = None,
        latent_std: Sequence[float] | None = None, selection: tm.JetSelection = SELECTION,
        fitted_on: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The card's ``score_transform`` block fitted on background ``raw`` scores ({kind: [N]}) and their ``ht``.

    ``weights`` {raw kind: w_t}: the terms (``error``, ``latent``); a latent term needs the background's
    ``latent_mean`` / ``latent_std`` (the standardisation of its raw score)."""
    if not weights or set(weights) - set(RAW_KINDS):
        raise ValueError(f"weights must name terms among {RAW_KINDS}, got {dict(weights)}")
    ht = np.asarray(ht, dtype=np.float64)
    edges = equal_population_edges(ht, min_events)
    b = ht_bin(edges, ht)
    ranges = [(float(ht[b == i].min()), float(ht[b == i].max())) for i in range(len(edges) + 1)]
    terms = []
    for kind, w in weights.items():
        values = np.asarray(raw[kind], dtype=np.float64)
        term: dict[str, Any] = {"raw": kind, "weight": float(w)}
        if kind == "latent":
            if latent_mean is None or latent_std is None:
                raise ValueError("a latent term needs latent_mean and latent_std")
            term.update({"latent_mean": [float(m) for m in latent_mean], "latent_std": [float(s) for s in latent_std],
                         "latent_doc": "raw = sum_i ((z_i - latent_mean_i) / latent_std_i)^2 over the latent z"})
        term["bins"] = [{"ht_min": lo, "ht_max": hi, **survival_knots(values[b == i])}
                        for i, (lo, hi) in enumerate(ranges)]
        terms.append(term)
    return {
        "kind": KIND,
        "definition": "score = sum_t weight_t * (-log10 p_b,t(raw_t)) + ht_weight * (-log10 P(HT' > HT)); p_b,t = "
                      "training-background fraction above raw_t in the event's HT bin b (knots interpolated in "
                      "log10 raw, power-law tail beyond the last knot); see models/runtime/score_transform.py",
        "ht": {"definition": "scalar sum of the pT of all the event's jets with pT > min_pt GeV and |eta| < "
                             "max_abs_eta (models.runtime.trigger_menu)",
               "min_pt": selection.min_pt, "max_abs_eta": selection.max_abs_eta},
        "ht_bin_edges_gev": edges,
        "ht_bin_rule": "bin = number of edges <= HT; below the first edge: bin 0, at/above the last: the last bin",
        "terms": terms, "ht_weight": float(ht_weight), "ht_survival": survival_knots(ht, offset=1.0),
        "fitted_on": dict(fitted_on or {}),
        "helper": "models.runtime.score_transform.score(card, error, latent, event_ht(card, pt, eta, counts)): "
                  "error and latent are the scorer.onnx outputs",
    }


def transform_block(card: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``score_transform`` block of a card (or the block itself)."""
    block = card.get("score_transform", card)
    if block.get("kind") != KIND:
        raise ValueError(f"not a {KIND} score_transform: kind {block.get('kind')!r}")
    return block


def apply(card: Mapping[str, Any], raw: Mapping[str, np.ndarray] | np.ndarray, ht: np.ndarray) -> np.ndarray:
    """Transformed score of events with raw scores ``raw`` ({kind: [N]}, or [N] for a one-term block) and ``ht``."""
    block = transform_block(card)
    terms = block["terms"]
    if not isinstance(raw, Mapping):
        if len(terms) != 1:
            raise ValueError(f"this score_transform has {len(terms)} terms: give raw as {{kind: scores}}")
        raw = {terms[0]["raw"]: raw}
    ht = np.asarray(ht, dtype=np.float64)
    b = ht_bin(block["ht_bin_edges_gev"], ht)
    score = np.zeros(ht.shape, dtype=np.float64)
    for term in terms:
        values = np.asarray(raw[term["raw"]], dtype=np.float64)
        if values.shape != ht.shape:
            raise ValueError(f"raw {term['raw']} {values.shape} and ht {ht.shape} differ in shape")
        for i, knots in enumerate(term["bins"]):
            here = b == i
            if here.any():
                score[here] += float(term["weight"]) * -log10_survival(knots, values[here])
    weight = float(block.get("ht_weight", 0.0))
    if weight:
        score += weight * -log10_survival(block["ht_survival"], ht)
    return score


def score(card: Mapping[str, Any], error: np.ndarray, latent: np.ndarray | None, ht: np.ndarray) -> np.ndarray:
    """The anomaly score of events from the scorer's ``error`` [N] and ``latent`` [N, k] and their ``ht`` [N]."""
    return apply(card, raw_score(card, error, latent), ht)
