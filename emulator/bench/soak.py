"""Soak: the pipeline at a fixed rate (100 kHz) for minutes, resident memory of every stage over time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from emulator.bench import stats
from emulator.bench.pipeline import PipelineConfig, run_pipeline


def soak(make: Callable[..., PipelineConfig], out_dir: Path, seconds: float, rate_hz: float) -> dict:
    """One long run; RSS growth per stage process between the first and last minute after warm-up."""
    cfg = make(out_dir=out_dir, rate_hz=rate_hz, pattern="constant", duration_s=seconds)
    cfg.sample_every_s = 5.0 if seconds >= 120 else 1.0
    result = run_pipeline(cfg, timeout_s=seconds + 300)
    window = min(60.0, seconds / 5)
    warmup = min(30.0, seconds / 10)
    growth = {}
    for key, s in result["process_series"].items():
        try:
            growth[key] = stats.rss_growth(s["t"], s["rss_bytes"], warmup_s=warmup, window_s=window)
        except ValueError as exc:
            growth[key] = {"error": str(exc)}
    worst = max((g["growth"] for g in growth.values() if "growth" in g), default=None)
    return {
        "seconds": seconds, "rate_hz": rate_hz, "command": result["command"], "warmup_s": warmup, "window_s": window,
        "rss_series": {k: {"stage": s["stage"], "t": s["t"], "rss_bytes": s["rss_bytes"]}
                       for k, s in result["process_series"].items()},
        "rss_growth": growth, "max_rss_growth": worst,
        "zero_loss": result["zero_loss"], "events_produced": result["events_produced"],
        "events_recorded": result["events_recorded"], "events_per_s": result["events_per_s"],
        "decision_latency_s": result["decision_latency_s"], "commit_latency_s": result["commit_latency_s"],
        "cpu_seconds_by_stage": result["cpu_seconds_by_stage"],
    }
