"""Start-up recovery of a recording: finish the commits the previous sink's end interrupted, move unreadable
segments aside, and rebuild what the sink goes on from - the committed (run_id, seq) index, each run's next
segment index, the bytes and jets already recorded - refusing a recording of another model or jet_error layout.
"""

from __future__ import annotations

import errno
import logging
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from consumer.sink.dedup import CommittedIndex
from consumer.sink.expectations import Expectations
from emulator.runtime import wire
from emulator.runtime.journaled_file import JournalError, journal_path, recover
from emulator.runtime.recording import (
    SEGMENT_DIR,
    RecordingError,
    foreign_segments,
    model_identity,
    parse_segment_name,
    read_seen,
    read_segment,
    segment_jets,
    segment_paths,
)

log = logging.getLogger("aetrig.sink")

#: read errors that say nothing about a segment (out of descriptors or memory, an I/O hiccup): retried, and
#: if they last the sink does not start (its supervisor restarts it) rather than move the segment aside
TRANSIENT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EIO, errno.EAGAIN, errno.EINTR,
                              errno.ENOBUFS, errno.ETIMEDOUT})
READ_ATTEMPTS = 3


@dataclass
class Recovered:
    """What the committed segments of a recording hold, as the sink needs it to go on."""

    committed: CommittedIndex = field(default_factory=CommittedIndex)
    next_index: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # run id -> next segment index
    closed_bytes: int = 0
    jets: int = 0
    files: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)  # the report's resumed_from: segments, events, batches


def read_for_index(path: Path) -> tuple[Any, np.ndarray, np.ndarray]:
    """(segment, run_ids, seqs) of a committed segment, read up to READ_ATTEMPTS times. RecordingError when the
    segment itself is unreadable; OSError when the reads kept failing for a reason outside the segment."""
    for attempt in range(READ_ATTEMPTS):
        try:
            seg = read_segment(path)
            runs, seqs = read_seen(seg)
            return seg, runs, seqs
        except RecordingError as exc:
            last = exc
            time.sleep(0.1 * (attempt + 1))
    cause = last.__cause__
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError) and cause.errno in TRANSIENT_ERRNOS:
        raise OSError(cause.errno, f"cannot read {path.name} ({cause}); not moving it aside: retry later")
    raise last


def set_aside(out: Path, path: Path, why: str) -> str:
    """Move a file of the recording to OUT/damaged/ (kept for inspection, out of the recording); its new path."""
    damaged = out / "damaged"
    damaged.mkdir(exist_ok=True)
    shutil.move(str(path), damaged / path.name)
    log.error("%s was moved to %s: %s", path.name, damaged, why)
    return str(damaged / path.name)


def check_segment_fits(out: Path, seg: Any, expected: Expectations) -> None:
    """ValueError unless the segment holds the models and the jet_error layout this sink was started with."""
    for what, card, want in (("model", seg.card, expected.card.identity),
                             ("anomaly model", seg.scoring_card, expected.anomaly.identity)):
        if card and model_identity(card) != want:
            raise ValueError(f"{out} holds segments of {what} {card.get('name')!r}; this sink was "
                             f"started to record {want[0] if want else None!r} (--model, --anomaly-model): "
                             "record into another --out")
    if seg.layout is not None and seg.has_jet_error != expected.jet_error:
        raise ValueError(f"{out} holds segments {'with' if seg.has_jet_error else 'without'} jet_error; "
                         f"this sink was started to record {'with' if expected.jet_error else 'without'} "
                         f"({expected.layout_text}): start it with the recording's --jet-errors, or "
                         "record into another --out")


def recover_recording(out: Path, expected: Expectations) -> Recovered:
    """Finish interrupted commits, read (run_id, seq) of every committed segment, check it fits ``expected``
    (and note its runs' manifests there), count bytes and jets. ValueError for a recording of something else."""
    found = Recovered()
    events = segments = 0
    for path in foreign_segments(out):  # symlinks and the like: never opened, their names never reused
        log.error("%s is not a regular file of the recording: ignored (never followed)", path)
        if path.name != SEGMENT_DIR:
            run_id, index = parse_segment_name(path)
            found.next_index[run_id] = max(found.next_index[run_id], index + 1)
    for path in segment_paths(out):
        try:
            outcome = recover(path)
        except JournalError as exc:
            outcome = "refused"
            found.damaged.append(set_aside(out, journal_path(path), f"its journal was refused: {exc}"))
        if outcome != "clean":
            log.warning("segment %s: the commit interrupted by the previous sink's end was %s", path.name, outcome)
        run_id, index = parse_segment_name(path)
        found.next_index[run_id] = max(found.next_index[run_id], index + 1)
        try:
            seg, runs, seqs = read_for_index(path)
        except RecordingError as exc:
            found.damaged.append(set_aside(out, path, f"it is not readable: {exc}"))
            continue
        for run in np.unique(runs).tolist():
            for seq in np.unique(seqs[runs == run]).tolist():  # sorted: the SeqSet prefix grows
                found.committed.add(run, seq)
        check_segment_fits(out, seg, expected)
        if seg.manifest is not None:
            expected.recorded.setdefault(run_id, wire.sha256_hex(wire.canonical_json(seg.manifest)))
        found.closed_bytes += path.stat().st_size
        found.jets += segment_jets(seg)
        found.files.append(str(path))
        events += seg.n_entries
        segments += 1
    batches = len(found.committed)
    if segments:
        anomaly = expected.anomaly.identity
        log.info("resuming: %d segments, %d events, %d batches already committed (model %s, anomaly model %s)",
                 segments, events, batches, expected.card.name, anomaly[0] if anomaly else None)
    found.summary = {"segments": segments, "events": events, "batches": batches}
    return found
