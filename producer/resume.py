"""What a restarted producer skips: the events of its run that the recording already holds.

`aetrig run` restarts a producer that dies with ``--resume-from OUT``. The new producer reads the same
input in the same order, so an event gets the same event id; it counts the events the recording holds as
produced without sending them again, and sends everything else, under seqs above any the dead producer can
have sent (those still in flight would otherwise be discarded by the sink as duplicates of new batches).
The recording is read only (emulator/runtime/recording.py never writes), after the pipeline has had the
time to commit what the dead producer left in flight: until the run's recorded event count stops changing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emulator.runtime.recording import RecordingError, open_recording

log = logging.getLogger("aetrig.produce")

QUIET_S = 1.0  # the recorded count must not change for this long
SETTLE_TIMEOUT_S = 20.0


@dataclass
class Resume:
    """Sorted recorded event ids of the run and the first seq the new producer may use."""

    event_ids: np.ndarray
    first_seq: int

    def unrecorded(self, first_id: int, n: int) -> list[tuple[int, int]]:
        """The [a, b) ranges of events ``first_id .. first_id + n - 1`` (by position) not recorded yet."""
        if n == 0:
            return []
        ids = np.arange(first_id, first_id + n, dtype=np.uint64)
        if not len(self.event_ids):
            return [(0, n)]
        pos = np.minimum(np.searchsorted(self.event_ids, ids), len(self.event_ids) - 1)
        recorded = self.event_ids[pos] == ids
        edges = np.flatnonzero(np.diff(np.concatenate([[1], recorded.astype(np.int8), [1]])))
        return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _recorded(directory: Path, run_id: int) -> tuple[np.ndarray, int]:
    try:
        rec = open_recording(directory)
    except RecordingError:
        return np.zeros(0, np.uint64), -1
    ids, top = [], -1
    for _, arrays in rec.iter_arrays(["run_id", "seq", "event_id"]):
        mine = np.asarray(arrays["run_id"]) == np.uint64(run_id)
        ids.append(np.asarray(arrays["event_id"])[mine])
        seqs = np.asarray(arrays["seq"])[mine]
        if len(seqs):
            top = max(top, int(seqs.max()))
    return (np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.uint64)), top


def load_resume(directory: str | Path, run_id: int, window: int, quiet_s: float = QUIET_S,
                timeout_s: float = SETTLE_TIMEOUT_S) -> Resume:
    """What the recording in ``directory`` holds of ``run_id``, once it stopped growing (or after ``timeout_s``).

    The first seq is above the last recorded one by more than the window: a dead producer never had more
    than ``window`` batches unacknowledged, and an acknowledged batch is recorded."""
    deadline = time.monotonic() + timeout_s
    ids, top = _recorded(Path(directory), run_id)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        again, top = _recorded(Path(directory), run_id)
        if len(again) == len(ids):
            break
        ids = again
    first_seq = top + 1 + 2 * window
    log.info("resuming run %016x: %d events already recorded (last seq %d); sending the others from seq %d",
             run_id, len(ids), top, first_seq)
    return Resume(ids.astype(np.uint64), first_seq)
