"""The shared runtime's one-copy helpers: rejecting a message, atomic JSON, /metrics text and quantiles,
stop signals, and the child process set-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import pytest
from prometheus_client import generate_latest

from emulator.runtime import prom_text
from emulator.runtime.atomic import write_json_atomic
from emulator.runtime.child_process import aetrig_command, stop_child
from emulator.runtime.metrics import make_metrics
from emulator.runtime.quarantine import Quarantine
from emulator.runtime.rejections import Rejections
from emulator.runtime.shutdown import StopFlag, on_stop_signals, restore_signals

REPO = Path(__file__).resolve().parents[1]
INF = float("inf")


# ---- rejecting a message -------------------------------------------------------------------
def test_reject_counts_the_metric_and_the_bytes_and_quarantines_the_frames(tmp_path: Path) -> None:
    metrics = make_metrics()
    rejections = Rejections(metrics, Quarantine(tmp_path / "q"))
    rejections.reject("bad_header", "not msgpack", [b"abc", b"defgh"])
    rejections.reject("bad_header", "again", [b"x"])
    rejections.reject("non_finite", "NaN", [memoryview(b"0123456789")])
    samples = prom_text.parse(generate_latest(metrics.registry).decode())
    assert prom_text.value(samples, "aetrig_rejected_messages_total", reason="bad_header") == 2
    assert prom_text.value(samples, "aetrig_rejected_messages_total", reason="non_finite") == 1
    assert prom_text.value(samples, "aetrig_rejected_messages_total") == 3
    assert prom_text.value(samples, "aetrig_quarantined_bytes_total") == 3 + 5 + 1 + 10
    kept = sorted((tmp_path / "q" / "bad_header").glob("*.msgpack"))
    assert len(kept) == 2
    assert msgpack.unpackb(kept[0].read_bytes())["frames"] == [b"abc", b"defgh"]
    report = rejections.report()
    assert report["rejected"] == {"bad_header": 2, "non_finite": 1} and report["rejected_messages"] == 3
    assert report["quarantine"]["bytes"] == 19 and report["quarantine"]["files"] == 3


# ---- atomic JSON ---------------------------------------------------------------------------
def test_atomic_json_write_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "report.json"
    assert write_json_atomic(path, {"a": 1, "b": [1.5]}, indent=2) == path
    assert path.read_text() == json.dumps({"a": 1, "b": [1.5]}, indent=2) + "\n"
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"]


def test_atomic_json_write_leaves_the_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "report.json"
    write_json_atomic(path, {"old": True})
    with pytest.raises(ValueError):  # NaN refused: nothing is written
        write_json_atomic(path, {"x": float("nan")}, allow_nan=False)

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError):  # fails after the temporary file was written
        write_json_atomic(path, {"new": True})
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left behind


# ---- /metrics text and quantiles -----------------------------------------------------------
def test_histogram_quantile_against_a_hand_computation() -> None:
    cumulative = [(0.001, 50.0), (0.01, 90.0), (0.1, 100.0), (INF, 100.0)]
    q = prom_text.histogram_quantile
    assert q(0.5, cumulative) == pytest.approx(0.001)  # rank 50 reached exactly at the first edge
    assert q(0.7, cumulative) == pytest.approx(0.001 + 0.009 * 20 / 40)  # rank 70: 20 of the 40 in (1, 10] ms
    assert q(0.99, cumulative) == pytest.approx(0.01 + 0.09 * 9 / 10)
    assert q(0.7, list(reversed(cumulative))) == q(0.7, cumulative)  # order of the buckets does not matter
    assert q(0.5, [(b, 0.0) for b, _ in cumulative]) is None and q(0.5, []) is None
    assert q(0.5, [(0.1, 0.0), (INF, 10.0)]) == 0.1  # beyond the last finite edge: that edge
    # empty buckets never hold a quantile: q = 0 is the lower edge of the first non-empty bucket
    assert q(0.0, [(0.001, 0.0), (0.01, 0.0), (0.1, 4.0), (INF, 4.0)]) == pytest.approx(0.01)
    assert q(0.25, [(0.001, 0.0), (0.01, 0.0), (0.1, 4.0), (INF, 4.0)]) == pytest.approx(0.01 + 0.09 / 4)


def test_parse_value_buckets_and_increase_of_an_exposition() -> None:
    metrics = make_metrics()
    for v in (0.003, 0.003, 0.2):
        metrics.decision_latency.observe(v)
    metrics.events.labels(stage="sink").inc(7)
    before = prom_text.parse(generate_latest(metrics.registry).decode())
    metrics.decision_latency.observe(0.003)
    after = prom_text.parse(generate_latest(metrics.registry).decode())
    assert prom_text.value(after, "aetrig_events_total", stage="sink") == 7
    assert prom_text.value(after, "aetrig_events_total") == 7 and prom_text.value(None, "x") == 0
    name = "aetrig_decision_latency_seconds"
    cumulative = prom_text.buckets(after, name)
    assert cumulative[-1] == (INF, 4.0) and [b for b, _ in cumulative] == sorted(b for b, _ in cumulative)
    gained = prom_text.bucket_increase(before, after, name)
    assert gained[-1] == (INF, 1.0) and dict(gained)[0.0025] == 0 and dict(gained)[0.005] == 1
    # a restarted stage's histogram starts again from 0: the increase is what it holds now
    restarted = prom_text.parse(generate_latest(make_metrics().registry).decode())
    assert prom_text.bucket_increase(after, restarted, name) == prom_text.buckets(restarted, name)


def test_scrape_raises_when_nothing_serves() -> None:
    with pytest.raises(OSError):
        prom_text.scrape("http://127.0.0.1:1/metrics", timeout=1.0)


# ---- stop signals --------------------------------------------------------------------------
def test_stop_signals_reach_the_callback_and_the_old_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen: list[str] = []
    previous = on_stop_signals(seen.append)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        restore_signals(previous)
    assert seen == ["SIGTERM", "SIGINT"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_signals_outside_the_main_thread_change_nothing() -> None:
    result: list[dict] = []
    thread = threading.Thread(target=lambda: result.append(on_stop_signals(print)))
    thread.start()
    thread.join()
    assert result == [{}]


def test_stop_flag_is_set_by_sigterm() -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        flag = StopFlag().install()
        assert not flag
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not flag and time.monotonic() < deadline:
            time.sleep(0.01)
        assert flag and flag.signal_name == "SIGTERM"
    finally:
        restore_signals(previous)


# ---- child processes -----------------------------------------------------------------------
def test_aetrig_command_runs_the_cli() -> None:
    cmd = aetrig_command("produce")
    assert cmd[0] == sys.executable and cmd[-1] == "produce"
    out = subprocess.run([*cmd[:-1], "--help"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0 and "produce" in out.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_child_set_up_with_die_with_parent_stops_when_its_parent_dies() -> None:
    parent = ("import subprocess, sys\n"
              "from emulator.runtime.child_process import die_with_parent\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
              " preexec_fn=die_with_parent)\n"
              "print(child.pid, flush=True)\n")
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, timeout=60, cwd=REPO)
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(child):
        time.sleep(0.05)
    assert not _running(child), "the child outlived its parent"


def test_stop_child_sigterms_then_sigkills_a_child_that_ignores_it() -> None:
    assert stop_child(None, 1.0) is None
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stop_child(polite, 10.0) == -signal.SIGTERM
    assert stop_child(polite, 10.0) == -signal.SIGTERM  # already stopped: no signal, the same code
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                                 "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(60)"],
                                stdout=subprocess.PIPE)
    stubborn.stdout.readline()  # SIGTERM is ignored from here on
    killed = []
    assert stop_child(stubborn, 0.2, on_kill=lambda: killed.append(True)) == -signal.SIGKILL
    stubborn.stdout.close()
    assert killed == [True]


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
