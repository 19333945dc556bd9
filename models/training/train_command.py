"""Train an autoencoder on ROOT ntuples of the input contract and export it as a model directory.

Events are split into train/validation/test by a hash of (file content, entry), so the splits
never overlap and do not depend on file order. The normalisation is fitted on the training jets.
Adam minimises the MSE of the normalised vector with a one-cycle or plateau LR schedule and early
stopping on the validation loss; a checkpoint is written after every epoch (--resume continues).
The best-validation network is exported (encoder/decoder/scorer ONNX + model.pt) and card.json
records the data hashes, training history, test-split residuals and thresholds on the test split.

``--level event`` trains the event-level AE instead (models/training/event_train.py): its input is the
event's leading ``--jets`` jets (zero-padded), turned into an event vector inside the graph, and its
error is one anomaly score per event.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLES = """
aetrig train --input producer/samples/qcd.root --model ae3d200 --variables pt,eta,phi,e --epochs 5 --out /tmp/ae
aetrig generate --process qcd --events 200000 --seed 901 --jobs 2 --out data/qcd_train_200k.root
aetrig train --input data/qcd_train_200k.root --model ae3d200 --variables pt,eta,phi,e --norm custom \\
    --epochs 40 --batch-size 2048 --threads 2 --out models/zoo/AE_3D_200_ptetaphie
aetrig train --input data/qcd_train_200k.root --model wide --latent 6 --variables all --out models/zoo/wide_k6
aetrig train --input a.root b.root --model tla --variables m,pt,phi,eta --out /tmp/tla --resume
aetrig train --level event --input data/qcd_train_200k.root --latent 2 --epochs 20 --batch-size 512 \\
    --out models/zoo/EVT_AE_k2
"""

ALL_VARIABLES = ["pt", "eta", "phi", "m", "e", "nconst", "charged_frac", "em_frac", "width", "lead_frac", "n90",
                 "tau21", "tau32"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", nargs="+", required=True, help="ROOT file(s) of the input contract")
    parser.add_argument("--tree", default="events", help="TTree name (default events)")
    parser.add_argument("--level", choices=["jet", "event"], default="jet",
                        help="jet: one AE input per jet (default); event: the event-level AE on the leading jets "
                             "(reads the jet variables of models.runtime.event_features.EVENT_VARIABLES; --variables, "
                             "--model, --norm and --loss-weights do not apply)")
    parser.add_argument("--jets", type=int, default=6, help="--level event: leading jets per event J (pad/truncate)")
    parser.add_argument("--slots", type=int, default=4, help="--level event: leading jets with per-jet features")
    parser.add_argument("--variables", default="pt,eta,phi,e",
                        help="comma-separated jet variables in input order, or 'all' for the 13 generated ones")
    parser.add_argument("--model", choices=["ae3d200", "tla", "wide"], default="ae3d200", help="architecture")
    parser.add_argument("--latent", type=int, default=None, help="latent size k (default 3; wide: n/2)")
    parser.add_argument("--norm", choices=["standard", "custom", "tla"], default="custom", help="normalisation")
    parser.add_argument("--epochs", type=int, default=30, help="maximum number of epochs")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=3e-3, help="(peak) learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--schedule", choices=["onecycle", "plateau"], default="onecycle")
    parser.add_argument("--patience", type=int, default=10, help="early stopping: epochs without validation gain")
    parser.add_argument("--loss-weights", default=None,
                        help="per-variable loss weights VAR=W,... (others 1; normalised to mean 1). The scorer's "
                             "error stays the unweighted MSE")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and the split")
    parser.add_argument("--split", default="0.8,0.1,0.1", help="train,val,test event fractions")
    parser.add_argument("--max-events", type=int, default=None, help="read at most N events per file")
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    parser.add_argument("--name", default=None, help="model name in the card (default: the --out folder name)")
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--keep-checkpoint", action="store_true", help="keep OUT/checkpoint.pt after export")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_variables(text: str) -> list[str]:
    names = ALL_VARIABLES if text == "all" else [v.strip() for v in text.split(",") if v.strip()]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"--variables must list distinct names, got {text!r}")
    return names


def parse_weights(text: str | None, variables: list[str]) -> list[float] | None:
    """'pt=10,m=5' -> weights in variable order (1 for unnamed variables); None when not given."""
    if not text:
        return None
    weights = dict.fromkeys(variables, 1.0)
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name.strip() not in weights or not value:
            raise ValueError(f"--loss-weights: {item!r} is not VAR=W with VAR one of {variables}")
        weights[name.strip()] = float(value)
    return list(weights.values())


def command_line(args: argparse.Namespace) -> str:
    """The training command reconstructed from the parsed options (stored in the card)."""
    parts = ["aetrig train", "--input", *args.input, "--variables", args.variables, "--model", args.model]
    if args.latent is not None:
        parts += ["--latent", str(args.latent)]
    parts += ["--norm", args.norm, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
              "--lr", str(args.lr), "--schedule", args.schedule, "--patience", str(args.patience),
              "--seed", str(args.seed), "--split", args.split, "--threads", str(args.threads)]
    if args.loss_weights:
        parts += ["--loss-weights", args.loss_weights]
    if args.weight_decay:
        parts += ["--weight-decay", str(args.weight_decay)]
    if args.max_events is not None:
        parts += ["--max-events", str(args.max_events)]
    return " ".join([*parts, "--out", args.out])


def load_and_split(args: argparse.Namespace, variables: list[str]) -> tuple[Any, dict[str, Any]]:
    """Read ``variables`` of --input (--tree, --max-events) and split its events by --split and --seed:
    (sample, {"train"|"val"|"test": part}). Raises ValueError or models.runtime.data.DataError with a clear message."""
    from models.runtime.data import load_jets, split_events

    fractions = tuple(float(f) for f in args.split.split(","))
    if len(fractions) != 3:
        raise ValueError("--split needs three fractions")
    sample = load_jets(args.input, variables, tree=args.tree, max_events=args.max_events)
    masks = split_events(sample, fractions, seed=args.seed)  # type: ignore[arg-type]
    return sample, {name: sample.select_events(mask) for name, mask in masks.items()}


def train_with_cli_errors(net: Any, y_train: np.ndarray, y_val: np.ndarray, config: Any, out: Path,
                          args: argparse.Namespace) -> tuple[Any, Any, float] | int:
    """Run models.training.train.train as the CLI does: (net, state, wall seconds), or the exit code after a clear
    message (2 for bad data or a bad checkpoint, 130 on Ctrl-C with the --resume hint)."""
    from models.training.train import train

    t0 = time.perf_counter()
    try:
        net, state = train(net, y_train, y_val, config, out, resume=args.resume, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as exc:
        print(f"aetrig train: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with the same command plus --resume (checkpoint in {out})", file=sys.stderr)
        return 130
    return net, state, time.perf_counter() - t0


def main(args: argparse.Namespace) -> int:
    if getattr(args, "level", "jet") == "event":
        from models.training.event_train import main_event

        return main_event(args)
    import torch

    from models.runtime.data import DataError
    from models.runtime.evaluate import run_scorer
    from models.runtime.normalisation import fit
    from models.runtime.residuals import format_stats, residual_stats
    from models.runtime.thresholds import threshold_table
    from models.training.architectures import build, describe
    from models.training.modeldir import export_model_files, write_full_card
    from models.training.train import CHECKPOINT_NAME, TrainConfig

    try:
        variables = parse_variables(args.variables)
        weights = parse_weights(args.loss_weights, variables)
        sample, parts = load_and_split(args, variables)
    except (ValueError, DataError) as exc:
        print(f"aetrig train: {exc}", file=sys.stderr)
        return 2
    counts = {name: {"events": part.n_events, "jets": len(part.values)} for name, part in parts.items()}
    print(f"data: {sample.n_events} events, {len(sample.values)} jets; split {counts}", file=sys.stderr)
    if min(c["jets"] for c in counts.values()) == 0:
        print("aetrig train: a split has no jets; give more events", file=sys.stderr)
        return 2
    try:
        norm = fit(args.norm, variables, parts["train"].values.astype(np.float64))
    except ValueError as exc:
        print(f"aetrig train: {exc}", file=sys.stderr)
        return 2
    y_train = norm.forward(parts["train"].values.astype(np.float64)).astype(np.float32)
    y_val = norm.forward(parts["val"].values.astype(np.float64)).astype(np.float32)
    config = TrainConfig(kind=args.model, latent=args.latent, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, weight_decay=args.weight_decay, schedule=args.schedule, patience=args.patience,
                         seed=args.seed, threads=args.threads, variables=variables, loss_weights=weights)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    trained = train_with_cli_errors(build(args.model, len(variables), args.latent), y_train, y_val, config, out,
                                    args)
    if isinstance(trained, int):
        return trained
    net, state, wall = trained
    export_model_files(out, net, args.model, norm)
    test = parts["test"]
    _, reco, error = run_scorer(out / "scorer.onnx", test.values, threads=args.threads)
    leading = test.jet_rank == 0
    y_test = norm.forward(test.values.astype(np.float64))
    y_reco = norm.forward(reco.astype(np.float64))
    metrics = {
        "test_split": {
            "n_events": test.n_events, "n_jets": len(test.values),
            "loss_mse_normalised": float(np.mean(error)),
            "normalised_mse_per_variable": dict(zip(variables, np.mean((y_reco - y_test) ** 2, axis=0).tolist(),
                                                    strict=True)),
            "all_jets": residual_stats(variables, test.values, reco),
            "leading_jets": residual_stats(variables, test.values[leading], reco[leading]),
        },
    }
    card = {
        "name": args.name or out.name, "version": 1,
        "architecture": describe(args.model, net),
        "training": {
            "command": command_line(args),
            "data": {"files": sample.files, "n_events": sample.n_events, "n_jets": len(sample.values),
                     "split": {"fractions": [float(f) for f in args.split.split(",")],
                               "by": "hash of (file sha256, entry, seed)", **counts}},
            "config": {k: v for k, v in vars(config).items() if k != "variables"},
            "optimizer": "Adam",
            "loss": "MSE on the normalised vector" + (" (per-variable weights in config)" if weights else ""),
            "epochs_run": state.epoch, "best_epoch": state.best_epoch, "best_val_loss": state.best_val,
            "history": state.history, "train_seconds": round(state.seconds, 1), "wall_seconds": round(wall, 1),
            "torch": torch.__version__,
        },
        "metrics": metrics,
        "thresholds": threshold_table(error, test.counts, {"files": sample.files, "split": "test"}),
        "source": None,
    }
    write_full_card(out, norm, card)
    if not args.keep_checkpoint:
        (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    print(f"wrote {out}: best epoch {state.best_epoch}/{state.epoch}, val loss {state.best_val:.4g}, "
          f"{state.seconds:.0f} s training")
    print("test split, all jets:")
    print(format_stats(metrics["test_split"]["all_jets"]))
    return 0

