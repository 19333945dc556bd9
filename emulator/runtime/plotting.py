"""Publication-style plots (plain matplotlib), each saved as PNG and PDF, with the project's one label.

Standard decode plots: per variable input vs decoded with a ratio panel; residual (decoded -
input) and response ((decoded - input) / input, where meaningful) histograms with mean, RMS and
core half-width printed; the residual correlation matrix; the latent space in pairs. Plus the
generic line/histogram helpers the studies use, and :func:`label`, the label every figure the
project makes carries (decode, report, bench, k-scans): the samples are Pythia 8 events through a
toy calorimeter, not any experiment's simulation, so no experiment's label is used.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: variables for which (decoded - input) / input is not meaningful (values cross zero)
NO_RESPONSE = frozenset({"eta", "phi"})
#: the label of every figure; the sample part says where the events come from
PROJECT = "aetrig"
GENERATED = "Pythia 8 + toy detector"
EXTERNAL = "external sample"
#: said in the legend of every histogram whose first and last bins hold the under- and overflow
OVERFLOW_NOTE = "edge bins include under/overflow"
_STYLE_SET = False


@dataclass(frozen=True)
class Origin:
    """Where a figure's events come from: all from ``aetrig generate`` or not, and the recorded √s (GeV)."""

    generated: bool = True
    ecm_gev: tuple[float, ...] = ()


def label_text(origin: Origin | None = None) -> str:
    """"aetrig · Pythia 8 + toy detector" (or "external sample"), with ", √s = 13 TeV" when recorded."""
    origin = origin or Origin()
    text = f"{PROJECT} · {GENERATED if origin.generated else EXTERNAL}"
    if origin.ecm_gev:
        text += ", √s = " + ", ".join(f"{e / 1000:g}" for e in sorted(set(origin.ecm_gev))) + " TeV"
    return text


@functools.lru_cache(maxsize=256)
def _file_metadata(path: str, mtime_ns: int, size: int) -> dict | None:
    """The ``metadata`` JSON an aetrig ROOT file carries, or None (cached per path, mtime and size)."""
    import uproot

    try:
        with uproot.open(path) as f:
            meta = json.loads(str(f["metadata"])) if "metadata" in f else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta if isinstance(meta, dict) else None


def file_metadata(path: str | os.PathLike) -> dict | None:
    """The ``metadata`` JSON an aetrig ROOT file carries; None if the file is unreadable or has none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _file_metadata(os.fspath(path), st.st_mtime_ns, st.st_size)


def origin_of_files(paths: Iterable[str | os.PathLike]) -> Origin | None:
    """The :class:`Origin` of ROOT input files from their ``aetrig generate`` metadata; None if unreadable.

    ``generated`` holds when every file records the Pythia generator and the detector; ``ecm_gev``
    lists the distinct √s when every generated file records it (else empty: never guessed).
    """
    metas = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            return None
        metas.append(_file_metadata(os.fspath(p), st.st_mtime_ns, st.st_size))
    if not metas:
        return None
    generated = all(m is not None and str((m.get("generator") or {}).get("name", "")).lower() == "pythia"
                    and "detector" in m for m in metas)
    ecm = [m.get("ecm_gev") for m in metas if m is not None]
    known = generated and all(isinstance(e, (int, float)) and e > 0 for e in ecm)
    return Origin(generated, tuple(sorted({float(e) for e in ecm})) if known else ())


def merge_origins(*origins: Origin | None) -> Origin | None:
    """One :class:`Origin` for a figure that shows several samples (None if any is unknown)."""
    if not origins or any(o is None for o in origins):
        return None
    known = [o for o in origins if o is not None]
    ecm = () if any(not o.ecm_gev for o in known) else tuple(sorted({e for o in known for e in o.ecm_gev}))
    return Origin(all(o.generated for o in known), ecm)


def setup() -> None:
    """Non-interactive backend and a neutral style: ticks inside on all four sides (once)."""
    global _STYLE_SET
    if _STYLE_SET:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.figsize": (7, 5.5), "font.size": 12, "axes.labelsize": 13,
                         "axes.titlesize": 10, "legend.fontsize": 10, "legend.framealpha": 0.85,
                         "legend.edgecolor": "0.85",
                         "savefig.dpi": 110, "axes.formatter.limits": (-4, 6),
                         "xtick.direction": "in", "ytick.direction": "in", "xtick.top": True, "ytick.right": True,
                         "xtick.minor.visible": True, "ytick.minor.visible": True})
    _STYLE_SET = True


def label(ax, extra: str = "", origin: Origin | None = None) -> None:
    """Stamp the project label (:func:`label_text`) above ``ax``, left-aligned, with an ``extra`` line."""
    text = label_text(origin)
    ax.set_title(f"{text}\n{extra}" if extra else text, loc="left", fontsize=10)


def save(fig, out_dir: str, name: str) -> list[str]:
    """Save ``fig`` as ``name``.png and ``name``.pdf under ``out_dir``; return both paths."""
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(path, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def core_half_width(values: np.ndarray) -> float:
    """Half the 16th-84th percentile distance (the Gaussian sigma for a Gaussian core)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    q16, q84 = np.percentile(v, [16, 84])
    return float(0.5 * (q84 - q16))


def summary(values: np.ndarray) -> dict[str, float]:
    """mean, RMS, standard deviation and core half-width of finite ``values``."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "rms": float("nan"), "std": float("nan"), "core_half_width": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "rms": float(np.sqrt(np.mean(v * v))), "std": float(v.std()),
            "core_half_width": core_half_width(v), "n": int(v.size)}


def response(inp: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """(decoded - input) / input where input != 0."""
    inp = np.asarray(inp, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    ok = inp != 0
    return (dec[ok] - inp[ok]) / inp[ok]


def _range(values: np.ndarray, lo_q: float = 0.5, hi_q: float = 99.5) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(v, [lo_q, hi_q])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return float(lo), float(hi)


def _axis_label(var: str, unit: str) -> str:
    return f"jet {var} [{unit}]" if unit and unit not in ("", "1") else f"jet {var}"


def input_vs_decoded(inp: np.ndarray, dec: np.ndarray, var: str, unit: str, out_dir: str,
                     extra: str = "", name: str | None = None, origin: Origin | None = None) -> list[str]:
    """Input and decoded distributions of one variable, with a decoded/input ratio panel."""
    setup()
    import matplotlib.pyplot as plt

    lo, hi = _range(np.concatenate([inp, dec]))
    edges = np.linspace(lo, hi, 61)
    h_in, _ = np.histogram(inp, edges)
    h_de, _ = np.histogram(dec, edges)
    fig, (ax, rax) = plt.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.stairs(h_in, edges, label="input", color="black", linewidth=1.5)
    ax.stairs(h_de, edges, label="decoded", color="tab:red", linewidth=1.5, linestyle="--")
    ax.set_ylabel("jets / bin")
    ax.set_yscale("log" if h_in.max() > 50 * max(1, np.median(h_in[h_in > 0]) if (h_in > 0).any() else 1) else "linear")
    ax.legend(loc="upper right", title="0.5-99.5% quantile range", title_fontsize=9)
    label(ax, extra=extra, origin=origin)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(h_in > 0, h_de / h_in, np.nan)
        err = np.where(h_in > 0, ratio * np.sqrt(1 / np.maximum(h_de, 1) + 1 / np.maximum(h_in, 1)), np.nan)
    rax.errorbar(centres, ratio, yerr=err, fmt="o", markersize=3, color="tab:red")
    rax.axhline(1.0, color="black", linewidth=1)
    rax.set_ylim(0.5, 1.5)
    rax.set_ylabel("dec./in.")
    rax.set_xlabel(_axis_label(var, unit))
    return save(fig, out_dir, name or f"input_vs_decoded_{var}")


def _stat_text(s: Mapping[str, float]) -> str:
    return f"mean {s['mean']:.3g}\nRMS {s['rms']:.3g}\ncore half-width {s['core_half_width']:.3g}"


def residual_histograms(inp: np.ndarray, dec: np.ndarray, var: str, unit: str, out_dir: str,
                        extra: str = "", origin: Origin | None = None
                        ) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Residual (and response where meaningful) histograms with statistics; returns paths and stats.

    The range is the median ± 5 core half-widths; the edge bins hold the under- and overflow (the
    legend says so), the statistics are of all finite values.
    """
    setup()
    import matplotlib.pyplot as plt

    inp = np.asarray(inp, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    quantities = {"residual": (dec - inp, f"decoded - input [{unit}]" if unit else "decoded - input")}
    if var not in NO_RESPONSE:
        quantities["response"] = (response(inp, dec), "(decoded - input) / input")
    stats: dict[str, dict[str, float]] = {}
    fig, axes = plt.subplots(1, len(quantities), figsize=(7 * len(quantities), 5.5), squeeze=False,
                             layout="constrained")
    for n, (ax, (kind, (values, xlabel))) in enumerate(zip(axes[0], quantities.items(), strict=True)):
        s = summary(values)
        stats[kind] = s
        centre, width = (np.median(values), 5 * max(s["core_half_width"], 1e-12)) if values.size else (0, 1)
        edges = np.linspace(centre - width, centre + width, 81)
        ax.hist(np.clip(values, edges[0], edges[-1]), bins=edges, histtype="step", color="tab:blue", linewidth=1.5,
                label=f"jets ({OVERFLOW_NOTE})")
        ax.set_xlabel(f"jet {var}: {xlabel}")
        ax.set_ylabel("jets / bin")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # headroom for the legend above the peak
        ax.legend(loc="upper right", title=_stat_text(s), title_fontsize=9, fontsize=9, alignment="right")
        if n == 0:
            label(ax, extra=extra, origin=origin)
    return save(fig, out_dir, f"residual_{var}"), stats


def correlation_matrix(residuals: Mapping[str, np.ndarray], out_dir: str, name: str = "residual_correlation",
                       title: str = "residual correlation", extra: str = "",
                       origin: Origin | None = None) -> tuple[list[str], np.ndarray]:
    """Pearson correlation matrix of the residuals of all variables."""
    setup()
    import matplotlib.pyplot as plt

    names = list(residuals)
    matrix = np.corrcoef(np.vstack([np.asarray(residuals[n], dtype=np.float64) for n in names]))
    matrix = np.nan_to_num(matrix)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(names) + 3, 0.7 * len(names) + 2.5))
    im = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.minorticks_off()
    ax.tick_params(top=False, right=False)
    if len(names) <= 14:
        for i, j in itertools.product(range(len(names)), repeat=2):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(matrix[i, j]) > 0.6 else "black")
    fig.colorbar(im, ax=ax, label=title)
    label(ax, extra=extra, origin=origin)
    return save(fig, out_dir, name), matrix


def latent_pairs(latent: np.ndarray, out_dir: str, name: str = "latent_pairs", max_dims: int = 6,
                 extra: str = "", origin: Origin | None = None) -> list[str]:
    """Corner plot of the latent coordinates: 1D histograms on the diagonal, 2D below.

    Tick labels only on the outer row and column, at most four per axis, the outermost pruned so
    neighbouring panels' labels never touch; the range is each coordinate's 0.5-99.5% quantiles.
    """
    setup()
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import MaxNLocator

    z = np.asarray(latent, dtype=np.float64)[:, :max_dims]
    k = z.shape[1]
    fig, axes = plt.subplots(k, k, figsize=(2.6 * k + 1, 2.6 * k + 1), squeeze=False)
    ranges = [_range(z[:, i], 0.5, 99.5) for i in range(k)]
    for i, j in itertools.product(range(k), repeat=2):
        ax = axes[i, j]
        if j > i:
            ax.axis("off")
            continue
        if i == j:
            ax.hist(z[:, i], bins=50, range=ranges[i], histtype="step", color="tab:blue")
            ax.set_xlim(*ranges[i])
            ax.set_yticks([])
            ax.tick_params(axis="y", which="both", left=False, right=False)
        else:
            ax.hist2d(z[:, j], z[:, i], bins=50, range=[ranges[j], ranges[i]], norm=LogNorm(), cmap="viridis")
            ax.yaxis.set_major_locator(MaxNLocator(4, prune="both"))
        ax.xaxis.set_major_locator(MaxNLocator(4, prune="both"))
        ax.tick_params(labelsize=8)
        if i == k - 1:
            ax.set_xlabel(f"z{j}")
        else:
            ax.tick_params(labelbottom=False)
        if j == 0 and i > 0:
            ax.set_ylabel(f"z{i}")
        elif i != j:
            ax.tick_params(labelleft=False)
    fig.subplots_adjust(hspace=0.08, wspace=0.08)
    label(axes[0, 0], extra=f"{extra}\nlatent coordinates, 0.5-99.5% quantile range" if extra
          else "latent coordinates, 0.5-99.5% quantile range", origin=origin)
    return save(fig, out_dir, name)


def lines(series: Sequence[Mapping[str, object]], out_dir: str, name: str, xlabel: str, ylabel: str,
          logx: bool = False, logy: bool = False, extra: str = "", diagonal: bool = False,
          hlines: Sequence[float] = (), xticks: Sequence[str] | None = None,
          ylim: tuple[float, float] | None = None, legend_loc: str = "best",
          origin: Origin | None = None) -> list[str]:
    """Curves given as [{"x", "y", "label", optional "yerr", "style"}] on one axis (``xticks``: categories)."""
    setup()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    for s in series:
        x = np.asarray(s["x"], dtype=np.float64)
        y = np.asarray(s["y"], dtype=np.float64)
        style = str(s.get("style", "-"))
        if s.get("yerr") is not None:
            ax.errorbar(x, y, yerr=np.asarray(s["yerr"], dtype=np.float64), fmt=style, label=str(s.get("label", "")),
                        markersize=4, capsize=2)
        else:
            ax.plot(x, y, style, label=str(s.get("label", "")))
    if diagonal:
        ax.plot([0, 1], [0, 1], ":", color="grey", label="random")
    for h in hlines:
        ax.axhline(h, color="grey", linestyle=":")
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    if xticks is not None:
        from matplotlib.ticker import NullLocator

        ax.set_xticks(range(len(xticks)), list(xticks))
        ax.xaxis.set_minor_locator(NullLocator())  # categories: no minor x ticks (a log y axis keeps its own)
        ax.set_xlim(-0.5, len(xticks) - 0.5)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc=legend_loc, fontsize=9)
    label(ax, extra=extra, origin=origin)
    return save(fig, out_dir, name)


def histograms(samples: Mapping[str, np.ndarray], out_dir: str, name: str, xlabel: str, bins: int = 60,
               logx: bool = False, logy: bool = True, density: bool = True, extra: str = "",
               span: tuple[float, float] | None = None, origin: Origin | None = None) -> list[str]:
    """Overlaid normalised step histograms of several samples on a common binning (``span`` = x range).

    Values outside the range go into the edge bins; the legend says so.
    """
    setup()
    import matplotlib.pyplot as plt

    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in samples.items()}
    allv = np.concatenate([v[np.isfinite(v)] for v in arrays.values()])
    if span is not None:
        edges = (np.logspace(np.log10(span[0]), np.log10(span[1]), bins + 1) if logx
                 else np.linspace(span[0], span[1], bins + 1))
    elif logx:
        pos = allv[allv > 0]
        lo, hi = np.percentile(pos, [0.1, 99.99]) if pos.size else (1e-6, 1.0)
        edges = np.logspace(np.log10(lo), np.log10(hi), bins + 1)
    else:
        lo, hi = _range(allv, 0.1, 99.9)
        edges = np.linspace(lo, hi, bins + 1)
    fig, ax = plt.subplots()
    for key, v in arrays.items():
        ax.hist(np.clip(v, edges[0], edges[-1]), bins=edges, histtype="step", density=density, label=key,
                linewidth=1.5)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("normalised" if density else "entries")
    ax.legend(loc="best", title=OVERFLOW_NOTE, title_fontsize=9)
    label(ax, extra=extra, origin=origin)
    return save(fig, out_dir, name)
