"""Residual statistics of reconstructions: mean, RMS, core half-width (16th-84th percentile) and response.

Energies, momenta and masses (GeV variables) use the relative residual ``(out - in) / in`` on jets
with ``in > 0``; every other variable uses the absolute residual ``out - in``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RELATIVE_VARIABLES = frozenset({"pt", "e", "m"})


def core_half_width(values: np.ndarray) -> float:
    """Half of the 16th-84th percentile span (equals sigma for a Gaussian, robust to tails)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan")
    p16, p84 = np.percentile(values, [16.0, 84.0])
    return float(0.5 * (p84 - p16))


def residual_summary(residuals: np.ndarray) -> dict[str, float]:
    """Mean, median, RMS and core half-width of one residual array."""
    residuals = np.asarray(residuals, dtype=np.float64)
    if len(residuals) == 0:
        return {"n": 0, "mean": float("nan"), "median": float("nan"), "rms": float("nan"),
                "core_half_width": float("nan")}
    return {"n": len(residuals), "mean": float(residuals.mean()), "median": float(np.median(residuals)),
            "rms": float(np.sqrt(np.mean(residuals ** 2))), "core_half_width": core_half_width(residuals)}


def residuals(name: str, x_in: np.ndarray, x_out: np.ndarray) -> tuple[str, np.ndarray]:
    """(kind, residual array) for one variable: relative for GeV variables, absolute otherwise."""
    x_in = np.asarray(x_in, dtype=np.float64)
    x_out = np.asarray(x_out, dtype=np.float64)
    if name in RELATIVE_VARIABLES:
        keep = x_in > 0
        return "relative", (x_out[keep] - x_in[keep]) / x_in[keep]
    return "absolute", x_out - x_in


def residual_stats(names: list[str], x_in: np.ndarray, x_out: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per-variable residual statistics; relative variables also report the median response out/in."""
    stats: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        kind, res = residuals(name, x_in[:, i], x_out[:, i])
        entry: dict[str, Any] = {"kind": kind, **residual_summary(res)}
        if kind == "relative":
            entry["response_median"] = float(1.0 + entry["median"]) if len(res) else float("nan")
        stats[name] = entry
    return stats


def format_stats(stats: dict[str, dict[str, Any]]) -> str:
    """A small aligned text table of residual statistics."""
    lines = [f"{'variable':<13} {'kind':<8} {'n':>8} {'mean':>11} {'core_hw':>10} {'rms':>10}"]
    for name, s in stats.items():
        lines.append(f"{name:<13} {s['kind']:<8} {s['n']:>8} {s['mean']:>11.3e} {s['core_half_width']:>10.4g} "
                     f"{s['rms']:>10.4g}")
    return "\n".join(lines)
