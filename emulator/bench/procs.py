"""Start and stop the stage processes the benchmark measures, and wait for their metrics."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from emulator.runtime.child_process import aetrig_command, die_with_parent, stop_child
from emulator.runtime.prom_text import Samples, scrape


def aetrig(args: list[str], log: Path, nice: int = 0) -> subprocess.Popen:
    """Start ``aetrig ARGS`` as its own process, output to ``log``.

    The child is told to stop (SIGTERM) if the bench dies first, so no stage outlives a killed bench.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = aetrig_command(args[0]) + args[1:]

    def preexec() -> None:
        die_with_parent()
        if nice:
            import os

            os.nice(nice)

    with open(log, "ab") as out:
        out.write((" ".join(["aetrig", *args]) + "\n").encode())
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=preexec)


def stop(proc: subprocess.Popen, timeout: float = 30.0, sig: int = signal.SIGTERM) -> int | None:
    """Ask a stage to drain and exit (SIGTERM); SIGKILL it only if it does not within ``timeout``."""
    return stop_child(proc, timeout, sig=sig, kill_wait=10.0)


def wait_for_metrics(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> Samples:
    """Poll /metrics until it answers (the stage is up) or the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"stage exited with {proc.returncode} before serving metrics")
        try:
            return scrape(port, timeout=1.0)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no /metrics on port {port} after {timeout} s") from None
            time.sleep(0.1)
