"""Turn validated scored messages into one chunk of branches for a segment commit (pure numpy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from emulator.runtime import compact_columns as cc
from emulator.runtime.recording import (
    EVENT_BRANCHES,
    JET_ERROR,
    LATENT_ANS_BRANCH,
    LATENT_STORAGE,
    THRESHOLD_BRANCH,
    Layout,
    jagged_record,
)
from emulator.runtime.wire import Batch, raw_column, raw_column_variable
from models.runtime import latent_coding as lc
from models.runtime import latent_context as lx


def batch_layout(batch: Batch, latent_dtype: str, latent_codec: str = "none", entropy_model: str = "",
                 score_bits: int = cc.DEFAULT_SCORE_BITS, compact: bool = True) -> Layout:
    """The segment layout a scored message needs (latent size, storage or codec, raw variables, whether it
    carries ``jet_error``), format 3's compact columns with the score at ``score_bits``; with ``jet_error`` (a
    per-jet anomaly score is the max of it, checked exactly) the score stays float32. ``compact`` False: the
    format-2 layout (every column as it is; tests of old readers)."""
    raw_vars = tuple(v for name in batch.columns if (v := raw_column_variable(name)))
    jet_error = JET_ERROR in batch.columns
    return Layout(int(batch.columns["jet_latent"].shape[1]), LATENT_STORAGE[latent_dtype], raw_vars,
                  latent_codec, entropy_model if latent_codec != "none" else "", jet_error, compact=compact,
                  score_bits=cc.FLOAT32_MANTISSA_BITS if jet_error or not compact else score_bits)


def chunk_from_batches(batches: Sequence[Batch], layout: Layout) -> dict[str, Any]:
    """Branches (numpy per-event, awkward jagged per-jet) for all events of ``batches``, in order.

    Every batch has ``layout`` (the sink groups them by it): ``jet_error`` is written when ``layout.jet_error``."""
    def cat(name: str) -> np.ndarray:
        return np.concatenate([b.columns[name] for b in batches])

    n_events = [b.n_events for b in batches]
    chunk: dict[str, Any] = {
        "run_id": np.repeat(np.array([b.run_id for b in batches], np.uint64), n_events),
        "seq": np.repeat(np.array([b.seq for b in batches], np.uint64), n_events),
    }
    for name in EVENT_BRANCHES:
        if name not in chunk:
            chunk[name] = cat(name).astype(EVENT_BRANCHES[name], copy=False)
    # the float32 threshold each message's flags were computed with, per event (zstd makes it ~free)
    chunk[THRESHOLD_BRANCH] = np.repeat(np.array([b.header["threshold"] for b in batches], np.float32), n_events)
    counts = cat("n_jets").astype(np.int64)
    if layout.compact:
        chunk["event_score"] = cc.round_scores(chunk["event_score"], chunk["flag"], layout.score_bits)
    if layout.event_block:
        codes = cc.score_codes(chunk.pop("event_score"), layout.score_bits)
        chunk["event_ans"] = cc.block_column([cc.encode_event_block(counts, codes)], [len(counts)])
    latent = cat("jet_latent")
    if layout.latent_codec == "ans":
        chunk[LATENT_ANS_BRANCH.removesuffix("_bytes")] = ans_block(latent, layout, counts)
    elif layout.latent_storage == "float16-as-uint16":
        latent = latent.astype(np.float16).view(np.uint16)
    else:
        latent = latent.astype(np.float32)
    jet_fields = {} if layout.latent_codec == "ans" else {f"latent_{i}": latent[:, i] for i in range(layout.latent_dim)}
    if layout.jet_error:
        jet_fields["error"] = cat(JET_ERROR).astype(np.float32, copy=False)
    if jet_fields:
        chunk["jet"] = jagged_record(counts, jet_fields)
    elif not layout.event_block:  # ANS-coded latents and no jet_error: only the jet counter is left
        chunk["njet"] = counts.astype(np.int32)
    raw_counts = counts * chunk["flag"].astype(bool)
    raw_fields = {}
    for var in layout.raw_vars:
        parts = [b.columns.get(raw_column(var), np.zeros(0, np.float32)) for b in batches]
        raw_fields[var] = np.concatenate(parts).astype(np.float32, copy=False)
    if raw_fields and layout.compact:
        chunk[cc.RAW_PACKED_BRANCH.removesuffix("_values")] = cc.pack_raw(raw_counts, raw_fields)
    elif raw_fields:
        chunk["raw_jet"] = jagged_record(raw_counts, raw_fields)
    return chunk


def ans_block(latent: np.ndarray, layout: Layout, counts: np.ndarray) -> Any:
    """The commit's ANS-coded latent symbols as jagged uint8 ``bytes``: all on the first event. The layout's
    entropy model is factorised or (format 4) a context model that codes each jet given its event's earlier jets
    (models/runtime/latent_context.py); ``counts``: the jets per event."""

    coder = lx.coder_from_text(layout.entropy_model)
    data = np.frombuffer(lx.encode_block(lc.quantise(latent, coder.base), counts, coder), np.uint8)
    n_events = len(counts)
    sizes = np.zeros(n_events, np.int64)
    if n_events:
        sizes[0] = len(data)
    return jagged_record(sizes, {"bytes": data})


def chunk_nbytes(batches: Sequence[Batch]) -> int:
    """Uncompressed bytes of the columns that go into a commit (the size estimate for --max-bytes)."""
    return sum(col.nbytes for b in batches for name, col in b.columns.items() if not name.endswith("_json"))
