"""Scan the wide AE's latent size k: per-variable core half-widths on the test split against k.

Run as ``python -m models.training.kscan --input FILE --ks 2-12 --epochs 8 --out models/zoo/wide_kscan``.
``--ks`` takes comma-separated integers and inclusive ranges (``2-12``, ``1,2,4-8``; parse_int_list).
Each k is trained by models.training.train_command.train_model (the function behind
``aetrig train --arch wide --latent k --variables all``; the card records that command) into a
scratch folder; only the summary ``kscan.json`` and the plot ``kscan.png`` are written to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulator.runtime.plotting import label
from models.training.train_command import train_model
from models.training.train_options import TrainError, TrainOptions

#: help of every option parsed by parse_int_list (--ks here and in event_kscan, event_kscan's --seeds)
INT_LIST_HELP = "comma-separated integers and inclusive ranges, e.g. '2-12' or '1,2,4-8'"


def parse_int_list(text: str, minimum: int = 0) -> list[int]:
    """'1,2,4-8' -> [1, 2, 4, 5, 6, 7, 8]: items are integers or inclusive ranges LO-HI, in the order given.
    Raises ValueError for an empty or malformed item, a descending range, a repeat or a value below ``minimum``."""
    values: list[int] = []
    for item in text.split(","):
        lo, dash, hi = item.strip().partition("-")
        try:
            first, last = int(lo), int(hi if dash else lo)
        except ValueError:
            raise ValueError(f"{item.strip()!r} in {text!r} is not an integer or a range LO-HI") from None
        if last < first:
            raise ValueError(f"range {item.strip()!r} in {text!r} is descending")
        values += range(first, last + 1)
    if min(values) < minimum:
        raise ValueError(f"{text!r}: values must be >= {minimum}")
    if len(set(values)) != len(values):
        raise ValueError(f"{text!r} repeats a value")
    return values


def add_training_options(parser: argparse.ArgumentParser, *, epochs: int, batch_size: int,
                         max_events_help: str) -> None:
    """--epochs, --batch-size, --lr, --max-events and --threads of every training a scan runs."""
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-events", type=int, default=None, help=max_events_help)
    parser.add_argument("--threads", type=int, default=1)


def parse_scan_args(parser: argparse.ArgumentParser, argv: list[str] | None,
                    plot: Callable[[dict[str, Any], Path], None],
                    input_error: str) -> tuple[argparse.Namespace, Path] | None:
    """Add --plot-only and parse ``argv``: (arguments, --out), or None once --plot-only has redrawn
    OUT/kscan.png from OUT/kscan.json with ``plot``. Without --plot-only, no --input is ``input_error``."""
    parser.add_argument("--plot-only", action="store_true", help="redraw OUT/kscan.png from OUT/kscan.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.plot_only:
        plot(json.loads((out / "kscan.json").read_text()), out / "kscan.png")
        return None
    if not args.input:
        parser.error(input_error)
    return args, out


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

    label(ax, extra=f"wide AE {len(summary['variables'])}-200-200-200-k: test split, {summary['epochs']} epochs each")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", default=[], help="training ROOT file(s) (required unless --plot-only)")
    parser.add_argument("--ks", default="2-12", help=f"latent sizes k: {INT_LIST_HELP} (default 2-12)")
    add_training_options(parser, epochs=8, batch_size=2048, max_events_help="read at most N events per file")
    parser.add_argument("--out", default="models/zoo/wide_kscan")
    parsed = parse_scan_args(parser, argv, plot, "--input is required")
    if parsed is None:
        return 0
    args, out = parsed
    try:
        ks = parse_int_list(args.ks, minimum=1)
    except ValueError as exc:
        parser.error(f"--ks: {exc}")
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                               "command": "python -m models.training.kscan " + " ".join(argv or sys.argv[1:]),
                               "scan": []}
    for k in ks:
        with tempfile.TemporaryDirectory() as scratch:
            options = TrainOptions(input=list(args.input), out=str(Path(scratch) / f"k{k}"), variables="all",
                                   arch="wide", latent=k, epochs=args.epochs, batch_size=args.batch_size,
                                   lr=args.lr, threads=args.threads, max_events=args.max_events, progress=False)
            try:
                card = train_model(options)
            except TrainError as exc:
                print(f"kscan: k={k}: {exc}", file=sys.stderr)
                return 2
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
