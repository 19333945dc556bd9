"""``aetrig train --level event``: train the event-level AE on background events and export its model directory.

Same machinery as the per-jet training (models.runtime.data split by (file, entry), models.training.train loop,
models.runtime.normalisation standardisation inside the graph, models.training.modeldir card): the events' leading
J jets are padded (models.runtime.event_features), turned into the event vector, standardised with the
training-split mean and standard deviation, and a small BatchNorm AE (n-64-32-k-32-64-n) learns to
reconstruct it (plain MSE). The exported graphs take the padded jets [N, J, V] in GeV; the scorer's
``error`` is the per-event anomaly score: the squared residuals weighted by 1 / (their variance on
the background validation split), averaged over features (models/training/event_graphs.py). Thresholds are
per event on the test split. ``train_event_model(options)`` is the entry (via train_command.train_model).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.card import Level
from models.runtime.domain import training_domain
from models.runtime.event_features import (
    EVENT_VARIABLES,
    FEATURE_SETS,
    event_features,
    feature_names,
    fit_empty_slot_fill,
    padded_jets,
)
from models.runtime.event_scoring import run_event_scorer
from models.runtime.normalisation import fit_standard
from models.runtime.rebuild import TRAINED, rebuild_block
from models.runtime.residuals import core_half_width, residual_summary
from models.runtime.thresholds import MIN_TAIL, dense_curve, threshold_rows
from models.training.modeldir import CHECKPOINT, save_checkpoint, write_full_card
from models.training.train import CHECKPOINT_NAME
from models.training.train_options import TrainError, TrainOptions, fit_network, load_and_split, training_record

KIND = "event"  #: the event-level AE's architecture (models/training/architectures.py)


def fidelity(names: list[str], f_in: np.ndarray, f_out: np.ndarray, y_in: np.ndarray,
             y_out: np.ndarray) -> dict[str, Any]:
    """Reconstruction fidelity of the event vector: per-feature core half-width (standardised units) and HT."""

    per = {n: core_half_width(y_out[:, i] - y_in[:, i]) for i, n in enumerate(names)}
    i = names.index("log_ht")
    ht_in, ht_out = 10 ** f_in[:, i] - 1, 10 ** f_out[:, i] - 1
    keep = ht_in > 0
    return {"core_half_width_standardised": per,
            "mean_core_half_width_standardised": float(np.mean(list(per.values()))),
            "ht_relative": residual_summary((ht_out[keep] - ht_in[keep]) / ht_in[keep])}


def event_threshold_table(scores: np.ndarray, sample: dict[str, Any]) -> dict[str, Any]:
    """The card's ``thresholds`` for an event-level model: rows and dense curve of per-event errors."""

    return {"sample": {**sample, "n_events": len(scores)},
            "rule": f"flag if event_score > threshold; event_score = the event AE's error (zero-jet events are "
                    f"scored too); n = background events above; reliable if n >= {MIN_TAIL}",
            "per_jet": [], "per_event": threshold_rows(scores), "per_event_curve": dense_curve(scores)}


def event_variables(options: TrainOptions) -> list[str]:
    """The jet variables of an event model: ``--variables`` names a feature set of
    models.runtime.event_features.FEATURE_SETS (``substructure``, the default, or ``four-vector``) or lists one."""
    if options.variables == TrainOptions.variables:
        return list(EVENT_VARIABLES)
    if options.variables in FEATURE_SETS:
        return list(FEATURE_SETS[options.variables])
    given = [v.strip() for v in options.variables.split(",")]
    for variables in FEATURE_SETS.values():
        if given == list(variables):
            return given
    sets = "; ".join(f"{name} ({','.join(v)})" for name, v in FEATURE_SETS.items())
    raise TrainError(f"--level event --variables takes a feature set: {sets}; got {options.variables!r}")


def train_event_model(options: TrainOptions) -> dict[str, Any]:
    """Train, export and evaluate one event-level model into ``options.out``; returns its card.
    Raises TrainError with a clear message (also for per-jet options that do not apply)."""
    import torch

    from models.training.architectures import build, describe
    from models.training.event_graphs import export_event_graphs, residual_weights

    if options.level != Level.EVENT:
        raise TrainError(f"train_event_model needs level {Level.EVENT}, got {options.level}")
    variables = event_variables(options)
    d = TrainOptions
    ignored = [flag for flag, given in (("--arch", options.arch != d.arch), ("--norm", options.norm != d.norm),
                                        ("--loss-weights", bool(options.loss_weights))) if given]
    if ignored:
        raise TrainError(f"{', '.join(ignored)} do(es) not apply to --level event (it reads {variables}, "
                         "standardises the event vector and uses the event architecture)")
    if options.slots > options.jets or options.jets < 1:
        raise TrainError(f"need 1 <= --slots ({options.slots}) <= --jets ({options.jets})")
    names = feature_names(options.slots, variables)
    sample, parts = load_and_split(options, variables)
    if min(p.n_events for p in parts.values()) == 0:
        raise TrainError("a split has no events; give more events")
    padded = {name: padded_jets(p.values, p.counts, options.jets) for name, p in parts.items()}
    fill = fit_empty_slot_fill(event_features(padded["train"], options.slots, variables), options.slots)
    feats = {name: event_features(x, options.slots, variables, fill) for name, x in padded.items()}
    counts = {name: {"events": p.n_events, "jets": len(p.values)} for name, p in parts.items()}
    print(f"data: {sample.n_events} events; split {counts}; event vector of {len(names)} features", file=sys.stderr)
    norm = fit_standard(names, feats["train"])
    y_train = norm.forward(feats["train"]).astype(np.float32)
    y_val = norm.forward(feats["val"]).astype(np.float32)
    config = options.train_config(names, kind=KIND)
    torch.manual_seed(options.seed)
    out = Path(options.out)
    net, state, wall = fit_network(build(KIND, len(names), options.latent), y_train, y_val, config, options)
    weights = residual_weights(net, torch.from_numpy(y_val))
    export_event_graphs(net, norm, out, options.jets, options.slots, variables, weights, fill)
    save_checkpoint(out / CHECKPOINT, net, KIND, norm, {"level": Level.EVENT.value, "jets": options.jets,
                                                        "slots": options.slots, "variables": variables,
                                                        "score_weights": weights, "empty_slot_fill": fill.tolist()})
    _, reco, error = run_event_scorer(out / "scorer.onnx", padded["test"], threads=options.threads)
    f_test = feats["test"]
    y_test, y_reco = norm.forward(f_test), norm.forward(reco.astype(np.float64))
    metrics = {"test_split": {
        "n_events": parts["test"].n_events, "loss_mse_normalised": float(np.mean(error)),
        "normalised_mse_per_feature": dict(zip(names, np.mean((y_reco - y_test) ** 2, axis=0).tolist(), strict=True)),
        "fidelity": fidelity(names, f_test, reco.astype(np.float64), y_test, y_reco)}}
    card = {
        "name": options.name or out.name, "version": 1, "level": Level.EVENT,
        "event_input": {
            "shape": "[N, J, V] float32, GeV", "jets": options.jets, "slots": options.slots,
            "variables": [{"name": v, "unit": "GeV" if v in ("pt", "m") else ""} for v in variables],
            "padding": "events with fewer than J jets are zero-padded (padded jets have pt = 0; real jets pt > 20 GeV)",
            "truncation": "events with more than J jets keep their J leading (highest-pt) jets",
            "zero_jet_events": "scored like any event (the vector of an empty event); never dropped",
            "features": names, "features_doc": "models/runtime/event_features.py",
            "empty_slot_fill": fill.tolist(),
            "empty_slot_fill_doc": "[slots][slot features]: training-split mean of each slot's features over "
                                   "events that have that jet; an empty slot takes these values",
            "helper": "models.runtime.event_features.padded_jets(values, counts, J)",
        },
        "architecture": describe(KIND, net),
        "score": {"definition": "error = mean_i w_i (out_i - y_i)^2, y = standardised event vector, "
                                "w_i = 1 / variance of residual i on the background validation split",
                  "fitted_on": "validation split of the training data (background only)",
                  "inverse_residual_variance": weights},
        "training": training_record(options, sample, counts, config, state, wall,
                                    "MSE of the standardised event vector"),
        "metrics": metrics,
        "thresholds": event_threshold_table(error, {"files": sample.files, "split": "test"}),
        "domain": training_domain(options.input, sample.values[:, 0], sample.values[:, 1], options.jets),
        "source": {"rebuild": rebuild_block(TRAINED, options.input, [options.command_line()])},
    }
    full = write_full_card(out, norm, card, variables=variables)
    if not options.keep_checkpoint:
        (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    fid = metrics["test_split"]["fidelity"]
    print(f"wrote {out}: best epoch {state.best_epoch}/{state.epoch}, val loss {state.best_val:.4g}, "
          f"{state.seconds:.0f} s training; test: mean error {np.mean(error):.4g}, HT core half-width "
          f"{fid['ht_relative']['core_half_width']:.4g}, mean standardised core half-width "
          f"{fid['mean_core_half_width_standardised']:.4g}")
    return full
