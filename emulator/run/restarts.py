"""Supervision for `aetrig run`: start a new encoder, sink or producer when one dies, with backoff and a limit.

A stage dies when it exits with a non-zero code or by a signal (SIGKILL, the OOM killer) before the
run stops; encoders and the sink never exit on their own, and once a stop is requested (SIGTERM,
Ctrl-C, the producer's end) an exit is not a death. The new process gets the same command line
(same ports, id, --out: ZeroMQ peers reconnect, the sink rebuilds its seen set from the segments,
the producer resends what was not acknowledged) except its --report, ``NAME.rN.json``, so each
instance's report survives for the summary, plus the stage's ``on_restart_args`` (the producer's
``--resume-from OUT``: the new producer counts the events the recording holds as produced and sends the
others, producer/resume.py). A producer that exits 0 has finished; one that dies is restarted like the
others. The log keeps appending to ``logs/NAME.log``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from emulator.run.stage_process import StageProcess

DEFAULT_MAX_RESTARTS = 5
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 8.0


class StopState(Protocol):
    reason: str | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("supervision")
    g.add_argument("--restart-encoders", action=argparse.BooleanOptionalAction, default=True,
                   help="start a new encoder, sink or producer in place of one that dies (signal or non-zero exit) "
                        f"before the run stops, after {BACKOFF_INITIAL_S:g} s doubling to {BACKOFF_MAX_S:g} s "
                        "(default on; off: a dead encoder fails the run, a dead sink stops it)")
    g.add_argument("--max-restarts", type=_count, default=DEFAULT_MAX_RESTARTS, metavar="N",
                   help=f"restarts per stage; one more death fails the run (default {DEFAULT_MAX_RESTARTS})")


def _count(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def backoff_s(n: int) -> float:
    """Delay before restart number ``n`` (1, 2, ...) of one stage."""
    return min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * 2.0 ** (n - 1))


def describe_exit(code: int) -> str:
    """'signal 9' for a process killed by a signal, else 'exit code N'."""
    return f"signal {-code}" if code < 0 else f"exit code {code}"


def instance_report_path(first: Path, n: int) -> Path:
    """The report of instance ``n`` of a stage: NAME.json for the first, NAME.rN.json after restart N."""
    return first if n == 0 else first.with_name(f"{first.stem}.r{n}{first.suffix}")


def with_report(args: Sequence[str], report: Path) -> list[str]:
    """``args`` with the value of --report replaced."""
    out = list(args)
    i = out.index("--report")
    out[i + 1] = str(report)
    return out


@dataclass
class Supervisor:
    """Watches the sink and the encoders; ``poll`` restarts the dead ones or reports them as failures."""

    stages: list[StageProcess]
    enabled: bool = True
    max_restarts: int = DEFAULT_MAX_RESTARTS
    on_restart: Callable[[], None] | None = None
    on_restart_args: dict[str, list[str]] = field(default_factory=dict)  # stage name -> flags added on restart
    restarts: dict[str, int] = field(default_factory=dict)
    _first_report: dict[str, Path | None] = field(default_factory=dict)
    _due: dict[str, float] = field(default_factory=dict)
    _done: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for s in self.stages:
            self.restarts.setdefault(s.name, 0)
            self._first_report[s.name] = s.report_path

    @classmethod
    def from_args(cls, args: argparse.Namespace, stages: list[StageProcess],
                  on_restart: Callable[[], None] | None = None,
                  on_restart_args: dict[str, list[str]] | None = None) -> Supervisor:
        return cls(stages, enabled=getattr(args, "restart_encoders", True),
                   max_restarts=getattr(args, "max_restarts", DEFAULT_MAX_RESTARTS), on_restart=on_restart,
                   on_restart_args=dict(on_restart_args or {}))

    def restarting(self, name: str) -> bool:
        """Whether stage ``name`` died and waits for its restart."""
        return name in self._due

    def wait_s(self, interval: float) -> float:
        """How long the watch loop may sleep: ``interval``, or less when a restart falls due sooner."""
        due = min(self._due.values()) - time.monotonic() if self._due else interval
        return max(0.05, min(interval, due))

    def poll(self, stop: StopState) -> list[str]:
        """Start the restarts that are due and handle new deaths; returns failure notes.

        Sets ``stop.reason`` when the sink is gone for good or no encoder is left.
        """
        failures: list[str] = []
        now = time.monotonic()
        for stage in self.stages:
            if stage.name in self._due:
                if stop.reason is None and now >= self._due[stage.name]:
                    del self._due[stage.name]
                    self._respawn(stage)
                continue
            if stage.name in self._done or stage.alive() or stage.returncode is None:
                continue
            code = stage.returncode
            if code == 0 and stage.stage == "produce":  # the producer's end: the run stops, nothing failed
                self._done.add(stage.name)
                continue
            n = self.restarts[stage.name] + 1
            if code != 0 and self.enabled and n <= self.max_restarts and stop.reason is None:
                delay = backoff_s(n)
                self._due[stage.name] = now + delay
                print(f"\naetrig run: {stage.name} died ({describe_exit(code)}); restarting ({n}/{self.max_restarts}) "
                      f"in {delay:g} s; see {stage.log_path}", file=sys.stderr)
                continue
            self._done.add(stage.name)
            failures.append(self._give_up(stage, code, stop))
        return failures

    def _give_up(self, stage: StageProcess, code: int, stop: StopState) -> str:
        if code == 0:
            note = f"{stage.name} exited with code 0 before the run stopped"
        elif self.enabled and self.restarts[stage.name] >= self.max_restarts:
            note = (f"{stage.name} died ({describe_exit(code)}) after {self.restarts[stage.name]} restart(s): "
                    f"limit --max-restarts {self.max_restarts} reached")
        else:
            note = f"{stage.name} died ({describe_exit(code)})"
        if stage.stage in ("sink", "produce"):
            print(f"\naetrig run: ERROR: {note}; stopping the run; see {stage.log_path}", file=sys.stderr)
            stop.reason = stop.reason or f"{stage.name} failed"
            return note
        left = sum(1 for s in self.stages if s.stage == "encode" and (s.alive() or s.name in self._due))
        note += f" ({left} encoder(s) left)"
        print(f"\naetrig run: WARNING: {note}; see {stage.log_path}", file=sys.stderr)
        if left == 0:
            stop.reason = stop.reason or "no encoder left"
        return note

    def _respawn(self, stage: StageProcess) -> None:
        n = self.restarts[stage.name] + 1
        self.restarts[stage.name] = n
        stage.close_log()
        first = self._first_report[stage.name]
        if first is not None:
            stage.report_path = instance_report_path(first, n)
            stage.args = with_report(stage.args, stage.report_path)
        extra = self.on_restart_args.get(stage.name, [])
        if extra and extra[0] not in stage.args:
            stage.args = [*stage.args, *extra]
        stage.start()
        print(f"aetrig run: {stage.name} restarted (pid {stage.pid}, restart {n}/{self.max_restarts})",
              file=sys.stderr)
        if self.on_restart is not None:
            self.on_restart()

    def close(self) -> set[str]:
        """The stages that died and were waiting for their restart when the run stopped (not failures)."""
        pending = set(self._due)
        for name in sorted(pending):
            print(f"aetrig run: {name} not restarted: the run is stopping", file=sys.stderr)
        self._due.clear()
        return pending

    def reports(self, name: str) -> list[dict[str, Any]]:
        """The reports every instance of stage ``name`` wrote, oldest first (killed instances write none)."""
        first = self._first_report.get(name)
        if first is None:
            return []
        out = []
        for n in range(self.restarts.get(name, 0) + 1):
            try:
                out.append(json.loads(instance_report_path(first, n).read_text()))
            except (OSError, json.JSONDecodeError):
                continue
        return out
