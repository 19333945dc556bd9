"""Start and stop the stage processes the benchmark measures, find free ports, and scrape their metrics."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the bench process dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def aetrig(args: list[str], log: Path, nice: int = 0) -> subprocess.Popen:
    """Start ``aetrig ARGS`` as its own process (``python -m emulator.cli``), output to ``log``.

    The child is told to stop (SIGTERM) if the bench dies first, so no stage outlives a killed bench.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "emulator.cli", *args]

    def preexec() -> None:
        _die_with_parent()
        if nice:
            import os

            os.nice(nice)

    with open(log, "ab") as out:
        out.write((" ".join(["aetrig", *args]) + "\n").encode())
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=preexec)


def stop(proc: subprocess.Popen, timeout: float = 30.0, sig: int = signal.SIGTERM) -> int:
    """Ask a stage to drain and exit (SIGTERM); SIGKILL it only if it does not within ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def scrape(port_or_url: int | str, timeout: float = 5.0) -> dict[str, float]:
    """All samples of a /metrics page (port on 127.0.0.1, or a URL) as ``{"name{label=value,...}": value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    url = port_or_url if isinstance(port_or_url, str) else f"http://127.0.0.1:{port_or_url}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = float(s.value)
    return out


def wait_for_metrics(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> dict[str, float]:
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
