"""kill -9 of one of two encoders in the middle of a run: nothing lost, nothing recorded twice."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from pipeline_testkit import Pipeline

N_EVENTS = 24000


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_kill9_one_of_two_encoders(running_pipeline: Callable[..., Pipeline]) -> None:
    pipeline = running_pipeline(events=6000, seed=131)
    pipeline.sink()
    enc0 = pipeline.encoder("enc0")
    enc1 = pipeline.encoder("enc1")
    producer = pipeline.producer("--rate", "4000", "--loops", "0", "--max-events", str(N_EVENTS),
                                 "--events-per-message", "200", "--resend-timeout", "1.0")
    pipeline.wait_for(lambda: pipeline.metric(enc1, "aetrig_events_total", stage="encoder") > 2000, 30,
                      "enc1 to score events")
    # freeze enc1 so that batches pile up in its queue, then kill it: those batches are lost in flight
    enc1.signal(signal.SIGSTOP)
    frozen_at = pipeline.metric(producer, "aetrig_events_total", stage="producer")
    pipeline.wait_for(lambda: pipeline.metric(producer, "aetrig_events_total", stage="producer") >= frozen_at + 1000,
                      30, "1000 more events sent, round-robin: half of their batches to the frozen encoder")
    enc1.signal(signal.SIGKILL)
    assert enc1.wait(10) == -signal.SIGKILL
    report = pipeline.finish(producer)
    assert enc0.returncode == 0
    assert report["produced"] == N_EVENTS and report["unacked_events"] == 0
    assert report["batches_resent"] > 0, "the killed encoder held batches: they must have been resent"
    counts = pipeline.counts(report["produced"])
    assert counts == {"recorded": N_EVENTS, "flagged": counts["flagged"], "duplicates_recorded": 0, "lost": 0}
    result = pipeline.verify()
    assert result.returncode == 0, result.stdout + result.stderr
