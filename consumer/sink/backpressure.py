"""Backpressure: ``--max-bytes`` or a full disk (free space below the estimate, or ENOSPC) stops commits and acks.

The sink then keeps what it holds in bounded memory, stops reading when that is full (ZeroMQ high-water marks
push back to the encoders and the producer), sends ``full`` acks, logs, sets ``aetrig_sink_full`` and counts
the episode; it retries every RETRY_SECONDS. This module decides whether a commit fits and keeps the episodes.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from emulator.runtime.metrics import SinkMetrics

log = logging.getLogger("aetrig.sink")

RETRY_SECONDS = 1.0
#: Bytes a commit may add beyond its raw column bytes (baskets, TTree metadata rewrite, keys).
COMMIT_OVERHEAD_BYTES = 256 << 10
SEGMENT_OVERHEAD_BYTES = 64 << 10


class Backpressure(Exception):
    """A commit cannot be made now (max-bytes, low free space, ENOSPC)."""


def commit_estimate(group_nbytes: list[int]) -> int:
    """Bytes a commit of these segment groups (raw column bytes each) may add to the recording at most."""
    return sum(n + COMMIT_OVERHEAD_BYTES + SEGMENT_OVERHEAD_BYTES for n in group_nbytes)


def check_space(out: Path, recorded_bytes: int, estimate: int, max_bytes: int | None, min_free_bytes: int) -> None:
    """Raise Backpressure unless ``estimate`` more bytes fit under ``max_bytes`` and on the disk of ``out``."""
    if max_bytes is not None and recorded_bytes + estimate > max_bytes:
        raise Backpressure(f"max-bytes: recording holds {recorded_bytes} bytes, the next commit needs up "
                           f"to {estimate} more, limit {max_bytes}")
    free = shutil.disk_usage(out).free
    if free < estimate + min_free_bytes:
        raise Backpressure(f"disk full: {free} bytes free, commit needs {estimate} + reserve {min_free_bytes}")


class FullState:
    """Whether the sink is full and why, its episodes, and when to retry and to repeat the ``full`` acks."""

    def __init__(self, metrics: SinkMetrics):
        self.metrics = metrics
        self.reason: str | None = None
        self.episodes: list[dict[str, Any]] = []
        self.next_retry = 0.0
        self.last_full_ack = 0.0

    def enter(self, reason: str, pending_events: int) -> None:
        """A commit could not be made: a new episode unless full already; retry in RETRY_SECONDS."""
        if self.reason is None:
            self.episodes.append({"start": time.time(), "reason": reason, "end": None})
            self.metrics.backpressure_episodes.inc()
            log.error("BACKPRESSURE: %s; holding %d events uncommitted and unacknowledged, retrying every %.0f s",
                      reason, pending_events, RETRY_SECONDS)
        self.reason = reason
        self.metrics.full.set(1)
        self.next_retry = time.monotonic() + RETRY_SECONDS

    def leave(self) -> None:
        """A commit succeeded: the episode ends."""
        if self.reason is None:
            return
        log.warning("backpressure over: committing again (%s)", self.reason)
        self.episodes[-1]["end"] = time.time()
        self.reason = None
        self.metrics.full.set(0)

    def waiting(self) -> bool:
        """Full, and the next retry is not due yet."""
        return self.reason is not None and time.monotonic() < self.next_retry

    def full_ack_due(self) -> bool:
        return self.reason is not None and time.monotonic() - self.last_full_ack >= RETRY_SECONDS

    def full_acks_sent(self) -> None:
        self.last_full_ack = time.monotonic()

    def report(self) -> dict[str, Any]:
        """The report's ``backpressure`` keys this module knows."""
        return {"episodes": len(self.episodes), "full_at_exit": self.reason is not None,
                "last_reason": self.episodes[-1]["reason"] if self.episodes else None,
                "episode_list": self.episodes[-20:]}
