"""Scan the wide AE's latent size k: per-variable core half-widths on the test split against k.

Run as ``python -m models.training.kscan --input FILE --ks 2-12 --epochs 8 --out models/zoo/wide_kscan``.
Each k is trained with ``aetrig train --model wide --latent k --variables all`` into a scratch
folder; only the summary ``kscan.json`` and the plot ``kscan.png`` are written to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def parse_ks(text: str) -> list[int]:
    """'2-12' or '2,4,6' -> list of ints."""
    if "-" in text:
        lo, hi = (int(v) for v in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(v) for v in text.split(",")]


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [row["k"] for row in summary["scan"]]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, name in enumerate(summary["variables"]):
        kind = summary["scan"][0]["core_half_width"][name]["kind"]
        ax.plot(ks, [row["core_half_width"][name]["value"] for row in summary["scan"]], marker="os^"[i // 10],
                ls="-" if i < 10 else "--", lw=2.5 if name == "pt" else 1.2,
                label=f"{name} ({'rel.' if kind == 'relative' else 'abs.'})")
    ax.axhline(0.01, color="k", ls=":", lw=1, label="1% (pt target)")
    ax.set_yscale("log")
    ax.set_xlabel("latent size k")
    ax.set_ylabel("core half-width of residual (16-84% / 2)")
    from emulator.runtime.plotting import label

    label(ax, extra=f"wide AE {len(summary['variables'])}-200-200-200-k: test split, {summary['epochs']} epochs each")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from emulator import cli
    from models.runtime.card import load_model_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", default=[])
    parser.add_argument("--ks", default="2-12")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-events", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="models/zoo/wide_kscan")
    parser.add_argument("--plot-only", action="store_true", help="redraw OUT/kscan.png from OUT/kscan.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.plot_only:
        plot(json.loads((out / "kscan.json").read_text()), out / "kscan.png")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                               "command": "python -m models.training.kscan " + " ".join(argv or sys.argv[1:]),
                               "scan": []}
    if not args.input:
        parser.error("--input is required")
    for k in parse_ks(args.ks):
        with tempfile.TemporaryDirectory() as scratch:
            train_args = ["train", "--input", *args.input, "--variables", "all", "--model", "wide", "--latent", str(k),
                          "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
                          "--threads", str(args.threads), "--no-progress", "--out", str(Path(scratch) / f"k{k}")]
            if args.max_events:
                train_args += ["--max-events", str(args.max_events)]
            code = cli.main(train_args)
            if code != 0:
                return code
            card = load_model_dir(Path(scratch) / f"k{k}").card
        stats = card["metrics"]["test_split"]["all_jets"]
        summary["variables"] = list(stats)
        summary["scan"].append({
            "k": k, "best_val_loss": card["training"]["best_val_loss"], "epochs_run": card["training"]["epochs_run"],
            "train_seconds": card["training"]["train_seconds"], "train_command": card["training"]["command"],
            "core_half_width": {n: {"kind": s["kind"], "value": s["core_half_width"]} for n, s in stats.items()},
        })
        (out / "kscan.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(f"k={k}: pt core half-width {stats['pt']['core_half_width']:.4g}", file=sys.stderr)
    plot(summary, out / "kscan.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
