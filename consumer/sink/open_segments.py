"""The segments open for writing, one per run: opened on a run's first commit, rotated by events, age or layout,
closed when idle or when MAX_OPEN_SEGMENTS are open (file descriptors stay bounded however many runs send), and
the bytes the recording holds."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from consumer.sink.config import SinkConfig
from consumer.sink.expectations import Expectations, Manifest
from consumer.sink.recovery import Recovered
from consumer.sink.scored_chunk import chunk_from_batches
from consumer.sink.segment_writer import SegmentWriter
from emulator.runtime import wire
from emulator.runtime.journaled_file import journal_path
from emulator.runtime.recording import Layout, segment_name

log = logging.getLogger("aetrig.sink")

#: segments open at once (two file descriptors each); the least recently committed one is closed first
MAX_OPEN_SEGMENTS = 32
#: a run's open segment is closed after this long without a commit (a new one opens when it sends again)
IDLE_CLOSE_SECONDS = 30.0


def remove_unborn_segment(path: Path) -> None:
    """Delete a segment whose creation failed (and its journal); it never held a committed entry."""
    for victim in (path, journal_path(path)):
        with contextlib.suppress(FileNotFoundError):
            victim.unlink()


class OpenSegments:
    """The open :class:`SegmentWriter` of each run, and the byte count of the closed segments."""

    def __init__(self, seg_dir: Path, config: SinkConfig, expected: Expectations, recovered: Recovered):
        self.seg_dir = seg_dir
        self.config = config
        self.expected = expected
        self.writers: dict[int, SegmentWriter] = {}
        self.next_index = recovered.next_index
        self.closed_bytes = recovered.closed_bytes
        self.files = recovered.files  # every segment of the recording, for the report

    @property
    def recorded_bytes(self) -> int:
        return self.closed_bytes + sum(w.size for w in self.writers.values())

    def writer_for(self, run_id: int, layout: Layout, manifest: Manifest) -> SegmentWriter:
        """The open segment of this run, rotated by events/seconds/layout; a new one when needed."""
        writer = self.writers.get(run_id)
        if writer is not None and (writer.layout != layout or writer.n_events >= self.config.rotate_events
                                   or writer.age >= self.config.rotate_seconds):
            self.close(run_id)
            writer = None
        if writer is None:
            self.make_room()
            index = self.next_index[run_id]
            self.next_index[run_id] += 1
            path = self.seg_dir / segment_name(run_id, index)
            try:
                writer = SegmentWriter(path, self.expected.card.text, manifest.text, layout, self.config.compression,
                                       anomaly_card_text=self.expected.anomaly.text)
            except FileExistsError:
                raise
            except OSError:
                remove_unborn_segment(path)  # it holds no data: do not leave an unreadable file behind
                raise
            self.writers[run_id] = writer
            self.files.append(str(path))
            log.info("opened segment %s", path.name)
        return writer

    def commit(self, run_id: int, layout: Layout, manifest: Manifest, batches: Sequence[wire.Batch]) -> None:
        """Append ``batches`` (all of ``layout``) to the run's segment durably (SegmentWriter.commit)."""
        self.writer_for(run_id, layout, manifest).commit(chunk_from_batches(batches, layout))

    def make_room(self) -> None:
        """Close the least recently committed segments while MAX_OPEN_SEGMENTS are open."""
        while len(self.writers) >= MAX_OPEN_SEGMENTS:
            oldest = min(self.writers, key=lambda r: self.writers[r].last_commit)
            self.close(oldest)

    def close_idle(self, busy: set[int]) -> None:
        """Close the segments of runs that committed nothing for IDLE_CLOSE_SECONDS (they free their fds), except
        those of the ``busy`` runs (batches pending)."""
        now = time.monotonic()
        for run_id in [r for r, w in self.writers.items() if now - w.last_commit > IDLE_CLOSE_SECONDS]:
            if run_id in busy:
                continue
            try:
                self.close(run_id)
                log.info("closed the idle segment of run %016x", run_id)
            except OSError as exc:
                log.error("closing the idle segment of run %016x failed: %s", run_id, exc)

    def close(self, run_id: int) -> None:
        writer = self.writers.pop(run_id)
        try:
            writer.close()
        finally:
            self.closed_bytes += writer.path.stat().st_size

    def drop(self, run_id: int) -> SegmentWriter | None:
        """Stop writing the run's segment after a failed write (:meth:`SegmentWriter.abandon`); its writer."""
        writer = self.writers.pop(run_id, None)
        if writer is not None:
            writer.abandon()
            self.closed_bytes += writer.path.stat().st_size
        return writer

    def close_all(self) -> None:
        """Close every open segment (at exit); a failure is logged, the others are still closed."""
        for run_id in list(self.writers):
            try:
                self.close(run_id)
            except OSError as exc:
                log.error("closing segment of run %016x failed: %s", run_id, exc)
