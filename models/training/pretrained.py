"""Import the published TLA network (4D_TLA_leading.pth): verify, load safely, export, evaluate, write a card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.card import ModelError
from models.runtime.evaluate import run_scorer
from models.runtime.hashing import sha256_file
from models.runtime.residuals import residual_stats

PRETRAINED_FILE = "4D_TLA_leading.pth"
PRETRAINED_SHA256 = "f28cb56a5c39de34f4204bce9baa65cff8f2228d4d401e9e08dc9227d0b50249"
TLA_VARIABLES = ["m", "pt", "phi", "eta"]
SOURCE = {
    "repository": "https://github.com/Skelpdar/HEPAutoencoders",
    "commit": "ca64b523f6465643bedd90e783712b1e3a14a163",
    "folder": "examples/4D/models/",
    "licence": "Apache-2.0",
    "training": "leading jets of the ATLAS 2018 TLA stream with m > 0.08 MeV; inputs m, pt, phi, eta in MeV",
}


def resolve_weights(path: str | Path) -> Path:
    """The weights file: ``path`` itself, or ``path/4D_TLA_leading.pth`` when ``path`` is a folder."""
    path = Path(path)
    if path.is_dir():
        path = path / PRETRAINED_FILE
    if not path.is_file():
        raise ModelError(f"pretrained weights {path} not found")
    return path


def load_tla_network(path: str | Path) -> Any:
    """Check the sha256, then ``torch.load(weights_only=True)["model"]`` into a float32 TanhAE."""
    import torch

    from models.training.architectures import build

    path = resolve_weights(path)
    digest = sha256_file(path)
    if digest != PRETRAINED_SHA256:
        raise ModelError(f"{path}: sha256 {digest} is not the published {PRETRAINED_SHA256}; refusing to load it")
    blob = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(blob, dict) or "model" not in blob:
        raise ModelError(f"{path}: expected a dict with key 'model'")
    state = {key: value.to(torch.float32) for key, value in blob["model"].items()}
    net = build("tla", 4, 3)
    net.load_state_dict(state, strict=True)
    return net.eval()


def source_entry(path: Path) -> dict[str, Any]:
    return {"file": path.name, "sha256": sha256_file(path), **SOURCE}


def evaluate_on_background(model_dir: Path, sample: Any, threads: int = 1) -> tuple[dict[str, Any], np.ndarray]:
    """Per-variable residuals on all jets and on leading jets; returns (metrics, per-jet errors)."""

    _, reco, error = run_scorer(model_dir / "scorer.onnx", sample.values, threads=threads)
    leading = sample.jet_rank == 0
    metrics = {
        "sample": sample.sample_info(),
        "all_jets": residual_stats(sample.variables, sample.values, reco),
        "leading_jets": residual_stats(sample.variables, sample.values[leading], reco[leading]),
        "median_error_all": float(np.median(error)) if len(error) else float("nan"),
        "median_error_leading": float(np.median(error[leading])) if leading.any() else float("nan"),
        "note": "evaluated on the bundled background, a sample the network was not trained on",
    }
    return metrics, error
