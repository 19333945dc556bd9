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
Everything is vectorised numpy over the events of a batch, so a micro-batch gives the same numbers
as the whole sample. :class:`CompiledTransform` turns the block's knots once into lookup tables (all
HT bins of a term in one table of segments, each segment's start, value and slope precomputed, its row
found through a uniform grid in log10 raw instead of a binary search), so an event costs the
same few numpy passes whatever the number of bins and knots; it computes what the per-bin ``np.interp`` of
:func:`log10_survival` does. The card's ``score_transform`` block holds every parameter (:func:`fit`
builds it); :func:`score` is the one call a consumer needs (:func:`compile_transform` once, then
call it, in a stream).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
#: cells per HT bin, at most, of the uniform grid over log10 raw that finds a score's segment (SurvivalTable)
MAX_CELLS = 2048
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
    terms = transform_block(block)["terms"]
    kinds = [str(t["raw"]) for t in terms]
    lat = next((t for t in terms if t["raw"] == "latent"), None)
    return _raw_terms(kinds, error, latent, *((None, None) if lat is None else
                                               (np.asarray(lat["latent_mean"]), np.asarray(lat["latent_std"]))))


def _raw_terms(kinds: Sequence[str], error: np.ndarray, latent: np.ndarray | None, latent_mean: np.ndarray | None,
               latent_std: np.ndarray | None) -> dict[str, np.ndarray]:
    """{kind: raw score} for the term kinds ``error`` (the scorer's error) and ``latent`` (standardised Σz²)."""
    out: dict[str, np.ndarray] = {}
    for kind in kinds:
        if kind == "error":
            out["error"] = np.asarray(error, dtype=np.float64).reshape(-1)
        elif latent is None:
            raise ValueError("this score_transform needs the latent (a term has raw = latent)")
        else:
            assert latent_mean is not None and latent_std is not None
            out["latent"] = tm.latent_score(latent, latent_mean, latent_std)
    return out


def event_ht(block: Mapping[str, Any], pt: np.ndarray, eta: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The HT the block bins in, from flat jets (pt, eta) + per-event counts (all the event's jets)."""
    sel = transform_block(block)["ht"]
    return tm.scalar_ht(pt, eta, counts, tm.JetSelection(sel["min_pt"], sel["max_abs_eta"]))


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
    return compile_transform(card).apply(raw, ht)


@dataclass(frozen=True)
class SurvivalTable:
    """The knots of one survival curve per HT bin as lookup tables (see the module doc).

    Row ``r`` of ``t0``/``lp0``/``slope`` is a segment of one bin: log10 p = lp0[r] + slope[r] (t - t0[r]) for t
    in [t0[r], nxt[r]); each bin's rows are a flat start (its first knot's value), the knot-to-knot lines
    (np.interp's slopes) and the power-law tail. The row of (bin, t) is found without a search: t clipped to
    [lo, hi] falls in cell ``(t - lo) * inv_h`` of a uniform grid over [lo, hi] (``cells`` per bin), ``lut``
    gives the last row starting before the cell (for a t rounded into the next cell too) and at most
    ``steps`` comparisons with ``nxt`` move to the row that holds t."""

    t0: np.ndarray
    lp0: np.ndarray
    slope: np.ndarray
    nxt: np.ndarray
    lut: np.ndarray
    lo: float
    hi: float
    inv_h: float
    cells: int
    steps: int
    offset: np.ndarray  # per bin
    offset_varies: bool  # not the same offset in every bin

    @classmethod
    def from_knots(cls, bins: Sequence[Mapping[str, Any]], max_cells: int = MAX_CELLS) -> SurvivalTable:
        knots = [np.asarray(k["log10_x"], dtype=np.float64) for k in bins]
        lo = min(float(k[0]) for k in knots) - 1.0
        hi = max(float(k[-1]) for k in knots) + 1.0
        gap = min([float(np.min(np.diff(k))) for k in knots if len(k) > 1] + [hi - lo])
        cells = int(min(max_cells, np.ceil((hi - lo) / gap))) + 1
        h = (hi - lo) / (cells - 1)
        eps = 1e-9 * max(1.0, abs(lo), abs(hi))
        starts = lo + h * np.arange(cells + 1)
        parts, lut, steps, first = [], [], 0, 0
        for knots_b, block in zip(knots, bins, strict=True):
            parts.append(_segments(block, lo))
            below = np.searchsorted(knots_b, starts - eps, side="right")  # rows before each cell start
            upto = np.searchsorted(knots_b, starts + eps, side="right")
            lut.append(first + below[:-1])
            steps = max(steps, int(np.max(upto[1:] - below[:-1])))
            first += len(knots_b) + 1
        t0, lp0, slope, nxt = (np.concatenate([p[j] for p in parts]) for j in range(4))
        offset = np.array([float(k["offset"]) for k in bins])
        return cls(t0, lp0, slope, nxt, np.concatenate(lut), lo, hi, 1.0 / h, cells, steps, offset,
                   bool(np.ptp(offset) > 0))

    def log10_p(self, x: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """log10 survival of ``x`` [N] in the HT bins ``b`` (None: bin 0), as :func:`log10_survival` of the bin's
        knots gives (nan stays nan, inf gives -inf)."""
        x = np.asarray(x, dtype=np.float64)
        if b is not None and self.offset_varies:
            x = x + self.offset[b]
        elif self.offset[0] != 0.0:
            x = x + self.offset[0]
        t = np.log10(np.maximum(x, _TINY))
        # t clipped to [lo, hi] by ufuncs (np.clip's Python wrapper costs more than the work on a message's events);
        # fmax/fmin put a nan at lo: a valid cell, whose segment then gives nan from t itself
        tc = np.fmin(np.fmax(t, self.lo), self.hi)
        cell = ((tc - self.lo) * self.inv_h).astype(np.int64)
        np.minimum(np.maximum(cell, 0, out=cell), self.cells - 1, out=cell)
        if b is not None:
            cell += b * self.cells
        r = self.lut.take(cell)
        for _ in range(self.steps):
            r += tc >= self.nxt.take(r)
        lp = self.lp0.take(r) + self.slope.take(r) * (t - self.t0.take(r))
        return np.minimum(lp, 0.0, out=lp)

def _segments(knots: Mapping[str, Any], lo: float) -> tuple[np.ndarray, ...]:
    """(t0, lp0, slope, nxt) of one bin's rows: a flat start at ``lo``, the knot-to-knot lines (np.interp's
    slopes), the tail line from the last knot; nxt = the next row's t0 (inf after the tail)."""
    tk = np.asarray(knots["log10_x"], dtype=np.float64)
    lpk = np.asarray(knots["log10_p"], dtype=np.float64)
    inner = (lpk[1:] - lpk[:-1]) / (tk[1:] - tk[:-1])
    return (np.concatenate([[lo], tk]), np.concatenate([[lpk[0]], lpk]),
            np.concatenate([[0.0], inner, [float(knots["tail_slope"])]]), np.concatenate([tk, [np.inf]]))


@dataclass(frozen=True)
class CompiledTransform:
    """A score_transform block as lookup tables: :meth:`apply` / :meth:`score` give :func:`apply` / :func:`score`."""

    edges: np.ndarray
    terms: tuple[tuple[str, float, SurvivalTable], ...]
    ht_weight: float
    ht_table: SurvivalTable
    latent_mean: np.ndarray | None
    latent_std: np.ndarray | None

    def apply(self, raw: Mapping[str, np.ndarray] | np.ndarray, ht: np.ndarray) -> np.ndarray:
        """Transformed score [N] float64 of raw scores ``raw`` ({kind: [N]}, or [N] for one term) and ``ht``."""
        if not isinstance(raw, Mapping):
            if len(self.terms) != 1:
                raise ValueError(f"this score_transform has {len(self.terms)} terms: give raw as {{kind: scores}}")
            raw = {self.terms[0][0]: raw}
        ht = np.asarray(ht, dtype=np.float64)
        b = np.searchsorted(self.edges, ht, side="right")
        score = np.zeros(ht.shape, dtype=np.float64)
        for kind, weight, table in self.terms:
            values = np.asarray(raw[kind], dtype=np.float64)
            if values.shape != ht.shape:
                raise ValueError(f"raw {kind} {values.shape} and ht {ht.shape} differ in shape")
            score -= weight * table.log10_p(values, b)  # the same rounding as += weight * -log10 p
        if self.ht_weight:
            score -= self.ht_weight * self.ht_table.log10_p(ht)
        return score

    def score(self, error: np.ndarray, latent: np.ndarray | None, ht: np.ndarray) -> np.ndarray:
        """:func:`score`: the anomaly score of events from the scorer's ``error``, ``latent`` and their ``ht``."""
        kinds = [kind for kind, _, _ in self.terms]
        return self.apply(_raw_terms(kinds, error, latent, self.latent_mean, self.latent_std), ht)


def compile_transform(card: Mapping[str, Any]) -> CompiledTransform:
    """The lookup tables of a card's (or a block's) score_transform."""
    block = transform_block(card)
    latent = next((t for t in block["terms"] if t["raw"] == "latent"), None)
    return CompiledTransform(
        np.asarray(block["ht_bin_edges_gev"], dtype=np.float64),
        tuple((str(t["raw"]), float(t["weight"]), SurvivalTable.from_knots(t["bins"])) for t in block["terms"]),
        float(block.get("ht_weight", 0.0)), SurvivalTable.from_knots([block["ht_survival"]]),
        None if latent is None else np.asarray(latent["latent_mean"]),
        None if latent is None else np.asarray(latent["latent_std"]))


def score(card: Mapping[str, Any], error: np.ndarray, latent: np.ndarray | None, ht: np.ndarray) -> np.ndarray:
    """The anomaly score of events from the scorer's ``error`` [N] and ``latent`` [N, k] and their ``ht`` [N]."""
    return compile_transform(card).score(error, latent, ht)
