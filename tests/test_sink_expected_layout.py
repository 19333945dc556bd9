"""The first message does not decide: the jet_error layout of a recording is what the sink was started with (its
anomaly model and --jet-errors), not what the first message says. A real `aetrig sink` process on CurveZMQ; a
holder of the encoder key sends first, on the empty recording, a keyed message of the other layout: it is a
counted rejection, and every genuine batch after it is acknowledged and recorded. Restarted on that recording with
the other --jet-errors, the sink refuses to start and says why."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from encsink_support import (
    AETRIG,
    ROOT,
    SinkPeers,
    addr,
    expect_args,
    make_tiny_model,
    start,
    stop,
)
from stage_keys import stage_flags
from test_jet_errors import EVENT_CARD, event_scored_frames

from emulator.runtime import wire
from emulator.runtime.ports import free_port
from emulator.runtime.recording import open_recording
from models.runtime.card import load_model_dir

RUN = 0x1A707
GENUINE = 6


@pytest.mark.timeout(120)
def test_a_keyed_first_message_of_the_other_layout_blocks_no_genuine_batch(tmp_path: Path) -> None:
    card = load_model_dir(make_tiny_model(tmp_path / "model")).card
    rec, log = tmp_path / "rec", tmp_path / "sink.log"
    expect = expect_args(tmp_path, card, [RUN], EVENT_CARD)  # an event-level model flags: auto records no jet_error
    peers = SinkPeers()  # push holds the encoder key, as a stolen Secret gives it
    acks, push = peers.acks, peers.push
    rng = np.random.default_rng(2323)
    hostile = event_scored_frames(RUN, 0, np.array([4, 0, 2]), rng, card, 1 << 40, with_error=True)
    genuine = [event_scored_frames(RUN, s, rng.integers(0, 7, 25), rng, card, 25 * s) for s in range(1, GENUINE + 1)]
    proc = start("sink", *peers.sink_flags(rec), *expect,
                 "--jet-errors", "auto", "--report", str(tmp_path / "sink.json"),
                 "--commit-ms", "20", log=log)
    try:
        push.send_multipart(hostile)  # first on the connection: the sink receives it before any genuine batch
        for frames in genuine:
            push.send_multipart(frames)
        assert acks.wait_for(set(range(1, GENUINE + 1)), 60), log.read_text()[-3000:]
        acks.poll(200)
        assert 0 not in acks.acked
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]
        peers.close()
    report = json.loads((tmp_path / "sink.json").read_text())
    assert report["rejected"] == {"bad_column": 1}, report["rejected"]
    assert report["jet_error_recorded"] is False and report["batches"] == GENUINE
    quarantined = list((rec / "quarantine" / "bad_column").iterdir())
    assert len(quarantined) >= 1
    recording = open_recording(rec)
    assert not recording.has_jet_error
    ids = np.sort(recording.events()["event_id"])
    want = np.sort(np.concatenate([wire.decode(f).columns["event_id"] for f in genuine]))
    np.testing.assert_array_equal(ids, want)  # every genuine event, once; none of the hostile message's
    np.testing.assert_array_equal(recording.latent(),
                                  np.concatenate([wire.decode(f).columns["jet_latent"] for f in genuine]))
    # the recording stays one layout: restarted with the other --jet-errors, the sink refuses to start
    again = subprocess.run([*AETRIG, "sink", "--bind", addr(free_port()), "--out", str(rec), *expect,
                            *stage_flags("sink"), "--jet-errors", "always"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode != 0
    assert "holds segments without jet_error; this sink was started to record with" in again.stderr, again.stderr
    assert len(open_recording(rec)) == len(want)
