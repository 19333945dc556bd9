"""A full disk at the sink: ENOSPC in the middle of a commit (fault injected into the journal's apply
step, the one piece faked here) and free space below the reserve. The sink must hold back acks,
report the episode, keep running, and record every batch exactly once when space returns."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import numpy as np
import pytest
from encsink_support import make_tiny_model, scored_frames

import emulator.runtime.journaled_file as journaled_file
from consumer.offline.verify import verify_recording
from emulator.runtime.recording import entries_mark_path, open_recording, segment_paths
from models.runtime.card import load_model_dir

RUN = 0x5151


@pytest.mark.timeout(60)
def test_enospc_mid_commit_is_backpressure_and_nothing_is_lost_or_doubled(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          sink_in_thread) -> None:
    card = load_model_dir(make_tiny_model(tmp_path / "model")).card
    rng = np.random.default_rng(4)
    batches = {s: scored_frames(RUN, s, rng.integers(0, 5, 40), rng, card, first_event_id=40 * s) for s in range(30)}
    calls = {"n": 0, "failed": 0}
    real_apply = journaled_file._apply

    def failing_apply(fd: int, writes: list[tuple[int, bytes]]) -> None:
        calls["n"] += 1
        if calls["n"] == 4:  # the third data commit: half its writes reach the file, then the disk is full
            calls["failed"] += 1
            real_apply(fd, writes[: len(writes) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_apply(fd, writes)

    monkeypatch.setattr(journaled_file, "_apply", failing_apply)
    with sink_in_thread(tmp_path / "rec", card=card, run_ids=[RUN], commit_events=100, commit_ms=20,
                        min_free_bytes=0) as h:
        for seq in range(30):
            h.push.send_multipart(batches[seq])
            time.sleep(0.01)
        h.acks.poll_until(lambda: h.acks.full_acks > 0, 10, poll_ms=50)
        assert h.acks.full_acks >= 1 and calls["failed"] == 1
        # space is back (the fault fired once): the sink retries on its own and acks everything
        assert h.acks.wait_for(set(range(30)), timeout=15), sorted(set(range(30)) - h.acks.acked)
    report = h.report
    assert report["backpressure"]["episodes"] == 1 and not report["backpressure"]["full_at_exit"]
    assert "ENOSPC" in report["backpressure"]["last_reason"]
    assert report["recorded_events"] == 40 * len(batches)  # 40 events in each batch
    # the segment broken by the failed write is marked, the data went to a new segment, once
    marks = [p for p in segment_paths(tmp_path / "rec") if entries_mark_path(p).exists()]
    assert len(marks) == 1 and len(segment_paths(tmp_path / "rec")) == 2
    result = verify_recording(tmp_path / "rec", expect_batches=30)
    assert result.ok, result.problems
    assert len(open_recording(tmp_path / "rec")) == report["recorded_events"]


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_low_free_space_holds_commits_until_space_returns(tmp_path: Path, sink_in_thread) -> None:
    card = load_model_dir(make_tiny_model(tmp_path / "model")).card
    rng = np.random.default_rng(8)
    # min_free_bytes: more free space than any disk has
    with sink_in_thread(tmp_path / "rec", card=card, run_ids=[RUN], commit_events=50, commit_ms=20,
                        min_free_bytes=1 << 62) as h:
        for seq in range(10):
            h.push.send_multipart(scored_frames(RUN, seq, rng.integers(0, 4, 20), rng, card, first_event_id=20 * seq))
        h.acks.poll_until(lambda: h.acks.full_acks >= 2, 10, poll_ms=50)
        assert h.acks.full_acks >= 2 and not h.acks.acked and not segment_paths(tmp_path / "rec")
        assert h.thread.is_alive()
        h.sink.config.min_free_bytes = 0  # space freed
        assert h.acks.wait_for(set(range(10)), timeout=10)
    report = h.report
    assert report["backpressure"]["episodes"] == 1 and "disk full" in report["backpressure"]["last_reason"]
    assert report["recorded_events"] == 200 and verify_recording(tmp_path / "rec").ok


@pytest.mark.timeout(60)
def test_a_batch_that_cannot_be_written_is_isolated_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              sink_in_thread) -> None:
    import consumer.sink.open_segments as sink_module

    card = load_model_dir(make_tiny_model(tmp_path / "model")).card
    rng = np.random.default_rng(12)
    real_chunk = sink_module.chunk_from_batches

    def chunk_failing_on_seq_4(batches: list, layout: object) -> dict:  # the fault: one batch uproot cannot take
        if any(b.seq == 4 for b in batches):
            raise ValueError("simulated unwritable batch")
        return real_chunk(batches, layout)

    monkeypatch.setattr(sink_module, "chunk_from_batches", chunk_failing_on_seq_4)
    with sink_in_thread(tmp_path / "rec", card=card, run_ids=[RUN], commit_ms=50, min_free_bytes=0) as h:
        for seq in range(10):
            h.push.send_multipart(scored_frames(RUN, seq, np.array([2, 1]), rng, card, first_event_id=2 * seq))
        assert h.acks.wait_for(set(range(10)) - {4}, timeout=15)
        assert h.thread.is_alive()
    report = h.report
    assert report["rejected"] == {"internal_error": 1} and report["batches"] == 9 and 4 not in h.acks.acked
    assert (tmp_path / "rec" / "quarantine" / "internal_error").is_dir()
    result = verify_recording(tmp_path / "rec")
    assert result.problems == [f"run {RUN:016x}: 1 missing seqs out of 0..9: 4"]
