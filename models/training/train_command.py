"""Train an autoencoder on ROOT ntuples of the input contract and export it as a model directory.

Events are split into train/validation/test by a hash of (file content, entry), so the splits
never overlap and do not depend on file order. The normalisation is fitted on the training jets.
Adam minimises the MSE of the normalised vector with a one-cycle or plateau LR schedule and early
stopping on the validation loss; a checkpoint is written after every epoch (--resume continues).
The best-validation network is exported (encoder/decoder/scorer ONNX + model.pt) and card.json
records the data hashes, training history, test-split residuals and thresholds on the test split.

``--rate-lambda L`` trains a rate-distortion AE (models/training/rate_train.py, the ``RD_AE_*`` models): the
loss adds L times the latents' bits per jet, the latents are rounded to integers and the model directory gets the
entropy-coding tables (``entropy_model.json``) fitted on the training split, and the bits per jet measured on the
bundled qcd.root and ttbar.root.

``--level event`` trains the event-level AE instead (models/training/event_train.py): its input is the
event's leading ``--jets`` jets (zero-padded), turned into an event vector inside the graph, and its
error is one anomaly score per event.

Programs (the k-scans) call ``train_model(TrainOptions(...))``, the function ``main`` calls, not the CLI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from emulator.runtime.stage_config import KeyValuesAction
from models.runtime.card import Level
from models.training.event_train import train_event_model
from models.training.train_options import (
    TrainError,
    TrainOptions,
    fit_network,
    load_and_split,
    training_record,
    weight_values,
)

EXAMPLES = """
aetrig train --input producer/samples/qcd.root --arch ae3d200 --variables pt,eta,phi,e --epochs 5 --out /tmp/ae
aetrig generate --process qcd --events 200000 --seed 901 --jobs 2 --out data/qcd_train_200k.root
aetrig train --input data/qcd_train_200k.root --arch ae3d200 --variables pt,eta,phi,e --norm custom \\
    --epochs 40 --batch-size 2048 --threads 2 --out models/zoo/AE_3D_200_ptetaphie
aetrig train --input data/qcd_train_200k.root --arch wide --latent 6 --variables all --out models/zoo/wide_k6
aetrig train --input a.root b.root --arch tla --variables m,pt,phi,eta --out /tmp/tla --resume
aetrig generate --process qcd --events 50000 --seed 931 --jobs 1 --out data/qcd_train_50k_seed931.root
aetrig train --rate-lambda 2.3e-05 --input data/qcd_train_50k_seed931.root --latent 3 --epochs 150 \\
    --batch-size 2048 --patience 150 --loss-weights pt=0.8 eta=2.6 phi=8 e=2.1 --out models/zoo/RD_AE_g23
aetrig train --level event --input data/qcd_train_200k.root --latent 2 --epochs 20 --batch-size 512 \\
    --out models/zoo/EVT_AE_k2
"""

ALL_VARIABLES = ["pt", "eta", "phi", "m", "e", "nconst", "charged_frac", "em_frac", "width", "lead_frac", "n90",
                 "tau21", "tau32"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainOptions  # the defaults live on the options dataclass
    parser.add_argument("--input", nargs="+", required=True, help="ROOT file(s) of the input contract")
    parser.add_argument("--tree", default=d.tree, help=f"TTree name (default {d.tree})")
    parser.add_argument("--level", type=Level, choices=list(Level), default=d.level,
                        help="jet: one AE input per jet (default); event: the event-level AE on the leading jets "
                             "(--variables names its feature set: substructure, the default, pt,eta,phi,m,width,"
                             "tau21,tau32, or four-vector, pt,eta,phi,m; --arch, --norm and --loss-weights do not "
                             "apply)")
    parser.add_argument("--jets", type=int, default=d.jets,
                        help="--level event: leading jets per event J (pad/truncate)")
    parser.add_argument("--slots", type=int, default=d.slots, help="--level event: leading jets with per-jet features")
    parser.add_argument("--variables", default=d.variables,
                        help="comma-separated jet variables in input order, or 'all' for the 13 generated ones; "
                             "--level event: 'substructure' (default) or 'four-vector'")
    parser.add_argument("--arch", choices=["ae3d200", "tla", "wide"], default=d.arch,
                        help="the network's architecture (was --model, which names a trained model everywhere else)")
    parser.add_argument("--latent", type=int, default=d.latent, help="latent size k (default 3; wide: n/2)")
    parser.add_argument("--norm", choices=["standard", "custom", "tla"], default=d.norm, help="normalisation")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="maximum number of epochs")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr, help="(peak) learning rate")
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--schedule", choices=["onecycle", "plateau"], default=d.schedule)
    parser.add_argument("--patience", type=int, default=d.patience,
                        help="early stopping: epochs without validation gain")
    parser.add_argument("--loss-weights", action=KeyValuesAction, default=d.loss_weights, metavar="VAR=W",
                        help="per-variable loss weights, e.g. pt=10 m=5, was pt=10,m=5 (others 1; normalised to mean "
                             "1). The scorer's error stays the unweighted MSE")
    parser.add_argument("--rate-lambda", type=float, default=d.rate_lambda, metavar="L",
                        help="train a rate-distortion AE (the RD_AE_* models): loss = weighted MSE + L * bits per "
                             "jet of the integer latents, entropy-coding tables in OUT/entropy_model.json (per-jet "
                             "level; default: a plain AE)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of initialisation, shuffling and the split")
    parser.add_argument("--split", default=d.split, help="train,val,test event fractions")
    parser.add_argument("--max-events", type=int, default=d.max_events, help="read at most N events per file")
    parser.add_argument("--threads", type=int, default=d.threads, help="torch and ONNX Runtime threads")
    parser.add_argument("--name", default=d.name, help="model name in the card (default: the --out folder name)")
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--keep-checkpoint", action="store_true", help="keep OUT/checkpoint.pt after export")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_variables(text: str) -> list[str]:
    """'pt,eta' -> ['pt', 'eta']; 'all' -> ALL_VARIABLES. Raises TrainError for an empty list or repeats."""
    names = ALL_VARIABLES if text == "all" else [v.strip() for v in text.split(",") if v.strip()]
    if not names or len(set(names)) != len(names):
        raise TrainError(f"--variables must list distinct names, got {text!r}")
    return names


def parse_weights(given: Mapping[str, Any] | None, variables: list[str]) -> list[float] | None:
    """{'pt': 10, 'm': '5'} (``--loss-weights pt=10 m=5``) -> weights in variable order (1 for unnamed variables);
    None when not given."""
    if not given:
        return None
    unknown = [name for name in given if name not in variables]
    if unknown:
        raise TrainError(f"--loss-weights: {unknown[0]} is not a variable; VAR is one of {variables}")
    return list((dict.fromkeys(variables, 1.0) | weight_values(given)).values())


def main(args: argparse.Namespace) -> int:
    """``aetrig train``: train_model on the parsed options; a TrainError is printed and exits 2, Ctrl-C 130."""
    try:
        train_model(TrainOptions.from_namespace(args))
    except TrainError as exc:
        print(f"aetrig train: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def train_model(options: TrainOptions) -> dict[str, Any]:
    """Train, export and evaluate one model into ``options.out``; returns its card (as written to card.json).

    ``options.rate_lambda`` trains a rate-distortion AE (models.training.rate_train.train_rate_model),
    ``options.level`` ``Level.EVENT`` the event-level AE (models.training.event_train.train_event_model).
    Raises TrainError with a clear message for bad data, options or checkpoints."""
    if options.rate_lambda is not None:
        if options.level == Level.EVENT:
            raise TrainError("--rate-lambda trains a per-jet model; it does not apply with --level event")
        if not options.rate_lambda >= 0:
            raise TrainError(f"--rate-lambda must be >= 0, got {options.rate_lambda}")
        from models.training.rate_train import train_rate_model

        return train_rate_model(options)
    if options.level == Level.EVENT:
        return train_event_model(options)
    import torch

    from models.runtime.domain import training_domain
    from models.runtime.evaluate import run_scorer
    from models.runtime.normalisation import fit
    from models.runtime.rebuild import TRAINED, rebuild_block
    from models.runtime.residuals import format_stats, residual_stats
    from models.runtime.thresholds import threshold_table
    from models.training.architectures import build, describe
    from models.training.modeldir import export_model_files, write_full_card
    from models.training.train import CHECKPOINT_NAME

    variables = parse_variables(options.variables)
    weights = parse_weights(options.loss_weights, variables)
    sample, parts = load_and_split(options, variables)
    counts = {name: {"events": part.n_events, "jets": len(part.values)} for name, part in parts.items()}
    print(f"data: {sample.n_events} events, {len(sample.values)} jets; split {counts}", file=sys.stderr)
    if min(c["jets"] for c in counts.values()) == 0:
        raise TrainError("a split has no jets; give more events")
    try:
        norm = fit(options.norm, variables, parts["train"].values.astype(np.float64))
    except ValueError as exc:
        raise TrainError(str(exc)) from exc
    y_train = norm.forward(parts["train"].values.astype(np.float64)).astype(np.float32)
    y_val = norm.forward(parts["val"].values.astype(np.float64)).astype(np.float32)
    config = options.train_config(variables, weights)
    torch.manual_seed(options.seed)
    out = Path(options.out)
    net, state, wall = fit_network(build(options.arch, len(variables), options.latent), y_train, y_val, config,
                                   options)
    export_model_files(out, net, options.arch, norm)
    test = parts["test"]
    _, reco, error = run_scorer(out / "scorer.onnx", test.values, threads=options.threads)
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
        "name": options.name or out.name, "version": 1,
        "architecture": describe(options.arch, net),
        "training": training_record(options, sample, counts, config, state, wall, "MSE on the normalised vector"
                                    + (" (per-variable weights in config)" if weights else "")),
        "metrics": metrics,
        "thresholds": threshold_table(error, test.counts, {"files": sample.files, "split": "test"}),
        "domain": training_domain(options.input, *(sample.values[:, variables.index(v)] if v in variables else
                                                   np.zeros(0) for v in ("pt", "eta")), None),
        "source": {"rebuild": rebuild_block(TRAINED, options.input, [options.command_line()])},
    }
    full = write_full_card(out, norm, card)
    if not options.keep_checkpoint:
        (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    print(f"wrote {out}: best epoch {state.best_epoch}/{state.epoch}, val loss {state.best_val:.4g}, "
          f"{state.seconds:.0f} s training")
    print("test split, all jets:")
    print(format_stats(metrics["test_split"]["all_jets"]))
    return full
