"""Checks of a recording: every file readable, every seq present, no duplicate, counts consistent.

Scores and flags are checked against the model that flagged (the segment's ``anomaly_card``; format 1:
its ``card``): flag == (event_score > event_threshold) in float32 (format 2); with per-jet scoring
(a ``jet``-level anomaly card) also event_score == max jet_error and zero-jet events never flagged;
an event-level model scores zero-jet events too and flags them by the same rule.

``jet_error`` is checked where it is recorded (layout ``jet_error`` true, or absent in older
recordings): counts against ``njet``, finite. A segment without it is good only when an event-level
model flagged its events; a recording holds it in every segment or in none.

:func:`verify_recording` returns a :class:`VerifyResult` whose ``problems`` list says, one line
each, what is wrong (empty when the recording is good), and ``stats`` with what was checked.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from emulator.runtime.recording import (
    EVENT_BRANCHES,
    FORMAT_VERSION_1,
    JET_ERROR,
    LATENT_ANS_BRANCH,
    READABLE_VERSIONS,
    THRESHOLD_BRANCH,
    RecordingError,
    Segment,
    foreign_segments,
    model_identity,
    read_segment,
    read_segment_arrays,
    segment_latent,
    segment_paths,
    unfinished_commits,
)
from models.runtime.card import Level

MAX_LISTED = 20


@dataclass
class VerifyResult:
    problems: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _ranges(values: np.ndarray) -> str:
    """Compact text of sorted integers: '3, 7-9, 12' (at most MAX_LISTED items)."""
    values = np.asarray(values, dtype=np.int64)
    if not len(values):
        return ""
    breaks = np.flatnonzero(np.diff(values) != 1)
    starts = np.concatenate([[values[0]], values[breaks + 1]])
    ends = np.concatenate([values[breaks], [values[-1]]])
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts, ends, strict=True)]
    more = f" ... (+{len(parts) - MAX_LISTED} more ranges)" if len(parts) > MAX_LISTED else ""
    return ", ".join(parts[:MAX_LISTED]) + more


def check_segment(seg: Segment, arrays: ak.Array, problems: list[str]) -> None:
    """Consistency inside one segment: names, branches, counts, scores, flags, finiteness."""
    name = seg.path.name
    if seg.format_version not in READABLE_VERSIONS:
        problems.append(f"{name}: format_version {seg.format_version!r}, expected one of {READABLE_VERSIONS}")
    v2 = seg.format_version != FORMAT_VERSION_1  # format 2 and later: event_threshold and anomaly_card
    objects = [("card", seg.card), ("manifest", seg.manifest), ("layout", seg.layout)]
    for key, value in objects + ([("anomaly_card", seg.anomaly_card)] if v2 else []):
        if not value:
            problems.append(f"{name}: no {key} object in the file")
    if not seg.layout or not len(arrays):
        return
    fields = set(arrays.fields)
    k = seg.latent_dim
    coded = seg.layout.get("latent_codec", "none") != "none"
    card = seg.scoring_card or {}
    per_jet = card.get("level", Level.JET) == Level.JET  # a recorded card, read as it is
    if not check_jet_error_layout(name, seg, fields, per_jet, problems):
        return
    wanted = [*EVENT_BRANCHES, *([THRESHOLD_BRANCH] if v2 else []), "njet", *([JET_ERROR] if seg.has_jet_error else []),
              *([LATENT_ANS_BRANCH] if coded else (f"jet_latent_{i}" for i in range(k)))]
    missing = [b for b in wanted if b not in fields]
    if missing:
        problems.append(f"{name}: missing branches {missing}")
        return
    if coded:
        try:
            n_decoded = len(segment_latent(seg, arrays))
        except Exception as exc:
            problems.append(f"{name}: coded latents do not decode: {type(exc).__name__}: {exc}")
        else:
            if n_decoded != int(np.asarray(arrays["njet"]).sum()):
                problems.append(f"{name}: {n_decoded} decoded latents for {int(np.asarray(arrays['njet']).sum())} jets")
    run_ids = np.asarray(arrays["run_id"])
    if len(run_ids) and not (run_ids == seg.run_id).all():
        problems.append(f"{name}: holds events of run(s) {sorted(set(run_ids.tolist()) - {seg.run_id})} "
                        f"besides its own run {seg.run_id:016x}")
    njet = np.asarray(arrays["njet"]).astype(np.int64)
    flat_error = recorded_jet_error(name, arrays, njet, problems) if seg.has_jet_error else None
    flag = np.asarray(arrays["flag"]).astype(bool)
    score = np.asarray(arrays["event_score"])
    if not np.isfinite(score).all():
        problems.append(f"{name}: event_score holds NaN or inf")
    nonempty = njet > 0
    if per_jet and flat_error is not None:
        # the score is the max error over the jets inside the model's training domain (card domain, which the
        # recording cannot re-apply to unflagged events: their pt is not recorded): 0, or one of the event's
        # jet errors, never above their max; with every jet inside, exactly max(jet_error)
        expected = np.zeros(len(njet), np.float32)
        equal_one = score == 0
        if nonempty.any():
            starts = (np.cumsum(njet) - njet)[nonempty]
            expected[nonempty] = np.maximum.reduceat(flat_error, starts)
            hit = np.isclose(flat_error, np.repeat(score, njet), rtol=1e-6, atol=0).astype(np.int64)
            equal_one[nonempty] |= np.add.reduceat(hit, starts) > 0
        bad = np.flatnonzero(~equal_one | (score > expected * (1 + 1e-6)))
        if len(bad):
            problems.append(f"{name}: event_score is not the max(jet_error) of a selection of the event's jets for "
                            f"{len(bad)} events (first entry {bad[0]})")
        if (flag & ~nonempty).any():
            problems.append(f"{name}: {int((flag & ~nonempty).sum())} zero-jet events are flagged")
    if v2 and THRESHOLD_BRANCH in fields:
        check_flags(name, card, score.astype(np.float32), np.asarray(arrays[THRESHOLD_BRANCH]), flag, nonempty,
                    per_jet, problems)
    if "nraw_jet" in fields:
        nraw = np.asarray(arrays["nraw_jet"]).astype(np.int64)
        bad_raw = np.flatnonzero(nraw != njet * flag)
        if len(bad_raw):
            problems.append(f"{name}: {len(bad_raw)} events whose raw jet count is not njet for flagged "
                            f"/ 0 for unflagged (first entry {bad_raw[0]})")
    elif flag.any():
        problems.append(f"{name}: flagged events but no raw_jet_* branches")


def check_jet_error_layout(name: str, seg: Segment, fields: set[str], per_jet: bool, problems: list[str]) -> bool:
    """A segment without jet_error must be flagged by an event-level model and hold no such branch; False when
    the segment's scores cannot be checked (per-jet scoring without jet_error)."""
    if seg.has_jet_error:
        return True
    if JET_ERROR in fields:
        problems.append(f"{name}: the layout says no {JET_ERROR}, but the segment has a {JET_ERROR} branch")
    if per_jet:
        problems.append(f"{name}: no {JET_ERROR} recorded, but its events were flagged by per-jet scoring (anomaly "
                        f"card {(seg.scoring_card or {}).get('name')!r}), which needs it: scores cannot be checked")
        return False
    return True


def recorded_jet_error(name: str, arrays: ak.Array, njet: np.ndarray, problems: list[str]) -> np.ndarray:
    """The flat jet_error of a segment that holds it, its counts checked against njet and its values finite."""
    error = arrays[JET_ERROR]
    flat = np.asarray(ak.flatten(error, axis=None))
    if not np.array_equal(np.asarray(ak.num(error, axis=1)), njet):
        problems.append(f"{name}: {JET_ERROR} counts disagree with njet")
    if not np.isfinite(flat).all():
        problems.append(f"{name}: {JET_ERROR} holds NaN or inf")
    return flat


def check_flags(name: str, card: dict[str, Any], score: np.ndarray, threshold: np.ndarray, flag: np.ndarray,
                nonempty: np.ndarray, per_jet: bool, problems: list[str]) -> None:
    """flag == (event_score > event_threshold) in float32; per-jet scoring never flags a zero-jet event."""
    if not np.isfinite(threshold).all():
        problems.append(f"{name}: {THRESHOLD_BRANCH} holds NaN or inf")
        return
    expected = score > threshold.astype(np.float32)
    if per_jet:
        expected &= nonempty
    bad = np.flatnonzero(expected != flag)
    if len(bad):
        problems.append(f"{name}: {len(bad)} flags disagree with event_score > {THRESHOLD_BRANCH} of anomaly model "
                        f"{card.get('name')!r} (first entry {bad[0]}: score {score[bad[0]]:.7g}, threshold "
                        f"{threshold[bad[0]]:.7g}, flag {int(flag[bad[0]])})")


def _summary_expectation(directory: Path) -> tuple[int | None, int | None, str | None]:
    """events.produced and batches.sent of an `aetrig run` summary.json next to the recording, if any."""
    for candidate in (directory / "summary.json", directory.parent / "summary.json"):
        if candidate.is_file():
            try:
                summary = json.loads(candidate.read_text())
                return int(summary["events"]["produced"]), int(summary["batches"]["sent"]), str(candidate)
            except (ValueError, KeyError, TypeError):
                return None, None, None
    return None, None, None


def verify_recording(directory: str | Path, expect_events: int | None = None,
                     expect_batches: int | None = None, use_summary: bool = True) -> VerifyResult:
    """Check a recording directory; see the module docstring."""
    directory = Path(directory)
    result = VerifyResult()
    problems = result.problems
    paths = segment_paths(directory)
    if not paths:
        problems.append(f"{directory}: no segment files under segments/")
        return result
    # a sink killed mid-commit (or still writing): read-only, a complete journal is overlaid in memory
    recovered = unfinished_commits(directory)
    for name, state in recovered.items():
        if state.startswith("refused"):
            problems.append(f"{name}: {state}")
    for path in foreign_segments(directory):
        problems.append(f"{path.name}: not a regular file of the recording (a symlink?): not read")
    seqs_by_run: dict[int, list[np.ndarray]] = defaultdict(list)
    event_ids_by_run: dict[int, list[np.ndarray]] = defaultdict(list)
    seq_segments: dict[tuple[int, int], list[str]] = defaultdict(list)
    identities: set[tuple[str, str]] = set()
    anomaly_identities: set[tuple[str, str]] = set()
    versions: set[str | None] = set()
    with_jet_error: list[bool] = []
    n_events = n_jets = n_flagged = n_bytes = 0
    for path in paths:
        n_bytes += path.stat().st_size
        try:
            seg = read_segment(path)
            arrays = read_segment_arrays(seg)
        except RecordingError as exc:
            problems.append(f"{path.name}: unreadable: {exc}")
            continue
        if seg.card:
            identities.add(model_identity(seg.card))
        if seg.scoring_card:
            anomaly_identities.add(model_identity(seg.scoring_card))
        versions.add(seg.format_version)
        with_jet_error.append(seg.has_jet_error)
        check_segment(seg, arrays, problems)
        if not len(arrays) or "seq" not in arrays.fields:
            continue
        seq = np.asarray(arrays["seq"]).astype(np.int64)
        run = np.asarray(arrays["run_id"])
        for run_id in np.unique(run).tolist():
            sel = run == run_id
            unique_seqs = np.unique(seq[sel])
            seqs_by_run[run_id].append(unique_seqs)
            for s in unique_seqs.tolist():
                seq_segments[(run_id, s)].append(path.name)
            event_ids_by_run[run_id].append(np.asarray(arrays["event_id"])[sel])
        n_events += len(arrays)
        n_jets += int(np.asarray(arrays["njet"]).sum())
        n_flagged += int(np.asarray(arrays["flag"]).astype(bool).sum())
    if len(identities) > 1:
        problems.append(f"segments hold {len(identities)} different models: {sorted(i[0] for i in identities)}")
    if len(set(with_jet_error)) > 1:
        problems.append(f"{sum(with_jet_error)} of {len(with_jet_error)} segments hold {JET_ERROR}: a recording "
                        "holds it in every segment or in none (its encoders must share one --jet-errors)")
    if len(anomaly_identities) > 1:
        problems.append(f"segments were flagged by {len(anomaly_identities)} different anomaly models: "
                        f"{sorted(i[0] for i in anomaly_identities)}")
    n_batches = 0
    runs = {}
    for run_id in sorted(seqs_by_run):
        all_seqs = np.concatenate(seqs_by_run[run_id])
        unique, counts = np.unique(all_seqs, return_counts=True)
        n_batches += len(unique)
        twice = unique[counts > 1]
        if len(twice):
            where = seq_segments[(run_id, int(twice[0]))]
            problems.append(f"run {run_id:016x}: {len(twice)} batches recorded more than once: seq "
                            f"{_ranges(twice)} (seq {int(twice[0])} in {where})")
        top = int(unique[-1])
        missing = np.setdiff1d(np.arange(top + 1), unique)
        if len(missing):
            problems.append(f"run {run_id:016x}: {len(missing)} missing seqs out of 0..{top}: {_ranges(missing)}")
        ids = np.sort(np.concatenate(event_ids_by_run[run_id]))
        dup_ids = np.unique(ids[1:][ids[1:] == ids[:-1]])
        if len(dup_ids):
            problems.append(f"run {run_id:016x}: {len(dup_ids)} event_ids recorded more than once: "
                            f"{_ranges(dup_ids)}")
        runs[f"{run_id:016x}"] = {"batches": len(unique), "max_seq": top, "events": len(ids)}
    source = "--expect-events/--expect-batches"
    if use_summary and expect_events is None and expect_batches is None:
        expect_events, expect_batches, source = _summary_expectation(directory)
    if expect_batches is not None and n_batches != expect_batches:
        problems.append(f"{n_batches} batches recorded, {expect_batches} expected ({source})")
    if expect_events is not None and n_events != expect_events:
        problems.append(f"{n_events} events recorded, {expect_events} expected ({source})")
    result.stats = {"directory": str(directory), "segments": len(paths), "bytes": n_bytes, "events": n_events,
                    "jets": n_jets, "flagged": n_flagged, "batches": n_batches, "runs": runs,
                    "expected_events": expect_events, "expected_batches": expect_batches,
                    "expected_from": source if expect_events is not None or expect_batches is not None else None,
                    "recovered_commits": recovered, "format_versions": sorted(v for v in versions if v),
                    "anomaly_models": sorted(i[0] for i in anomaly_identities),
                    "jet_error_recorded": (all(with_jet_error) if len(set(with_jet_error)) == 1 else "mixed")
                    if with_jet_error else None,
                    "flags_checked_against_threshold": bool(versions - {FORMAT_VERSION_1, None})}
    return result
