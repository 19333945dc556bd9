"""The two figures of the trigger comparison: ROC curves with the HT and leading-jet-pT triggers, pure TPR vs rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from emulator.runtime import plotting
from models.runtime import anomaly
from models.runtime import trigger_menu as tm

PURE_GRID = np.logspace(-5, -1, 25)


def _marks(ax, xs: Sequence[float], ys: Sequence[float], reliable: Sequence[bool], colour: str) -> None:
    """The FPR points: filled where the row is reliable, open where it rests on < 10 background events."""
    for x, y, ok in zip(xs, ys, reliable, strict=True):
        ax.plot([x], [y], "o", color=colour, markersize=6, fillstyle="full" if ok else "none")


def _style(results: Mapping[str, Any], name: str) -> str:
    """Recorded scores dashed, so that they show on top of the same model scored offline."""
    return "--" if results["models"][name]["kind"] == "recording" else "-"


def _shade_unreliable(ax, results: Mapping[str, Any], scale: float = 1.0) -> None:
    """Grey band where a threshold has fewer than ``min_background`` background events above it."""
    n_b = max((m["n_background"] for m in results["models"].values()), default=0)
    if n_b:
        edge = results["min_background"] / n_b * scale
        ax.axvspan(min(results["fprs"]) * scale / 2, edge, color="0.92", zorder=0,
                   label=f"< {results['min_background']} of {n_b} background events")


def _trigger_source(inputs: Mapping[str, Mapping[str, Any]], sig: str) -> Mapping[str, Any] | None:
    """The score set with the most background events that has ``sig`` (its trigger arrays are the fullest)."""
    have = [a for a in inputs.values() if sig in a["signals"]]
    return max(have, key=lambda a: len(a["background"].model)) if have else None


def roc_figures(inputs: Mapping[str, Mapping[str, Any]], results: Mapping[str, Any], out_dir: str, prefix: str,
                names: Sequence[str] | None = None, origin: plotting.Origin | None = None) -> list[str]:
    """Per signal: ROC (log-x FPR) of each score set and of the HT and leading-jet-pT triggers, FPR points marked."""
    plotting.setup()
    import matplotlib.pyplot as plt

    names = [n for n in (names or list(results["models"])) if n in results["models"]]
    fprs = results["fprs"]
    paths: list[str] = []
    for sig in results["signals"]:
        src = _trigger_source(inputs, sig)
        if src is None:
            continue
        fig, ax = plt.subplots(figsize=(8, 6))
        curves = [(n, inputs[n]["background"].model, inputs[n]["signals"][sig].model, _style(results, n),
                   f"C{i}", results["models"][n]["signals"][sig]) for i, n in enumerate(names)
                  if sig in results["models"][n]["signals"]]
        first = curves[0][5]["fpr"] if curves else None
        b, s = src["background"], src["signals"][sig]
        auc_t = results["triggers"][sig]["auc"]
        for name, cb, cs, style, colour, row in curves:
            roc = anomaly.roc_curve(cb, cs)
            keep = roc["fpr"] > 0
            ax.plot(roc["fpr"][keep], roc["tpr"][keep], style, color=colour, label=f"{name} (AUC {row['auc']:.3f})")
            pts = [row["fpr"][f"{f:g}"] for f in fprs]
            _marks(ax, fprs, [p["tpr"] for p in pts], [p["reliable"] for p in pts], colour)
        for key, values, style, what in (("ht", (b.ht, s.ht), ":", "HT"),
                                         ("lead_pt", (b.lead_pt, s.lead_pt), "--", "leading-jet pT")):
            roc = anomaly.roc_curve(*values)
            keep = roc["fpr"] > 0
            ax.plot(roc["fpr"][keep], roc["tpr"][keep], style, color="black",
                    label=f"{what} trigger (AUC {auc_t[key]:.3f})")
            if first:
                pts = [first[f"{f:g}"] for f in fprs]
                _marks(ax, fprs, [p[f"{key}_tpr"] for p in pts], [p["reliable"] for p in pts], "black")
        for f in fprs:
            ax.axvline(f, color="grey", linestyle=":", linewidth=0.8)
        _shade_unreliable(ax, results)
        ax.set_xscale("log")
        ax.set_xlim(min(fprs) / 2, 1.0)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("background efficiency (FPR, per event)")
        ax.set_ylabel(f"{sig} efficiency (TPR)")
        ax.legend(loc="upper left", fontsize=8, title="points: FPR " + ", ".join(f"{f:g}" for f in fprs)
                  + "; open: unreliable", title_fontsize=8)
        plotting.label(ax, extra=f"{sig} vs {results['background']['name']}; {results['selection']['description']}",
                       origin=origin)
        paths += plotting.save(fig, out_dir, f"{prefix}_roc_{sig}")
    return paths


def pure_figures(inputs: Mapping[str, Mapping[str, Any]], results: Mapping[str, Any], out_dir: str, prefix: str,
                 names: Sequence[str] | None = None, input_rate: float = 100e3,
                 origin: plotting.Origin | None = None) -> list[str]:
    """Per signal: pure TPR (model, not HT, not leading-jet pT) against the accept rate in Hz at ``input_rate``."""
    plotting.setup()
    import matplotlib.pyplot as plt

    names = [n for n in (names or list(results["models"])) if n in results["models"]]
    fprs = results["fprs"]
    paths: list[str] = []
    for sig in results["signals"]:
        have = [n for n in names if sig in results["models"][n]["signals"]]
        if not have:
            continue
        fig, ax = plt.subplots(figsize=(8, 6))
        for i, n in enumerate(have):
            b, s = inputs[n]["background"], inputs[n]["signals"][sig]
            grid = [tm.compare_at_fpr(b, s, float(f), (input_rate,), results["min_background"]) for f in PURE_GRID]
            ax.plot(PURE_GRID * input_rate, [g["pure_tpr"] for g in grid], _style(results, n), color=f"C{i}", label=n)
            pts = [results["models"][n]["signals"][sig]["fpr"][f"{f:g}"] for f in fprs]
            _marks(ax, [f * input_rate for f in fprs], [p["pure_tpr"] for p in pts], [p["reliable"] for p in pts],
                   f"C{i}")
        _shade_unreliable(ax, results, input_rate)
        ax.set_xscale("log")
        ax.set_xlim(min(fprs) * input_rate / 2, PURE_GRID[-1] * input_rate * 1.2)
        ax.set_xlabel(f"accept rate [Hz] at {input_rate / 1e3:g} kHz input (fraction of this background stream)")
        ax.set_ylabel(f"pure {sig} TPR (not HT, not leading-jet pT)")
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=8, title_fontsize=8,
                  title="model flags, HT and lead-pT triggers (same rate) do not; open: unreliable")
        plotting.label(ax, extra=f"{sig} vs {results['background']['name']}; {results['selection']['description']}",
                       origin=origin)
        paths += plotting.save(fig, out_dir, f"{prefix}_pure_tpr_{sig}")
    return paths
