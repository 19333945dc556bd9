"""Event-level feature vector from the leading jets, computed identically in numpy and in a torch/ONNX graph.

Input contract of the event-level models: ``x`` [n_events, J, V] float32, the event's leading J
jets (pt-sorted, as in the ntuple) with the ``V`` variables of the model's feature set in GeV
(``FEATURE_SETS``: ``EVENT_VARIABLES`` for the substructure models, ``FOUR_VECTOR`` for the
four-vector ones, which every input format carries); missing
jets are zero-padded (padded jets have pt = 0, real jets pt > 20 GeV). Events with more than J
jets are TRUNCATED to their J leading jets: HT, missing HT and the system mass then use those J
jets only (with J = 6, 97% of the bundled QCD events, 91% of the dark-shower and 66% of the
Z' -> ttbar events are whole). Zero-jet events give the fixed vector of an empty event (globals 0,
every slot filled as below) and pass through.

The event vector (float, ``feature_names``):

- global: log10(HT + 1), log10(MHT + 1), MHT / max(HT, 1), number of jets (of the J),
  log10(sum of jet masses + 1), log10(invariant mass of the J-jet system + 1); HT = scalar sum of
  jet pt, MHT = |vector sum of jet pt| (missing HT); the largest cos(phi_jet - phi_MHT) over the J
  jets (a jet pointing along the missing HT, as semi-visible jets do; 0 for zero-jet events);
- per slot of the first ``L`` jets: log10(pt + 1), log10(m + 1), m / max(pt, 1), width, tau21,
  tau32 (substructure set only), cos(phi_jet - phi_MHT) = (p_T,jet . MHT) / (pt MHT) (no atan2; 0
  when MHT = 0). ``slot_features(variables)`` names them for a variable set.
  An empty slot (the event has fewer jets) takes fixed fill values: ``fill`` [L, n_slot], the training
  background's mean of that slot's features over the events that have the jet
  (``fit_empty_slot_fill``); without ``fill`` every entry is 0. A missing jet then looks like a
  typical jet in that slot and its absence is carried by the number of jets, HT and MHT. With 0 the
  padding was a gap the AE could not reconstruct: QCD events with one jet made most of the
  background tail at FPR 1e-4 (found on the background alone).

Jet eta enters only through the system mass: the direction of a jet in the detector is no sign
of new physics by itself, and its broad spread would dominate a reconstruction error.

``padded_jets`` builds ``x`` from flat jets plus per-event counts; ``event_features`` is the numpy
twin of the torch module ``models.training.event_graphs.EventFeatures`` (float64 here, float32 in the graph).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: the jet four-vector: what every input format carries (NanoAOD, PHYSLITE, Delphes, the generated ntuples)
FOUR_VECTOR = ("pt", "eta", "phi", "m")
#: the substructure variables of the generated ntuples (not in NanoAOD, PHYSLITE or Delphes jets)
SUBSTRUCTURE = ("width", "tau21", "tau32")
#: per-jet input variables of the substructure event models, in the order of the last axis of ``x``
EVENT_VARIABLES = (*FOUR_VECTOR, *SUBSTRUCTURE)
#: the variable sets an event model can take, by name (``aetrig train --level event --variables NAME``)
FEATURE_SETS = {"substructure": EVENT_VARIABLES, "four-vector": FOUR_VECTOR}
DEFAULT_JETS = 6
DEFAULT_SLOTS = 4
GLOBAL_FEATURES = ("log_ht", "log_mht", "mht_over_ht", "n_jets", "log_sum_m", "log_m_all", "max_cos_dphi_mht")
SLOT_FEATURES = ("log_pt", "log_m", "m_over_pt", "width", "tau21", "tau32", "cos_dphi_mht")


def feature_set(variables: Sequence[str]) -> tuple[str, ...]:
    """The feature set (``FEATURE_SETS`` value) that ``variables`` (the columns of ``x``) carry: the substructure
    set when they hold every substructure variable, else the four-vector set; ValueError if even that lacks."""
    for name in ("substructure", "four-vector"):
        if all(v in variables for v in FEATURE_SETS[name]):
            return FEATURE_SETS[name]
    missing = [v for v in FOUR_VECTOR if v not in variables]
    raise ValueError(f"event features need jet variables {missing} (have {list(variables)})")


def slot_features(variables: Sequence[str] = EVENT_VARIABLES) -> tuple[str, ...]:
    """The per-slot features of the feature set ``variables`` carry (substructure ones only when present)."""
    subs = feature_set(variables) == EVENT_VARIABLES
    return tuple(f for f in SLOT_FEATURES if subs or f not in SUBSTRUCTURE)


def feature_names(slots: int = DEFAULT_SLOTS, variables: Sequence[str] = EVENT_VARIABLES) -> list[str]:
    """Names of the event vector's entries, in order."""
    return [*GLOBAL_FEATURES, *(f"j{i}_{f}" for i in range(slots) for f in slot_features(variables))]


def padded_jets(values: np.ndarray, counts: np.ndarray, n_jets: int = DEFAULT_JETS) -> np.ndarray:
    """Flat jets [n_jets_total, V] + per-event counts -> [n_events, n_jets, V] float32, zero-padded.

    Jets beyond the first ``n_jets`` of an event are dropped (truncation to the leading jets; the
    ntuple is pt-sorted). Zero-jet events give an all-zero row.
    """
    values = np.asarray(values, dtype=np.float32)
    counts = np.asarray(counts, dtype=np.int64)
    if values.ndim != 2:
        raise ValueError(f"jet values must be [n_jets, n_vars], got shape {values.shape}")
    if counts.ndim != 1 or (counts < 0).any() or int(counts.sum()) != len(values):
        raise ValueError(f"jet counts (sum {int(counts.sum())}) do not match {len(values)} jets")
    n, n_vars = len(counts), values.shape[1]
    out = np.zeros((n * n_jets, n_vars), dtype=np.float32)
    starts = np.cumsum(counts) - counts
    dest = np.arange(len(values)) + np.repeat(np.arange(0, n * n_jets, n_jets) - starts, counts)  # event * J + rank
    src = np.ascontiguousarray(values)
    if counts.max(initial=0) > n_jets:
        keep = dest < np.repeat(np.arange(n_jets, (n + 1) * n_jets, n_jets), counts)  # rank < J
        dest, src = dest[keep], src[keep]
    row = np.dtype((np.void, 4 * n_vars))  # one jet's V float32 as one item: one copy per jet, not per number
    out.view(row).reshape(-1)[dest] = src.view(row).reshape(-1)
    return out.reshape(n, n_jets, n_vars)


def _columns(x: np.ndarray, variables: Sequence[str]) -> dict[str, np.ndarray]:
    return {v: x[..., list(variables).index(v)] for v in feature_set(variables)}


def fit_empty_slot_fill(features: np.ndarray, slots: int = DEFAULT_SLOTS) -> np.ndarray:
    """[slots, n_slot_features] means of each slot's features over the events that have that jet."""
    block = np.asarray(features, dtype=np.float64)[:, len(GLOBAL_FEATURES):].reshape(len(features), slots, -1)
    fill = np.zeros(block.shape[1:])
    for slot in range(slots):
        present = block[:, slot, 0] > 0  # log10(pt + 1) > 0: the jet exists
        if present.any():
            fill[slot] = block[present, slot].mean(axis=0)
    return fill


def event_features(x: np.ndarray, slots: int = DEFAULT_SLOTS, variables: Sequence[str] = EVENT_VARIABLES,
                   fill: np.ndarray | None = None) -> np.ndarray:
    """Numpy twin of ``EventFeatures``: [n_events, J, V] (GeV) -> [n_events, n_features] float64.

    ``fill`` [slots, n_slot_features]: the values of an empty slot (0 when not given).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] < slots:
        raise ValueError(f"x must be [n_events, J >= {slots}, V], got shape {x.shape}")
    c = _columns(x, variables)
    mask = (c["pt"] > 0).astype(np.float64)
    pt, m = c["pt"] * mask, c["m"] * mask
    eta, phi = c["eta"] * mask, c["phi"] * mask
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    energy = np.sqrt((pt * np.cosh(eta)) ** 2 + m ** 2) * mask
    ht = pt.sum(axis=1)
    mhx, mhy = -px.sum(axis=1), -py.sum(axis=1)
    mht = np.sqrt(mhx ** 2 + mhy ** 2)
    m2 = energy.sum(axis=1) ** 2 - px.sum(axis=1) ** 2 - py.sum(axis=1) ** 2 - pz.sum(axis=1) ** 2
    m_all = np.sqrt(np.maximum(m2, 0.0))
    cos = (px * mhx[:, None] + py * mhy[:, None]) / np.maximum(pt * mht[:, None], 1e-6)
    max_cos = np.max(np.where(mask > 0, cos, -1.0), axis=1) * (mask.sum(axis=1) > 0)
    glob = [np.log10(ht + 1), np.log10(mht + 1), mht / np.maximum(ht, 1.0), mask.sum(axis=1),
            np.log10(m.sum(axis=1) + 1), np.log10(m_all + 1), max_cos]
    per_slot = [np.log10(pt + 1), np.log10(m + 1), m / np.maximum(pt, 1.0),
                *(c[v] * mask for v in SUBSTRUCTURE if v in c), cos]
    slot_block = np.stack([f[:, :slots] for f in per_slot], axis=2)
    if fill is not None:
        fill = np.asarray(fill, dtype=np.float64)
        if fill.shape != slot_block.shape[1:]:
            raise ValueError(f"fill must be [{slots}, {slot_block.shape[2]}], got {fill.shape}")
        slot_block = np.where(mask[:, :slots, None] > 0, slot_block, fill[None])
    return np.concatenate([np.stack(glob, axis=1), slot_block.reshape(len(x), -1)], axis=1)
