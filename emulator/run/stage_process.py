"""Stage processes for `aetrig run`: launching, readiness, stopping.

Each stage is a separate ``aetrig <stage> ...`` process (visible in ``ps``) in its own process
group, so a Ctrl-C on the terminal reaches only `aetrig run`, which then stops the stages in
order. On Linux each child also gets SIGTERM if `aetrig run` itself dies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from emulator.runtime.child_process import aetrig_command, die_with_parent, stop_child


@dataclass
class StageProcess:
    """One stage: its command, log file, report path and metrics port."""

    name: str
    args: list[str]
    log_path: Path
    report_path: Path | None = None
    metrics_port: int | None = None
    proc: subprocess.Popen | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    cpus: frozenset[int] | None = None  # the cores it is pinned to (emulator/run/cpu_plan.py); None: any

    def _preexec(self) -> None:  # pragma: no cover - runs in the child, before exec
        die_with_parent()
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)  # kept across exec and by every thread the stage starts

    @property
    def stage(self) -> str:
        return self.args[0]

    @property
    def metrics_url(self) -> str | None:
        return f"http://127.0.0.1:{self.metrics_port}/metrics" if self.metrics_port else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in close_log once the child exits
        cmd = aetrig_command(self.args[0]) + self.args[1:]
        self._log.write(("$ " + " ".join(cmd) + "\n").encode())
        self._log.flush()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     process_group=0, preexec_fn=self._preexec)
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` s; the exit code, or None if still running."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float, already_signalled: bool = False) -> int | None:
        """SIGTERM (once: a second one could hit the child's interpreter shutdown, where the default
        action kills it), wait up to ``timeout``, then SIGKILL; returns the exit code."""
        code = stop_child(self.proc, timeout, signalled=already_signalled, on_kill=lambda: print(
            f"aetrig run: {self.name} did not stop within {timeout:g} s, killing it", file=sys.stderr))
        self.close_log()
        return code

    def close_log(self) -> None:
        if self._log is not None and (self.proc is None or self.proc.poll() is not None):
            self._log.close()
            self._log = None

    def ready(self, timeout: float) -> bool:
        """Wait until the stage serves /metrics (or, without metrics, until it has run ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if self.metrics_url is None:
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
                continue
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=0.5) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                time.sleep(0.1)
        return self.alive() and self.metrics_url is None

    def report(self) -> dict[str, Any] | None:
        """The stage's --report JSON, or None when it wrote none (e.g. killed)."""
        if self.report_path is None or not self.report_path.is_file():
            return None
        try:
            return json.loads(self.report_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def terminate_all(stages: list[StageProcess], timeout: float = 10.0) -> None:
    """Last-resort cleanup: SIGTERM every live stage, then SIGKILL what remains."""
    for stage in stages:
        stage.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for stage in stages:
        stop_child(stage.proc, max(0.0, deadline - time.monotonic()), signalled=True)
        stage.close_log()
