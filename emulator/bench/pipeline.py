"""The full pipeline (producer -> encoders -> sink writing ROOT) through `aetrig run`, watched from outside.

Each run is a real `aetrig run` process tree. While it runs, the bench samples every stage process's
CPU seconds and resident memory from /proc; when it ends, the run's summary.json gives events
produced/recorded/lost, throughput and per-event decision and commit latency percentiles.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from emulator.bench import procs, stats
from emulator.bench.cycles import children, cmdline, cpu_seconds, rss_bytes
from emulator.bench.profile import Profiler
from emulator.runtime import prom_text

STAGE_WORDS = {"produce": "producer", "encode": "encoder", "sink": "sink"}
LATENCY_HISTOGRAMS = {"decision": "aetrig_decision_latency_seconds", "commit": "aetrig_commit_latency_seconds"}


@dataclass
class PipelineConfig:
    out_dir: Path
    duration_s: float
    rate_hz: float = 0.0
    encoders: int = 1
    pattern: str | None = None
    model: Path | None = None
    input: Path | None = None
    extra: list[str] = field(default_factory=list)
    sample_every_s: float = 0.5
    nice: int = 0
    keep_recording: bool = False  # the bench needs only summary.json; segments are deleted unless kept
    profile: bool = False  # py-spy on every stage from the end of the warm-up (all stages up)
    warmup_s: float = 2.0
    default_scoring: bool = False  # no --anomaly-model flag: the encoders' default (the shipped event model flags)

    def args(self) -> list[str]:
        a = ["run", "--duration", f"{self.duration_s:g}", "--rate", f"{self.rate_hz:g}",
             "--encoders", str(self.encoders), "--out", str(self.out_dir)]
        if self.pattern:
            a += ["--pattern", self.pattern]
        if self.model:
            a += ["--model", str(self.model)]
        if self.input:
            a += ["--input", str(self.input)]
        if "--anomaly-model" not in self.extra and not self.default_scoring:
            a += ["--anomaly-model", "none"]  # the compression model alone, unless a variant asks for more
        return a + self.extra


def stage_of(argv: list[str]) -> str | None:
    """Which stage a process is, from its argv (``... emulator.cli encode ...`` -> ``encoder``)."""
    for word in argv[:6]:
        if word in STAGE_WORDS:
            return STAGE_WORDS[word]
    return None


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid``."""
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def _sample(pid: int, t0: float, series: dict, cpu_last: dict) -> None:
    now = time.monotonic() - t0
    for child in descendants(pid):
        argv = cmdline(child)
        stage = stage_of(argv)
        if stage is None:
            continue
        key = f"{stage}-{child}"
        try:
            cpu, rss = cpu_seconds(child), rss_bytes(child)
        except (OSError, ValueError, IndexError):
            continue
        series.setdefault(key, {"stage": stage, "pid": child, "t": [], "rss_bytes": [], "cpu_s": []})
        series[key]["t"].append(round(now, 3))
        series[key]["rss_bytes"].append(rss)
        series[key]["cpu_s"].append(cpu)
        cpu_last[key] = cpu


def run_pipeline(cfg: PipelineConfig, timeout_s: float | None = None) -> dict:
    """Run `aetrig run` once; return its summary plus CPU seconds per stage and RSS series."""
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    args = cfg.args()
    log = cfg.out_dir / "aetrig-run.log"
    t0 = time.monotonic()
    proc = procs.aetrig(args, log, nice=cfg.nice)
    series: dict = {}
    cpu_last: dict = {}
    deadline = t0 + (timeout_s or cfg.duration_s + 120)
    timed_out = False
    profilers: dict = {}
    window = SinkWindow(cfg.out_dir / "run.json", cfg.warmup_s)
    while proc.poll() is None:
        if time.monotonic() > deadline:
            timed_out = True
            procs.stop(proc, timeout=30)
            break
        _sample(proc.pid, t0, series, cpu_last)
        window.tick()
        if cfg.profile and window.first is not None and window.t_up is not None:
            _attach_profilers(cfg, series, profilers, time.monotonic() - window.t_up)
        time.sleep(cfg.sample_every_s)
    wall = time.monotonic() - t0
    result: dict = {"command": "aetrig " + " ".join(args), "exit_code": proc.returncode, "wall_s": wall,
                    "timed_out": timed_out, "rate_hz": cfg.rate_hz, "pattern": cfg.pattern or "constant",
                    "encoders": cfg.encoders, "duration_s": cfg.duration_s}
    summary_path = cfg.out_dir / "summary.json"
    if not summary_path.exists():
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        raise RuntimeError(f"`{result['command']}` wrote no summary.json (exit {proc.returncode}); log tail:\n"
                           + "\n".join(tail))
    summary = json.loads(summary_path.read_text())
    result["summary"] = summary
    result["stage_exit_codes"] = _read_json(cfg.out_dir / "run.json").get("exit_codes")
    prod = _read_json(cfg.out_dir / "reports" / "producer.json")
    result["producer"] = {k: prod.get(k) for k in ("produced", "jets", "achieved_rate_hz", "declared_rate_hz",
                                                   "send_duration_s", "schedule_lag_s", "batches_sent",
                                                   "batches_resent", "dropped", "stop_reason")}
    cpu_by_stage: dict[str, float] = {}
    for key, cpu in cpu_last.items():
        stage = series[key]["stage"]
        cpu_by_stage[stage] = cpu_by_stage.get(stage, 0.0) + cpu
    result["cpu_seconds_by_stage"] = cpu_by_stage
    result["process_series"] = series
    result.update(headline(summary, cfg.duration_s))
    steady = window.result()
    if steady["window_s"]:
        steady["cpu_seconds_by_stage"] = window.cpu_by_stage(series, t0)
        steady["jets_per_cpu_s"] = stats.ratio(steady["jets"], sum(steady["cpu_seconds_by_stage"].values()))
        steady.update(cpu_capacity(steady["cpu_seconds_by_stage"], steady["events"]))
        from emulator.bench.cycles import clock_hz

        total_cpu = sum(steady["cpu_seconds_by_stage"].values())
        steady["cpu_s_per_jet_all_stages"] = stats.ratio(total_cpu, steady["jets"])
        steady["cycles_per_jet_all_stages"] = (stats.cycles_from_cpu_seconds(total_cpu, clock_hz()[0]) / steady["jets"]
                                               if steady["jets"] else None)
        steady["cycle_method"] = "cpu_seconds_x_clock"
    result["steady_state"] = steady
    jets, send_s = prod.get("jets"), prod.get("send_duration_s")
    result["jets_per_s"] = stats.ratio(jets, send_s)
    if profilers:
        result["profiles"] = {key: p.finish() for key, p in profilers.items()}
    if not cfg.keep_recording:
        shutil.rmtree(cfg.out_dir / "segments", ignore_errors=True)
    return result


class SinkWindow:
    """Latency percentiles of the steady state: the sink's histograms between the end of the warm-up and
    the last scrape before the sink stops (summary.json's percentiles include the start-up transient)."""

    def __init__(self, run_json: Path, warmup_s: float):
        self.run_json, self.warmup_s = run_json, warmup_s
        self.url: str | None = None
        self.t_up: float | None = None
        self.first: prom_text.Samples | None = None
        self.last: prom_text.Samples | None = None
        self.t_first = self.t_last = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if self.url is None:
            info = _read_json(self.run_json)
            sink = [s for s in info.get("stages", []) if s.get("name") == "sink" and s.get("metrics")]
            if not sink:
                return
            self.url, self.t_up = sink[0]["metrics"], now
        if now - self.t_up < self.warmup_s:
            return
        try:
            snap = prom_text.scrape(self.url, timeout=1.0)
        except OSError:
            return
        if self.first is None:
            self.first, self.t_first = snap, now
        else:
            self.last, self.t_last = snap, now

    def result(self) -> dict:
        if self.first is None or self.last is None:
            return {"window_s": 0.0, "decision_latency_s": None, "commit_latency_s": None}
        out: dict = {"window_s": self.t_last - self.t_first, "warmup_s": self.warmup_s,
                     "method": "sink /metrics histogram deltas, linear inside buckets"}
        for key, name in LATENCY_HISTOGRAMS.items():
            out[f"{key}_latency_s"] = stats.histogram_window(self.first, self.last, name)
        for unit in ("events", "jets"):
            key = f"aetrig_{unit}_total"
            out[unit] = prom_text.value(self.last, key, stage="sink") - prom_text.value(self.first, key, stage="sink")
        out["events_per_s"] = stats.ratio(out["events"], out["window_s"])
        out["jets_per_s"] = stats.ratio(out["jets"], out["window_s"])
        return out

    def cpu_by_stage(self, series: dict, t0: float) -> dict[str, float]:
        """CPU seconds each stage spent inside the window, from the /proc samples of ``series``."""
        lo, hi = self.t_first - t0, self.t_last - t0
        cpu: dict[str, float] = {}
        for s in series.values():
            inside = [c for t, c in zip(s["t"], s["cpu_s"], strict=True) if lo <= t <= hi]
            if len(inside) >= 2:
                cpu[s["stage"]] = cpu.get(s["stage"], 0.0) + inside[-1] - inside[0]
        return cpu


def cpu_capacity(cpu_by_stage: dict[str, float], events: float, cores: int | None = None) -> dict:
    """CPU microseconds per event of each stage, and the event rate those costs allow on ``cores`` whole cores.

    An estimate for an unshared machine, derived from CPU time (not wall time) so that other
    processes on a shared machine do not distort it; no queueing or scheduling losses included.
    """

    cores = cores or os.cpu_count() or 1
    if not events or not cpu_by_stage:
        return {"cpu_us_per_event_by_stage": None, "capacity_events_per_s_estimate": None}
    per_event = {stage: cpu / events * 1e6 for stage, cpu in cpu_by_stage.items()}
    total = sum(per_event.values())
    return {"cpu_us_per_event_by_stage": per_event, "cpu_us_per_event": total, "cores": cores,
            "capacity_events_per_s_estimate": cores / (total * 1e-6) if total > 0 else None}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _attach_profilers(cfg: PipelineConfig, series: dict, profilers: dict, elapsed: float) -> None:
    """py-spy on each stage process not yet watched, until shortly before the producer's end.

    ``elapsed``: seconds since the stages were up (the producer's duration runs from about then).
    """

    seconds = cfg.duration_s - elapsed - 1.0
    if seconds < 1.0:
        return
    for key, s in series.items():
        if key not in profilers:
            profilers[key] = Profiler(s["pid"], seconds, cfg.out_dir / f"profile-{key}.txt")


def headline(summary: dict, duration_s: float) -> dict:
    """The figures the bench reports from a run summary (None where the summary lacks them)."""
    ev = summary.get("events", {})
    produced, recorded = ev.get("produced"), ev.get("recorded")
    lat = summary.get("latency_seconds", {})
    return {
        "events_produced": produced, "events_recorded": recorded, "events_lost": ev.get("lost"),
        "events_dropped": ev.get("dropped"), "duplicates_recorded": ev.get("duplicates_recorded"),
        "zero_loss": bool(produced and recorded == produced and not ev.get("lost") and not ev.get("dropped")
                          and not ev.get("duplicates_recorded")),
        "events_per_s": summary.get("throughput_events_per_s"),
        "events_per_s_recorded_over_duration": stats.ratio(recorded, duration_s),
        "decision_latency_s": {k: lat.get("decision", {}).get(k) for k in ("p50", "p90", "p99", "p999")},
        "commit_latency_s": {k: lat.get("commit", {}).get(k) for k in ("p50", "p90", "p99", "p999")},
    }
