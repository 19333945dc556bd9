"""A compact set of batch seqs: a contiguous prefix 0..watermark-1 plus the seqs above it.

The sink's dedup index holds every committed (run_id, seq). Seqs arrive nearly in order, so the
prefix absorbs almost all of them and memory stays proportional to the out-of-order gaps, not to
the length of the run.
"""

from __future__ import annotations

from collections.abc import Iterable


class SeqSet:
    """``add``, ``in`` and ``len`` for non-negative integer seqs."""

    def __init__(self, seqs: Iterable[int] = ()):
        self.watermark = 0
        self.above: set[int] = set()
        for seq in seqs:
            self.add(seq)

    def add(self, seq: int) -> None:
        if seq < self.watermark:
            return
        if seq != self.watermark:
            self.above.add(seq)
            return
        self.watermark += 1
        while self.watermark in self.above:
            self.above.remove(self.watermark)
            self.watermark += 1

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and seq >= 0 and (seq < self.watermark or seq in self.above)

    def __len__(self) -> int:
        return self.watermark + len(self.above)
