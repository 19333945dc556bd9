"""--max-bytes reached in the middle of a run: backpressure reported, no crash, nothing acknowledged lost;
after a restart with room, the run completes exactly once."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable

import pytest
from pipeline_testkit import Pipeline

from emulator.run.summary import recording_counts

N_EVENTS = 40000


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_max_bytes_is_backpressure_not_loss(running_pipeline: Callable[..., Pipeline]) -> None:
    pipeline = running_pipeline(events=10000, seed=133)
    sink = pipeline.sink("sink", "--max-bytes", "1500000")
    pipeline.encoder("enc0")
    producer = pipeline.producer("--rate", "10000", "--loops", "0", "--max-events", str(N_EVENTS),
                                 "--events-per-message", "200", "--window", "8", "--resend-timeout", "1.0")
    # the window fills up and stays full: the producer is held back
    pipeline.wait_for(lambda: pipeline.metric(producer, "aetrig_inflight_batches") >= 8
                      and pipeline.metric(sink, "aetrig_sink_full") == 1, 40, "backpressure")
    held = pipeline.metric(producer, "aetrig_events_total", stage="producer")
    assert producer.alive() and held < N_EVENTS
    sink.signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.log_tail()
    first = json.loads((pipeline.tmp / "sink.json").read_text())
    assert first["backpressure"]["episodes"] >= 1
    committed = recording_counts(pipeline.out, 0xABC123, None)
    # everything the full sink committed (and so acknowledged) is in the recording
    assert committed["recorded"] == first["recorded_events"] > 0 and committed["duplicates_recorded"] == 0
    assert "BACKPRESSURE" in producer.log_path.read_text()
    pipeline.sink("sink2")  # room again
    report = pipeline.finish(producer)
    assert report["backpressure"]["sink_full_reports"] >= 1
    assert report["produced"] == N_EVENTS and report["unacked_events"] == 0
    counts = pipeline.counts(report["produced"])
    assert counts["recorded"] == N_EVENTS and counts["duplicates_recorded"] == 0 and counts["lost"] == 0
    result = pipeline.verify()
    assert result.returncode == 0, result.stdout + result.stderr
