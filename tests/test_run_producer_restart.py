"""The producer is supervised too: SIGKILL it in the middle of a real `aetrig run`; the run restarts it with
``--resume-from OUT``, the new producer counts what the recording holds as produced and sends the rest, and
the run ends with produced = recorded, nothing lost, nothing twice. Outside the restarts of one run, a run id
that the output directory already holds is refused at start-up with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from waiting import wait_until

pytestmark = pytest.mark.slow

AETRIG = str(Path(sys.executable).with_name("aetrig"))
EVENTS = 150_000


def _run(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([AETRIG, "run", "--rate", "20000", "--events", str(EVENTS), "--encoders", "1",
                             "--status-interval", "0", "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _producer_pid(out: Path) -> int:
    info = json.loads((out / "run.json").read_text())
    return next(s["pid"] for s in info["stages"] if s["name"] == "producer")


@pytest.mark.timeout(240)
def test_a_killed_producer_is_restarted_and_nothing_is_lost(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _run(out, "--run-id", "0x5EED01")
    try:
        wait_until(lambda: (out / "run.json").exists() or proc.poll() is not None, 120, what="the stages to be up")
        assert proc.poll() is None
        first = _producer_pid(out)
        time.sleep(3.0)  # some batches recorded, others in flight
        os.kill(first, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=200)
    finally:
        if proc.poll() is None:
            proc.kill()
    summary = json.loads((out / "summary.json").read_text())
    ev = summary["events"]
    assert proc.returncode == 0, stderr[-3000:]
    assert "producer died (signal 9); restarting" in stderr
    assert summary["restarts"]["producer"] == 1
    assert ev["produced"] == EVENTS and ev["recorded"] == EVENTS, ev
    assert ev["lost"] == 0 and ev["duplicates_recorded"] == 0, ev
    restarted = json.loads((out / "reports" / "producer.r1.json").read_text())
    assert 0 < restarted["skipped_recorded"] < EVENTS  # it found part of the run recorded and sent the rest
    assert restarted["first_seq"] > 0
    assert _producer_pid(out) != first


@pytest.mark.timeout(240)
def test_a_run_id_already_in_the_output_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [AETRIG, "run", "--rate", "0", "--events", "2000", "--encoders", "1", "--status-interval", "0",
            "--run-id", "0x77", "--out", str(out)]
    first = subprocess.run(args, capture_output=True, text=True, timeout=200)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run(args, capture_output=True, text=True, timeout=200)
    errors = [line for line in again.stderr.splitlines() if "already recorded" in line]
    assert again.returncode == 2 and len(errors) == 1, again.stderr
    assert "0000000000000077" in errors[0] and "--run-id" in errors[0]
