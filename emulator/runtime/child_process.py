"""Starting `aetrig` stages as child processes: the command prefix and the child's set-up (the one copy)."""

from __future__ import annotations

import signal
import sys
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
