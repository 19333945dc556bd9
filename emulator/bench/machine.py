"""What the numbers were measured on: CPU, cores, clock, load, library versions, cycle-counting method."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import numpy
import zmq

from emulator.bench.cycles import clock_hz, cycle_method


def cpu_model() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    m = re.search(r"^model name\s*:\s*(.+)$", text, flags=re.M)
    return m.group(1).strip() if m else platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    m = re.search(r"^flags\s*:\s*(.+)$", text, flags=re.M)
    flags = set(m.group(1).split()) if m else set()
    return sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))


def git_state() -> dict | None:
    """The commit the benchmark ran on and whether the work tree had uncommitted changes."""

    repo = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if rev.returncode != 0:
        return None
    return {"commit": rev.stdout.strip(), "uncommitted_changes": bool(dirty.stdout.strip())}


def describe() -> dict:
    """Machine facts recorded in results.json (versions of the libraries that matter)."""
    import onnxruntime

    hz, clock_source = clock_hz()
    out = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "simd": cpu_flags(), "clock_hz": hz, "clock_source": clock_source,
        "cycle_method": cycle_method(), "kernel": platform.release(), "python": platform.python_version(),
        "numpy": numpy.__version__, "onnxruntime": onnxruntime.__version__, "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(), "loadavg_start": list(os.getloadavg()),
    }
    out["git"] = git_state()
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:
        out["torch"] = None
    return out
