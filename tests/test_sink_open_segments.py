"""File descriptors stay bounded however many runs send to one sink: at most MAX_OPEN_SEGMENTS segments are open
(the least recently committed closed first), and a run idle for IDLE_CLOSE_SECONDS has its segment closed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from encsink_support import make_tiny_model, scored_frames
from waiting import wait_until

from consumer.sink import open_segments
from emulator.runtime.recording import open_recording
from models.runtime.card import load_model_dir

RUNS = [0x1000 + i for i in range(12)]


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_open_segments_are_capped_and_idle_ones_closed(tmp_path: Path, sink_in_thread,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(open_segments, "MAX_OPEN_SEGMENTS", 4)
    monkeypatch.setattr(open_segments, "IDLE_CLOSE_SECONDS", 1.0)
    card = load_model_dir(make_tiny_model(tmp_path / "model")).card
    rng = np.random.default_rng(3)
    with sink_in_thread(tmp_path / "rec", card=card, run_ids=RUNS, commit_ms=10) as h:
        counts = []
        for i, run in enumerate(RUNS):
            h.push.send_multipart(scored_frames(run, 0, np.array([2, 1]), rng, card, first_event_id=10 * i))
            assert h.acks.wait_for({0}, 10)
            h.acks.acked.clear()
            assert len(h.sink.segments.writers) <= 4
            counts.append(_fds())
        # once four segments are open (and the sockets connected), more runs open no more descriptors
        assert max(counts[4:]) <= counts[3] + 1, counts
        wait_until(lambda: not h.sink.segments.writers, 10, what="the idle segments to be closed")
        time.sleep(0.2)
    rec = open_recording(tmp_path / "rec")
    assert len(rec) == 2 * len(RUNS) and len(rec.segments) == len(RUNS)
