"""`aetrig run` supervision: an encoder or the sink killed with SIGKILL mid-run is started again, and the
run ends with exit 0, produced = recorded, nothing twice and the restart counted; past --max-restarts
the run fails. Unit tests of the backoff and report naming first, then real processes and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from producer_testdata import make_ntuple
from waiting import pid_alive, wait_until

from emulator.run.live_status import scrape, value
from emulator.run.restarts import Supervisor, backoff_s, describe_exit, instance_report_path, with_report
from emulator.run.stage_process import StageProcess
from emulator.run.summary import combine_sink_reports, merge
from emulator.runtime.command_config import option_strings

N_EVENTS = 20000
REPO = Path(__file__).resolve().parents[1]


def test_backoff_doubles_from_half_a_second_up_to_eight() -> None:
    assert [backoff_s(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert describe_exit(-9) == "signal 9" and describe_exit(2) == "exit code 2"


def test_restarted_instance_gets_its_own_report(tmp_path: Path) -> None:
    first = tmp_path / "reports" / "encoder-0.json"
    assert instance_report_path(first, 0) == first
    assert instance_report_path(first, 2) == tmp_path / "reports" / "encoder-0.r2.json"
    args = ["encode", "--report", str(first), "--id", "encoder-0"]
    assert with_report(args, instance_report_path(first, 1)) == [
        "encode", "--report", str(tmp_path / "reports" / "encoder-0.r1.json"), "--id", "encoder-0"]


def test_summary_adds_up_every_instance_and_counts_restarts() -> None:
    sinks = [{"duplicates_discarded": 3, "recorded_events": 10, "rejected": {"bad_header": 1},
              "latency_seconds": {"decision": {"p50": 9.0}}},
             {"duplicates_discarded": 40, "recorded_events": 900, "rejected": {"bad_header": 2},
              "latency_seconds": {"decision": {"p50": 0.002}}}]
    sink = combine_sink_reports(sinks)
    assert sink["duplicates_discarded"] == 43 and sink["rejected"] == {"bad_header": 3}
    assert combine_sink_reports([]) is None
    s = merge({"produced": 1000}, [{"events": 400}, {"events": 700}], sink,
              {"recorded": 1000, "flagged": 1, "duplicates_recorded": 0, "lost": 0},
              {"sink": 1, "encoder-0": 2})
    assert s["events"]["encoded"] == 1100 and s["events"]["duplicates_discarded"] == 43
    assert s["latency_seconds"]["decision"]["p50"] == 0.002 and s["restarts"] == {"sink": 1, "encoder-0": 2}


class _Stop:
    reason: str | None = None


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_stage_that_keeps_dying_fails_after_the_limit(tmp_path: Path) -> None:
    """A real process that exits 3 at once: restarted --max-restarts times with backoff, then a failure."""
    stage = StageProcess("encoder-0", ["encode", "--no-such-flag", "--report", str(tmp_path / "encoder-0.json")],
                         tmp_path / "encoder-0.log", tmp_path / "encoder-0.json")
    stage.start()
    sup = Supervisor([stage], max_restarts=2)
    stop, failures, t0 = _Stop(), [], time.monotonic()
    while not failures and time.monotonic() - t0 < 50:
        stage.wait(sup.wait_s(0.5))
        failures += sup.poll(stop)
    assert sup.restarts == {"encoder-0": 2} and time.monotonic() - t0 >= backoff_s(1) + backoff_s(2)
    assert failures == ["encoder-0 died (exit code 2) after 2 restart(s): limit --max-restarts 2 reached "
                        "(0 encoder(s) left)"]
    assert stop.reason == "no encoder left"
    assert "--report " + str(tmp_path / "encoder-0.r2.json") in stage.log_path.read_text()
    assert sup.close() == set()


def _run(tmp_path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "emulator.cli", "run", "--out", str(tmp_path / "run"),
                             "--status-interval", "0.5", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stages(run_dir: Path) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads((run_dir / "run.json").read_text())["stages"]}


def _wait_started(proc: subprocess.Popen, run_dir: Path, timeout: float = 90.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while not (run_dir / "run.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (run_dir / "run.json").exists(), proc.communicate(timeout=30)
    return _stages(run_dir)


def _sent(stage: dict, label: str) -> float:
    return value(scrape(stage["metrics"]), "aetrig_events_total", stage=label)


def _wait_recorded(sink: dict, events: float, timeout: float = 60.0) -> None:
    wait_until(lambda: _sent(sink, "sink") >= events, timeout, interval=0.2, what=f"the sink to record {events} events")


def _kill_mid_run(tmp_path: Path, victim: str, *inputs: str) -> tuple[int, dict, dict, str]:
    """Start `aetrig run`, SIGKILL ``victim`` once events are recorded; (exit code, summary, run.json, stderr)."""
    run_dir = tmp_path / "run"
    proc = _run(tmp_path, *inputs, "--events", str(N_EVENTS), "--rate", "4000", "--encoders", "1",
                "--events-per-message", "200")
    try:
        stages = _wait_started(proc, run_dir)
        _wait_recorded(stages["sink"], 3000)
        old_pid = stages[victim]["pid"]
        # freeze it first so that it surely holds unacknowledged batches when it dies (the stage upstream has
        # sent it more), then kill -9
        upstream, label = {"encoder-0": ("producer", "producer"), "sink": ("encoder-0", "encoder")}[victim]
        os.kill(old_pid, signal.SIGSTOP)
        frozen_at = _sent(stages[upstream], label)
        wait_until(lambda: _sent(stages[upstream], label) >= frozen_at + 200, 30, interval=0.05,
                   what=f"{upstream} to send 200 more events to the frozen {victim}")
        os.kill(old_pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    info = json.loads((run_dir / "run.json").read_text())
    new_pid = {s["name"]: s["pid"] for s in info["stages"]}[victim]
    assert new_pid != old_pid and not pid_alive(new_pid)
    assert not any(pid_alive(s["pid"]) for s in info["stages"])
    return proc.returncode, json.loads((run_dir / "summary.json").read_text()), info, out + err


def _assert_exactly_once_after_one_restart(code: int, summary: dict, info: dict, log: str, victim: str) -> None:
    assert code == 0, log
    assert f"aetrig run: {victim} died (signal 9); restarting (1/5)" in log
    ev = summary["events"]
    assert ev["produced"] == N_EVENTS and ev["recorded"] == ev["produced"], ev
    assert ev["lost"] == 0 and ev["duplicates_recorded"] == 0, ev
    assert summary["restarts"] == {"sink": 0, "encoder-0": 0, "producer": 0, victim: 1}
    assert info["restarts"] == summary["restarts"] and info["failures"] == []
    assert summary["batches"]["resent"] > 0, "the killed stage held batches: the producer must have resent them"


def _run_has_flag(flag: str) -> bool:
    from emulator import cli

    parser, _ = cli.build_parser("run")
    return flag in option_strings(parser)


PHYSLITE = ("--input-format", "physlite", "--input", str(REPO / "producer" / "samples" / "physlite_example.root"))


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("inputs", [
    pytest.param((), id="default-input"),
    pytest.param(PHYSLITE, id="physlite", marks=pytest.mark.skipif(
        not _run_has_flag("--input-format"), reason="aetrig run has no --input-format yet")),
])
def test_run_restarts_an_encoder_killed_with_sigkill(tmp_path: Path, inputs: tuple[str, ...]) -> None:
    code, summary, info, log = _kill_mid_run(tmp_path, "encoder-0", *inputs)
    _assert_exactly_once_after_one_restart(code, summary, info, log, "encoder-0")
    reports = tmp_path / "run" / "reports"
    assert not (reports / "encoder-0.json").exists()  # the killed instance wrote none
    successor = json.loads((reports / "encoder-0.r1.json").read_text())
    assert summary["events"]["encoded"] == successor["events"] > 0
    assert (tmp_path / "run" / "logs" / "encoder-0.log").read_text().count("$ ") == 2


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_run_restarts_a_sink_killed_with_sigkill(tmp_path: Path) -> None:
    code, summary, info, log = _kill_mid_run(tmp_path, "sink")
    _assert_exactly_once_after_one_restart(code, summary, info, log, "sink")
    successor = json.loads((tmp_path / "run" / "reports" / "sink.r1.json").read_text())
    assert successor["resumed_from"]["events"] > 0  # the seen set was rebuilt from the segments
    assert successor["stopped_by"] == "SIGTERM"
    verify = subprocess.run([sys.executable, "-m", "emulator.cli", "verify", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_run_without_restarts_fails_when_an_encoder_is_killed(tmp_path: Path) -> None:
    """--no-restart-encoders: the other encoder takes over, nothing is lost, but the run fails (exit 1)."""
    make_ntuple(tmp_path / "in.root", 4000, seed=151)
    proc = _run(tmp_path, "--input", str(tmp_path / "in.root"), "--events", str(N_EVENTS), "--rate", "4000",
                "--events-per-message", "200", "--encoders", "2", "--no-restart-encoders")
    try:
        stages = _wait_started(proc, tmp_path / "run")
        _wait_recorded(stages["sink"], 3000)
        os.kill(stages["encoder-0"]["pid"], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, out + err
    assert "encoder-0 died (signal 9) (1 encoder(s) left)" in err and "restarting" not in err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["events"]["recorded"] == summary["events"]["produced"] == N_EVENTS
    assert summary["restarts"] == {"sink": 0, "encoder-0": 0, "encoder-1": 0, "producer": 0}
