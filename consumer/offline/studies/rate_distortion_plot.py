"""The rate-distortion picture: bytes per jet against each variable's core half-width, and against CPU cycles.

One figure per sample and variable set: a panel per goal variable (pt, e, m, eta, phi, those the set
has) with every codec (a line per family through its bounds), every lossless codec and every AE
(marker = model, colour = latent storage), the 2-D Pareto front (dashed, black-edged points) and the
goal limit; one panel of bytes per jet against compress + decompress cycles per jet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from consumer.offline.studies import rate_distortion as rd
from emulator.runtime import plotting

_FAMILY_STYLE = {"SZ3": ("o", "tab:blue"), "ZFP": ("s", "tab:green"), "BitRound": ("^", "tab:purple"),
                 "Quantize": ("v", "tab:olive"), "round+zstd-19": ("D", "tab:cyan"), "round+lzma-9": ("P", "tab:brown")}
_LOSSLESS_MARKERS = "x+1234|"
_AE_MARKERS = "*XHd8<>"
_STORAGE_COLOURS = {"float32": "darkred", "float16": "red", "bfloat16": "lightsalmon", "ans": "purple"}


def _style(p: Mapping[str, Any], lossless_index: Mapping[str, int], model_index: Mapping[str, int]) -> dict[str, Any]:
    if p["kind"] == "AE":
        return {"marker": _AE_MARKERS[model_index[p["model"]] % len(_AE_MARKERS)],
                "color": _STORAGE_COLOURS.get(p["storage"], "red"), "s": 170, "zorder": 5}
    if p["kind"] == "lossless":
        return {"marker": _LOSSLESS_MARKERS[lossless_index[p["family"]] % len(_LOSSLESS_MARKERS)], "color": "0.35",
                "s": 60, "linewidths": 1.5, "zorder": 4}
    marker, colour = _FAMILY_STYLE.get(p["family"], ("o", "black"))
    if p["kind"] == "matched":  # hollow: the codec tuned to one AE's accuracy
        return {"marker": marker, "facecolor": "none", "color": colour, "s": 70, "linewidths": 1.4, "zorder": 4}
    return {"marker": marker, "color": colour, "s": 40, "zorder": 4}


def _floor(points: Sequence[Mapping[str, Any]], variables: Sequence[str]) -> float:
    """Where zero widths (lossless) are drawn: a decade below the smallest non-zero width."""
    ws = [rd.width(p, v) for p in points for v in variables if rd.width(p, v) > 0]
    return 10.0 ** (np.floor(np.log10(min(ws))) - 1) if ws else 1e-6


def _plain_log_y(ax) -> None:
    """Log y axis with plain numbers (2, 3, 5, 10, 20 ...) instead of 2 x 10^0."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(1.5, 4.0, 6.0, 7.0, 8.0, 9.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda _v, _pos: ""))


def plot_set(points: Sequence[Mapping[str, Any]], variables: Sequence[str], out_dir: str, name: str, title: str,
             origin: plotting.Origin | None = None) -> list[str]:
    """The figure of one sample and variable set; returns the PNG and PDF paths."""
    plotting.setup()
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    gv = rd.goal_variables(variables)
    n_panels = len(gv) + 1
    ncols = 3
    nrows = -(-n_panels // ncols)
    spare = nrows * ncols - n_panels
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.4 * nrows + (0 if spare else 2.6)),
                             squeeze=False, layout="constrained")
    flat = list(axes.flat)
    lossless_index = {f: i for i, f in enumerate(dict.fromkeys(p["family"] for p in points if p["kind"] == "lossless"))}
    model_index = {m: i for i, m in enumerate(dict.fromkeys(p["model"] for p in points if p["kind"] == "AE"))}
    floor = _floor(points, gv)
    y = np.array([rd.bytes_per_jet(p) for p in points])
    for ax, var in zip(flat, gv, strict=False):
        w = np.array([max(rd.width(p, var), floor) for p in points])
        for fam in _FAMILY_STYLE:
            idx = [i for i, p in enumerate(points) if p["family"] == fam and p["kind"] == "lossy"]
            idx.sort(key=lambda i: points[i]["bound"])
            if idx:
                ax.plot(w[idx], y[idx], "-", color=_FAMILY_STYLE[fam][1], lw=1, alpha=0.6, zorder=3)
        front = [i for i, p in enumerate(points) if p["pareto_2d"][var]]
        for i, p in enumerate(points):
            style = _style(p, lossless_index, model_index)
            if i in front and p["kind"] == "lossless":  # line markers have no edge: black instead of grey
                style.update(color="black")
            elif i in front and p["kind"] != "matched":
                style.update(edgecolor="black", linewidths=1.1)
            ax.scatter(w[i], y[i], **style)
        front.sort(key=lambda i: w[i])
        ax.step(w[front], y[front], where="post", ls="--", color="black", lw=0.9, zorder=2)
        ax.axvline(rd.GOAL_LIMITS[var], color="0.3", ls=":", lw=1.2)
        ax.set_xscale("log")
        _plain_log_y(ax)
        kind = "relative" if var in ("pt", "m", "e") else "absolute"
        ax.set_xlabel(f"jet {var} core half-width ({kind})")
        ax.set_ylabel("bytes / jet")
    cost = flat[len(gv)]
    cycles = np.array([p["cpu"]["cycles_per_jet"] for p in points])
    for i, p in enumerate(points):
        cost.scatter(cycles[i], y[i], **_style(p, lossless_index, model_index))
    cost.set_xscale("log")
    _plain_log_y(cost)
    cost.set_xlabel("CPU cycles / jet (compress + decompress, 1 thread)")
    cost.set_ylabel("bytes / jet")
    for ax in flat[n_panels:]:
        ax.axis("off")
    handles = [Line2D([], [], marker=m, color=c, ls="-", lw=1, label=f) for f, (m, c) in _FAMILY_STYLE.items()]
    handles += [Line2D([], [], marker=_LOSSLESS_MARKERS[i % len(_LOSSLESS_MARKERS)], color="0.45", ls="none",
                       markersize=8, markeredgewidth=1.5, label=f"{f} (lossless)") for f, i in lossless_index.items()]
    handles += [Line2D([], [], ls="none", label=f"(lossless: width 0, drawn at {floor:g})")]
    handles += [Line2D([], [], marker=_AE_MARKERS[i % len(_AE_MARKERS)], color="darkred", ls="none", markersize=12,
                       label=f"AE {m}") for m, i in model_index.items()]
    handles += [Line2D([], [], marker="o", color=c, ls="none", markersize=9, label=f"AE latent {s}")
                for s, c in _STORAGE_COLOURS.items()]
    handles += [Line2D([], [], marker="o", color="0.3", markerfacecolor="none", ls="none", markersize=8,
                       label="SZ3/ZFP/BitRound tuned to an AE's widths (hollow)"),
                Line2D([], [], ls="--", color="black", label="Pareto front (black edge)"),
                Line2D([], [], ls=":", color="0.3", label="goal limit (1 % / 0.01)")]
    if spare:
        flat[-1].legend(handles=handles, loc="center", fontsize=8, ncol=2, frameon=False)
    else:
        fig.legend(handles=handles, loc="outside lower center", fontsize=8, ncol=4, frameon=False)
    plotting.label(flat[0], extra=title, origin=origin)
    return plotting.save(fig, out_dir, name)


def plot_all(result: Mapping[str, Any], out_dir: str, origins: Mapping[str, plotting.Origin | None]) -> list[str]:
    """Every sample x variable set figure of a :func:`rate_distortion.run` result."""
    paths = []
    for sample, sr in result["samples"].items():
        for key, st in sr["sets"].items():
            tag = key.replace(",", "_") if len(st["variables"]) <= 5 else f"{len(st['variables'])}vars"
            title = (f"{sample}: {sr['n_events']} events, {sr['n_jets']} jets, {sr['n_blocks']} block(s); "
                     f"variables {key if len(key) < 40 else str(len(st['variables'])) + ' jet variables'}; "
                     f"AE model bytes over {result['headline_events'] / 1e6:g} M events")
            paths += plot_set(st["points"], st["variables"], out_dir, f"s2_rate_distortion_{sample}_{tag}", title,
                              origins.get(sample))
    return paths
