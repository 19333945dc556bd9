"""Pure numerics of the encoder: gather jets of several messages, per-event scores, scored columns.

No I/O here: the service (emulator/encoder_service.py) feeds decoded batches in and sends the
columns these functions build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from emulator.wire import EVENT_ID_COLUMNS, Batch


def stack_inputs(batches: Sequence[Batch], variables: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Model input ``x`` [J_total, n_vars] float32 from ``jet_<var>`` of each batch, and jet offsets.

    ``offsets[i]:offsets[i+1]`` are the rows of batch ``i``.
    """
    sizes = np.array([b.n_jets for b in batches], dtype=np.int64)
    offsets = np.zeros(len(batches) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    x = np.empty((int(offsets[-1]), len(variables)), dtype=np.float32)
    for i, batch in enumerate(batches):
        lo, hi = offsets[i], offsets[i + 1]
        for j, var in enumerate(variables):
            x[lo:hi, j] = batch.columns[f"jet_{var}"]
    return x, offsets


def event_scores(jet_error: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-event score = max of the per-jet errors of the event; 0 for an event without jets."""
    counts = np.asarray(counts, dtype=np.int64)
    scores = np.zeros(len(counts), dtype=np.float32)
    nonempty = counts > 0
    if nonempty.any():
        starts = np.cumsum(counts) - counts
        # reduceat over the starts of non-empty events only: each segment then runs exactly to the
        # next non-empty event's first jet, because the empty events in between hold no jets.
        scores[nonempty] = np.maximum.reduceat(np.asarray(jet_error, dtype=np.float32), starts[nonempty])
    return scores


def flag_events(scores: np.ndarray, counts: np.ndarray, threshold: float) -> np.ndarray:
    """Flag (u1) = score > threshold; an event without jets is never flagged."""
    return ((scores > threshold) & (np.asarray(counts) > 0)).astype(np.uint8)


def scored_columns(batch: Batch, latent: np.ndarray, error: np.ndarray, threshold: float,
                   latent_dtype: str, card_blob: np.ndarray) -> dict[str, np.ndarray]:
    """The columns of the scored message for one events message (wire contract, KIND_SCORED).

    Identity columns are passed through, ``jet_latent``/``jet_error`` added, ``event_score`` and
    ``flag`` computed, and every ``jet_<var>`` that arrived is copied as ``raw_jet_<var>`` for the
    jets of flagged events. ``manifest_json`` is passed through, ``card_json`` added.
    """
    counts = batch.columns["n_jets"]
    scores = event_scores(error, counts)
    flag = flag_events(scores, counts, threshold)
    columns: dict[str, np.ndarray] = {name: batch.columns[name] for name in EVENT_ID_COLUMNS}
    columns["jet_latent"] = latent.astype(latent_dtype, copy=False)
    columns["jet_error"] = error.astype(np.float32, copy=False)
    columns["event_score"] = scores
    columns["flag"] = flag
    raw_index = flagged_jet_index(flag, counts)
    for var in batch.jet_variables():
        columns[f"raw_jet_{var}"] = np.asarray(batch.columns[f"jet_{var}"])[raw_index].astype(np.float32, copy=False)
    if "manifest_json" in batch.columns:
        columns["manifest_json"] = batch.columns["manifest_json"]
    columns["card_json"] = card_blob
    return columns


def flagged_jet_index(flag: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices of the jets of flagged events, in order (cheap: flagged events are rare)."""
    events = np.flatnonzero(flag)
    lengths = counts[events].astype(np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    starts = (np.cumsum(counts, dtype=np.int64) - counts)[events]
    return np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)


def split_rows(array: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Views of ``array`` rows per batch, by the offsets of :func:`stack_inputs`."""
    return [array[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def rows_finite(arrays: Mapping[str, np.ndarray]) -> bool:
    """True when every value of every array is finite."""
    return all(np.isfinite(a).all() for a in arrays.values() if a.size)
