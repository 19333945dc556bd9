"""The decision-latency goal: repeated runs of the default pipeline at one offered rate, per encoder count.

Each run is `aetrig run` with the shipped defaults (the default event-level model flags) at a constant
rate, so it measures what the goal names: the two-model encoder. The p99 differs by a few ms from run to
run on a shared 2-core machine, so one run proves little: runs alternate between the encoder counts
(1, 2, 1, 2, ...) to share drifts in the machine's load, and each count reports every run's p99, its
median and its worst, with the p99 of each hop of the decision latency (summary.json's
``decision_hops``). The goal is judged on the worst run, at the encoder count whose worst run is lowest:
the count to deploy for that rate (with one encoder busy two thirds of the time, a stall of the machine
leaves a backlog that drains slowly; two encoders drain it at once but share the cores with more work).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from emulator.bench.pipeline import PipelineConfig, run_pipeline
from emulator.bench.ratescan import achieved_rate


def run_record(result: dict, summary: dict, encoders: int, repeat: int) -> dict[str, Any]:
    """One run's figures: decision p50/p99 (whole run, summary.json), p99 per hop, loss and achieved rate, and
    each stage's CPU microseconds per event in the steady state (from /proc: robust to other load, unlike the
    latencies; the encoders summed)."""
    latency = summary.get("latency_seconds") or {}
    decision = latency.get("decision") or {}
    hops = {hop: (block or {}).get("p99") for hop, block in (latency.get("decision_hops") or {}).items()}
    steady = result.get("steady_state") or {}
    return {"encoders": encoders, "repeat": repeat, "decision_p50_s": decision.get("p50"),
            "decision_p99_s": decision.get("p99"), "hop_p99_s": hops, "zero_loss": result.get("zero_loss"),
            "achieved_hz": achieved_rate(result), "anomaly": (summary.get("anomaly") or {}).get("scoring"),
            "cpu_us_per_event_by_stage": steady.get("cpu_us_per_event_by_stage"),
            "cpu_us_per_event": steady.get("cpu_us_per_event"), "command": result.get("command")}


def by_encoder_count(runs: Sequence[dict]) -> dict[str, dict[str, Any]]:
    """Per encoder count: every run's p99, their median and worst, the median CPU per event of all stages, and
    whether every run lost nothing."""
    out: dict[str, dict[str, Any]] = {}
    for n in sorted({r["encoders"] for r in runs}):
        mine = [r for r in runs if r["encoders"] == n]
        p99 = [r["decision_p99_s"] for r in mine if r["decision_p99_s"] is not None]
        cpu = [r["cpu_us_per_event"] for r in mine if r.get("cpu_us_per_event") is not None]
        out[str(n)] = {"runs": len(mine), "decision_p99_s": p99,
                       "median_p99_s": statistics.median(p99) if p99 else None,
                       "median_cpu_us_per_event": statistics.median(cpu) if cpu else None,
                       "worst_p99_s": max(p99) if p99 else None,
                       "all_zero_loss": all(bool(r["zero_loss"]) for r in mine)}
    return out


def decision_latency_runs(make: Callable[..., PipelineConfig], out_dir: Path, rate_hz: float,
                          encoder_counts: Sequence[int], repeats: int, duration_s: float,
                          on_error: Callable[[str, Exception], None]) -> dict[str, Any]:
    """``repeats`` alternated runs per encoder count at ``rate_hz``; the figures of :func:`by_encoder_count`."""
    runs = []
    for repeat in range(repeats):
        for n in encoder_counts:
            tag = f"{n}enc-{repeat}"
            try:
                cfg = make(out_dir=out_dir / tag, rate_hz=rate_hz, encoders=n, pattern="constant",
                           duration_s=duration_s)
                cfg.default_scoring = True
                result = run_pipeline(cfg)
                summary = json.loads((cfg.out_dir / "summary.json").read_text())
                runs.append(run_record(result, summary, n, repeat))
            except Exception as exc:
                on_error(f"decision latency run {tag}", exc)
    return {"rate_hz": rate_hz, "duration_s": duration_s, "runs": runs,
            "by_encoders": by_encoder_count(runs)}
