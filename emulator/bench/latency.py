"""Latency under load: p99 decision (and commit) latency against offered rate, up to saturation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from emulator.bench.pipeline import PipelineConfig, run_pipeline
from emulator.bench.ratescan import scan_point

#: A point is saturated when the achieved rate falls more than this fraction below the offered rate.
SATURATION_TOLERANCE = 0.05


def is_saturated(point: dict, tolerance: float = SATURATION_TOLERANCE) -> bool:
    """True when the pipeline no longer kept up with the offered rate (or lost events)."""
    req, got = point.get("requested_hz"), point.get("achieved_hz")
    if not req or got is None:
        return True
    return got < (1 - tolerance) * req or not point.get("zero_loss", False)


def _steady(point: dict, key: str) -> float | None:
    steady = point.get(f"{key}_p99_steady_s")
    return steady if steady is not None else point.get(f"{key}_p99_s")


def latency_curve(make: Callable[..., PipelineConfig], out_dir: Path, rates: Sequence[float],
                  known: Sequence[dict], on_error: Callable[[str, Exception], None]) -> dict:
    """Constant-pattern points at increasing rates (reusing ``known`` scan points), stopping at saturation."""
    points = {p["requested_hz"]: p for p in known if p["pattern"] == "constant" and p["requested_hz"]}
    for rate in sorted(set(rates) | set(points)):
        if rate not in points:
            try:
                points[rate] = scan_point(run_pipeline(make(out_dir=out_dir / f"load-{int(rate)}", rate_hz=rate,
                                                            pattern="constant")))
            except Exception as exc:
                on_error(f"latency {rate:g} Hz", exc)
                continue
        if is_saturated(points[rate]):
            break  # higher offered rates only add queueing: the curve ends at saturation
    ordered = [points[r] for r in sorted(points)]
    saturated = [p["requested_hz"] for p in ordered if is_saturated(p)]
    return {
        "offered_hz": [p["requested_hz"] for p in ordered],
        "achieved_hz": [p["achieved_hz"] for p in ordered],
        "decision_p99_s": [_steady(p, "decision") for p in ordered],
        "commit_p99_s": [_steady(p, "commit") for p in ordered],
        "decision_p99_whole_run_s": [p["decision_p99_s"] for p in ordered],
        "commit_p99_whole_run_s": [p["commit_p99_s"] for p in ordered],
        "latency_method": "steady state (warm-up excluded) from the sink's histogram; whole_run from summary.json",
        "zero_loss": [p["zero_loss"] for p in ordered],
        "saturated_from_hz": min(saturated) if saturated else None,
    }
