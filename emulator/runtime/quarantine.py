"""Quarantine of rejected messages: the raw frames of each bad message kept on disk, bounded.

Each kept message is one file ``DIR/<reason>/<n>.msgpack`` holding a msgpack map
``{"reason", "detail", "time", "frames": [bytes, ...]}`` (re-read it with ``msgpack.unpackb``;
``frames`` are exactly what arrived). Keeping stops at ``max_files`` files or ``max_bytes`` bytes
(and at 50 files for ``duplicate_seq``: resends of recorded batches are normal after a restart);
after that rejected messages are still counted (``not_kept``) but no longer written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import msgpack

log = logging.getLogger(__name__)


class Quarantine:
    """Count rejected messages by reason and keep their bytes under ``directory`` (None: count only)."""

    def __init__(self, directory: str | Path | None, max_files: int = 2000, max_bytes: int = 256 << 20,
                 max_files_per_reason: dict[str, int] | None = None):
        self.directory = Path(directory) if directory is not None else None
        self.max_files, self.max_bytes = max_files, max_bytes
        #: e.g. duplicate_seq: resends of recorded batches are normal after a restart; keep a few examples
        self.max_files_per_reason = {"duplicate_seq": 50} if max_files_per_reason is None else max_files_per_reason
        self.files_by_reason: dict[str, int] = {}
        self.messages = 0
        self.bytes_received = 0
        self.files_written = 0
        self.bytes_written = 0
        self.not_kept = 0
        self._counter = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._counter = sum(1 for _ in self.directory.glob("*/*.msgpack"))

    def keep(self, reason: str, detail: str, frames: Sequence[bytes | memoryview]) -> Path | None:
        """Record one rejected message; return the file it went to (None when only counted)."""
        raw = [bytes(f) for f in frames]
        size = sum(len(f) for f in raw)
        self.messages += 1
        self.bytes_received += size
        if (self.directory is None or self.files_written >= self.max_files
                or self.bytes_written + size > self.max_bytes
                or self.files_by_reason.get(reason, 0) >= self.max_files_per_reason.get(reason, self.max_files)):
            self.not_kept += 1
            return None
        self._counter += 1
        path = self.directory / reason / f"{self._counter:06d}.msgpack"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            blob = msgpack.packb({"reason": reason, "detail": detail, "time": time.time(), "frames": raw})
            path.write_bytes(blob)
        except OSError as exc:  # a full disk must not stop the service
            log.warning("quarantine: cannot write %s: %s", path, exc)
            self.not_kept += 1
            return None
        self.files_written += 1
        self.files_by_reason[reason] = self.files_by_reason.get(reason, 0) + 1
        self.bytes_written += size
        return path

    def summary(self) -> dict[str, object]:
        """Counts for the stage report."""
        return {"directory": str(self.directory) if self.directory else None, "messages": self.messages,
                "bytes": self.bytes_received, "files": self.files_written, "bytes_kept": self.bytes_written,
                "not_kept": self.not_kept}
