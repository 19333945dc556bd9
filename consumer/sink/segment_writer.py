"""One ROOT segment of a recording, written with uproot in durable group commits.

What a segment holds - every key, branch and layout key of every format - is docs/design.md "Recorded stream"
(its table is checked against what this writer emits by tests/test_recording_contract.py); the branches of a
commit come from consumer/sink/scored_chunk.py.

``SegmentWriter.commit`` does uproot ``extend`` into a :class:`~emulator.runtime.journaled_file.JournaledFile`
and commits it (journal + fsync, apply + fsync): when it returns, the entries are durable, and a
kill at any instant leaves a file that :func:`~emulator.runtime.journaled_file.recover` turns into the state
of the last completed commit. Rotation happens at commit boundaries.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from emulator.runtime import compact_columns as cc
from emulator.runtime.atomic import fsync_directory
from emulator.runtime.journaled_file import JournaledFile
from emulator.runtime.recording import (
    FORMAT_VERSION,
    FORMAT_VERSION_1,
    FORMAT_VERSION_2,
    FORMAT_VERSION_3,
    SAME_AS_CARD,
    TREE,
    Layout,
)

COMPRESSIONS = {"zlib": "ZLIB", "lz4": "LZ4", "zstd": "ZSTD", "lzma": "LZMA"}
#: growth factor of the TTree's basket index (uproot's ``resize_factor``; one basket per branch per commit)
BASKET_INDEX_GROWTH = 1.5


def parse_compression(text: str) -> Any:
    """``none`` or ``ALGO:LEVEL`` (zlib, lz4, zstd, lzma) as an uproot compression setting."""
    if text == "none":
        return None
    algo, _, level = text.partition(":")
    if algo not in COMPRESSIONS or not level.isdigit():
        raise ValueError(f"compression {text!r}: use none or one of {sorted(COMPRESSIONS)}:LEVEL, e.g. zstd:1")
    return getattr(uproot, COMPRESSIONS[algo])(int(level))


class SegmentWriter:
    """Create a segment file, append committed chunks durably, close it."""

    def __init__(self, path: str | Path, card_text: str, manifest_text: str, layout: Layout,
                 compression: str = "zstd:3", anomaly_card_text: str | None = None,
                 format_version: str = FORMAT_VERSION):
        """``format_version`` FORMAT_VERSION_1, _2 or _3 writes an old layout (format 1: no ``anomaly_card``; tests of
        old readers); a compact layout needs format 3 or later, context-coded latents format 4."""
        if format_version not in (FORMAT_VERSION, FORMAT_VERSION_3, FORMAT_VERSION_2, FORMAT_VERSION_1):
            raise ValueError(f"cannot write format {format_version!r}")
        if layout.compact and format_version not in (FORMAT_VERSION, FORMAT_VERSION_3):
            raise ValueError(f"a compact layout is format {FORMAT_VERSION_3} or later, not {format_version!r}")
        if layout.context_coded and format_version != FORMAT_VERSION:
            raise ValueError(f"context-coded latents are format {FORMAT_VERSION}, not {format_version!r}")
        self.path = Path(path)
        self.layout = layout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.raw = JournaledFile(self.path)
        self.file = uproot.create(self.raw, compression=parse_compression(compression))
        self.file["format_version"] = format_version
        self.file["card"] = card_text
        self.file["manifest"] = manifest_text
        self.file["layout"] = layout.to_json()
        if anomaly_card_text is not None and format_version != FORMAT_VERSION_1:
            same = anomaly_card_text == card_text and format_version == FORMAT_VERSION  # format 4: not twice
            self.file["anomaly_card"] = json.dumps(SAME_AS_CARD) if same else anomaly_card_text
        self.tree: Any = None
        self.last = dict.fromkeys(cc.DELTA_COLUMNS, 0)  # compact layouts: the segment's last identity values
        self.n_events = 0
        self.commits = 0
        self.created = self.last_commit = time.monotonic()
        self._sync()
        fsync_directory(self.path.parent)

    def _sync(self) -> None:
        """Make everything uproot wrote so far durable. uproot writes straight through its sink into
        :class:`JournaledFile` (no buffer to flush), so the journal's commit is all it takes."""
        self.raw.commit()

    @property
    def size(self) -> int:
        return os.stat(self.path).st_size

    @property
    def age(self) -> float:
        return time.monotonic() - self.created

    def commit(self, chunk: Mapping[str, Any]) -> None:
        """Append ``chunk`` (branch name -> numpy / awkward array) and make it durable; a compact layout stores
        the identity columns as deltas from the segment's previous event."""
        last = {}
        if self.layout.compact:
            chunk = dict(chunk)
            for name in cc.DELTA_COLUMNS:
                values = np.asarray(chunk.pop(name), np.uint64)
                chunk[name + cc.DELTA_SUFFIX] = cc.to_deltas(values, self.last[name])
                if len(values):
                    last[name] = int(values[-1])
        if self.tree is None:
            types = {name: (value.type.content if isinstance(value, ak.Array) else value.dtype)
                     for name, value in chunk.items()}
            # the TTree's basket index grows by BASKET_INDEX_GROWTH when full (uproot's default 10x left up to
            # 9 of 10 slots, 20 bytes per branch each, empty: 285 kB of a 1 M-event segment, 0.08 B/jet)
            self.tree = self.file.mktree(TREE, types, counter_name=lambda counted: f"n{counted}",
                                         field_name=lambda outer, inner: f"{outer}_{inner}",
                                         resize_factor=BASKET_INDEX_GROWTH)
        self.tree.extend(dict(chunk))
        self._sync()
        self.last.update(last)
        n = len(chunk["run_id"])
        self.n_events += n
        self.commits += 1
        self.last_commit = time.monotonic()

    def abandon(self) -> None:
        """Stop using a segment after a failed write; its last commit is finished or discarded by
        :func:`emulator.runtime.journaled_file.recover` later. Nothing more is written to it here."""
        self.raw.abandon()

    def close(self) -> None:
        """Close the file (uproot writes its final directory; the journal commits it)."""
        if not self.file.closed:
            self.file.close()
