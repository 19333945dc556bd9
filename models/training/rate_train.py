"""Train one rate-trained AE (models/training/rate_ae.py) into a model directory with ``entropy_model.json``:
``aetrig train --rate-lambda L`` (models/training/train_command.py) calls :func:`train_rate_model`.

Reuses the per-jet training pieces: TrainOptions, load_and_split, the normalisation, the shared loop
(fit_network), the ONNX export and the card writer. The pmf tables are the histograms of the training split's
symbols (models/runtime/latent_coding.fit_tables). The card's ``rate`` entry states λ and the measured bits
per jet (coded bytes × 8 / jets) and core half-widths on the test split and on any ``eval_samples`` (by default
the bundled qcd.root and ttbar.root).

    aetrig train --rate-lambda 3e-5 --input data/qcd_train_200k.root --latent 3 \
        --loss-weights pt=1 eta=2.25 phi=5.5 e=2.45 --out models/zoo/RD_AE_l2 [...]

(the loss weights pt=1 eta=2.25 phi=5.5 e=2.45 put the goal's resolutions, pt and e 1 % relative, eta and phi
0.01, on one scale in normalised units)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime import latent_coding as lc
from models.runtime.card import write_card
from models.runtime.evaluate import run_scorer
from models.runtime.hashing import sha256_file
from models.runtime.normalisation import fit
from models.runtime.rate_metrics import measure
from models.runtime.rebuild import rebuild_block
from models.runtime.residuals import residual_stats
from models.runtime.thresholds import threshold_table
from models.training.modeldir import export_model_files, write_full_card
from models.training.train import CHECKPOINT_NAME
from models.training.train_command import parse_variables, parse_weights
from models.training.train_options import TrainError, TrainOptions, fit_network, load_and_split

#: float32 weights, integer latents: the generic torch parity test (exact float equality of the reconstruction)
#: does not apply across a rounding edge; tests/test_rate_ae.py checks these graphs against RateAE instead
PRECISION = "float32, rint latents"
SAMPLES = Path(__file__).resolve().parents[2] / "producer" / "samples"
DEFAULT_SAMPLES = (str(SAMPLES / "qcd.root"), str(SAMPLES / "ttbar.root"))


def train_rate_model(options: TrainOptions, components: int = 4,
                     eval_samples: tuple[str, ...] = DEFAULT_SAMPLES) -> dict[str, Any]:
    """Train, export, fit the entropy tables and measure one rate-trained AE of λ = ``options.rate_lambda``;
    returns its card."""
    import torch

    from models.training.architectures import build, describe
    from models.training.rate_ae import RateAE, describe_rate

    lam = options.rate_lambda
    if lam is None:
        raise TrainError("a rate-trained AE needs --rate-lambda")
    variables = parse_variables(options.variables)
    weights = parse_weights(options.loss_weights, variables)
    sample, parts = load_and_split(options, variables)
    counts = {name: {"events": part.n_events, "jets": len(part.values)} for name, part in parts.items()}
    norm = fit(options.norm, variables, parts["train"].values.astype(np.float64))
    y_train, y_val = (norm.forward(parts[p].values.astype(np.float64)).astype(np.float32) for p in ("train", "val"))
    config = options.train_config(variables, weights)
    torch.manual_seed(options.seed)
    out = Path(options.out)
    net = RateAE(build(options.arch, len(variables), options.latent), lam, components=components)
    net, state, wall = fit_network(net, y_train, y_val, config, options)
    export_model_files(out, net, f"rate_{options.arch}", norm)
    latent, _, _ = run_scorer(out / "scorer.onnx", parts["train"].values, threads=options.threads)
    entropy = lc.fit_tables(np.rint(latent).astype(np.int32), np.ones(latent.shape[1]))  # symbols: step 1
    (out / lc.ENTROPY_MODEL_NAME).write_text(json.dumps(entropy.to_json(), separators=(",", ":")))
    test = parts["test"]
    test_latent, reco, error = run_scorer(out / "scorer.onnx", test.values, threads=options.threads)
    test_q = lc.quantise(test_latent, entropy)
    card = {
        "name": options.name or out.name, "version": 1, "precision": PRECISION,
        "architecture": {**describe(options.arch, net), "kind": f"rate_{options.arch}"},
        "training": {
            "command": options.command_line(),
            "data": {"files": sample.files, "n_events": sample.n_events, "n_jets": len(sample.values),
                     "split": {"fractions": list(options.fractions()), **counts}},
            "config": {k: v for k, v in vars(config).items() if k != "variables"},
            "optimizer": "Adam", "rate": describe_rate(net),
            "loss": "weighted MSE on the normalised vector + lambda * bits per jet (history: the MSE part only)",
            "epochs_run": state.epoch, "best_epoch": state.best_epoch, "best_val_loss": state.best_val,
            "history": state.history, "train_seconds": round(state.seconds, 1), "wall_seconds": round(wall, 1),
            "torch": torch.__version__,
        },
        "entropy_coding": {
            "file": lc.ENTROPY_MODEL_NAME, "coder": "constriction ANS (AnsCoder, Categorical perfect=False)",
            "symbols_per_latent": [t.size for t in entropy.tables],
            "test_split_bits_per_jet": 8.0 * len(lc.encode(test_q, entropy)) / max(len(test_q), 1),
            "test_split_ideal_bits_per_jet": lc.ideal_bits(test_q, entropy) / max(len(test_q), 1),
        },
        "metrics": {"test_split": {"n_jets": len(test.values), "loss_mse_normalised": float(np.mean(error)),
                                   "all_jets": _stats(variables, test.values, reco)}},
        "thresholds": threshold_table(error, test.counts, {"files": sample.files, "split": "test"}),
        "source": {"rebuild": rebuild_block(
            "the aetrig commands that rebuild this directory: its training data and the samples its bits per jet "
            "are measured on (metrics.samples), then the rate-distortion training",
            [*options.input, *eval_samples], [options.command_line()])},
    }
    full = write_full_card(out, norm, card)
    full["files"][lc.ENTROPY_MODEL_NAME] = sha256_file(out / lc.ENTROPY_MODEL_NAME)
    lc.embed_in_card(full, entropy)  # the card alone codes and decodes the latents (sink, recordings)
    full["metrics"]["samples"] = {Path(s).name: _short(measure(out, s)) for s in eval_samples}
    if eval_samples:
        full["bits_per_jet"] = full["metrics"]["samples"][Path(eval_samples[0]).name]["bits_per_jet"]
    write_card(out, full)
    (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    print(json.dumps({"out": str(out), "bits_per_jet": full.get("bits_per_jet"),
                      "samples": full["metrics"]["samples"]}, indent=1))
    return full


def _stats(variables: list[str], x: np.ndarray, reco: np.ndarray) -> dict[str, Any]:

    return residual_stats(variables, x, reco)


def _short(measured: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in measured.items() if k != "residuals"}
