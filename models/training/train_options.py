"""What one training run needs, shared by the per-jet (train_command) and event-level (event_train) trainings.

``TrainOptions`` holds the options of ``aetrig train`` as typed fields (the CLI fills it from its parsed
arguments; the k-scans build it directly) and reconstructs the equivalent command text for the card.
``TrainError`` is a clear, user-facing failure (bad data, options or checkpoint): the CLI prints it and exits 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.card import Level
from models.runtime.data import DataError, load_jets, split_events
from models.training.train import Hyperparameters, TrainConfig, train


class TrainError(Exception):
    """A training run cannot proceed: missing data or branch, bad option, unusable checkpoint."""


def weight_values(given: Mapping[str, Any]) -> dict[str, float]:
    """``--loss-weights`` pairs {VAR: W} with W as a number; TrainError for one that is not."""
    out = {}
    for name, value in given.items():
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            raise TrainError(f"--loss-weights: {name}={value} is not VAR=W with W a number") from None
    return out


@dataclass(kw_only=True)
class TrainOptions(Hyperparameters):
    """The options of one ``aetrig train`` run (field names and defaults are the CLI's, dashes as underscores;
    the training loop's settings and defaults come from :class:`Hyperparameters`)."""

    input: list[str]
    out: str
    tree: str = "events"
    level: Level = Level.JET
    jets: int = 6
    slots: int = 4
    variables: str = "pt,eta,phi,e"
    arch: str = "ae3d200"
    norm: str = "custom"
    loss_weights: dict[str, float] | None = None  # --loss-weights VAR=W ...
    rate_lambda: float | None = None
    split: str = "0.8,0.1,0.1"
    max_events: int | None = None
    name: str | None = None
    resume: bool = False
    keep_checkpoint: bool = False
    progress: bool = True

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> TrainOptions:
        """The options of parsed ``aetrig train`` arguments (``--no-progress`` becomes ``progress=False``)."""
        given = vars(args)
        names = {f.name for f in dataclasses.fields(cls)} - {"progress"}
        values = {n: given[n] for n in names if n in given}
        if values.get("loss_weights"):
            values["loss_weights"] = weight_values(values["loss_weights"])
        return cls(**values, progress=not given.get("no_progress", False))

    def train_config(self, variables: list[str], loss_weights: list[float] | None = None,
                     kind: str | None = None) -> TrainConfig:
        """The training loop's hyper-parameters from these options (``kind`` defaults to the architecture)."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(Hyperparameters)}
        return TrainConfig(**shared, kind=kind or self.arch, variables=variables, loss_weights=loss_weights)

    def command_line(self) -> str:
        """The equivalent ``aetrig train`` command (stored in the card for provenance)."""
        if self.level == Level.EVENT:
            parts = ["aetrig train --level event", "--input", *self.input, "--jets", str(self.jets),
                     "--slots", str(self.slots)]
            if self.variables != TrainOptions.variables:  # the event models' feature set
                parts += ["--variables", self.variables]
        else:
            rate = ["--rate-lambda", str(self.rate_lambda)] if self.rate_lambda is not None else []
            parts = ["aetrig train", *rate, "--input", *self.input, "--variables", self.variables, "--arch",
                     self.arch]
        if self.latent is not None:
            parts += ["--latent", str(self.latent)]
        if self.level != Level.EVENT:
            parts += ["--norm", self.norm]
        parts += ["--epochs", str(self.epochs), "--batch-size", str(self.batch_size), "--lr", str(self.lr),
                  "--schedule", self.schedule, "--patience", str(self.patience), "--seed", str(self.seed),
                  "--split", self.split, "--threads", str(self.threads)]
        if self.loss_weights and self.level != Level.EVENT:
            parts += ["--loss-weights", *(f"{k}={v}" for k, v in self.loss_weights.items())]
        if self.weight_decay:
            parts += ["--weight-decay", str(self.weight_decay)]
        if self.max_events is not None:
            parts += ["--max-events", str(self.max_events)]
        return " ".join([*parts, "--out", self.out])

    def fractions(self) -> tuple[float, float, float]:
        """--split as (train, val, test) fractions."""
        try:
            fractions = tuple(float(f) for f in self.split.split(","))
        except ValueError:
            fractions = ()
        if len(fractions) != 3:
            raise TrainError(f"--split needs three comma-separated fractions, got {self.split!r}")
        return fractions  # type: ignore[return-value]


def load_and_split(options: TrainOptions, variables: list[str]) -> tuple[Any, dict[str, Any]]:
    """Read ``variables`` of the input files and split their events by --split and --seed:
    (sample, {"train"|"val"|"test": part}). Raises TrainError with a clear message."""

    fractions = options.fractions()
    try:
        sample = load_jets(options.input, variables, tree=options.tree, max_events=options.max_events)
        masks = split_events(sample, fractions, seed=options.seed)
    except (ValueError, DataError) as exc:
        raise TrainError(str(exc)) from exc
    return sample, {name: sample.select_events(mask) for name, mask in masks.items()}


def fit_network(net: Any, y_train: np.ndarray, y_val: np.ndarray, config: Any,
                options: TrainOptions) -> tuple[Any, Any, float]:
    """Run models.training.train.train into ``options.out``: (best network, state, wall seconds).
    A bad checkpoint or configuration raises TrainError; Ctrl-C prints the --resume hint and propagates."""

    out = Path(options.out)
    t0 = time.perf_counter()
    try:
        net, state = train(net, y_train, y_val, config, out, resume=options.resume, progress=options.progress)
    except (FileNotFoundError, ValueError) as exc:
        raise TrainError(str(exc)) from exc
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with the same command plus --resume (checkpoint in {out})", file=sys.stderr)
        raise
    return net, state, time.perf_counter() - t0


def training_record(options: TrainOptions, sample: Any, counts: dict[str, Any], config: Any, state: Any,
                    wall: float, loss: str) -> dict[str, Any]:
    """The card's ``training`` block: command, data and split, configuration, loss and the run's history."""
    import torch

    return {
        "command": options.command_line(),
        "data": {"files": sample.files, "n_events": sample.n_events, "n_jets": len(sample.values),
                 "split": {"fractions": list(options.fractions()),
                           "by": "hash of (file sha256, entry, seed)", **counts}},
        "config": {k: v for k, v in vars(config).items() if k != "variables"},
        "optimizer": "Adam", "loss": loss,
        "epochs_run": state.epoch, "best_epoch": state.best_epoch, "best_val_loss": state.best_val,
        "history": state.history, "train_seconds": round(state.seconds, 1), "wall_seconds": round(wall, 1),
        "torch": torch.__version__,
    }
