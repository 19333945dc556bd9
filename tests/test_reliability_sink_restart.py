"""kill -9 of the sink in the middle of a run, then a restart on the same recording: exactly once."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable

import pytest
from pipeline_testkit import Pipeline

from emulator.run.stage_process import StageProcess

N_EVENTS = 24000
WINDOW = 64


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_kill9_sink_then_restart(running_pipeline: Callable[..., Pipeline]) -> None:
    pipeline = running_pipeline(events=6000, seed=132)
    sink = pipeline.sink()
    encoder = pipeline.encoder("enc0")
    producer = pipeline.producer("--rate", "4000", "--loops", "0", "--max-events", str(N_EVENTS),
                                 "--events-per-message", "200", "--resend-timeout", "1.0", "--window", str(WINDOW))
    pipeline.wait_for(lambda: pipeline.metric(sink, "aetrig_events_total", stage="sink") > 4000, 30,
                      "the sink to record events")

    def sent(stage: StageProcess, name: str) -> float:
        return pipeline.metric(stage, "aetrig_events_total", stage=name)

    # freeze it first so that batches are surely in its buffers, unacknowledged, when it dies
    sink.signal(signal.SIGSTOP)
    frozen_at = sent(encoder, "encoder")
    pipeline.wait_for(lambda: sent(encoder, "encoder") >= frozen_at + 200, 30,
                      "more batches scored and sent to the frozen sink")
    sink.signal(signal.SIGKILL)
    assert sink.wait(10) == -signal.SIGKILL
    # the producer keeps sending; nothing acknowledges meanwhile, until its window is full
    pipeline.wait_for(lambda: pipeline.metric(producer, "aetrig_inflight_batches") >= WINDOW, 30,
                      "the producer's window to fill while no sink runs")
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
