"""A real `aetrig sink` process: group commits, acks only for durable data, dedup across restarts,
SIGKILL right after a commit leaves readable segments, --max-bytes is backpressure."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from encsink_support import (
    SinkPeers,
    expect_args,
    metric_value,
    read_report,
    recover_segments,
    scored_frames,
    scrape,
    start,
    stop,
)

from consumer.offline.verify import verify_recording
from emulator.runtime.ports import free_port
from emulator.runtime.recording import (
    RecordingError,
    open_recording,
    read_seen,
    read_segment,
    read_segment_arrays,
    segment_paths,
)

RUN = 0xABCDEF


def make_batches(card: dict, n: int, events: int = 50, seed: int = 5) -> dict[int, list[bytes]]:
    rng = np.random.default_rng(seed)
    out = {}
    for seq in range(n):
        counts = rng.integers(0, 6, events)
        out[seq] = scored_frames(RUN, seq, counts, rng, card, first_event_id=seq * events)
    return out


def recorded_seqs(out: Path, attempts: int = 1) -> set[int]:
    """Seqs in the segment files; with attempts > 1, retried while a running sink is mid-commit."""
    for attempt in range(attempts):
        try:
            seqs: set[int] = set()
            for path in segment_paths(out):
                seqs.update(read_seen(read_segment(path))[1].tolist())
            return seqs
        except RecordingError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def assert_bytes_per_jet(h: Harness) -> None:
    """The sink's bytes-per-jet gauge is its recorded-bytes gauge over the jets in the segments (both gauges are
    set just after the commit's acks, so a scrape may briefly see the previous commit: retried for 10 s)."""
    jets = sum(int(np.asarray(read_segment_arrays(read_segment(p), ["njet"])["njet"]).sum())
               for p in segment_paths(h.out))
    deadline = time.monotonic() + 10
    while True:
        text = scrape(h.metrics_p)
        got = metric_value(text, "aetrig_sink_bytes_per_jet")
        recorded = metric_value(text, "aetrig_sink_recorded_bytes")
        if got == pytest.approx(recorded / jets, rel=1e-9) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got == pytest.approx(recorded / jets, rel=1e-9)
    assert recorded == sum(p.stat().st_size for p in segment_paths(h.out))


class Harness(SinkPeers):
    """:class:`SinkPeers` of sinks recording to ``tmp_path/rec`` for ``card``'s model, with a metrics port."""

    def __init__(self, tmp_path: Path, card: dict):
        super().__init__(send_timeout_ms=10000)
        self.tmp, self.card = tmp_path, card
        self.metrics_p = free_port()
        self.out = tmp_path / "rec"

    def start_sink(self, *extra: str, report: str = "sink.json", card: dict | None = None) -> subprocess.Popen:
        """Start `aetrig sink` on the harness's ports (the one :meth:`finish` stops), report in ``report``."""
        expect = expect_args(self.tmp, card if card is not None else self.card, [RUN])
        self.sink = start("sink", *self.sink_flags(self.out), *expect, "--metrics-port", str(self.metrics_p),
                          "--report", str(self.tmp / report), *extra, log=self.tmp / "sink.log")
        return self.sink

    def finish(self) -> int:
        """Stop the last sink started (SIGTERM) and close the test's sockets; the sink's exit code."""
        try:
            return stop(self.sink)
        finally:
            self.close()


@pytest.mark.timeout(60)
def test_acks_follow_durable_commits_and_duplicates_are_reacked(tmp_path: Path, card: dict) -> None:
    h = Harness(tmp_path, card)
    batches = make_batches(card, 40)
    h.start_sink("--commit-events", "500", "--commit-ms", "100", "--rotate-events", "700")
    try:
        checked_acks = 0
        for seq, frames in batches.items():
            h.push.send_multipart(frames)
            if seq % 4 == 3:
                time.sleep(0.02)
            h.acks.poll(0)
            # every ack that has arrived so far names only seqs already readable in the segment files
            if len(h.acks.ack_order) > checked_acks:
                assert h.acks.acked <= recorded_seqs(h.out, attempts=5)
                checked_acks = len(h.acks.ack_order)
        assert h.acks.wait_for(set(batches), timeout=20)
        assert h.acks.acked <= recorded_seqs(h.out)
        assert len(h.acks.ack_order) < len(batches)  # group commits: several batches per ack
        # resend three batches: discarded as duplicates and acknowledged again
        before = len(h.acks.ack_order)
        for seq in (0, 17, 39):
            h.push.send_multipart(batches[seq])
        h.acks.poll_until(lambda: len(h.acks.ack_order) >= before + 3, 10)
        assert sorted(s for a in h.acks.ack_order[before:] for s in a) == [0, 17, 39]
        text = scrape(h.metrics_p)
        assert metric_value(text, "aetrig_duplicate_events_total") == 150
        assert metric_value(text, "aetrig_events_total", stage="sink") == 2000
        assert metric_value(text, "aetrig_decision_latency_seconds_count") == 2000
        assert metric_value(text, "aetrig_commit_latency_seconds_count") == 2000
        assert_bytes_per_jet(h)
    finally:
        rc = h.finish()
    assert rc == 0
    report = read_report(tmp_path / "sink.json")
    assert report["recorded_events"] == 2000 and report["batches"] == 40
    assert report["duplicates_discarded"] == 150 and report["rejected"] == {"duplicate_seq": 3}
    assert len(report["files"]) >= 2  # rotated by --rotate-events 700 (at commit boundaries)
    lat = report["latency_seconds"]
    for kind in ("decision", "commit"):
        assert lat[kind]["events"] == 2000
        assert 0 < lat[kind]["p50"] <= lat[kind]["p90"] <= lat[kind]["p99"] <= lat[kind]["p999"] <= lat[kind]["max"]
    assert lat["commit"]["p50"] >= lat["decision"]["p50"]
    result = verify_recording(h.out)
    assert result.ok, result.problems
    rec = open_recording(h.out)
    assert len(rec) == 2000 and rec.card["name"] == card["name"]
    assert rec.manifests[RUN]["settings"] == {"test": True}


@pytest.mark.timeout(90)
def test_sigkill_after_commit_then_restart_records_everything_once(tmp_path: Path, card: dict) -> None:
    h = Harness(tmp_path, card)
    batches = make_batches(card, 60, seed=9)
    sink = h.start_sink("--commit-events", "300", "--commit-ms", "50")
    try:
        for seq in range(40):
            h.push.send_multipart(batches[seq])
        h.acks.poll_until(lambda: len(h.acks.acked) >= 12, 20, poll_ms=20)
        sink.send_signal(signal.SIGKILL)  # right after an acknowledged commit
        sink.wait(10)
        h.acks.poll(50)
        acked_before = set(h.acks.acked)
        assert len(acked_before) >= 12
        # the segment written by the killed sink is readable (after finishing or discarding a commit the
        # kill may have interrupted, as the restarted sink does) and holds every acknowledged batch
        recover_segments(h.out)
        on_disk = recorded_seqs(h.out)
        assert acked_before <= on_disk
        # restart on the same directory; a producer resends everything it has not seen acked
        # (here: everything, acked or not, to exercise dedup of committed batches too)
        sink = h.start_sink("--commit-events", "300", "--commit-ms", "50", report="sink2.json")
        for seq in range(60):
            h.push.send_multipart(batches[seq])
        assert h.acks.wait_for(set(range(60)), timeout=30), sorted(set(range(60)) - h.acks.acked)
        # bytes per jet counts the killed sink's segments too (their jets read back at start)
        assert_bytes_per_jet(h)
    finally:
        rc = h.finish()
    assert rc == 0
    report = read_report(tmp_path / "sink2.json")
    assert report["resumed_from"]["batches"] == len(on_disk)
    assert report["duplicate_batches"] == len(on_disk)
    assert report["duplicates_discarded"] == 50 * len(on_disk)
    result = verify_recording(h.out, expect_events=3000, expect_batches=60)
    assert result.ok, result.problems
    assert recorded_seqs(h.out) == set(range(60))


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_max_bytes_is_backpressure_not_a_crash(tmp_path: Path, card: dict) -> None:
    h = Harness(tmp_path, card)
    batches = make_batches(card, 80, events=100, seed=13)
    max_bytes = 600_000
    sink = h.start_sink("--commit-events", "400", "--commit-ms", "50", "--max-bytes", str(max_bytes),
                        "--max-pending-events", "1500")
    h.push.sndtimeo = 200
    try:
        unsent = []
        for seq, frames in batches.items():
            try:
                h.push.send_multipart(frames)
            except zmq.Again:  # the sink stopped reading: backpressure reached the sender
                unsent.append(seq)
            h.acks.poll(0)
        h.acks.poll_until(lambda: h.acks.full_acks > 0, 15)
        assert h.acks.full_acks > 0
        acked_at_full = set(h.acks.acked)
        time.sleep(1.5)
        h.acks.poll(100)
        assert h.acks.acked == acked_at_full, "acks continued after the sink reported full"
        assert 0 < len(acked_at_full) < len(batches)
        assert sink.poll() is None
        text = scrape(h.metrics_p)
        assert metric_value(text, "aetrig_sink_full") == 1
        assert metric_value(text, "aetrig_sink_backpressure_episodes_total") == 1
        size = sum(p.stat().st_size for p in segment_paths(h.out))
        assert size <= max_bytes
        assert acked_at_full <= recorded_seqs(h.out)
    finally:
        rc = h.finish()
    assert rc == 0
    report = read_report(tmp_path / "sink.json")
    bp = report["backpressure"]
    assert bp["episodes"] == 1 and bp["full_at_exit"] and "max-bytes" in bp["last_reason"]
    assert bp["uncommitted_events_at_exit"] > 0
    assert report["bytes"] <= max_bytes
    assert recorded_seqs(h.out) == acked_at_full  # nothing recorded that was not acknowledged, and vice versa
    assert "BACKPRESSURE" in (tmp_path / "sink.log").read_text()
    assert json.loads((tmp_path / "sink.json").read_text())["recorded_events"] == 100 * len(acked_at_full)
