"""kill -9 of the sink in the middle of a run, then a restart on the same recording: exactly once."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from pipeline_testkit import Pipeline
from producer_testdata import make_ntuple

N_EVENTS = 24000


@pytest.fixture
def pipeline(tmp_path: Path):
    make_ntuple(tmp_path / "in.root", 6000, seed=132)
    p = Pipeline(tmp_path, tmp_path / "in.root")
    yield p
    p.close()


@pytest.mark.timeout(150)
def test_kill9_sink_then_restart(pipeline: Pipeline) -> None:
    sink = pipeline.sink()
    pipeline.encoder("enc0")
    producer = pipeline.producer("--rate", "4000", "--loops", "0", "--max-events", str(N_EVENTS),
                                 "--events-per-message", "200", "--resend-timeout", "1.0")
    pipeline.wait_for(lambda: pipeline.metric(sink, "aetrig_events_total", stage="sink") > 4000, 30,
                      "the sink to record events")
    # freeze it first so that batches are surely in its buffers, unacknowledged, when it dies
    sink.signal(signal.SIGSTOP)
    time.sleep(0.5)
    sink.signal(signal.SIGKILL)
    assert sink.wait(10) == -signal.SIGKILL
    time.sleep(1.0)  # the producer keeps sending; nothing acknowledges meanwhile
    restarted = pipeline.sink("sink2")
    report = pipeline.finish(producer)
    assert restarted.returncode == 0
    assert report["produced"] == N_EVENTS and report["unacked_events"] == 0 and report["batches_resent"] > 0
    counts = pipeline.counts(report["produced"])
    assert counts["recorded"] == N_EVENTS and counts["duplicates_recorded"] == 0 and counts["lost"] == 0
    sink2 = json.loads((pipeline.tmp / "sink2.json").read_text())
    assert sink2["stage"] == "sink"
    result = pipeline.verify()
    assert result.returncode == 0, result.stdout + result.stderr
