"""Deduplication: every committed (run_id, seq) of the recording, and whether a message repeats one.

The index is rebuilt from the committed segments at start (consumer/sink/recovery.py), so a resend after a
sink restart is discarded too; per run it is a :class:`~consumer.sink.seq_index.SeqSet`, whose memory follows
the out-of-order gaps, not the run length.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container

from consumer.sink.seq_index import SeqSet

Key = tuple[int, int]  # (run_id, seq)


class CommittedIndex:
    """``add``, ``in`` and ``len`` (batches) for the committed (run_id, seq) pairs."""

    def __init__(self) -> None:
        self.runs: dict[int, SeqSet] = defaultdict(SeqSet)

    def add(self, run_id: int, seq: int) -> None:
        self.runs[run_id].add(seq)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        seqs = self.runs.get(key[0])
        return seqs is not None and key[1] in seqs

    def __len__(self) -> int:
        return sum(len(s) for s in self.runs.values())

    def run_ids(self) -> set[int]:
        return set(self.runs)


def duplicate_of(key: Key, committed: CommittedIndex, pending: Container[Key]) -> str | None:
    """``"pending"`` when a message repeats a batch waiting for the next commit, ``"committed"`` when it repeats
    a committed one (its first ack may have been lost: it is acknowledged again), None when it is new."""
    if key in pending:
        return "pending"
    if key in committed:
        return "committed"
    return None
