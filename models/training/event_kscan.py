"""Latent-size scan of the event-level AE: anomaly sensitivity and reconstruction fidelity against k.

Example (the training and large-background files are generated first; none ships with the project)::

    aetrig generate --process qcd --events 200000 --seed 901 --jobs 2 --out data/qcd_train_200k.root
    aetrig generate --process qcd --events 50000 --seed 902 --jobs 2 --out data/qcd_test_50k.root
    python -m models.training.event_kscan --input data/qcd_train_200k.root --large-background data/qcd_test_50k.root \\
        --ks 1,2,3,4,6,8,12 --seeds 0,1,2 --out models/zoo/EVT_kscan

``--input`` (QCD training files) is required unless ``--plot-only``; defaults: test background
producer/samples/qcd.root, signals zprime and darkshower from producer/samples, no large background
(give ``--large-background`` for TPR at FPR 1e-4). ``--ks`` and ``--seeds`` take comma-separated
integers and inclusive ranges (``1,2,4-8``; models.training.kscan.parse_int_list). Each (k, seed) is
trained by models.training.train_command.train_model (the function behind ``aetrig train --level event``;
the card records that command) into a scratch folder on background only, then scored on the test
background and the signals: per-event AUC (Hanley-McNeil error), TPR at FPR 1e-2 and 1e-3 (1e-4 on
the large background), and the fidelity of the event vector on the test background (HT core
half-width, mean standardised core half-width, mean error). ``--ship K ...`` copies the seed-0
models of those k into ``models/zoo/EVT_AE_k<K>``. Writes ``kscan.json`` and ``kscan.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from emulator.runtime.plotting import label
from emulator.runtime.progress import Progress
from models.runtime import anomaly
from models.runtime.card import Level, load_model_dir
from models.runtime.data import load_jets
from models.runtime.event_features import EVENT_VARIABLES, event_features, padded_jets
from models.runtime.event_scoring import run_event_scorer
from models.runtime.hashing import sha256_file
from models.runtime.residuals import core_half_width
from models.training.kscan import INT_LIST_HELP, add_training_options, parse_int_list, parse_scan_args
from models.training.train_command import train_model
from models.training.train_options import TrainError, TrainOptions

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "producer" / "samples"
FPRS = (1e-2, 1e-3)
SIGNALS = ("zprime", "darkshower")


def _sample(paths: list[str]) -> Any:

    return load_jets(paths, list(EVENT_VARIABLES))


def evaluate(model_dir: Path, background: Any, signals: dict[str, Any], large: Any | None) -> dict[str, Any]:
    """Sensitivity and fidelity of one event-level model directory."""

    model = load_model_dir(model_dir, level=Level.EVENT)
    spec = model.card["event_input"]

    def score(sample: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = padded_jets(sample.values, sample.counts, int(spec["jets"]))
        _, reco, err = run_event_scorer(model.scorer_path, x)
        fill = np.asarray(spec["empty_slot_fill"])
        return err.astype(np.float64), event_features(x, int(spec["slots"]), model.variables, fill), \
            reco.astype(np.float64)

    b, f_b, r_b = score(background)
    names = list(spec["features"])
    i = names.index("log_ht")
    ht_in, ht_out = 10 ** f_b[:, i] - 1, 10 ** r_b[:, i] - 1
    keep = ht_in > 0
    scale = np.array([t["scale"] for t in model.card["normalisation"]["transforms"]])
    row: dict[str, Any] = {"fidelity": {
        "ht_core_half_width": core_half_width((ht_out[keep] - ht_in[keep]) / ht_in[keep]),
        "mean_core_half_width_standardised": float(np.mean([core_half_width((r_b[:, j] - f_b[:, j]) / scale[j])
                                                            for j in range(len(names))])),
        "mean_error_background": float(np.mean(b))}, "signals": {}}
    lb = score(large)[0] if large is not None else None
    for name, s in signals.items():
        sg = score(s)[0]
        a = anomaly.auc(b, sg)
        entry = {"auc": a, "auc_err": anomaly.auc_uncertainty(a, len(b), len(sg)),
                 "tpr": {f"{f:g}": _tpr(anomaly.tpr_at_fpr(b, sg, f)) for f in FPRS}}
        if lb is not None:
            entry["tpr"]["0.0001"] = _tpr(anomaly.tpr_at_fpr(lb, sg, 1e-4))
            entry["tpr"]["0.0001"]["n_background"] = len(lb)
        row["signals"][name] = entry
    return row


def _tpr(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("tpr", "tpr_err", "n_background_above", "reliable")}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of every number of one k."""
    def stat(values: list[float]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "std": float(np.std(values))}

    out: dict[str, Any] = {"fidelity": {key: stat([r["fidelity"][key] for r in runs]) for key in runs[0]["fidelity"]},
                           "val_loss": stat([r["best_val_loss"] for r in runs]), "signals": {}}
    for sig in runs[0]["signals"]:
        out["signals"][sig] = {"auc": stat([r["signals"][sig]["auc"] for r in runs]),
                               "tpr": {f: stat([r["signals"][sig]["tpr"][f]["tpr"] for r in runs])
                                       for f in runs[0]["signals"][sig]["tpr"]}}
    return out


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["scan"]
    ks = [r["k"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 6))
    ax2 = ax.twinx()
    colours = {"zprime": "tab:blue", "darkshower": "tab:red"}
    for sig, colour in colours.items():
        auc = [r["summary"]["signals"][sig]["auc"] for r in rows]
        ax.errorbar(ks, [a["mean"] for a in auc], yerr=[a["std"] for a in auc], color=colour, marker="o",
                    capsize=3, label=f"AUC {sig}")
        for fpr, style in (("0.01", ":"), ("0.0001", "-.")):
            if fpr in rows[0]["summary"]["signals"][sig]["tpr"]:
                tpr = [r["summary"]["signals"][sig]["tpr"][fpr] for r in rows]
                ax.errorbar(ks, [t["mean"] for t in tpr], yerr=[t["std"] for t in tpr], color=colour, marker="s",
                            fillstyle="none", linestyle=style, capsize=3, label=f"TPR@FPR {float(fpr):g} {sig}")
    ax.axhline(0.95, color="grey", linestyle="--", lw=1, label="AUC goal 0.95")
    width = [r["summary"]["fidelity"]["ht_core_half_width"] for r in rows]
    ax2.errorbar(ks, [w["mean"] for w in width], yerr=[w["std"] for w in width], color="black", marker="^",
                 linestyle="--", capsize=3, label="HT residual core half-width (QCD test)")
    std = [r["summary"]["fidelity"]["mean_core_half_width_standardised"] for r in rows]
    ax2.plot(ks, [w["mean"] for w in std], color="grey", marker="v", linestyle="--",
             label="mean core half-width, standardised event vector")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("latent size k")
    ax.set_ylabel("per-event AUC / TPR (mean ± std over seeds)")
    ax.set_ylim(0, 1.02)
    ax2.set_yscale("log")
    ax2.set_ylabel("residual core half-width")
    ax.legend(loc="lower left", fontsize=7)
    ax2.legend(loc="lower right", fontsize=7)

    label(ax, extra=f"event AE k-scan: {len(summary['seeds'])} seeds, {summary['epochs']} epochs, trained on QCD only")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", default=None,
                        help="QCD training ROOT file(s), e.g. data/qcd_train_200k.root (not the test background)")
    parser.add_argument("--background", nargs="+", default=[str(SAMPLES / "qcd.root")])
    parser.add_argument("--large-background", default="",
                        help="glob of a large background for TPR at FPR 1e-4, e.g. 'data/test_bkg/qcd_*.root' "
                             "(default: none, 1e-4 is skipped)")
    parser.add_argument("--ks", default="1,2,3,4,6,8,12", help=f"latent sizes k: {INT_LIST_HELP} "
                                                               "(default 1,2,3,4,6,8,12)")
    parser.add_argument("--seeds", default="0,1,2", help=f"training seeds: {INT_LIST_HELP} (default 0,1,2)")
    add_training_options(parser, epochs=20, batch_size=512, max_events_help="read at most N training events per file")
    parser.add_argument("--ship", nargs="*", type=int, default=[], help="copy the seed-0 models of these k to the zoo")
    parser.add_argument("--zoo", default=str(REPO / "models" / "zoo"))
    parser.add_argument("--out", default=str(REPO / "models" / "zoo" / "EVT_kscan"))
    parsed = parse_scan_args(parser, argv, plot,
                             "--input FILE [FILE ...] is required (QCD training files, e.g. data/qcd_train_200k.root)")
    if parsed is None:
        return 0
    args, out = parsed
    try:
        ks, seeds = parse_int_list(args.ks, minimum=1), parse_int_list(args.seeds)
    except ValueError as exc:
        parser.error(f"--ks/--seeds: {exc}")
    background = _sample(args.background)
    signals = {n: _sample([str(SAMPLES / f"{n}.root")]) for n in SIGNALS}
    large_paths = sorted(glob.glob(args.large_background)) if args.large_background else []
    large = _sample(large_paths) if large_paths else None
    files = lambda paths: [{"name": Path(p).name, "sha256": sha256_file(p)} for p in paths]  # noqa: E731
    summary: dict[str, Any] = {
        "command": "python -m models.training.event_kscan " + " ".join(sys.argv[1:] if argv is None else argv),
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seeds": seeds,
        "training_files": files(args.input), "test_background": files(args.background),
        "large_background": files(large_paths), "signals": {n: files([str(SAMPLES / f"{n}.root")]) for n in SIGNALS},
        "note": "trained on QCD only; the signal samples are used for evaluation, never for training", "scan": []}
    out.mkdir(parents=True, exist_ok=True)
    with Progress(len(ks) * len(seeds), "event k-scan", unit="models") as bar, \
            tempfile.TemporaryDirectory() as scratch:
        for k in ks:
            runs = []
            for seed in seeds:
                target = Path(scratch) / f"EVT_AE_k{k}" if seed != seeds[0] or k not in args.ship \
                    else Path(args.zoo) / f"EVT_AE_k{k}"
                if target.exists():
                    shutil.rmtree(target)
                options = TrainOptions(input=list(args.input), out=str(target), level=Level.EVENT, latent=k,
                                       epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed,
                                       threads=args.threads, max_events=args.max_events, name=f"EVT_AE_k{k}",
                                       progress=False)
                try:
                    card = train_model(options)
                except TrainError as exc:
                    print(f"event_kscan: k={k} seed={seed}: {exc}", file=sys.stderr)
                    return 2
                row = evaluate(target, background, signals, large)
                row.update(seed=seed, best_val_loss=card["training"]["best_val_loss"],
                           train_seconds=card["training"]["train_seconds"], train_command=card["training"]["command"])
                runs.append(row)
                bar.update(1, k=k, seed=seed, auc_dark=row["signals"]["darkshower"]["auc"])
            summary["scan"].append({"k": k, "summary": summarise(runs), "runs": runs})
            (out / "kscan.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(summary, out / "kscan.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
