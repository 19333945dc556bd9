"""The validated messages waiting for the next group commit, and how much they hold (events, bytes, age)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from consumer.sink.dedup import Key
from consumer.sink.expectations import Manifest
from emulator.runtime import wire
from emulator.runtime.recording import Layout


@dataclass
class Received:
    """One accepted scored message."""

    batch: wire.Batch
    t_received: float
    frames: list[bytes]
    layout: Layout  # the segment layout it needs, found once at accept
    manifest: Manifest  # the manifest of its run (the sink's expectations)

    @property
    def key(self) -> Key:
        return self.batch.run_id, self.batch.seq

    @property
    def nbytes(self) -> int:
        return sum(len(f) for f in self.frames)


class PendingBatches:
    """Accepted, not yet committed messages, in arrival order; ``in`` tells a pending (run_id, seq)."""

    def __init__(self) -> None:
        self.items: list[Received] = []
        self.keys: set[Key] = set()
        self.events = 0
        self.nbytes = 0  # bytes of the frames the pending messages hold
        self.first_at = 0.0  # time.monotonic() when the oldest one came

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Received]:
        return iter(self.items)

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def add(self, item: Received) -> None:
        if not self.items:
            self.first_at = time.monotonic()
        self.items.append(item)
        self.keys.add(item.key)
        self.events += item.batch.n_events
        self.nbytes += item.nbytes

    def remove(self, items: Iterable[Received]) -> None:
        """Forget ``items`` (committed, or rejected)."""
        done = {id(i) for i in items}
        kept = [p for p in self.items if id(p) not in done]
        for item in self.items:
            if id(item) in done:
                self.keys.discard(item.key)
        self.items = kept
        self.events = sum(p.batch.n_events for p in kept)
        self.nbytes = sum(p.nbytes for p in kept)

    def clear(self) -> None:
        self.items = []
        self.keys.clear()
        self.events = self.nbytes = 0

    def waited_ms(self) -> float:
        """Milliseconds since the oldest pending message came."""
        return (time.monotonic() - self.first_at) * 1e3

    def groups(self) -> dict[tuple[int, Layout], list[Received]]:
        """The messages by (run_id, layout): one segment commit each, in arrival order."""
        groups: dict[tuple[int, Layout], list[Received]] = defaultdict(list)
        for item in self.items:
            groups[(item.batch.run_id, item.layout)].append(item)
        return groups

    def run_ids(self) -> set[int]:
        return {p.batch.run_id for p in self.items}
