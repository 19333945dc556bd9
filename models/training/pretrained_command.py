"""Turn the published TLA weights (4D_TLA_leading.pth) into a model directory and report its residuals.

Checks the weights' sha256 before loading them with torch.load(weights_only=True), converts them
to float32, exports encoder/decoder/scorer ONNX graphs with the TLA normalisation inside (inputs in
GeV; the graph converts to MeV; variable order m, pt, phi, eta), runs the network on a background
sample and writes residuals and the threshold table into card.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLES = """
aetrig import-pretrained
aetrig import-pretrained --pretrained models/pretrained/4D_TLA_leading.pth --out models/zoo/TLA_4D_leading
aetrig import-pretrained --background producer/samples/qcd.root --out /tmp/tla
"""

REPO_ROOT = Path(__file__).resolve().parents[2]
#: the published weights shipped inside the package (models/pretrained/, see its README.md)
DEFAULT_PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained" / "4D_TLA_leading.pth"
DEFAULT_OUT = "models/zoo/TLA_4D_leading"
DEFAULT_BACKGROUND = "producer/samples/qcd.root"


def repo_path(value: str) -> Path:
    """A relative default resolves against the repository root; explicit paths as given."""
    path = Path(value)
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


def command_line(args: argparse.Namespace) -> str:
    """The command as given (options that were set), for the card."""
    parts = ["aetrig import-pretrained"]
    for flag in ("pretrained", "out", "name"):
        if getattr(args, flag) not in (None, "TLA_4D_leading"):
            parts.append(f"--{flag} {getattr(args, flag)}")
    if args.background:
        parts.append("--background " + " ".join(args.background))
    return " ".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pretrained", default=None,
                        help="weights file or folder holding it (default: models/pretrained/4D_TLA_leading.pth, "
                             "shipped in the package)")
    parser.add_argument("--out", default=None, help=f"model directory to write (default {DEFAULT_OUT})")
    parser.add_argument("--background", nargs="+", default=None,
                        help=f"background ROOT file(s) for residuals and thresholds (default {DEFAULT_BACKGROUND})")
    parser.add_argument("--tree", default="events", help="TTree name (default events)")
    parser.add_argument("--name", default="TLA_4D_leading", help="model name in the card")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the evaluation")


def main(args: argparse.Namespace) -> int:
    from models.runtime.card import ModelError, load_model_dir
    from models.runtime.data import DataError, load_jets
    from models.runtime.normalisation import tla_normalisation
    from models.runtime.rebuild import rebuild_block
    from models.runtime.residuals import format_stats
    from models.runtime.thresholds import threshold_table
    from models.training.modeldir import export_model_files, write_full_card
    from models.training.pretrained import (
        TLA_VARIABLES,
        evaluate_on_background,
        load_tla_network,
        resolve_weights,
        source_entry,
    )

    weights = Path(args.pretrained) if args.pretrained else DEFAULT_PRETRAINED
    out = Path(args.out) if args.out else repo_path(DEFAULT_OUT)
    backgrounds = [Path(p) for p in args.background] if args.background else [repo_path(DEFAULT_BACKGROUND)]
    try:
        weights = resolve_weights(weights)
        net = load_tla_network(weights)
        sample = load_jets(backgrounds, TLA_VARIABLES, tree=args.tree)
    except (ModelError, DataError) as exc:
        print(f"aetrig import-pretrained: {exc}", file=sys.stderr)
        return 2
    from models.training.architectures import describe

    norm = tla_normalisation()
    export_model_files(out, net, "tla", norm)
    metrics, errors = evaluate_on_background(out, sample, threads=args.threads)
    card = {
        "name": args.name, "version": 1,
        "architecture": describe("tla", net),
        "training": {"imported": True, "recipe": "published: fastai Adam, wd 1e-6, batch 256, lr 1e-3 -> 1e-6, "
                     "MSE on the normalised vector (not retrained here)",
                     "command": command_line(args)},
        "metrics": {"background": metrics},
        "thresholds": threshold_table(errors, sample.counts, {"files": sample.files}),
        "source": {**source_entry(weights), "rebuild": rebuild_block(
            "the aetrig commands that rebuild this directory: the background its residuals and thresholds are "
            "measured on, then the import of the published weights",
            backgrounds, [command_line(args) + ("" if args.out else f" --out {DEFAULT_OUT}")])},
    }
    write_full_card(out, norm, card)
    load_model_dir(out)  # re-read and verify what was written
    print(f"wrote {out} (source {weights.name}, sha256 verified)")
    print(f"background: {sample.n_events} events, {len(sample.values)} jets from "
          f"{', '.join(f['name'] for f in sample.files)}")
    print("\nleading jets (relative residual for m, pt; absolute for phi, eta):")
    print(format_stats(metrics["leading_jets"]))
    print("\nall jets:")
    print(format_stats(metrics["all_jets"]))
    rows = card["thresholds"]["per_event"]
    print("\nper-event thresholds: " + json.dumps([(r["fpr"], round(r["threshold"], 6), r["n"], r["reliable"])
                                                  for r in rows]))
    return 0
