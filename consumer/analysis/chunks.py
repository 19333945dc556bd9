"""Commit-aligned parts of a recording's segments, read one after the other with bounded memory.

ANS-coded latents (and, in format 3, the event block of jet counts and scores) are stored per sink commit on
the commit's first event, so a part of a segment must hold whole commits: it may start only where every block
column of the segment starts a block (its counter ``n<block>`` is non-zero). Format-3 identity columns are
deltas from the segment's previous event, so a part after the first needs the values of the event before it;
:func:`read_parts` carries them from part to part. Everything is read with ``emulator.runtime.recording``.

Example::

    rec = open_recording("runs/demo")
    for part, arrays in read_parts(plan(rec.segments, step=100_000)):
        print(part.segment.path.name, part.start, part.stop, len(arrays))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import awkward as ak
import numpy as np

from emulator.runtime import compact_columns as cc
from emulator.runtime.recording import LATENT_ANS_BRANCH, RecordingError, Segment, read_segment_arrays

#: the per-commit block columns and their counters (uproot names a jagged branch's counter n<name>)
BLOCK_COUNTERS = {LATENT_ANS_BRANCH: "nlatent_ans", cc.EVENT_ANS_BRANCH: "nevent_ans"}


@dataclass(frozen=True)
class Part:
    """Events ``[start, stop)`` of one segment: whole commits.

    Example: ``Part(rec.segments[0], 0, 2048)`` is the segment's first commit when the next starts at 2048."""

    segment: Segment
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def commit_starts(segment: Segment) -> np.ndarray | None:
    """Events of a segment where a part may start (every block column starts a block there); None when the
    segment has no block column (a part may start anywhere).

    Example: ``commit_starts(open_recording("runs/demo").segments[0])[:3]`` -> ``array([0, 2048, 4096])``."""
    blocks = [b for b in BLOCK_COUNTERS if b in segment.branches]
    if not blocks:
        return None
    counters = [BLOCK_COUNTERS[b] for b in blocks]
    missing = [c for c in counters if c not in segment.branches]
    if missing:
        raise RecordingError(f"{segment.path}: block columns without their counters {missing}")
    arrays = read_segment_arrays(segment, counters)
    starts = np.ones(segment.n_entries, bool)
    for counter in counters:
        starts &= np.asarray(arrays[counter]) > 0
    return np.flatnonzero(starts)


def plan(segments: Sequence[Segment], step: int) -> list[Part]:
    """Parts of about ``step`` events (at least one commit; never across segments), in recording order.

    Example: ``[len(p) for p in plan(rec.segments, 10_000)]`` -> ``[10240, 10240, 4520]``."""
    if step < 1:
        raise ValueError(f"step must be >= 1 event, got {step}")
    parts = []
    for seg in segments:
        n = seg.n_entries
        starts = commit_starts(seg) if n else None
        a = 0
        while a < n:
            b = a + step
            if b >= n:
                b = n
            elif starts is not None:
                i = int(np.searchsorted(starts, b))
                b = int(starts[i]) if i < len(starts) else n
            parts.append(Part(seg, a, b))
            a = b
    return parts


def read_parts(parts: Iterable[Part], branches: Sequence[str] | None = None) -> Iterator[tuple[Part, ak.Array]]:
    """(part, its events as the reader gives them: all branches or the ones named) for each part, in order;
    parts of one segment must come in order (the identity columns of each are carried to the next).

    Example: ``sum(len(a) for _, a in read_parts(plan(rec.segments, 50_000))) == len(rec)``."""
    previous: dict[str, int] = {}
    last: tuple[Segment, int] | None = None
    for part in parts:
        if part.start == 0:
            previous = {}
        elif last is None or last[0] is not part.segment or last[1] != part.start:
            raise ValueError(f"{part.segment.path.name}: part at event {part.start} read out of order")
        arrays = read_segment_arrays(part.segment, branches, part.start, part.stop, previous)
        if len(arrays):
            previous = last_identity(arrays)
        last = (part.segment, part.stop)
        yield part, arrays


def last_identity(arrays: ak.Array) -> dict[str, int]:
    """{identity column: its value on the last event} for the format-3 delta columns among ``arrays``' fields.

    Example: ``last_identity(read_segment_arrays(seg, ["seq"]))`` -> ``{"seq": 24999}``."""
    return {name: int(arrays[name][-1]) for name in cc.DELTA_COLUMNS if name in arrays.fields}


def identities_before(parts: Sequence[Part]) -> list[dict[str, int]]:
    """For each part (in recording order), the identity values on the event before it (empty for a segment's first
    part): what :func:`read_parts` carries, found by reading the identity columns alone, for reading the parts
    apart (a Dask partition each).

    Example: ``identities_before(plan(rec.segments, 10_000))[1]`` -> ``{"seq": 10239, "event_id": ...}``."""
    before, last = [], {}
    for part, arrays in read_parts(parts, cc.DELTA_COLUMNS):
        before.append({} if part.start == 0 else last)
        if len(arrays):
            last = last_identity(arrays)
    return before
