"""Starting and stopping child processes: the `aetrig` stage command prefix, the child's set-up and the
SIGTERM-then-SIGKILL stop (the one copy of each)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def aetrig_command(stage: str) -> list[str]:
    """The command prefix for a stage: the installed ``aetrig`` script, else ``python -m emulator.cli``."""
    script = Path(sys.executable).with_name("aetrig")
    if script.is_file():
        return [sys.executable, str(script), stage]
    return [sys.executable, "-m", "emulator.cli", stage]


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In the child (``preexec_fn``): get SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG).

    Does nothing where that is not available, so no stage outlives a killed supervisor on Linux.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def stop_child(proc: subprocess.Popen | None, timeout: float, *, sig: int = signal.SIGTERM,
               signalled: bool = False, kill_wait: float = 5.0,
               on_kill: Callable[[], None] | None = None) -> int | None:
    """Stop a child: send ``sig`` once (unless ``signalled`` or it has exited), wait up to ``timeout`` s,
    then (``on_kill()`` first) SIGKILL it and wait up to ``kill_wait`` s.

    Returns the exit code, or None when there is no process or it still runs.
    """
    if proc is None:
        return None
    if not signalled and proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    if on_kill is not None:
        on_kill()
    proc.kill()
    try:
        return proc.wait(kill_wait)
    except subprocess.TimeoutExpired:
        return None
