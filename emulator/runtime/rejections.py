"""Rejecting a bad message (the one copy, used by the encoder and the sink): count it, quarantine it, log it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from emulator.runtime.metrics import Metrics
from emulator.runtime.quarantine import Quarantine
from emulator.runtime.wire import REJECT_REASONS


class Rejections:
    """The rejected messages of one stage: counts by reason, metrics, and their frames in the quarantine."""

    def __init__(self, metrics: Metrics, quarantine: Quarantine, log: logging.Logger | None = None):
        self.metrics, self.quarantine = metrics, quarantine
        self.log = log or logging.getLogger(__name__)
        self.by_reason = dict.fromkeys(REJECT_REASONS, 0)

    def reject(self, reason: str, detail: str, frames: Sequence[bytes | memoryview]) -> None:
        """Count one rejected message (``aetrig_rejected_messages_total{reason}``, and its bytes in
        ``aetrig_quarantined_bytes_total``), keep its frames in the quarantine, and log the first ten
        of each reason, then those at powers of two."""
        self.by_reason[reason] += 1
        self.metrics.rejected.labels(reason=reason).inc()
        self.metrics.quarantined_bytes.inc(sum(len(f) for f in frames))
        self.quarantine.keep(reason, detail, frames)
        n = self.by_reason[reason]
        if n <= 10 or n & (n - 1) == 0:
            self.log.warning("rejected message (%s #%d): %s", reason, n, detail)

    def report(self) -> dict[str, Any]:
        """The stage report's ``rejected`` (non-zero reasons), ``rejected_messages`` and ``quarantine``."""
        return {"rejected": {k: v for k, v in self.by_reason.items() if v},
                "rejected_messages": sum(self.by_reason.values()), "quarantine": self.quarantine.summary()}
