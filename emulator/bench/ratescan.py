"""Rate accuracy: requested against achieved event rate, 1 kHz up to the maximum, for each producer pattern.

Every point is one real `aetrig run`; the same runs give the latency-under-load points of the
constant pattern (see :mod:`emulator.bench.latency`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from emulator.bench import stats
from emulator.bench.pipeline import PipelineConfig, run_pipeline

PATTERNS = ("constant", "poisson", "trains")


def achieved_rate(result: dict) -> float | None:
    """The achieved input rate of a run: the producer's own figure where the summary has it."""
    cur = stats.pick(result, "producer", "achieved_rate_hz")
    if isinstance(cur, (int, float)):
        return float(cur)
    return result.get("events_per_s")


def scan_point(result: dict) -> dict:
    """One point of the scan from a pipeline run."""
    requested = result["rate_hz"] or None
    achieved = achieved_rate(result)
    return {
        "pattern": result["pattern"], "requested_hz": requested, "achieved_hz": achieved,
        "deviation": stats.relative_deviation(requested, achieved) if requested and achieved is not None else None,
        "decision_p99_s": result["decision_latency_s"].get("p99"),
        "commit_p99_s": result["commit_latency_s"].get("p99"),
        "decision_latency_s": result["decision_latency_s"], "commit_latency_s": result["commit_latency_s"],
        "steady_state": result.get("steady_state"),
        "decision_p99_steady_s": stats.pick(result, "steady_state", "decision_latency_s", "p99"),
        "commit_p99_steady_s": stats.pick(result, "steady_state", "commit_latency_s", "p99"),
        "zero_loss": result["zero_loss"], "events_produced": result["events_produced"],
        "events_recorded": result["events_recorded"], "command": result["command"],
        "cpu_seconds_by_stage": result["cpu_seconds_by_stage"],
    }


def rate_scan(make: Callable[..., PipelineConfig], out_dir: Path, patterns: Sequence[str],
              rates: Sequence[float], on_error: Callable[[str, Exception], None]) -> list[dict]:
    """Run every (pattern, rate) once; rate 0 means as fast as possible (the maximum)."""
    points = []
    for pattern in patterns:
        for rate in rates:
            tag = f"{pattern}-{int(rate)}"
            try:
                cfg = make(out_dir=out_dir / tag, rate_hz=rate, pattern=pattern)
                points.append(scan_point(run_pipeline(cfg)))
            except Exception as exc:  # one failed point must not lose the rest of the scan
                on_error(f"ratescan {tag}", exc)
    return points
