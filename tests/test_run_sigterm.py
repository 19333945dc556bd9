"""`aetrig run` as a real process: SIGTERM gives a clean drain, closed files, a summary and exit 0."""

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

from emulator.run.cpu_plan import available_cpus, plan_cpus
from emulator.run.live_status import scrape, value


def _run(tmp_path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "emulator.cli", "run", "--input", str(tmp_path / "in.root"),
                             "--out", str(tmp_path / "run"), "--status-interval", "0.5", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_sigterm_to_run_drains_and_summarises(tmp_path: Path) -> None:
    make_ntuple(tmp_path / "in.root", 5000, seed=141)
    proc = _run(tmp_path, "--rate", "5000", "--loops", "0", "--encoders", "1")
    run_json = tmp_path / "run" / "run.json"
    try:
        deadline = time.monotonic() + 60
        while not run_json.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert run_json.exists(), proc.communicate(timeout=5)
        stages = json.loads(run_json.read_text())["stages"]
        pids = {s["name"]: s["pid"] for s in stages}
        assert set(pids) == {"sink", "encoder-0", "producer"} and all(pid_alive(p) for p in pids.values())
        # --pin-cpus auto: every thread of each stage (ZeroMQ's I/O thread too) on the cores the plan gives it
        plan = plan_cpus(list(pids), "auto")
        for name, pid in pids.items():
            want = plan.get(name, set(available_cpus()))
            assert all(os.sched_getaffinity(int(t.name)) == want for t in Path(f"/proc/{pid}/task").iterdir()), name
        # streaming, past the end of the 5000-event input: the sink has committed more than one pass of it
        sink_url = next(s["metrics"] for s in stages if s["name"] == "sink")
        wait_until(lambda: proc.poll() is not None  # (a run that ended by itself fails below, with its output)
                   or value(scrape(sink_url), "aetrig_events_total", stage="sink") > 5000, 60,
                   what="the sink to record more than 5000 events")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    assert not any(pid_alive(p) for p in pids.values())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    ev = summary["events"]
    assert ev["produced"] > 5000 and ev["recorded"] == ev["produced"]
    assert ev["lost"] == 0 and ev["duplicates_recorded"] == 0 and ev["encoded"] >= ev["produced"]
    assert summary["latency_seconds"]["decision"]["p50"] > 0
    # the decision latency split by hop: every event's three hops add up to its decision latency, so the
    # (exact, event-weighted) means do too; each hop is a real, positive wait on one host's clock
    sink_latency = json.loads((tmp_path / "run" / "reports" / "sink.json").read_text())["latency_seconds"]
    hops = sink_latency["decision_hops"]
    assert set(hops) == {"to_encoder", "in_encoder", "to_sink"}
    assert all(h["events"] == sink_latency["decision"]["events"] and h["p50"] > 0 for h in hops.values())
    assert sum(h["mean"] for h in hops.values()) == pytest.approx(sink_latency["decision"]["mean"], rel=1e-9)
    assert set(summary["latency_seconds"]["decision_hops"]) == set(hops) and "(p99 by hop: producer->encoder" in out
    producer = json.loads((tmp_path / "run" / "reports" / "producer.json").read_text())
    assert producer["stop_reason"] == "SIGTERM" and producer["drained"]
    for name in ("sink", "encoder-0"):
        assert json.loads((tmp_path / "run" / "reports" / f"{name}.json").read_text())["stopped_by"] == "SIGTERM"
    assert "summary:" in out and (tmp_path / "run" / "logs" / "sink.log").stat().st_size > 0
    verify = subprocess.run([sys.executable, "-m", "emulator.cli", "verify", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.timeout(120)
def test_run_with_a_stage_that_cannot_start_fails_clearly(tmp_path: Path) -> None:
    make_ntuple(tmp_path / "in.root", 100, seed=142)
    proc = _run(tmp_path, "--model", str(tmp_path / "no-such-model"), "--events", "100")
    _, err = proc.communicate(timeout=100)
    assert proc.returncode == 1
    # the sink, told the model's card to expect, is the first stage that cannot start
    assert "sink did not start" in err and "no-such-model" in err and "could not start the pipeline" in err


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_run_drop_on_overload_counts_deadtime(tmp_path: Path) -> None:
    make_ntuple(tmp_path / "in.root", 20000, seed=143)
    proc = _run(tmp_path, "--events", "20000", "--rate", "0", "--window", "2", "--events-per-message", "500",
                "--drop-on-overload")
    out, err = proc.communicate(timeout=110)
    assert proc.returncode == 0, out + err
    ev = json.loads((tmp_path / "run" / "summary.json").read_text())["events"]
    assert ev["dropped"] > 0 and ev["produced"] > 0
    assert ev["produced"] + ev["dropped"] == 20000  # every event is either recorded or counted as dropped
    assert ev["recorded"] == ev["produced"] and ev["lost"] == 0 and ev["duplicates_recorded"] == 0
