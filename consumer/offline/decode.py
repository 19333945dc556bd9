"""Decode a recorded latent stream back to jet variables with the decoder its model card names.

The recording carries the model card (with the sha256 of every ONNX file). The decoder graph is
looked up by card name under ``models/zoo`` (or given with ``model_dir``); a decoder whose sha256
differs from the recorded one is refused unless ``force`` (then a warning is printed).

Output (``decoded.root``), readable like any input ntuple:

* TTree ``events``: ``run_id seq event_id file_index entry event_number event_score flag
  event_threshold`` (NaN for format-1 segments);
  jagged ``jet_<var>`` for each model variable (decoded, GeV), ``jet_error`` (only when the
  recording holds it in every segment; metadata ``jet_error`` says which) and ``jet_latent_<i>``
  sharing the counter ``njet``; jagged ``raw_jet_<var>`` (flagged events'
  raw columns, copied bit for bit; empty otherwise) sharing ``nraw_jet``.
* TObjStrings ``card``, ``anomaly_card`` (the model that scored and flagged, as recorded; format 1:
  the card) and ``manifest`` and ``metadata`` (JSON: what decoded it, which anomaly model flagged).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from emulator.runtime.defaults import ZOO
from emulator.runtime.progress import Progress
from emulator.runtime.wire import raw_column
from models.runtime.card import Level, ModelError, check_level
from models.runtime.hashing import sha256_file
from models.runtime.onnx_session import ort_session

DECODER = "decoder.onnx"
EVENT_COLUMNS = ("run_id", "seq", "event_id", "file_index", "entry", "event_number", "event_score", "flag")


class DecodeError(RuntimeError):
    """The recording cannot be decoded as asked (missing model, decoder mismatch, bad layout)."""


@dataclass
class DecodeSummary:
    """What a decode did."""

    out: str
    model_dir: str
    decoder_sha256: str
    recorded_sha256: str
    forced: bool
    n_events: int = 0
    n_jets: int = 0
    n_flagged: int = 0
    n_raw_jets: int = 0
    segments: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _require_jet_level(card: Mapping[str, Any], where: str | Path) -> None:
    """Refuse an event-level model: its decoder rebuilds an event vector, not the recorded jets."""

    try:
        check_level(card, Level.JET, where)
    except ModelError as exc:
        raise DecodeError(str(exc)) from exc


def locate_model(card: Mapping[str, Any], model_dir: str | Path | None = None) -> Path:
    """The model directory: ``model_dir`` if given, else ``models/zoo/<card name>``; per-jet models only."""
    _require_jet_level(card, "the recording's model card")
    if model_dir is not None:
        path = Path(model_dir)
        if not (path / DECODER).is_file():
            raise DecodeError(f"{path}: no {DECODER} in the given model directory")
        if (path / "card.json").is_file():
            _require_jet_level(json.loads((path / "card.json").read_text()), path)
        return path

    name = str(card.get("name", ""))
    path = ZOO / name
    if not name or not (path / DECODER).is_file():
        raise DecodeError(f"the recording's model {name!r} is not under {ZOO}; give --model DIR")
    return path


def check_decoder(model_path: Path, card: Mapping[str, Any], force: bool = False) -> tuple[str, str]:
    """(actual, recorded) sha256 of the decoder; raise DecodeError on mismatch unless ``force`` (then warn)."""
    recorded = str(card.get("files", {}).get(DECODER, ""))
    if not recorded:
        raise DecodeError(f"the recorded model card lists no sha256 for {DECODER}")
    actual = sha256_file(model_path / DECODER)
    if actual != recorded:
        msg = (f"{model_path / DECODER} has sha256 {actual}, but the recording was made with decoder "
               f"sha256 {recorded}")
        if not force:
            raise DecodeError(msg + "; refusing to decode (use --force to decode anyway)")
        print(f"WARNING: {msg}; decoding anyway because of --force: results may be wrong", file=sys.stderr)
    return actual, recorded


class Decoder:
    """ONNX Runtime session on ``decoder.onnx``: latent [N, k] -> reconstruction [N, n_vars] (GeV)."""

    def __init__(self, path: str | Path, threads: int = 1, max_rows: int = 65536):
        self.session = ort_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.latent_dim = self.session.get_inputs()[0].shape[1]
        self.n_outputs = self.session.get_outputs()[0].shape[1]
        self.max_rows = max_rows

    def __call__(self, latent: np.ndarray) -> np.ndarray:
        latent = np.ascontiguousarray(latent, dtype=np.float32)
        if len(latent) == 0:
            return np.zeros((0, int(self.n_outputs)), np.float32)
        parts = [self.session.run([self.output_name], {self.input_name: latent[i:i + self.max_rows]})[0]
                 for i in range(0, len(latent), self.max_rows)]
        return np.concatenate(parts).astype(np.float32, copy=False)


def jet_error_written(rec: Any) -> bool:
    """Whether decoded.root gets ``jet_error``: when every segment holds it. A recording holding it in some
    segments only (against the contract; `aetrig verify` reports it) is decoded without it, with a warning."""
    have = [s.has_jet_error for s in rec.segments]
    if any(have) and not all(have):
        print(f"WARNING: {sum(have)} of {len(have)} segments hold jet_error; decoding without it",
              file=sys.stderr)
    return all(have)


def _iter_recorded(rec: Any) -> Iterator[tuple[Any, ak.Array]]:
    yield from rec.iter_arrays()


def decode_recording(recording_dir: str | Path, out: str | Path, model_dir: str | Path | None = None,
                     force: bool = False, threads: int = 1, progress: bool = True) -> DecodeSummary:
    """Decode every segment of a recording into one ROOT file ``out``; return a summary."""
    import uproot

    from consumer.offline.rootwrite import create_tree
    from emulator.runtime.recording import RecordingError, open_recording

    try:
        rec = open_recording(recording_dir)
    except RecordingError as exc:
        raise DecodeError(str(exc)) from exc
    if not rec.card:
        raise DecodeError(f"{recording_dir}: the recording carries no model card")
    card = rec.card
    variables = [str(v["name"]) for v in card["variables"]]
    model_path, actual, recorded, decoder = open_decoder(card, rec.latent_dim, model_dir, force, threads)
    latent_dim = rec.latent_dim
    raw_vars = rec.raw_vars
    with_error = jet_error_written(rec)
    summary = DecodeSummary(str(out), str(model_path), actual, recorded, actual != recorded)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    metadata = {"tool": "aetrig decode", "recording": str(recording_dir), "model_dir": str(model_path),
                "decoder_sha256": actual, "recorded_decoder_sha256": recorded, "forced": actual != recorded,
                "variables": variables, "latent_dim": latent_dim,
                "anomaly_model": (rec.anomaly_card or {}).get("name"),
                "anomaly_level": (rec.anomaly_card or {}).get("level", Level.JET),
                "jet_error": "copied from the recording" if with_error else "not recorded"}
    manifests = {f"{run:016x}": m for run, m in rec.manifests.items()}
    tree = None
    with uproot.recreate(out) as f, Progress(len(rec), "decode", unit="events") as bar:
        f["card"] = json.dumps(card, sort_keys=True)
        f["anomaly_card"] = json.dumps(rec.anomaly_card or card, sort_keys=True)
        f["manifest"] = json.dumps(next(iter(rec.manifests.values()), {}), sort_keys=True)
        f["manifests"] = json.dumps(manifests, sort_keys=True)
        for seg, arrays in _iter_recorded(rec):
            branches = segment_branches(seg, arrays, decoder, variables, raw_vars, with_error)
            counts = np.asarray(arrays["njet"]).astype(np.int64)
            if raw_vars:
                summary.n_raw_jets += int(np.sum(ak.num(branches["raw_jet"], axis=1)))
            if tree is None:
                tree = create_tree(f, "events", branches)
            else:
                tree.extend(branches)
            summary.n_events += len(counts)
            summary.n_jets += int(counts.sum())
            summary.n_flagged += int(np.asarray(arrays["flag"]).astype(bool).sum())
            summary.segments.append(str(seg.path))
            if progress:
                bar.update(len(counts), jets=summary.n_jets)
        metadata.update({k: getattr(summary, k) for k in ("n_events", "n_jets", "n_flagged", "n_raw_jets")})
        f["metadata"] = json.dumps(metadata, sort_keys=True)
    return summary


def open_decoder(card: Mapping[str, Any], latent_dim: int, model_dir: str | Path | None = None, force: bool = False,
                 threads: int = 1) -> tuple[Path, str, str, Decoder]:
    """(model directory, actual and recorded decoder sha256, Decoder) for a recording's card: found as
    :func:`locate_model` does, checked by :func:`check_decoder`, and against the recording's latent size."""
    model_path = locate_model(card, model_dir)
    actual, recorded = check_decoder(model_path, card, force)
    decoder = Decoder(model_path / DECODER, threads=threads)
    if isinstance(decoder.latent_dim, int) and latent_dim and decoder.latent_dim != latent_dim:
        raise DecodeError(f"decoder takes latent size {decoder.latent_dim}, the recording has {latent_dim}")
    return model_path, actual, recorded, decoder


def segment_branches(seg: Any, arrays: ak.Array, decoder: Decoder, variables: list[str], raw_vars: list[str],
                     with_error: bool) -> dict[str, Any]:
    """The decoded.root branches of recorded events (one segment's, or a commit-aligned part of one): the
    per-event columns, ``jet`` (decoded ``variables``, ``error`` when ``with_error``, ``latent_<i>``) and, with
    ``raw_vars``, ``raw_jet`` (the flagged events' raw columns, bit for bit)."""
    from emulator.runtime.recording import JET_ERROR, THRESHOLD_BRANCH, jagged_record, segment_latent

    latent = segment_latent(seg, arrays)
    counts = np.asarray(arrays["njet"]).astype(np.int64)
    reco = decoder(latent)
    if reco.shape[1] != len(variables):
        raise DecodeError(f"decoder outputs {reco.shape[1]} variables, the recorded card names {len(variables)}")
    branches: dict[str, Any] = {c: np.asarray(arrays[c]) for c in EVENT_COLUMNS}
    branches[THRESHOLD_BRANCH] = (np.asarray(arrays[THRESHOLD_BRANCH]) if THRESHOLD_BRANCH in arrays.fields
                                  else np.full(len(arrays), np.nan, np.float32))
    jet_fields = {v: np.ascontiguousarray(reco[:, i]) for i, v in enumerate(variables)}
    if with_error:
        jet_fields["error"] = np.asarray(ak.flatten(arrays[JET_ERROR], axis=None)).astype(np.float32)
    for i in range(latent.shape[1]):
        jet_fields[f"latent_{i}"] = np.ascontiguousarray(latent[:, i])
    branches["jet"] = jagged_record(counts, jet_fields)
    if raw_vars:
        n_raw = np.asarray(arrays["nraw_jet"]).astype(np.int64) if "nraw_jet" in arrays.fields \
            else np.zeros(len(arrays), np.int64)
        raw_fields = {}
        for var in raw_vars:
            name = raw_column(var)
            if name not in arrays.fields:
                if n_raw.sum():
                    raise DecodeError(f"{seg.path}: flagged events lack {name}")
                raw_fields[var] = np.zeros(0, np.float32)
            else:
                raw_fields[var] = np.asarray(ak.flatten(arrays[name], axis=None))
        branches["raw_jet"] = jagged_record(n_raw, raw_fields)
    return branches
