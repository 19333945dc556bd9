"""Packing events into messages by count and by maximum delay, and slicing event blocks into batches.

A batch opens at its first event's arrival time ``t0`` and takes the following events while it
has fewer than ``max_events`` and their arrival is at most ``t0 + max_delay``. It is sent when it
is full (at its last event's arrival) or when the delay expires (at ``t0 + max_delay``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from emulator.runtime import wire
from producer.jet_screen import InputCounts

EPS = 1e-9  # seconds: arrivals this close to the delay limit still join the batch (float rounding)


def batch_bounds(times: np.ndarray, max_events: int, max_delay: float,
                 final: bool) -> tuple[list[tuple[int, int, float]], int]:
    """Split sorted arrival ``times`` into batches ``(start, stop, send_time)``.

    Returns the batches and the number of events they consume. The trailing events that could
    still be joined by later arrivals are left over unless ``final`` (end of input: flush them).
    """
    out: list[tuple[int, int, float]] = []
    n, i = len(times), 0
    while i < n:
        limit = times[i] + max_delay
        j_delay = int(np.searchsorted(times, limit + EPS, side="right"))
        j = min(i + max_events, j_delay)
        if j == i + max_events:
            send = float(times[j - 1])
        elif j_delay < n:
            send = float(limit)
        elif final:
            send = float(times[n - 1])
        else:
            break
        out.append((i, j, send))
        i = j
    return out, i


@dataclass
class EventBlock:
    """Consecutive events as flat columns: per-event identity and arrival time, per-jet variables. The reader
    (producer.reader.read_chunks) yields them with times 0 and ``checks``, what the input screen dropped from the
    events as read (a slice or a concatenation does not carry them)."""

    file_index: np.ndarray  # <u4
    entry: np.ndarray  # <u8, entry number in the file
    event_number: np.ndarray  # <u8
    n_jets: np.ndarray  # <u4
    times: np.ndarray  # float64 seconds since start
    jets: dict[str, np.ndarray]  # var -> <f4 flat of length n_jets.sum(), GeV
    checks: InputCounts = field(default_factory=InputCounts)  # not in n_jets

    def __len__(self) -> int:
        return len(self.n_jets)

    @property
    def nbytes(self) -> int:
        arrays = [self.file_index, self.entry, self.event_number, self.n_jets, self.times, *self.jets.values()]
        return sum(a.nbytes for a in arrays)

    def jet_offsets(self) -> np.ndarray:
        offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(self.n_jets, out=offsets[1:])
        return offsets

    def slice(self, start: int, stop: int, offsets: np.ndarray | None = None) -> EventBlock:
        """Events ``start:stop`` (jets sliced by the per-event counts)."""
        off = self.jet_offsets() if offsets is None else offsets
        a, b = int(off[start]), int(off[stop])
        return EventBlock(self.file_index[start:stop], self.entry[start:stop], self.event_number[start:stop],
                          self.n_jets[start:stop], self.times[start:stop],
                          {k: v[a:b] for k, v in self.jets.items()})

    @staticmethod
    def concat(blocks: Sequence[EventBlock]) -> EventBlock:
        blocks = [b for b in blocks if len(b)] or list(blocks[:1])
        if len(blocks) == 1:
            return blocks[0]
        return EventBlock(*(np.concatenate([getattr(b, f) for b in blocks])
                            for f in ("file_index", "entry", "event_number", "n_jets", "times")),
                          {k: np.concatenate([b.jets[k] for b in blocks]) for k in blocks[0].jets})


def message_columns(block: EventBlock, first_event_id: int) -> dict[str, np.ndarray]:
    """The wire columns of an events message for ``block`` (event ids from ``first_event_id``); the header names
    the run manifest (``manifest_sha256``)."""
    cols: dict[str, np.ndarray] = {
        "n_jets": block.n_jets.astype("<u4", copy=False),
        "event_id": np.arange(first_event_id, first_event_id + len(block), dtype="<u8"),
        "file_index": block.file_index.astype("<u4", copy=False),
        "entry": block.entry.astype("<u8", copy=False),
        "event_number": block.event_number.astype("<u8", copy=False),
    }
    for var, values in block.jets.items():
        cols[wire.jet_column(var)] = values
    return cols
