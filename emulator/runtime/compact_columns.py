"""The per-event columns of a format-3 segment, stored so that they cost close to nothing (pure numpy).

Both directions live here: the sink stores with the ``store_*``/``encode_*`` functions, readers get the
format-2 columns back with :func:`expand` (called by ``recording.read_segment_arrays``), so every tool sees
``seq event_id entry event_number njet event_score raw_jet_<var> nraw_jet`` as before.

- **Identity deltas.** ``seq event_id entry event_number`` are stored as ``<name>_delta`` (uint64): the
  difference from the previous event of the segment (the first from 0), modulo 2**64. Inside a batch they are
  consecutive, so the deltas are long runs of 0 or 1 that zstd stores in a few bytes; the reader's cumulative
  sum modulo 2**64 gives the values back exactly.
- **Score at a precision chosen with the threshold.** ``event_score`` keeps ``score_bits`` mantissa bits,
  rounded *away from the threshold*: down for unflagged events, up for flagged ones. Since the flag is
  ``score > threshold`` in float32, ``flag == (stored score > threshold)`` still holds for every event (`aetrig
  verify` checks it exactly) and each stored score is within a relative 2**-score_bits of the encoder's.
  NaN and infinities pass unchanged.
- **Event block.** With ANS-coded latents and no ``jet_error`` (the defaults), each commit's ``njet`` and score
  codes (the rounded score's top 9 + score_bits bits) are ANS-coded with tables fitted on the commit itself
  (models/runtime/latent_coding.py), stored as jagged uint8 ``event_ans_bytes`` on the commit's first event:
  int32 header ``[2, offset_0, n_0, pmf_0..., offset_1, n_1, pmf_1...]``, then the ANS words.
- **Raw copies.** The raw jets of flagged events are one jagged float32 branch ``raw_values`` holding each
  flagged event's jets jet-major (``len(raw_vars)`` values per jet), so unflagged events cost one offset of
  one branch instead of one per variable.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np

from emulator.runtime.wire import raw_column, raw_column_variable
from models.runtime import latent_coding as lc

DELTA_COLUMNS = ("seq", "event_id", "entry", "event_number")
DELTA_SUFFIX = "_delta"
EVENT_ANS_BRANCH = "event_ans_bytes"
RAW_PACKED_BRANCH = "raw_values"
#: the counters uproot adds for the two jagged block branches (readers drop them)
BLOCK_COUNTERS = ("nevent_ans", "nraw")
FLOAT32_MANTISSA_BITS = 23
#: the default stored score precision: 3 mantissa bits, within 12.5 % of the encoder's score, one-sided
DEFAULT_SCORE_BITS = 3


class CompactColumnsError(ValueError):
    """Stored compact columns that do not decode."""


# ------------------------------------------------------------------------------------------- identity


def to_deltas(values: np.ndarray, previous: int) -> np.ndarray:
    """uint64 differences from the previous value (``previous`` before the first), modulo 2**64."""
    v = np.asarray(values, dtype=np.uint64)
    out = np.empty_like(v)
    if len(v):
        np.subtract(v[:1], np.array([previous], np.uint64), out=out[:1])
        np.subtract(v[1:], v[:-1], out=out[1:])
    return out


def from_deltas(deltas: np.ndarray, previous: int = 0) -> np.ndarray:
    """The values back: cumulative sum modulo 2**64 (from ``previous``, the value before the first delta)."""
    return np.cumsum(np.asarray(deltas, dtype=np.uint64), dtype=np.uint64) + np.uint64(previous)


# ---------------------------------------------------------------------------------------------- score


def round_scores(score: np.ndarray, flag: np.ndarray, bits: int) -> np.ndarray:
    """float32 scores with ``bits`` mantissa bits, rounded down where ``flag`` is 0 and up where it is 1."""
    if not 0 <= bits <= FLOAT32_MANTISSA_BITS:
        raise ValueError(f"score bits must be in 0..23, got {bits}")
    s = np.ascontiguousarray(score, dtype=np.float32)
    if bits == FLOAT32_MANTISSA_BITS:
        return s.copy()
    drop = FLOAT32_MANTISSA_BITS - bits
    raw = s.view(np.uint32)
    low = raw & np.uint32((1 << drop) - 1)
    truncated = raw & ~np.uint32((1 << drop) - 1)  # toward zero
    negative = (raw >> np.uint32(31)).astype(bool)
    up = np.asarray(flag).astype(bool)
    # away from zero = down for negatives, up for positives; only when bits were dropped
    away = (low != 0) & (up != negative)
    out = truncated + np.where(away, np.uint32(1 << drop), np.uint32(0)).astype(np.uint32)
    result = out.view(np.float32)
    special = ~np.isfinite(s)
    result[special] = s[special]
    return result


def score_codes(rounded: np.ndarray, bits: int) -> np.ndarray:
    """int64 codes of scores rounded to ``bits`` mantissa bits: their top 9 + bits bits (sign, exponent,
    mantissa); NaNs keep a mantissa bit only with ``bits`` >= 1."""
    return (np.asarray(rounded, np.float32).view(np.uint32) >> np.uint32(FLOAT32_MANTISSA_BITS - bits)).astype(
        np.int64)


def scores_from_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    return (np.asarray(codes, np.int64).astype(np.uint32) << np.uint32(FLOAT32_MANTISSA_BITS - bits)).view(
        np.float32)


# ---------------------------------------------------------------------------------------- event block


#: widest table of the event block; symbols outside the central TABLE_QUANTILE range are escapes
MAX_TABLE_SYMBOLS = 256
TABLE_QUANTILE = 1e-3


def _fit(symbols: np.ndarray) -> lc.EntropyModel:
    """Per column: counts + 1 over its central range (the ``TABLE_QUANTILE`` tails, and anything beyond
    ``MAX_TABLE_SYMBOLS`` symbols, become escapes), so one outlier cannot blow up the header."""
    tables = []
    for col in symbols.T:
        lo, hi = (int(v) for v in np.quantile(col, [TABLE_QUANTILE, 1.0 - TABLE_QUANTILE], method="nearest"))
        hi = min(hi, lo + MAX_TABLE_SYMBOLS - 1)
        inside = (col >= lo) & (col <= hi)
        counts = np.bincount(col[inside] - lo, minlength=hi - lo + 1) + 1
        tables.append(lc.LatentTable(1.0, lo, np.append(counts, int((~inside).sum()) + 1)))
    return lc.EntropyModel(tuple(tables))


def encode_event_block(njet: np.ndarray, codes: np.ndarray) -> bytes:
    """One commit's jet counts and score codes, ANS-coded with tables fitted on them (header + words)."""
    symbols = np.stack([np.asarray(njet, np.int64), np.asarray(codes, np.int64)], axis=1)
    if len(symbols) == 0:
        return b""
    if symbols.max() >= 2**31:
        raise ValueError("event block: score codes need score bits <= 22")
    model = _fit(symbols)
    header = [model.k]
    for table in model.tables:
        header += [table.offset, len(table.pmf), *table.pmf.tolist()]
    return np.asarray(header, "<i4").tobytes() + lc.encode(symbols.astype(np.int32), model)


def decode_event_block(data: bytes, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """(njet int64, score codes int64) of ``n_events`` events from :func:`encode_event_block`'s bytes."""
    if n_events == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    words = np.frombuffer(data[: len(data) - len(data) % 4], "<i4")
    if len(words) < 1 or words[0] != 2:
        raise CompactColumnsError("event block: bad header")
    pos, tables = 1, []
    for _ in range(2):
        offset, size = int(words[pos]), int(words[pos + 1])
        pmf = words[pos + 2:pos + 2 + size].astype(np.int64)
        if size < 2 or len(pmf) != size or np.any(pmf <= 0):
            raise CompactColumnsError("event block: bad table")
        tables.append(lc.LatentTable(1.0, offset, pmf))
        pos += 2 + size
    symbols = lc.decode(data[4 * pos:], n_events, lc.EntropyModel(tuple(tables))).astype(np.int64)
    return symbols[:, 0], symbols[:, 1]


def block_column(blocks: Sequence[bytes], n_events: Sequence[int]) -> ak.Array:
    """Each block's bytes as jagged uint8 on the first event of its group of ``n_events`` (empty elsewhere)."""
    from emulator.runtime.recording import jagged_record

    sizes = np.zeros(int(sum(n_events)), np.int64)
    starts = np.concatenate([[0], np.cumsum(n_events)[:-1]]).astype(np.int64)
    for start, data, n in zip(starts, blocks, n_events, strict=True):
        if n:
            sizes[start] = len(data)
    flat = np.frombuffer(b"".join(blocks), np.uint8)
    return jagged_record(sizes, {"bytes": flat})


def split_blocks(coded: ak.Array) -> list[tuple[int, int, bytes]]:
    """(first event, end event, bytes) of each block of a jagged uint8 block column."""
    n_bytes = np.asarray(ak.num(coded, axis=1))
    flat = np.asarray(ak.flatten(coded, axis=None)).astype(np.uint8)
    starts = np.flatnonzero(n_bytes)
    ends = np.cumsum(n_bytes)
    bounds = [*starts.tolist(), len(n_bytes)]
    return [(a, b, flat[ends[a] - n_bytes[a]:ends[a]].tobytes()) for a, b in itertools.pairwise(bounds)]


# ------------------------------------------------------------------------------------------------ raw


def pack_raw(raw_counts: np.ndarray, columns: Mapping[str, np.ndarray]) -> ak.Array:
    """Flagged events' raw jets as one jagged float32 ``values`` field, jet-major."""
    from emulator.runtime.recording import jagged_record

    values = np.stack([np.asarray(c, np.float32) for c in columns.values()], axis=1).reshape(-1)
    return jagged_record(np.asarray(raw_counts, np.int64) * len(columns), {"values": values})


# ------------------------------------------------------------------------------------------- reading


def stored_names(names: Sequence[str], fields: Sequence[str]) -> list[str]:
    """The branches to read for the logical ``names`` from a segment with branches ``fields``."""
    have = set(fields)
    out: list[str] = []
    for name in names:
        if f"{name}{DELTA_SUFFIX}" in have:
            wanted = [f"{name}{DELTA_SUFFIX}"]
        elif name in ("njet", "event_score") and EVENT_ANS_BRANCH in have and name not in have:
            wanted = [EVENT_ANS_BRANCH]
        elif (raw_column_variable(name) or name == "nraw_jet") and RAW_PACKED_BRANCH in have:
            wanted = [RAW_PACKED_BRANCH]
        else:
            wanted = [name]
        out += [w for w in wanted if w not in out]
    return out


def expand(arrays: ak.Array, layout: Mapping[str, Any] | None, wanted: Sequence[str] | None = None,
           previous: Mapping[str, int] | None = None) -> ak.Array:
    """The format-2 columns of a format-3 segment's arrays (``wanted``: the logical names asked for; all
    with None). Arrays without compact columns come back as they are. Arrays that start past a segment's first
    event (whole commits) need ``previous``: {delta column: its value on the event before the first}."""
    fields = list(arrays.fields)
    if not any(f.endswith(DELTA_SUFFIX) or f in (EVENT_ANS_BRANCH, RAW_PACKED_BRANCH) for f in fields):
        return arrays
    layout = layout or {}
    out: dict[str, Any] = {}
    for name in fields:
        if name.endswith(DELTA_SUFFIX):
            base = name.removesuffix(DELTA_SUFFIX)
            out[base] = from_deltas(np.asarray(arrays[name]), (previous or {}).get(base, 0))
        elif name == EVENT_ANS_BRANCH:
            bits = int(layout.get("score_bits", FLOAT32_MANTISSA_BITS))
            njet = np.zeros(len(arrays), np.int64)
            codes = np.zeros(len(arrays), np.int64)
            for a, b, data in split_blocks(arrays[name]):
                njet[a:b], codes[a:b] = decode_event_block(data, b - a)
            out["njet"] = njet.astype(np.int32)
            out["event_score"] = scores_from_codes(codes, bits)
        elif name == RAW_PACKED_BRANCH:
            raw_vars = list(layout.get("raw_vars", []))
            values = arrays[name]
            n_vars = max(len(raw_vars), 1)
            counts = np.asarray(ak.num(values, axis=1)) // n_vars
            flat = np.asarray(ak.flatten(values, axis=None), np.float32).reshape(-1, n_vars)
            out["nraw_jet"] = counts.astype(np.int32)
            for i, var in enumerate(raw_vars):
                out[raw_column(var)] = ak.unflatten(flat[:, i].copy(), counts)
        elif name not in BLOCK_COUNTERS:
            out.setdefault(name, arrays[name])
    if wanted is not None:
        out = {k: v for k, v in out.items() if k in wanted}
    return ak.zip(out, depth_limit=1) if out else ak.Array([])
