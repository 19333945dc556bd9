"""Plots of a results.json: throughput and ratios against micro-batch, rate scan, latency under load, soak RSS.

Each carries the project label (``emulator.runtime.plotting.label``) with the benchmark sample's generator and
√s when its file is at hand, and the plot's title as the second line.
"""

from __future__ import annotations

from pathlib import Path

from emulator.runtime import plotting
from emulator.runtime.latency_stats import HOP_LABELS


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _origin(results: dict) -> plotting.Origin | None:
    """Generator and √s of the benchmark sample (its ROOT metadata), None when the file is not here."""
    path = (results.get("sample") or {}).get("path")
    return plotting.origin_of_files([path]) if path else None


def _finish(plt, fig, ax, path: Path, log_grid: bool, results: dict, title: str) -> Path:
    """Grid, legend, the project label with ``title``, tight layout; save as PNG and close the figure."""
    ax.grid(True, which="both" if log_grid else "major", alpha=0.3)
    ax.legend(fontsize=8)
    plotting.label(ax, extra=title, origin=_origin(results))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_all(results: dict, out: Path) -> list[Path]:
    """Write every plot the results support into ``out``; returns the files written."""
    written = []
    for fn in (plot_throughput, plot_ratios, plot_ratescan, plot_decision, plot_latency, plot_soak):
        path = fn(results, out)
        if path is not None:
            written.append(path)
    return written


def plot_throughput(results: dict, out: Path) -> Path | None:
    inproc = results.get("inprocess", {})
    if not inproc.get("onnxruntime"):
        return None
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label, style in (("onnxruntime", "ONNX Runtime in-process", "o-"), ("torch_eager", "PyTorch eager", "s-")):
        rows = inproc.get(key) or []
        if rows:
            ax.plot([r["batch_jets"] for r in rows], [r["jets_per_s"] for r in rows], style, label=label)
    svc = results.get("service", {}).get("by_batch", [])
    if svc:
        ax.plot([r["max_batch_jets"] for r in svc], [r["jets_per_s"] for r in svc], "^-",
                label="encoder service over ZeroMQ")
    for p in results.get("pipeline", {}).get("runs", []):
        jps = p.get("jets_per_s")
        if jps:
            ax.axhline(jps, ls="--", lw=1, color="gray" if p["encoders"] == 1 else "black")
            ax.annotate(f"pipeline, {p['encoders']} encoder(s)", (0.02, jps), xycoords=("axes fraction", "data"),
                        va="bottom", fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="micro-batch (jets per ONNX Runtime call)", ylabel="jets / s (wall)")
    return _finish(plt, fig, ax, out / "throughput.png", True, results,
                   f"Throughput, one thread ({results.get('model', {}).get('name', '')})")


def plot_ratios(results: dict, out: Path) -> Path | None:
    ratios = results.get("ratios", {})
    if not ratios.get("service_vs_inprocess") and not ratios.get("pipeline_vs_inprocess"):
        return None
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("service_vs_inprocess", "service / in-process"),
                       ("service_vs_inprocess_wall", "service / in-process (wall clock)"),
                       ("pipeline_vs_inprocess", "pipeline (1 encoder) / in-process"),
                       ("pipeline2_vs_inprocess", "pipeline (2 encoders) / in-process"),
                       ("torch_vs_inprocess", "PyTorch eager / in-process")):
        d = {int(k): v for k, v in (ratios.get(key) or {}).items() if v is not None}
        if d:
            xs = sorted(d)
            ax.plot(xs, [d[x] for x in xs], "o-", label=label)
    ax.axhline(0.8, color="red", ls=":", label="goal: service >= 0.8 at >= 1024 jets")
    ax.set(xscale="log", xlabel="micro-batch (jets)", ylabel="ratio")
    return _finish(plt, fig, ax, out / "ratios.png", True, results,
                   "Throughput relative to in-process ONNX")


def plot_ratescan(results: dict, out: Path) -> Path | None:
    points = [p for p in results.get("ratescan", []) if p.get("requested_hz") and p.get("achieved_hz")]
    if not points:
        return None
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 5))
    for pattern in sorted({p["pattern"] for p in points}):
        ps = sorted((p for p in points if p["pattern"] == pattern), key=lambda p: p["requested_hz"])
        ax.plot([p["requested_hz"] for p in ps], [p["achieved_hz"] for p in ps], "o-", label=pattern)
    lo = min(p["requested_hz"] for p in points)
    hi = max(p["requested_hz"] for p in points)
    ax.plot([lo, hi], [lo, hi], "k:", lw=1, label="achieved = requested")
    ax.set(xscale="log", yscale="log", xlabel="requested rate (events/s)", ylabel="achieved rate (events/s)")
    return _finish(plt, fig, ax, out / "ratescan.png", True, results,
                   "Producer rate accuracy (full pipeline)")


def plot_latency(results: dict, out: Path) -> Path | None:
    curve = results.get("latency_under_load") or {}
    pts = [(o, d, c) for o, d, c in zip(curve.get("offered_hz", []), curve.get("decision_p99_s", []),
                                        curve.get("commit_p99_s", []), strict=False) if o and d is not None]
    if not pts:
        return None
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([p[0] for p in pts], [p[1] * 1e3 for p in pts], "o-", label="p99 decision latency")
    ax.plot([p[0] for p in pts if p[2] is not None], [p[2] * 1e3 for p in pts if p[2] is not None], "s-",
            label="p99 commit latency")
    ax.plot([1e5], [10], "rv", label="goals at 100 kHz (10 ms, 250 ms)")
    ax.plot([1e5], [250], "rv")
    if curve.get("saturated_from_hz"):
        ax.axvline(curve["saturated_from_hz"], color="gray", ls="--", label="saturation")
    ax.set(xscale="log", yscale="log", xlabel="offered rate (events/s)", ylabel="latency (ms)")
    return _finish(plt, fig, ax, out / "latency.png", True, results,
                   "Latency under load (constant pattern)")


def plot_decision(results: dict, out: Path) -> Path | None:
    """Decision p99 of each repeated 100 kHz run per encoder count, with the p99 of each hop beside it."""
    block = results.get("decision_100khz") or {}
    runs = [r for r in block.get("runs", []) if r.get("decision_p99_s") is not None]
    if not runs:
        return None
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    counts = sorted({r["encoders"] for r in runs})
    for i, n in enumerate(counts):
        mine = [r for r in runs if r["encoders"] == n]
        x = [i + 0.12 * (k - (len(mine) - 1) / 2) for k in range(len(mine))]
        ax.plot(x, [r["decision_p99_s"] * 1e3 for r in mine], "o", color="C0", ms=8,
                label="decision p99 (whole run)" if i == 0 else None)
        for j, (hop, text) in enumerate(HOP_LABELS.items()):
            ax.plot(x, [(r["hop_p99_s"].get(hop) or float("nan")) * 1e3 for r in mine], "_", color=f"C{j + 1}",
                    ms=12, mew=2, label=f"p99 {text}" if i == 0 else None)
    ax.axhline(10.0, color="red", ls="--", label="goal 10 ms")
    ax.set_xticks(range(len(counts)), [f"{n} encoder{'s' if n > 1 else ''}" for n in counts])
    ax.set(ylabel="latency (ms)", ylim=(0, None), xlim=(-0.6, len(counts) - 0.4))
    rate = block.get("rate_hz", 1e5)
    return _finish(plt, fig, ax, out / "decision_100khz.png", False, results,
                   f"Decision latency at {rate / 1e3:g} kHz, default models, each run a dot")


def plot_soak(results: dict, out: Path) -> Path | None:
    soak = results.get("soak") or {}
    series = soak.get("rss_series") or {}
    if not series:
        return None
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, s in sorted(series.items()):
        ax.plot(s["t"], [r / 2**20 for r in s["rss_bytes"]], label=key)
    ax.set(xlabel="time (s)", ylabel="resident memory (MiB)")
    return _finish(plt, fig, ax, out / "soak_rss.png", False, results,
                   f"Soak at {soak.get('rate_hz', 0):g} Hz: RSS per stage")
