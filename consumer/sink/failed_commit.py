"""Isolating a failed commit, so that one bad batch or one failed write never stops the sink.

* A commit that raises something other than OSError (a bug, or data uproot cannot write) staged nothing in the
  segment: its batches are committed again one by one, and a batch that still fails is rejected
  (``internal_error``, quarantined) while the others are recorded (:func:`commit_one_by_one`).
* A commit that raises OSError may leave its segment ending in a half-written extend: that segment is never
  appended to again, and an ``.entries`` mark tells readers how many of its entries are durable and
  acknowledged (:class:`EntryMarks`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from consumer.sink.open_segments import OpenSegments
from consumer.sink.pending import Received
from emulator.runtime.journaled_file import recover
from emulator.runtime.recording import Layout, write_entries_mark

log = logging.getLogger("aetrig.sink")


class EntryMarks:
    """The segments abandoned after a failed write whose ``.entries`` mark is not written yet."""

    def __init__(self) -> None:
        self.unmarked: dict[Path, int] = {}

    def add(self, path: Path, n_entries: int) -> None:
        self.unmarked[path] = n_entries

    def write(self) -> bool:
        """Write every missing mark (after finishing the segment's last commit); True when none is left."""
        for path, n_entries in list(self.unmarked.items()):
            try:
                recover(path)
                write_entries_mark(path, n_entries)
            except OSError as exc:
                log.error("cannot write the entries mark of %s yet: %s", path.name, exc)
                return False
            log.warning("segment %s abandoned after a failed write: its first %d entries are valid", path.name,
                        n_entries)
            del self.unmarked[path]
        return True


def commit_one_by_one(segments: OpenSegments, run_id: int, layout: Layout, items: list[Received],
                      durable: Callable[[list[Received]], None],
                      unwritable: Callable[[Received, Exception], None]) -> None:
    """Commit ``items`` singly; ``durable([item])`` after each commit, ``unwritable(item, error)`` for one that
    still cannot be written (its segment is dropped: the failed extend staged nothing). OSError propagates."""
    for item in items:
        try:
            segments.commit(run_id, layout, item.manifest, [item.batch])
        except OSError:
            raise
        except Exception as exc:
            segments.drop(run_id)
            unwritable(item, exc)
            continue
        durable([item])
