"""Every Grafana panel query returns a series from a real Prometheus scraping a real `aetrig run`.

Needs the `prometheus` binary (CI installs Debian's package in .ci/run). Without it the test FAILS
with the install hint: the dashboard is only proven when this runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dashboard_queries import RATE_WINDOW, unanswered_queries
from waiting import wait_until

from emulator.ops.prometheus_local import INSTALL_HINT, find_prometheus, query, targets_health

RUN_SECONDS = 20
RATE_HZ = 2000
PROMETHEUS_LINE = re.compile(r"Prometheus on (http://127\.0\.0\.1:\d+)")
AETRIG = Path(sys.executable).with_name("aetrig")


def wait_for_targets(url: str, names: list[str] | tuple[str, ...], timeout: float = 20.0) -> None:
    """Wait until every named target has been scraped successfully (Prometheus discovers targets ~5 s late)."""
    wait_until(lambda: all(targets_health(url).get(name) == "up" for name in names), timeout, interval=0.5,
               what=lambda: f"targets {list(names)} up: {targets_health(url)}")


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _wait_for_line(lines: queue.Queue, log: list[str], pattern: re.Pattern, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        log.append(line)
        if match := pattern.search(line):
            return match
    pytest.fail(f"`aetrig run` printed no {pattern.pattern!r} within {timeout:.0f} s; output:\n" + "".join(log))


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the whole run (stages and Prometheus), SIGKILL what is left after 10 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_every_panel_query_returns_a_series(tmp_path: Path, free_port) -> None:
    if find_prometheus() is None:
        pytest.fail(INSTALL_HINT + " (this test must run; CI installs it in .ci/run)")
    out = tmp_path / "run"
    cmd = [str(AETRIG), "run", "--duration", str(RUN_SECONDS), "--rate", str(RATE_HZ), "--encoders", "1",
           "--prometheus", "--prometheus-port", str(free_port()), "--status-interval", "0", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    log: list[str] = []
    try:
        url = _wait_for_line(lines, log, PROMETHEUS_LINE, timeout=60).group(1)
        stages = [s["name"] for s in json.loads((out / "run.json").read_text())["stages"]]
        wait_for_targets(url, stages, timeout=25)
        # Let data flow through all stages and at least two scrapes land inside the rate window.
        wait_until(lambda: query(url, 'sum(aetrig_events_total{stage="sink"}) > 0'), 20, interval=0.5,
                   what="the sink's events on Prometheus")

        def every_query_answers() -> dict[tuple[str, str], list[str]] | None:
            empty, values = unanswered_queries(url)
            return None if empty else values

        values = wait_until(every_query_answers, 10, interval=0.5,
                            what=lambda: "every query to return a series:\n" + "\n".join(unanswered_queries(url)[0]))

        # The series carry a live run, not only pre-created zeros.
        for stage in ("producer", "encoder", "sink"):
            assert query(url, f'sum(aetrig_events_total{{stage="{stage}"}}) > 0'), f"no {stage} events scraped"
        assert query(url, f'sum(rate(process_cpu_seconds_total{{job="aetrig"}}[{RATE_WINDOW}])) > 0')
        assert query(url, "sum(aetrig_decision_latency_seconds_count) > 0")
        wait_until(lambda: query(url, "sum(aetrig_sink_bytes_per_jet) > 0"), 10, interval=0.5,
                   what="the recording's bytes per jet on Prometheus")
        for (title, promql), vals in values.items():
            print(f"{title:45s} {vals[:4]}  <- {promql}")
    finally:
        _stop_group(proc)
