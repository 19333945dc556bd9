"""Real stage processes for the pipeline reliability tests: sink, encoders and producer on loopback.

The stages authenticate each other as `aetrig run` has them do, by default: each gets its role's directory of
the session's CurveZMQ keys (tests/stage_keys.py, what `aetrig keys --per-role` makes); ``plaintext=True`` (only
where a test is about plaintext links) starts them with --plaintext instead.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stage_keys import session_keys, stage_flags
from waiting import wait_until

from emulator.run.live_status import scrape, value
from emulator.run.stage_process import StageProcess, terminate_all
from emulator.run.summary import recording_counts
from emulator.runtime import defaults
from emulator.runtime.ports import free_port

READY_S = 60.0
RUN_ID = 0xABC123


def expected_anomaly_model(model: Path, input_file: Path, input_flags: Sequence[str] = ()) -> str:
    """What a sink must be told flags the events of encoders with the default --anomaly-model on this input, read
    with the producer's ``input_flags`` (e.g. ``--input-format nanoaod``): the default event model that the
    stream's variables allow, else ``none`` (aetrig run's rule)."""
    import argparse

    from emulator.encoder.anomaly import predicted_scoring
    from producer import config as producer_config
    from producer.inputs import open_inputs

    parser = argparse.ArgumentParser()
    producer_config.add_input_arguments(parser)
    args = parser.parse_args(["--input", str(input_file), *input_flags])
    try:
        variables = open_inputs(producer_config.resolve_inputs(args)).variables
    except ValueError:  # an input the default reading cannot open: none of the event model's variables
        variables = []
    predicted = predicted_scoring(None, model.name, variables)
    if predicted["model"] == model.name:
        return "none"
    return str(predicted.get("path") or defaults.default_anomaly_model())


class Pipeline:
    """Addresses and processes of one test pipeline; ``close()`` kills whatever is left."""

    def __init__(self, tmp: Path, input_file: Path, model: Path | None = None, plaintext: bool = False,
                 input_flags: Sequence[str] = ()):
        self.tmp, self.input, self.input_flags = tmp, input_file, tuple(input_flags)
        self.keys = None if plaintext else session_keys()  # the flat directory; each stage gets its role's
        self.model = model or defaults.default_model(announce=False)
        self.out = tmp / "rec"
        # the sink is told a directory of manifests (a deployment's way); each producer writes its run's there
        self.manifests = tmp / "manifests"
        self.manifests.mkdir(exist_ok=True)
        self.data = f"tcp://127.0.0.1:{free_port()}"
        self.acks = f"tcp://127.0.0.1:{free_port()}"
        self.scored = f"tcp://127.0.0.1:{free_port()}"
        self.stages: list[StageProcess] = []

    def _start(self, name: str, args: list[str]) -> StageProcess:
        port = free_port()
        secure = stage_flags(args[0]) if self.keys else ["--plaintext"]
        report = self.tmp / f"{name}.json"
        stage = StageProcess(name, [*args, *secure, "--metrics-port", str(port), "--report", str(report)],
                             self.tmp / f"{name}.log", self.tmp / f"{name}.json", port)
        self.stages.append(stage)
        stage.start()
        assert stage.ready(READY_S), f"{name} did not start:\n{stage.log_tail()}"
        return stage

    def sink(self, name: str = "sink", *extra: str) -> StageProcess:
        return self._start(name, ["sink", "--bind", self.scored, "--ack-connect", self.acks, "--out", str(self.out),
                                  "--model", str(self.model), "--manifest", str(self.manifests), "--commit-ms", "100",
                                  "--anomaly-model", expected_anomaly_model(self.model, self.input, self.input_flags),
                                  *extra])

    def encoder(self, name: str, *extra: str) -> StageProcess:
        return self._start(name, ["encode", "--model", str(self.model), "--connect", self.data, "--sink", self.scored,
                                  "--id", name, *extra])

    def producer(self, *extra: str) -> StageProcess:
        return self._start("producer", ["produce", "--input", str(self.input), "--bind", self.data,
                                        "--ack-bind", self.acks, "--run-id", hex(RUN_ID),
                                        "--manifest-out", str(self.manifests / "run.json"), *extra])

    def metric(self, process: StageProcess, name: str, **labels: str) -> float:
        return value(scrape(process.metrics_url), name, **labels)

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        wait_until(condition, timeout, what=what)

    def finish(self, producer: StageProcess, timeout: float = 90.0) -> dict[str, Any]:
        """Wait for the producer to end by itself, then SIGTERM the rest; the producer report."""
        code = producer.wait(timeout)
        assert code == 0, f"producer exit {code}:\n{producer.log_tail(30)}"
        for stage in self.stages:
            if stage is not producer and stage.alive():
                stage.signal(signal.SIGTERM)
        for stage in self.stages:
            if stage is not producer and stage.returncode is None:
                assert stage.wait(30.0) == 0, f"{stage.name} did not stop cleanly:\n{stage.log_tail()}"
        return json.loads(producer.report_path.read_text())

    def counts(self, produced: int | None) -> dict[str, int]:
        return recording_counts(self.out, 0xABC123, produced)

    def verify(self) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "emulator.cli", "verify", str(self.out)], capture_output=True,
                              text=True, timeout=120)

    def close(self) -> None:
        terminate_all(self.stages, timeout=5.0)
