"""Where the time goes: attach `py-spy record` to a stage process for a measured window and summarise.

py-spy samples a running process from outside (no code change, native ONNX Runtime frames shown
as their Python caller). The raw collapsed stacks are kept next to results.json; results.json
gets the top frames by self and by inclusive share of samples.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path


def py_spy() -> str | None:
    """Path of the py-spy executable (next to this Python first), or None."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def summarise_collapsed(text: str, top: int = 12) -> dict:
    """Top frames of py-spy's raw (collapsed-stack) output by self and inclusive share of samples."""
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_function(f) for f in stack.split(";")]
        self_t[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    skip = ("<module>", "_run_code", "_run_module_as_main", "main (emulator/cli.py")

    def rows(counter: collections.Counter[str]) -> list[list]:
        return [[round(n / total, 4), f] for f, n in counter.most_common() if not f.startswith(skip)][:top]

    return {"samples": total, "self": rows(self_t) if total else [], "inclusive": rows(incl) if total else []}


def _function(frame: str) -> str:
    """``func (path/file.py:123)`` -> ``func (path/file.py)``: aggregate a function's lines."""
    head, sep, tail = frame.rpartition(":")
    return f"{head})" if sep and tail.rstrip(")").isdigit() else frame


class Profiler:
    """One py-spy recording of one process for ``seconds``."""

    def __init__(self, pid: int, seconds: float, out: Path, rate_hz: int = 250):
        self.out = out
        exe = py_spy()
        if exe is None:
            raise FileNotFoundError("py-spy not found: pip install py-spy (it attaches to the running stage)")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                                      "--rate", str(rate_hz), "--format", "raw", "--nonblocking", "-o", str(out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(self, timeout: float = 30.0) -> dict:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.out.exists():
            return {"file": str(self.out), "error": (err or b"").decode(errors="replace")[-300:]}
        return {"file": self.out.name, **summarise_collapsed(self.out.read_text())}
