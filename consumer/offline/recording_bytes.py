"""Every byte a recording holds on disk, by what it is for, and the ratio to lossless coding of the same jets.

A segment's bytes split into six categories that add up to its file size exactly:

- ``latents``: the coded jets: ``jet_latent_<i>`` (or the ANS-coded ``latent_ans_bytes`` and its counter)
  and the jet counter ``njet``;
- ``identity``: ``run_id seq event_id file_index entry event_number`` (and, format 3, their stored deltas);
- ``scores_flags``: ``event_score flag event_threshold`` and ``jet_error``; in format 3 with the event block
  also ``event_ans_bytes``, which codes the scores together with ``njet`` (emulator/runtime/compact_columns.py);
- ``raw``: the raw copies of flagged events (``raw_jet_<var>`` and their counter ``nraw_jet``; format 3:
  ``raw_values`` and ``nraw``);
- ``cards_metadata``: the TObjStrings ``format_version card anomaly_card manifest layout`` (their keys included);
- ``root_overhead``: the rest of the file: basket and key headers, the TTree's metadata, streamers, directory,
  free list (file size minus the branches' compressed bytes minus the metadata keys).

Branch sizes are uproot's ``compressed_bytes`` (the baskets' compressed payloads). The reference is study 2's:
the best codec of :data:`consumer.offline.stream_codecs.LOSSLESS` coding the same jets (their count and the
compression model's variables as float32) in blocks of one sink commit
(:class:`consumer.offline.studies.rate_distortion.LosslessConfig`), read back from the input files the run
manifest names (by file_index and entry). Where the inputs are not at hand the split is given alone, with the
reason.

Typical use::

    split = recording_bytes("runs/demo")              # categories, events, jets, per event, per jet
    ref = lossless_reference("runs/demo", max_events=200_000)
    print(byte_text(byte_report("runs/demo")))
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

CATEGORIES = ("latents", "identity", "scores_flags", "raw", "cards_metadata", "root_overhead")
LABELS = {"latents": "latents", "identity": "identity", "scores_flags": "scores and flags", "raw": "raw copies",
          "cards_metadata": "cards and metadata", "root_overhead": "ROOT overhead"}
IDENTITY = ("run_id", "seq", "event_id", "file_index", "entry", "event_number")
SCORES = ("event_score", "flag", "event_threshold", "jet_error")
METADATA_KEYS = ("format_version", "card", "anomaly_card", "manifest", "layout")
#: events whose jets the lossless reference codes by default (the first ones of the recording)
REFERENCE_EVENTS = 200_000


def branch_category(name: str) -> str:
    """The category of one branch of a segment's ``events`` tree."""
    base = name.removesuffix("_delta")
    if base in IDENTITY:
        return "identity"
    if base in SCORES or base.startswith("event_score"):
        return "scores_flags"
    if base.startswith(("raw_", "nraw")):
        return "raw"
    if base in ("event_ans_bytes", "nevent_ans"):
        return "scores_flags"
    if base.startswith(("jet_latent", "latent_ans", "nlatent_ans")) or base == "njet":
        return "latents"
    if base.startswith("jet_"):
        return "scores_flags"
    return "root_overhead"


def segment_bytes(path: str | Path) -> dict[str, int]:
    """Bytes of one segment file by category (they add up to the file size)."""
    import uproot

    path = Path(path)
    out = dict.fromkeys(CATEGORIES, 0)
    size = os.path.getsize(path)
    with uproot.open(path) as file:
        for name in METADATA_KEYS:
            if name in file:
                out["cards_metadata"] += int(file.key(name).fNbytes)
        if "events" in file:
            for branch in file["events"].branches:
                out[branch_category(branch.name)] += int(branch.compressed_bytes)
    out["root_overhead"] += size - sum(out.values())
    return out


def recording_bytes(directory: str | Path) -> dict[str, Any]:
    """The byte split of a recording: bytes, per event and per jet by category, with the totals."""
    from emulator.runtime.recording import read_segment, segment_jets, segment_paths

    totals = dict.fromkeys(CATEGORIES, 0)
    n_events = n_jets = 0
    paths = segment_paths(directory)
    for path in paths:
        for key, value in segment_bytes(path).items():
            totals[key] += value
        segment = read_segment(path)
        n_events += segment.n_entries
        n_jets += segment_jets(segment)
    total = sum(totals.values())
    return {"segments": len(paths), "events": n_events, "jets": n_jets, "bytes": total, "by_category": totals,
            "per_event": {k: v / n_events if n_events else None for k, v in {**totals, "total": total}.items()},
            "per_jet": {k: v / n_jets if n_jets else None for k, v in {**totals, "total": total}.items()}}


def distinct_events(file_index: np.ndarray, entry: np.ndarray,
                    seen: set[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The (file_index, entry) pairs not in ``seen`` (added to it), each once, in order of first appearance: a
    looped input's repeats are the same jets, which a lossless codec would otherwise find again in its block."""
    keep = []
    for i, key in enumerate(zip(file_index.tolist(), entry.tolist(), strict=True)):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return file_index[keep], entry[keep]


def lossless_reference(directory: str | Path, max_events: int | None = REFERENCE_EVENTS,
                       search_dirs: tuple[str, ...] = ()) -> dict[str, Any]:
    """Study 2's best lossless codec on the recorded jets (their count and the model's variables, float32).

    The jets come from the input files of the run manifests, by (file_index, entry), for the distinct input
    events among the first ``max_events`` recorded events (all with None); ``events`` says how many.
    ``available`` False with a ``reason`` when the recording
    or its inputs cannot be read."""
    from consumer.offline import stream_codecs
    from consumer.offline.join import JoinError, join_inputs
    from consumer.offline.studies.rate_distortion import BLOCK_EVENTS, LosslessConfig, nbytes, split_blocks
    from emulator.runtime.recording import RecordingError, open_recording

    try:
        rec = open_recording(directory)
        variables = [v["name"] for v in (rec.card or {}).get("variables", [])]
        if not variables:
            raise RecordingError("the recording's card names no variables")
        parts, counts = [], []
        seen: dict[int, set[tuple[int, int]]] = {}
        left = max_events
        for seg, arrays in rec.iter_arrays(["run_id", "file_index", "entry"]):
            take = len(arrays) if left is None else min(left, len(arrays))
            if take <= 0:
                break
            run = np.asarray(arrays["run_id"])[:take]
            for run_id in np.unique(run).tolist():
                sel = run == run_id
                manifest = rec.manifests.get(int(run_id)) or seg.manifest or {}
                file_index, entry = distinct_events(np.asarray(arrays["file_index"])[:take][sel],
                                                    np.asarray(arrays["entry"])[:take][sel], seen.setdefault(run_id,
                                                                                                           set()))
                jets = join_inputs(file_index, entry, manifest, variables,
                                   search_dirs=(*search_dirs, str(Path(directory).parent)), verify_sha256=True)
                import awkward as ak

                counts.append(np.asarray(ak.num(jets[variables[0]])))
                parts.append(np.stack([np.asarray(ak.flatten(jets[v]), np.float32) for v in variables], axis=1))
            left = None if left is None else left - take
    except (RecordingError, JoinError, OSError, KeyError, ValueError) as exc:
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
    x = np.concatenate(parts) if parts else np.zeros((0, len(variables)), np.float32)
    count = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    blocks = split_blocks(x, count, BLOCK_EVENTS)
    by_codec = {}
    for name in stream_codecs.LOSSLESS:
        if not stream_codecs.applicable(name, np.float32):
            continue
        cfg = LosslessConfig(name, tuple(variables))
        try:
            by_codec[name] = sum(sum(nbytes(cfg.encode(b)).values()) for b in blocks)
        except ImportError as exc:  # numcodecs, zfpy: the compress extra, absent from a runtime-only install
            return {"available": False, "reason": f"codec {name} needs {exc.name or exc} (pip install "
                                                  "'aetrig[compress]'), not installed here"}
    best = min(by_codec, key=by_codec.__getitem__)
    n_jets = len(x)
    return {"available": True, "variables": variables, "events": len(count), "jets": int(n_jets),
            "block_events": BLOCK_EVENTS, "best_codec": best,
            "bytes_per_jet": by_codec[best] / n_jets if n_jets else None,
            "bytes_per_jet_by_codec": {k: v / n_jets if n_jets else None for k, v in by_codec.items()}}


def byte_report(directory: str | Path, max_events: int | None = REFERENCE_EVENTS,
                with_reference: bool = True) -> dict[str, Any]:
    """The recording's byte split plus the lossless reference and the ratio (reference bytes / recording bytes
    per jet: how many times fewer bytes the recording takes)."""
    split = recording_bytes(directory)
    ref = lossless_reference(directory, max_events) if with_reference else {"available": False,
                                                                            "reason": "not asked for"}
    per_jet = split["per_jet"]["total"]
    ratio = ref["bytes_per_jet"] / per_jet if ref.get("available") and per_jet and ref["bytes_per_jet"] else None
    return {**split, "lossless_reference": ref, "ratio_vs_best_lossless": ratio}


def recording_byte_report(directory: str | Path, lossless_events: int) -> dict[str, Any] | None:
    """:func:`byte_report` with the lossless reference on the first ``lossless_events`` events (none with 0) for
    the run summary and `aetrig verify`: None when there are no segments, ``{"error": ...}`` when they cannot be
    read."""
    from emulator.runtime.recording import RecordingError, segment_paths

    if not segment_paths(directory):
        return None
    try:
        return byte_report(directory, max_events=lossless_events or None, with_reference=lossless_events > 0)
    except Exception as exc:  # uproot raises many kinds on a damaged file; the split is a report, never a crash
        if not isinstance(exc, (RecordingError, OSError, ValueError, KeyError, TypeError)):
            raise
        return {"error": f"{type(exc).__name__}: {exc}"}


def byte_text(report: Mapping[str, Any]) -> str:
    """One line: bytes per jet and per event, the split per jet, and the ratio to the best lossless codec."""
    if "error" in report:
        return f"not counted: {report['error']}"
    per_jet, per_event = report["per_jet"], report["per_event"]
    if not report.get("jets"):
        return f"{report['bytes']:,} bytes, no jets recorded"
    split = ", ".join(f"{LABELS[k]} {per_jet[k]:.3f}" for k in CATEGORIES)
    text = (f"{per_jet['total']:.2f} B/jet, {per_event['total']:.2f} B/event over {report['jets']:,} jets "
            f"({split} B/jet)")
    ref = report.get("lossless_reference") or {}
    if ref.get("available"):
        text += (f"; best lossless {ref['best_codec']} {ref['bytes_per_jet']:.2f} B/jet on the same jets "
                 f"({ref['events']:,} distinct input events): {report['ratio_vs_best_lossless']:.2f}x fewer bytes")
    else:
        text += f"; no lossless comparison: {ref.get('reason', 'inputs not at hand')}"
    return text
