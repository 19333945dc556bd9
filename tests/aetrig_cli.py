"""`aetrig` run as a user runs it: a child process of this interpreter, started from the repository root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_aetrig(*argv: str, timeout: float) -> subprocess.CompletedProcess:
    """``python -m emulator.cli ARGV`` in REPO, its stdout and stderr captured as text; TimeoutExpired after
    ``timeout`` seconds."""
    return subprocess.run([sys.executable, "-m", "emulator.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
