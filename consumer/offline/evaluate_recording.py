"""Recorded event scores as one more row of `aetrig evaluate`.

The recording's ``event_score`` per event is placed on the evaluated samples through the run
manifest: ``file_index`` names an input file (matched to a sample file by its sha256, or by its
resolved path when the manifest has no sha256) and ``entry`` is the event in it. Events of files
that are not among the samples are counted and left out; an event recorded more than once (a run
that looped over its input) is used once. The recording's anomaly card (the model that scored and
flagged the events: an event-level model, or for per-jet scoring and format-1 recordings the
compression model) names the model.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from consumer.offline.evaluate import ScoreSet
from consumer.offline.studies.common import Sample
from emulator.runtime.compact_columns import FLOAT32_MANTISSA_BITS
from models.runtime.hashing import sha256_file
from producer.reader import ReaderSpec

SHA_CHECKED = ("scorer.onnx", "encoder.onnx")
FULL_BITS = FLOAT32_MANTISSA_BITS  # a score kept whole


class RecordingMismatch(ValueError):
    """A recording that cannot be evaluated as asked (no card, mixed models, not the model given for it)."""


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, hashed once per real path, size and modification time in this process (the join
    and the reading of a recording's inputs both need it)."""
    st = os.stat(path)
    return _sha256(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=1024)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def card_identity(card: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(name, sha256 of the scorer and encoder graphs): what makes two cards the same model."""
    files = card.get("files") or {}
    return str(card.get("name")), tuple((f, str(files.get(f, ""))) for f in SHA_CHECKED)


def check_model(card: Mapping[str, Any], model, where: str) -> None:
    """Raise RecordingMismatch unless ``model`` (a ModelDir) is the model the recording's card describes."""
    name, recorded = card_identity(card)
    _, given = card_identity(model.card)
    if name != model.name or recorded != given:
        diff = [f"{f}: recorded {r[:12] or '-'}, given {g[:12] or '-'}"
                for (f, r), (_, g) in zip(recorded, given, strict=True) if r != g]
        raise RecordingMismatch(f"{where} was made with model {name!r}, which is not the model given for it "
                                f"({model.path}: {model.name!r}" + (f"; sha256 {'; '.join(diff)}" if diff else "")
                                + "); give the model the recording was made with, or leave --recording-model out")


def _file_table(samples: Mapping[str, Sample]) -> tuple[dict[str, tuple[str, int, int]],
                                                      dict[str, tuple[str, int, int]]]:
    """{sha256: (sample, offset, entries)} and {real path: (...)} over every file of every sample (its events
    as read: every entry, the reader drops jets, never events)."""
    by_sha, by_path = {}, {}
    for name, s in samples.items():
        offsets = np.cumsum([0, *s.file_events[:-1]]).astype(int)
        for f, offset, n in zip(s.files, offsets, s.file_events, strict=True):
            where = (name, int(offset), int(n))
            by_sha[file_sha256(f)] = where
            by_path[os.path.realpath(f)] = where
    return by_sha, by_path


@dataclass(frozen=True)
class RecordedInput:
    """One input file of a recording's runs: where it is now (sha256-checked), and how the producer read it."""

    path: str
    sha256: str | None
    spec: ReaderSpec  # the run's input format, unit, derive_e, jet cap and the file's recorded layout


def recorded_layout(spec: ReaderSpec, layout: Mapping[str, Any], path: str) -> ReaderSpec:
    """``spec`` reading only the tree (TTree or RNTuple) and branches a manifest recorded for file ``path``."""
    from consumer.offline.join import JoinError

    tree, branch_map = layout.get("tree"), layout.get("branch_map")
    if not isinstance(tree, str) or not isinstance(branch_map, Mapping):
        raise JoinError(f"input file {path}: malformed layout in the run manifest: {dict(layout)!r}")
    return replace(spec, tree=tree, branch_map=dict(branch_map), layouts=())


def recorded_inputs(manifests: Iterable[Mapping[str, Any]], search_dirs: Sequence[str] = (),
                    find: bool = True) -> list[RecordedInput]:
    """Every input file of the runs once, found where the manifest says (or, by the same relative path or name,
    under ``search_dirs``) and still of the recorded sha256, with the producer's reading spec from the manifest's
    settings (consumer.offline.join.manifest_reader_spec) and the layout it recorded for the file (older manifests:
    the layout is found again file by file). JoinError when a file is missing or changed, or read
    with different settings by two runs. ``find`` False: each path as recorded, not looked for or checked."""
    from consumer.offline.join import JoinError, manifest_inputs, manifest_reader_spec, resolve_path

    found: dict[str, RecordedInput] = {}
    for manifest in manifests:
        spec = manifest_reader_spec(manifest)
        for info in manifest_inputs(manifest):
            path = resolve_path(info.path, search_dirs) if find else info.path
            if find and info.sha256 and file_sha256(path) != info.sha256:
                raise JoinError(f"{path}: sha256 differs from the run manifest (file changed since recording)")
            own = spec if info.layout is None else recorded_layout(spec, info.layout, info.path)
            key = info.sha256 or os.path.realpath(path)
            if key in found and found[key].spec != own:
                raise JoinError(f"input file {info.path} was read with different settings by the recording's runs")
            found.setdefault(key, RecordedInput(path, info.sha256, own))
    return list(found.values())


def recording_set(directories: Sequence[str], background: Sample, signals: Mapping[str, Sample],
                  model=None) -> ScoreSet:
    """One ScoreSet from the event scores of one or more recordings made with the same model."""
    from consumer.offline.join import manifest_inputs
    from emulator.runtime.recording import open_recording

    samples = {background.name: background, **signals}
    if len(set(samples)) != 1 + len(signals):
        raise RecordingMismatch(f"a signal is named like the background ({background.name!r})")
    recs = [open_recording(d) for d in directories]
    for d, rec in zip(directories, recs, strict=True):
        if not rec.anomaly_card:
            raise RecordingMismatch(f"recording {d} carries no model card")
    ids = {card_identity(rec.anomaly_card) for rec in recs}
    if len(ids) > 1:
        raise RecordingMismatch(f"recordings {list(directories)} were made with different models "
                                f"{sorted(i[0] for i in ids)}; give them one at a time")
    card = recs[0].anomaly_card
    if model is not None:
        check_model(card, model, f"recording {directories[0]}")
    by_sha, by_path = _file_table(samples)
    scores = {n: np.full(s.n_events, np.nan) for n, s in samples.items()}
    stats = {"n_recorded": 0, "n_not_in_samples": 0, "n_repeats": 0, "max_repeat_difference": 0.0}
    for d, rec in zip(directories, recs, strict=True):
        ev = rec.events()
        stats["n_recorded"] += len(ev["event_score"])
        for run_id in np.unique(ev["run_id"]):
            manifest = rec.manifests.get(int(run_id))
            if manifest is None:
                raise RecordingMismatch(f"recording {d}: run {int(run_id):016x} has no manifest")
            inputs = manifest_inputs(manifest)
            in_run = ev["run_id"] == run_id
            for idx in np.unique(ev["file_index"][in_run]):
                sel = in_run & (ev["file_index"] == idx)
                info = inputs[int(idx)] if int(idx) < len(inputs) else None
                where = None if info is None else (by_sha.get(info.sha256) if info.sha256 else
                                                   by_path.get(os.path.realpath(info.path)))
                if where is None:
                    stats["n_not_in_samples"] += int(sel.sum())
                    continue
                name, offset, n_entries = where
                entry = ev["entry"][sel].astype(np.int64)
                value = ev["event_score"][sel].astype(np.float64)
                target = offset + entry
                ok = (entry < n_entries) & (target < len(scores[name]))
                stats["n_not_in_samples"] += int((~ok).sum())
                target, value = target[ok], value[ok]
                first = np.unique(target, return_index=True)[1]
                fresh = np.isnan(scores[name][target[first]])
                scores[name][target[first][fresh]] = value[first][fresh]
                stats["n_repeats"] += len(target) - int(fresh.sum())
                if len(target):
                    diff = float(np.nanmax(np.abs(scores[name][target] - value)))
                    stats["max_repeat_difference"] = max(stats["max_repeat_difference"], diff)
    stats["n_scored"] = {n: int(np.isfinite(v).sum()) for n, v in scores.items()}
    stats["n_events"] = {n: s.n_events for n, s in samples.items()}
    name, version = str(card.get("name")), card.get("version")
    covered = ", ".join(f"{n} {stats['n_scored'][n]}/{stats['n_events'][n]}" for n in samples)
    note = (f"the recording's card names model {name!r} (version {version}, scorer sha256 "
            f"{str((card.get('files') or {}).get('scorer.onnx', ''))[:12]}); events scored: {covered}; "
            f"{stats['n_not_in_samples']} recorded events are from other files or entries, "
            f"{stats['n_repeats']} repeats")
    return ScoreSet(f"recording ({name})", "recording", name, scores[background.name],
                    {n: scores[n] for n in signals}, note=note,
                    extra={"recordings": [str(d) for d in directories], "card_name": name, "card_version": version,
                           "card_files": dict(card_identity(card)[1]), "join": stats,
                           "score_bits": min((int((seg.layout or {}).get("score_bits", FULL_BITS)) for rec in recs
                                              for seg in rec.segments), default=FULL_BITS)})


def agreement(recorded: ScoreSet, offline: ScoreSet) -> dict[str, float | int]:
    """Largest difference between recorded and offline scores of the same model on the events both have."""
    rec = np.concatenate([recorded.background, *recorded.signals.values()])
    off = np.concatenate([offline.background, *(offline.signals[n] for n in recorded.signals)])
    both = np.isfinite(rec) & np.isfinite(off)
    d = np.abs(rec[both] - off[both])
    rel = d / np.maximum(np.abs(off[both]), 1e-12)
    return {"n_events": int(both.sum()), "max_abs_difference": float(d.max()) if d.size else float("nan"),
            "max_rel_difference": float(rel.max()) if rel.size else float("nan")}
