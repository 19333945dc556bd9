"""CPU time, cycles and resident memory of processes, read from Linux /proc (and `perf stat` where it works).

Cycles come from hardware counters via ``perf stat -e cycles`` when that works on this machine
(virtual machines often report ``<not supported>``); otherwise they are estimated as CPU seconds
times the clock the machine reports. :func:`cycle_method` says which, and results.json records it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from emulator.bench.stats import cycles_from_cpu_seconds

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def parse_proc_stat(text: str, clk_tck: int = CLK_TCK) -> dict[str, float]:
    """utime, stime (seconds) and rss pages of one ``/proc/PID/stat`` line (command names may hold spaces)."""
    rest = text[text.rindex(")") + 2:].split()
    # fields after "pid (comm) ": state=0 ppid=1 ... utime=11 stime=12 ... rss=21 (0-based in `rest`)
    return {"utime": int(rest[11]) / clk_tck, "stime": int(rest[12]) / clk_tck, "ppid": int(rest[1]),
            "rss_pages": int(rest[21])}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (threads included)."""
    st = parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())
    return st["utime"] + st["stime"]


def rss_bytes(pid: int) -> int:
    """Resident set size of a live process in bytes."""
    return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())["rss_pages"] * PAGE_SIZE


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (scans /proc; fine for a handful of processes)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if parse_proc_stat((entry / "stat").read_text())["ppid"] == pid:
                    out.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return sorted(out)


def cmdline(pid: int) -> list[str]:
    """The argv of a live process ([] if it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
    except OSError:
        return []


def parse_cpuinfo_mhz(text: str) -> float | None:
    """Mean of the ``cpu MHz`` lines of /proc/cpuinfo, in MHz, or None."""
    values = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([0-9.]+)", text, flags=re.M)]
    return sum(values) / len(values) if values else None


def clock_hz() -> tuple[float, str]:
    """The clock the machine reports and where it came from (cpufreq max, else /proc/cpuinfo)."""
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if cpufreq.exists():
        return int(cpufreq.read_text()) * 1e3, str(cpufreq)
    mhz = parse_cpuinfo_mhz(Path("/proc/cpuinfo").read_text())
    if mhz is None:
        raise RuntimeError("cannot find the CPU clock in /sys or /proc/cpuinfo")
    return mhz * 1e6, "/proc/cpuinfo cpu MHz"


def parse_perf_csv(text: str) -> float | None:
    """The cycle count of ``perf stat -x,`` output, or None when perf reports it unsupported/uncounted."""
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[2].startswith("cycles"):
            try:
                return float(fields[0])
            except ValueError:
                return None
    return None


def perf_works() -> bool:
    """True when ``perf stat -e cycles`` counts real cycles here (not on most virtual machines)."""
    if shutil.which("perf") is None:
        return False
    try:
        proc = subprocess.run(["perf", "stat", "-x,", "-e", "cycles", "true"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    value = parse_perf_csv(proc.stderr)
    return proc.returncode == 0 and value is not None and value > 0


def cycle_method() -> str:
    """``"perf stat"`` or ``"cpu_seconds_x_clock"``."""
    return "perf stat" if perf_works() else "cpu_seconds_x_clock"


@dataclass
class CpuWindow:
    """CPU seconds (and perf cycles where available) of one process over a measured window."""

    pid: int
    use_perf: bool
    _start_cpu: float = 0.0
    _perf: subprocess.Popen | None = None

    def start(self) -> None:
        self._start_cpu = cpu_seconds(self.pid)
        if self.use_perf:
            self._perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "cycles", "-p", str(self.pid)],
                                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)

    def stop(self) -> dict[str, float | str | None]:
        """CPU seconds spent since start, and cycles with their method."""
        cpu = cpu_seconds(self.pid) - self._start_cpu
        cycles, method = None, "cpu_seconds_x_clock"
        if self._perf is not None:
            self._perf.send_signal(signal.SIGINT)
            _, err = self._perf.communicate(timeout=10)
            cycles = parse_perf_csv(err)
            method = "perf stat" if cycles else method
        hz, _ = clock_hz()
        if cycles is None:
            cycles = cycles_from_cpu_seconds(cpu, hz)
        return {"cpu_seconds": cpu, "cycles": cycles, "cycle_method": method}
