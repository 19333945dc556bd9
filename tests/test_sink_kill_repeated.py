"""SIGKILL of the sink at random instants (mid-commit included), five times in a row on the same
recording, each time restarted with everything resent: every acknowledged batch stays readable,
and at the end every batch is recorded exactly once."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from encsink_support import (
    SinkPeers,
    expect_args,
    make_tiny_model,
    recover_segments,
    scored_frames,
    start,
    stop,
)

from consumer.offline.verify import verify_recording
from emulator.runtime.recording import read_seen, read_segment, segment_paths
from models.runtime.card import load_model_dir

RUN = 0xC0FFEE
N_BATCHES, EVENTS = 150, 200


def on_disk(out: Path) -> set[int]:
    recover_segments(out)  # what a restarted sink does first
    seqs: set[int] = set()
    for path in segment_paths(out):
        seqs.update(read_seen(read_segment(path))[1].tolist())
    return seqs


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_repeated_sigkill_never_loses_an_acknowledged_batch(tmp_path: Path) -> None:
    card = load_model_dir(make_tiny_model(tmp_path / "model")).card
    rng = np.random.default_rng(21)
    batches = {s: scored_frames(RUN, s, rng.integers(0, 6, EVENTS), rng, card, first_event_id=EVENTS * s)
               for s in range(N_BATCHES)}
    chooser = random.Random(4)
    peers = SinkPeers(send_timeout_ms=5000)
    acks, push = peers.acks, peers.push
    out = tmp_path / "rec"
    args = [*peers.sink_flags(out), "--commit-ms", "5", "--commit-events", "400", *expect_args(tmp_path, card, [RUN])]
    try:
        for round_ in range(5):
            sink = start("sink", *args, log=tmp_path / "sink.log")
            for seq in range(N_BATCHES):  # a producer resends what it has not seen acknowledged
                if seq not in acks.acked:
                    push.send_multipart(batches[seq])
            before = len(acks.acked)
            acks.poll_until(lambda before=before: len(acks.acked) != before, 20, poll_ms=20)
            assert len(acks.acked) > before or len(acks.acked) == N_BATCHES, f"round {round_}: sink never acked"
            kill_at = time.monotonic() + chooser.uniform(0.0, 0.3)
            while time.monotonic() < kill_at:
                acks.poll(5)
            sink.send_signal(signal.SIGKILL)
            sink.wait(10)
            acks.poll(50)
            assert acks.acked <= on_disk(out), f"round {round_}: an acknowledged batch is not readable"
        sink = start("sink", *args, "--report", str(tmp_path / "final.json"), log=tmp_path / "sink.log")
        acks.poll(50)
        acks.acked.clear()  # the final sink acks every batch again (new or duplicate): proof that it is up
        for seq in range(N_BATCHES):
            push.send_multipart(batches[seq])
        assert acks.wait_for(set(range(N_BATCHES)), timeout=40)
        assert stop(sink) == 0
    finally:
        peers.close()
    result = verify_recording(out, expect_events=N_BATCHES * EVENTS, expect_batches=N_BATCHES)
    assert result.ok, result.problems
