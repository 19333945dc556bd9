"""SIGTERM/SIGINT: the encoder stops reading, scores what it holds, sends it, writes its report, exits 0;
the sink commits and acknowledges what it holds, closes its files, exits 0."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from encsink_support import (
    SinkPeers,
    addr,
    close_context,
    events_frames,
    expect_args,
    make_tiny_model,
    metric_value,
    read_report,
    scored_frames,
    scrape,
    stage_socket,
    start,
    stop,
)
from waiting import wait_until

from consumer.offline.verify import verify_recording
from emulator.runtime import wire


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_encoder_drains_its_micro_batch_on_signal(tmp_path: Path, sig: int, free_port) -> None:
    model = make_tiny_model(tmp_path / "model")
    data_p, sink_p, metrics_p = free_port(), free_port(), free_port()
    ctx = zmq.Context()
    data = stage_socket(ctx, zmq.PUSH, "data", server=True)
    sink = stage_socket(ctx, zmq.PULL, "scored", server=True)
    data.bind(addr(data_p))
    sink.bind(addr(sink_p))
    enc = start("encode", "--model", str(model), "--connect", addr(data_p), "--sink", addr(sink_p),
                "--max-wait-ms", "60000", "--max-batch-jets", "1000000", "--report", str(tmp_path / "enc.json"),
                "--metrics-port", str(metrics_p), log=tmp_path / "enc.log")
    rng = np.random.default_rng(1)
    try:
        for seq in range(5):
            data.send_multipart(events_frames(2, seq, np.array([1, 2, 0]), rng, 3 * seq))
        # then a message the encoder rejects (it lacks jet_m): once it is counted, the encoder has taken the
        # five before it (one peer, in order) into its micro-batch (it logs and counts nothing per message)
        data.send_multipart(events_frames(2, 5, np.array([1]), rng, 15, variables=("pt", "eta", "phi")))
        wait_until(lambda: metric_value(scrape(metrics_p), "aetrig_rejected_messages_total",
                                        reason="missing_variable") == 1, 20, what="the encoder to take the messages")
        assert not sink.poll(200), "the micro-batch should still be waiting (max-wait 60 s)"
        rc = stop(enc, sig)
        got = []
        while sink.poll(1000):
            got.append(wire.decode(sink.recv_multipart()).seq)
    finally:
        close_context(ctx)
    assert rc == 0 and sorted(got) == list(range(5))
    report = read_report(tmp_path / "enc.json")
    assert report["events"] == 15 and report["stopped_by"] == signal.Signals(sig).name
    assert report["rejected"] == {"missing_variable": 1}


@pytest.mark.timeout(60)
def test_sink_commits_what_it_holds_on_sigterm(tmp_path: Path, free_port) -> None:
    from models.runtime.card import load_model_dir

    card = load_model_dir(make_tiny_model(tmp_path / "model")).card
    metrics_p = free_port()
    peers = SinkPeers()
    acks, push = peers.acks, peers.push
    sink = start("sink", *peers.sink_flags(tmp_path / "rec"), *expect_args(tmp_path, card, [8]),
                 "--commit-ms", "60000", "--commit-events", "1000000", "--report", str(tmp_path / "sink.json"),
                 "--metrics-port", str(metrics_p), log=tmp_path / "sink.log")
    rng = np.random.default_rng(2)
    try:
        for seq in range(6):
            push.send_multipart(scored_frames(8, seq, np.array([2, 0, 1]), rng, card, 3 * seq))
        # the sink holds all 18 events: their decision latency is observed on receipt, before any commit
        wait_until(lambda: metric_value(scrape(metrics_p, timeout=20), "aetrig_decision_latency_seconds_count")
                   == 18, 20, what="the sink to receive the 18 events")
        acks.poll(200)
        assert not acks.acked, "nothing may be acknowledged before its commit"
        rc = stop(sink)
        assert acks.wait_for(set(range(6)), timeout=10)
    finally:
        peers.close()
    assert rc == 0
    report = json.loads((tmp_path / "sink.json").read_text())
    assert report["recorded_events"] == 18 and report["commits"] == 1 and report["stopped_by"] == "SIGTERM"
    assert verify_recording(tmp_path / "rec", expect_events=18).ok


@pytest.mark.timeout(60)
def test_encoder_without_a_sink_still_exits_on_sigterm(tmp_path: Path, free_port) -> None:
    model = make_tiny_model(tmp_path / "model")
    data_p, nobody, metrics_p = free_port(), free_port(), free_port()
    ctx = zmq.Context()
    data = stage_socket(ctx, zmq.PUSH, "data", server=True)
    data.bind(addr(data_p))
    enc = start("encode", "--model", str(model), "--connect", addr(data_p), "--sink", addr(nobody),
                "--drain-timeout", "1", "--report", str(tmp_path / "enc.json"), "--metrics-port", str(metrics_p),
                log=tmp_path / "enc.log")
    rng = np.random.default_rng(3)
    try:
        data.sndtimeo = 20000
        for seq in range(3):
            data.send_multipart(events_frames(2, seq, np.array([1, 1]), rng, 2 * seq))
        # all six events scored and queued for the absent sink (counted once handed to the socket)
        wait_until(lambda: metric_value(scrape(metrics_p), "aetrig_events_total", stage="encoder") == 6, 20,
                   what="the encoder to score and queue the events")
        t0 = time.monotonic()
        rc = stop(enc)
        took = time.monotonic() - t0
    finally:
        close_context(ctx)
    assert rc == 0 and took < 8  # queued messages are given up after --drain-timeout (the producer resends)
    assert read_report(tmp_path / "enc.json")["stopped_by"] == "SIGTERM"
