"""The wire format: the one module that producer, encoder and sink all import.

A message is a ZeroMQ multipart message. Frame 0 is a msgpack header::

    {"v": 1, "kind": "events" | "scored", "run_id": uint64, "seq": int, "n_events": int,
     "n_jets": int, "t_send": float (producer's time.time() at first send), "rate_hz": float
     (the producer's declared mean input rate), "cols": [[name, dtype, shape], ...], ...extras}

Frames 1..n are raw little-endian numpy buffers, one per entry of ``cols`` in that order.
Acknowledgements (sink -> producer) are a single msgpack frame ``{"v", "kind": "ack",
"run_id", "seqs": [...], "full": bool}``.

Column conventions (shapes in units of events E, jets J, flagged-event jets F, latent size k):

* event level (E): ``n_jets`` <u4, ``event_id`` <u8, ``file_index`` <u4, ``entry`` <u8,
  ``event_number`` <u8; on scored messages also ``event_score`` <f4 and ``flag`` <u1.
* jet level (J): ``jet_<var>`` <f4 (GeV for energies); on scored messages ``jet_latent``
  (J, k) <f4 or <f2 and ``jet_error`` <f4. ``jet_error`` (the compression model's per-jet
  reconstruction error) is optional only where no flag depends on it: a message whose
  ``anomaly_card_json`` is an event-level card (``level: event``) may omit it (the encoder's
  ``--jet-errors auto``); a per-jet-scored message without it is rejected (``missing_column``).
* flagged raw copy (F): ``raw_jet_<var>`` <f4, the jets of the events whose flag is 1, in order.
* blobs (bytes, shape [nbytes], <u1): ``manifest_json`` (run manifest), ``card_json`` (model card);
  on scored messages ``anomaly_card_json``: the card of the model whose score and flag the events
  carry (an event-level model, or the compression model itself for per-jet max error). Scored
  headers add ``threshold`` (the float32 value the flags were computed with), ``model`` and
  ``anomaly_model`` (card names), and the encoder's time stamps ``t_received`` and ``t_encoded``
  (optional: they only split the decision latency by hop, emulator/runtime/latency_stats.py).

``decode`` checks structure (header, frame count, dtypes, sizes) and ``validate`` checks meaning
(shapes against counts, limits, finite values). Both raise :class:`WireError` whose ``reason``
is one of :data:`REJECT_REASONS`, the label values of ``aetrig_rejected_messages_total``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

SCHEMA_VERSION = 1
KIND_EVENTS = "events"
KIND_SCORED = "scored"
KIND_ACK = "ack"
KINDS = (KIND_EVENTS, KIND_SCORED)

ALLOWED_DTYPES = frozenset({"<f2", "<f4", "<f8", "|u1", "<u4", "<u8", "<i4", "<i8"})
EVENT_ID_COLUMNS = {"n_jets": "<u4", "event_id": "<u8", "file_index": "<u4", "entry": "<u8",
                    "event_number": "<u8"}
SCORED_EVENT_COLUMNS = {"event_score": "<f4", "flag": "|u1"}
BLOB_COLUMNS = ("manifest_json", "card_json", "anomaly_card_json")
#: The dtypes jet_latent may have in a scored message (<f4, <f2), by name; the sink stores the same choices.
LATENT_DTYPES = ("float32", "float16")

#: Every reason a receiver may reject a message for; metrics pre-create one counter per reason.
REJECT_REASONS = (
    "frame_count",        # no frames, or frames != 1 + len(cols)
    "bad_header",         # header is not a msgpack map with the required fields and types
    "schema_version",     # header "v" is not SCHEMA_VERSION
    "unknown_kind",       # header "kind" is not one this receiver takes
    "unknown_dtype",      # a column dtype outside ALLOWED_DTYPES
    "bad_column",         # duplicate, unnamed or malformed column descriptor, bad shape
    "size_mismatch",      # a frame's byte size disagrees with its declared dtype and shape
    "count_mismatch",     # shapes disagree with n_events / n_jets / per-event counts
    "missing_column",     # a required identity or scored column is absent
    "missing_variable",   # the stream lacks a variable the model needs (encoder)
    "limit_exceeded",     # events, jets per event, jets per message or bytes beyond the limits
    "non_finite",         # NaN or inf in a float column
    "bad_blob",           # manifest_json / card_json / anomaly_card_json not valid JSON objects
    "wrong_model",        # scored or flagged by a model other than the one this recording holds (sink)
    "duplicate_seq",      # the same (run_id, seq) arrived again within one message stream
    "no_threshold",       # the encoder cannot derive a threshold for this message (e.g. --accept-rate, no rate)
    "internal_error",     # an unexpected exception while handling a message (bug: counted, kept)
)


class WireError(ValueError):
    """A message that cannot be used. ``reason`` is one of REJECT_REASONS."""

    def __init__(self, reason: str, detail: str):
        assert reason in REJECT_REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    """Memory-protection limits. Generous by default: a dark-shower event may carry dozens of jets."""

    max_events: int = 1 << 20
    max_jets_per_event: int = 4096
    max_jets: int = 1 << 23
    max_bytes: int = 512 << 20
    max_columns: int = 512
    #: bytes of one JSON blob column (manifest_json on events messages): a manifest is a few kB
    max_blob_bytes: int = 1 << 20
    #: the latent size k of ``jet_latent`` (J, k): the zoo's models have k <= 16
    max_latent_dim: int = 256
    #: seqs in one acknowledgement (the sink acks one commit's seqs of one run at a time)
    max_ack_seqs: int = 1 << 16


@dataclass
class Batch:
    """A decoded message: its header and its columns by name (views on the received frames)."""

    header: dict[str, Any]
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.header["kind"]

    @property
    def run_id(self) -> int:
        return self.header["run_id"]

    @property
    def seq(self) -> int:
        return self.header["seq"]

    @property
    def n_events(self) -> int:
        return self.header["n_events"]

    @property
    def n_jets(self) -> int:
        return self.header["n_jets"]

    def jet_variables(self, prefix: str = "jet_") -> list[str]:
        """Names (without prefix) of the float per-jet variable columns, in message order."""
        skip = {"jet_latent", "jet_error"}
        return [n[len(prefix):] for n in self.columns if n.startswith(prefix) and n not in skip]

    def blob(self, name: str) -> dict[str, Any] | None:
        """Parse a JSON blob column (``manifest_json``, ``card_json``, ``anomaly_card_json``), or None if absent."""
        if name not in self.columns:
            return None
        return parse_blob(self.columns[name].tobytes(), name)


def parse_blob(raw: bytes, name: str = "blob", max_bytes: int = Limits.max_blob_bytes) -> dict[str, Any]:
    """A JSON object from a blob's bytes: UTF-8 without a byte-order mark, at most ``max_bytes``; else
    WireError ``bad_blob`` (``limit_exceeded`` when too large). ``json.loads`` alone would take UTF-16 and
    BOM-prefixed bytes, which the recording's readers then cannot read back."""
    if len(raw) > max_bytes:
        raise WireError("limit_exceeded", f"{name} of {len(raw)} bytes exceeds {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("bad_blob", f"{name} is not UTF-8") from None
    if text.startswith("\ufeff"):
        raise WireError("bad_blob", f"{name} starts with a byte-order mark")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise WireError("bad_blob", f"{name} is not JSON") from None
    if not isinstance(obj, dict):
        raise WireError("bad_blob", f"{name} is not a JSON object")
    return obj


def is_finite_number(value: Any) -> bool:
    """An int or a finite float, not a bool (msgpack gives plain ints, floats and bools)."""
    if type(value) is int:
        return True
    return type(value) is float and math.isfinite(value)


def blob_column(obj: Mapping[str, Any] | bytes) -> np.ndarray:
    """A JSON object (or already-serialised bytes) as a <u1 blob column."""
    raw = obj if isinstance(obj, bytes) else json.dumps(obj, sort_keys=True).encode()
    return np.frombuffer(raw, dtype="|u1")


_REQUIRED_HEADER = {"v": int, "kind": str, "run_id": int, "seq": int, "n_events": int, "n_jets": int,
                    "t_send": (int, float), "rate_hz": (int, float), "cols": list}
#: optional header fields: finite numbers when present (the encoder's stamps, the flags' threshold)
_OPTIONAL_NUMBERS = ("t_received", "t_encoded", "threshold")
#: optional header fields: strings when present (card names, the encoder's id)
_OPTIONAL_STRINGS = ("model", "anomaly_model", "encoder")


def encode(kind: str, run_id: int, seq: int, columns: Mapping[str, np.ndarray], *, t_send: float,
           rate_hz: float, **extra: Any) -> list[bytes | memoryview]:
    """Build the frames of one message. ``n_events``/``n_jets`` come from the ``n_jets`` column."""
    counts = columns["n_jets"]
    cols, frames = [], []
    for name, array in columns.items():
        if type(array) is not np.ndarray or not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        cols.append([name, array.dtype.str, list(array.shape)])
        frames.append(memoryview(array).cast("B") if array.size else b"")
    header = {"v": SCHEMA_VERSION, "kind": kind, "run_id": int(run_id), "seq": int(seq),
              "n_events": len(counts), "n_jets": int(counts.sum(dtype=np.uint64)),
              "t_send": float(t_send), "rate_hz": float(rate_hz), "cols": cols, **extra}
    return [msgpack.packb(header), *frames]


def _check_header(header: Any) -> dict[str, Any]:
    if not isinstance(header, dict):
        raise WireError("bad_header", "header is not a map")
    if header.get("v") != SCHEMA_VERSION:
        raise WireError("schema_version", f"schema version {header.get('v')!r}, expected {SCHEMA_VERSION}")
    for key, kind in _REQUIRED_HEADER.items():
        value = header.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise WireError("bad_header", f"header field {key!r} missing or of wrong type")
    if not 0 <= header["run_id"] < 1 << 64 or not 0 <= header["seq"] < 1 << 63:
        raise WireError("bad_header", "run_id or seq out of range")
    if not 0 <= header["n_events"] < 1 << 63 or not 0 <= header["n_jets"] < 1 << 63:
        raise WireError("bad_header", "n_events or n_jets out of range")
    if not is_finite_number(header["t_send"]) or not is_finite_number(header["rate_hz"]) or header["rate_hz"] < 0:
        raise WireError("non_finite", "t_send or rate_hz is not a finite number (rate_hz >= 0)")
    for key in _OPTIONAL_NUMBERS:
        if key in header and not is_finite_number(header[key]):
            raise WireError("non_finite", f"header field {key!r} is not a finite number")
    for key in _OPTIONAL_STRINGS:
        if key in header and type(header[key]) is not str:
            raise WireError("bad_header", f"header field {key!r} is not a string")
    return header


#: The numpy dtype of every allowed dtype string (built once: np.dtype() per column costs time).
_DTYPES = {name: np.dtype(name) for name in ALLOWED_DTYPES}


def _column_descriptor(desc: Any) -> tuple[str, np.dtype | None, list[int]]:
    """(name, numpy dtype or None if not allowed, shape) of a ``[name, dtype, shape]`` column descriptor.

    Raises WireError("bad_column") when the descriptor is malformed (exact types: msgpack makes plain
    lists, strings and ints; a bool is not a size)."""
    if type(desc) is list and len(desc) == 3:
        name, dtype, shape = desc
        if (type(name) is str and name and type(dtype) is str and type(shape) is list
                and all(type(d) is int and d >= 0 for d in shape)):
            return name, _DTYPES.get(dtype), shape
    raise WireError("bad_column", f"malformed column descriptor {desc!r:.80}")


def decode(frames: Sequence[bytes | memoryview], limits: Limits = Limits(),
           kinds: Iterable[str] = KINDS) -> Batch:
    """Parse and structurally check one multipart message; columns are zero-copy views."""
    if not frames:
        raise WireError("frame_count", "empty message")
    total = sum(len(f) for f in frames)
    if total > limits.max_bytes:
        raise WireError("limit_exceeded", f"message of {total} bytes exceeds {limits.max_bytes}")
    try:
        header = msgpack.unpackb(frames[0], raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise WireError("bad_header", f"header is not msgpack ({type(exc).__name__})") from None
    header = _check_header(header)
    if header["kind"] not in tuple(kinds):
        raise WireError("unknown_kind", f"kind {header['kind']!r}")
    cols = header["cols"]
    if len(cols) > limits.max_columns:
        raise WireError("limit_exceeded", f"{len(cols)} columns exceed {limits.max_columns}")
    if len(frames) != 1 + len(cols):
        raise WireError("frame_count", f"{len(frames)} frames for {len(cols)} columns")
    columns: dict[str, np.ndarray] = {}
    for desc, frame in zip(cols, frames[1:], strict=True):
        name, dt, shape = _column_descriptor(desc)
        if name in columns:
            raise WireError("bad_column", f"duplicate column {name!r}")
        if dt is None:
            raise WireError("unknown_dtype", f"column {name!r} has dtype {desc[1]!r}")
        if len(shape) == 1:
            expected = shape[0] * dt.itemsize
        elif len(shape) == 2:
            expected = shape[0] * shape[1] * dt.itemsize
        else:
            raise WireError("bad_column", f"column {name!r} has rank {len(shape)}")
        if len(frame) != expected:
            raise WireError("size_mismatch", f"column {name!r}: {len(frame)} bytes, header says {expected}")
        array = np.frombuffer(frame, dtype=dt)
        columns[name] = array if len(shape) == 1 else array.reshape(shape)
    return Batch(header, columns)


def _require(batch: Batch, names: Iterable[str]) -> None:
    for name in names:
        if name not in batch.columns:
            raise WireError("missing_column", f"column {name!r} is missing")


_BLOB_CACHE: dict[bytes, str] = {}  # sha256 of a valid blob -> its level (never the blob itself)


def _blob_level(raw: bytes, name: str = "blob", max_bytes: int = Limits.max_blob_bytes) -> str:
    """The ``level`` of a blob's JSON object (a card's: "jet" when absent); WireError as :func:`parse_blob`.
    Remembered by the sha256 of a few valid blobs (every message of a run repeats them)."""
    if len(raw) > max_bytes:
        raise WireError("limit_exceeded", f"{name} of {len(raw)} bytes exceeds {max_bytes}")
    key = hashlib.sha256(raw).digest()
    known = _BLOB_CACHE.get(key)
    if known is not None:
        return known
    level = str(parse_blob(raw, name, max_bytes).get("level", "jet"))
    if len(_BLOB_CACHE) >= 16:
        _BLOB_CACHE.clear()
    _BLOB_CACHE[key] = level
    return level


def scoring_level(batch: Batch) -> str:
    """The level of the model that scored and flagged a scored message's events: the ``level`` of its
    ``anomaly_card_json`` ("event" or "jet"); "jet" without that blob (the compression model flagged)."""
    blob = batch.columns.get("anomaly_card_json")
    return _blob_level(blob.tobytes(), "anomaly_card_json") if blob is not None else "jet"


def _check_jet_error_optional(batch: Batch, anomaly_level: str) -> None:
    """A scored message may lack ``jet_error`` only when an event-level model flagged its events
    (``anomaly_level``: the level of its anomaly card, as :func:`scoring_level` gives it)."""
    if "jet_error" not in batch.columns and anomaly_level != "event":
        raise WireError("missing_column", "column 'jet_error' is missing: per-jet scoring flags with it (only "
                        "a message flagged by an event-level model, anomaly card level 'event', may omit it)")


def validate(batch: Batch, limits: Limits = Limits()) -> Batch:
    """Check a decoded batch's meaning: identity columns, shapes against counts, limits, finiteness."""
    n_events, n_jets = batch.n_events, batch.n_jets
    if n_events > limits.max_events or n_jets > limits.max_jets:
        raise WireError("limit_exceeded", f"{n_events} events / {n_jets} jets beyond the limits")
    _require(batch, EVENT_ID_COLUMNS)
    for name, dtype in EVENT_ID_COLUMNS.items():
        col = batch.columns[name]
        if col.dtype.str != dtype or col.shape != (n_events,):
            raise WireError("count_mismatch", f"{name}: {col.dtype.str}{col.shape}, expected {dtype}({n_events},)")
    counts = batch.columns["n_jets"]
    if n_events and int(counts.max()) > limits.max_jets_per_event:
        raise WireError("limit_exceeded", f"an event has {int(counts.max())} jets, limit {limits.max_jets_per_event}")
    if int(counts.sum(dtype=np.uint64)) != n_jets:
        raise WireError("count_mismatch", f"per-event jet counts sum to {int(counts.sum())}, header says {n_jets}")
    n_flagged_jets = None
    if batch.kind == KIND_SCORED:
        if "threshold" not in batch.header:
            raise WireError("bad_header", "scored message without a numeric threshold")
        _require(batch, [*SCORED_EVENT_COLUMNS, "jet_latent"])
        flag = batch.columns["flag"]
        if flag.shape == (n_events,):
            n_flagged_jets = int(counts[flag.astype(bool)].sum(dtype=np.uint64))
    levels: dict[str, str] = {}  # blob name -> its card level, read once per blob
    for name, col in batch.columns.items():
        if name in BLOB_COLUMNS:
            if col.ndim != 1 or col.dtype.str != "|u1":
                raise WireError("bad_column", f"blob {name!r} must be 1-D bytes")
            levels[name] = _blob_level(col.tobytes(), name, limits.max_blob_bytes)
            continue
        if name in EVENT_ID_COLUMNS:
            continue
        if name in SCORED_EVENT_COLUMNS:
            want = (n_events,)
        elif name == "jet_latent":
            if col.ndim != 2 or col.shape[0] != n_jets or col.shape[1] < 1:
                raise WireError("count_mismatch", f"jet_latent shape {col.shape} for {n_jets} jets")
            if col.shape[1] > limits.max_latent_dim:
                raise WireError("limit_exceeded", f"jet_latent of {col.shape[1]} dimensions exceeds "
                                f"{limits.max_latent_dim}")
            want = col.shape
        elif name.startswith("raw_jet_"):
            if n_flagged_jets is None:
                raise WireError("bad_column", f"{name} on a message without valid flags")
            want = (n_flagged_jets,)
        elif name.startswith("jet_"):
            want = (n_jets,)
        else:
            raise WireError("bad_column", f"unknown column {name!r}")
        if col.shape != want:
            raise WireError("count_mismatch", f"{name} has shape {col.shape}, expected {want}")
        if col.dtype.kind == "f" and col.size and not np.isfinite(col).all():
            raise WireError("non_finite", f"{name} holds NaN or inf")
    if batch.kind == KIND_SCORED:
        _check_jet_error_optional(batch, levels.get("anomaly_card_json", "jet"))
    return batch


def parse_events(frames: Sequence[bytes | memoryview], limits: Limits = Limits()) -> Batch:
    """THE parser of an events message (producer -> encoder): structure, then meaning; WireError otherwise."""
    return validate(decode(frames, limits, kinds=(KIND_EVENTS,)), limits)


def parse_scored(frames: Sequence[bytes | memoryview], limits: Limits = Limits()) -> Batch:
    """THE parser of a scored message (encoder -> sink): structure, then meaning; WireError otherwise."""
    return validate(decode(frames, limits, kinds=(KIND_SCORED,)), limits)


def encode_ack(run_id: int, seqs: Iterable[int], full: bool = False) -> bytes:
    """One acknowledgement frame: these seqs of this run are durable (``full``: sink is out of space)."""
    return msgpack.packb({"v": SCHEMA_VERSION, "kind": KIND_ACK, "run_id": int(run_id),
                          "seqs": [int(s) for s in seqs], "full": bool(full)})


def decode_ack(frame: bytes, limits: Limits = Limits()) -> tuple[int, list[int], bool]:
    """Parse an acknowledgement frame into (run_id, seqs, full); raises WireError for anything else
    (every field's exact type and range checked: a malformed ack is a counted rejection, never a crash)."""
    if len(frame) > 16 + 10 * limits.max_ack_seqs:
        raise WireError("limit_exceeded", f"ack of {len(frame)} bytes")
    try:
        msg = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except Exception:  # msgpack raises several unrelated types on garbage
        raise WireError("bad_header", "ack is not msgpack") from None
    if type(msg) is not dict:
        raise WireError("bad_header", "ack is not a map")
    if msg.get("v") != SCHEMA_VERSION or type(msg.get("v")) is not int:
        raise WireError("schema_version", f"ack schema version {msg.get('v')!r:.20}, expected {SCHEMA_VERSION}")
    if msg.get("kind") != KIND_ACK:
        raise WireError("unknown_kind", f"kind {msg.get('kind')!r:.20}, expected {KIND_ACK!r}")
    run_id, seqs, full = msg.get("run_id"), msg.get("seqs"), msg.get("full", False)
    if type(run_id) is not int or not 0 <= run_id < 1 << 64:
        raise WireError("bad_header", "ack run_id missing or not a 64-bit unsigned integer")
    if type(seqs) is not list or not all(type(s) is int and 0 <= s < 1 << 63 for s in seqs):
        raise WireError("bad_header", "ack seqs not a list of non-negative integers")
    if len(seqs) > limits.max_ack_seqs:
        raise WireError("limit_exceeded", f"ack of {len(seqs)} seqs exceeds {limits.max_ack_seqs}")
    if type(full) is not bool:
        raise WireError("bad_header", "ack full is not a bool")
    return run_id, seqs, full
