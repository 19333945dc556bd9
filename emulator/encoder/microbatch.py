"""Pure numerics of the encoder: gather jets of several messages, per-event scores, scored columns.

Flags compare float32 scores with the float32 threshold. Per-jet scoring (max per-jet error) never
flags an event without jets (its score is 0 by definition); an event-level model scores every event,
zero-jet events included, and flags it when its score is above the threshold (the card's rule).

No I/O here: the service (emulator/encoder/service.py) feeds decoded batches in and sends the
columns these functions build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from emulator.runtime.wire import EVENT_ID_COLUMNS, Batch, WireError, jet_column, raw_column

_NO_JETS = np.empty(0, dtype=np.float32)  # the raw copy of a message without flagged events (read-only)
_NO_JETS.flags.writeable = False


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
            x[lo:hi, j] = batch.columns[jet_column(var)]
    return x, offsets


def require_variables(batch: Batch, variables: Sequence[str], needed_by: str) -> None:
    """Raise WireError('missing_variable') when the message lacks a ``jet_<var>`` column of ``variables``
    (``needed_by``: whose input they are, e.g. "model 'X'")."""
    missing = [v for v in variables if jet_column(v) not in batch.columns]
    if missing:
        raise WireError("missing_variable", f"stream lacks jet_{missing[0]} needed by {needed_by} "
                                            f"(has {batch.jet_variables()})")


def event_scores(jet_error: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-event score = max of the per-jet errors of the event; 0 for an event without jets."""
    counts = np.asarray(counts)
    scores = np.full(len(counts), -np.inf, dtype=np.float32)
    # one unbuffered maximum per jet into its event's slot: cheaper than reduceat's per-segment work
    np.maximum.at(scores, np.repeat(np.arange(len(counts)), counts), np.asarray(jet_error, dtype=np.float32))
    scores[counts == 0] = 0.0
    return scores


def flag_events(scores: np.ndarray, counts: np.ndarray, threshold: float, flag_empty: bool = False) -> np.ndarray:
    """Flag (u1) = score > threshold in float32; an event without jets only when ``flag_empty`` (event models)."""
    above = np.asarray(scores, dtype=np.float32) > np.float32(threshold)
    return (above if flag_empty else above & (np.asarray(counts) > 0)).astype(np.uint8)


def event_offsets(batches: Sequence[Batch]) -> np.ndarray:
    """``offsets[i]:offsets[i+1]`` are the events of batch ``i`` in the stacked events."""
    offsets = np.zeros(len(batches) + 1, dtype=np.int64)
    np.cumsum([b.n_events for b in batches], out=offsets[1:])
    return offsets


def stack_counts(batches: Sequence[Batch]) -> np.ndarray:
    """Per-event jet counts of all events of ``batches``, in order (int64)."""
    if not batches:
        return np.zeros(0, np.int64)
    return np.concatenate([b.columns["n_jets"] for b in batches]).astype(np.int64)


def scored_columns(batch: Batch, latent: np.ndarray, error: np.ndarray | None, threshold: float,
                   latent_dtype: str, event_score: np.ndarray | None = None,
                   scored_jets: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The columns of the scored message for one events message (wire contract, KIND_SCORED).

    Identity columns are passed through, ``jet_latent`` and (when ``error`` is given) ``jet_error``
    added, ``event_score`` and ``flag`` computed, and every ``jet_<var>`` that arrived is copied as
    ``raw_jet_<var>`` for the jets of flagged events. No blob: the header names the cards and the
    manifest by sha256 (:func:`scored_hashes`). ``event_score`` given: the event-level anomaly model's
    scores (``error`` may then be None: no ``jet_error`` column); not given: the max per-jet error
    (``error`` required); ``scored_jets`` (bool per jet): the jets the max runs over (those inside the
    model's training domain; an event with none scores 0). ``jet_error`` always holds every jet's error.
    """
    counts = batch.columns["n_jets"]
    if event_score is None:
        if error is None:
            raise ValueError("per-jet scoring needs the per-jet errors")
        scores = event_scores(error if scored_jets is None else np.where(scored_jets, error, np.float32(0)), counts)
        flag = flag_events(scores, counts, threshold)
    else:
        scores = np.asarray(event_score, dtype=np.float32)
        flag = flag_events(scores, counts, threshold, flag_empty=True)
    columns: dict[str, np.ndarray] = {name: batch.columns[name] for name in EVENT_ID_COLUMNS}
    columns["jet_latent"] = latent.astype(latent_dtype, copy=False)
    if error is not None:
        columns["jet_error"] = error.astype(np.float32, copy=False)
    columns["event_score"] = scores
    columns["flag"] = flag
    raw_index = flagged_jet_index(flag, counts)
    for var in batch.jet_variables():
        columns[raw_column(var)] = (np.asarray(batch.columns[jet_column(var)])[raw_index].astype(np.float32, copy=False)
                                    if len(raw_index) else _NO_JETS)
    return columns


def scored_hashes(batch: Batch, card_sha256: str, anomaly_card_sha256: str) -> dict[str, str]:
    """The scored header's hash fields (wire.HASH_FIELDS) for one events message: the cards' sha256 and the
    manifest's, as the events header names it."""
    return {"card_sha256": card_sha256, "anomaly_card_sha256": anomaly_card_sha256,
            "manifest_sha256": batch.header["manifest_sha256"]}


def flagged_jet_index(flag: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices of the jets of flagged events, in order (cheap: flagged events are rare)."""
    events = np.flatnonzero(flag)
    if not len(events):
        return np.empty(0, dtype=np.int64)
    lengths = counts[events].astype(np.int64)
    firsts = np.cumsum(counts, dtype=np.int64)[events] - lengths  # first jet of each flagged event
    ends = np.cumsum(lengths)  # end of each flagged event's run in the output
    return np.arange(int(ends[-1])) + np.repeat(firsts - (ends - lengths), lengths)


def rows_finite(arrays: Mapping[str, np.ndarray | None]) -> bool:
    """True when every value of every array is finite (None: an output that was not computed)."""
    return all(np.isfinite(a).all() for a in arrays.values() if a is not None and a.size)
