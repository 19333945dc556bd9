"""Write a model directory: three ONNX graphs, the torch checkpoint and card.json; read the checkpoint back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.runtime.card import GRAPH_FILES, write_card
from models.runtime.hashing import sha256_file
from models.runtime.normalisation import Normalisation, unit_of

CHECKPOINT = "model.pt"


def save_checkpoint(path: Path, net: Any, kind: str, norm: Normalisation, extra: dict[str, Any] | None = None) -> None:
    """``model.pt``: the state dict (float32) plus the config needed to rebuild the network."""
    import torch

    config = {"kind": kind, "sizes": list(net.sizes), "normalisation": norm.to_card(), **(extra or {})}
    torch.save({"state_dict": net.state_dict(), "config": config}, path)


def load_checkpoint(model_dir: str | Path) -> tuple[Any, Normalisation, dict[str, Any]]:
    """Rebuild (network in eval mode, normalisation, config) from ``model.pt``."""
    import torch

    from models.training.architectures import BATCHNORM_KINDS, TanhAE, WideAE

    blob = torch.load(Path(model_dir) / CHECKPOINT, weights_only=True, map_location="cpu")
    config = blob["config"]
    net = WideAE(config["sizes"]) if config["kind"] in BATCHNORM_KINDS else TanhAE(config["sizes"])
    net.load_state_dict(blob["state_dict"])
    return net.eval(), Normalisation.from_card(config["normalisation"]), config


def export_model_files(out: str | Path, net: Any, kind: str, norm: Normalisation) -> Path:
    """Write ``encoder.onnx``, ``decoder.onnx``, ``scorer.onnx`` and ``model.pt`` into ``out``."""
    from models.training.onnx_export import export_all

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    export_all(net, norm, out)
    save_checkpoint(out / CHECKPOINT, net, kind, norm)
    return out


def write_full_card(out: str | Path, norm: Normalisation, card: dict[str, Any],
                    variables: list[str] | None = None) -> dict[str, Any]:
    """Write card.json: ``card`` supplies name, version, architecture, training, metrics, thresholds, source;
    this fills ``variables`` (the input variables: ``variables``, else the normalised ones), ``normalisation``
    and ``files`` (sha256 of the graphs and checkpoint)."""
    out = Path(out)
    full = {
        "name": card["name"], "version": card.get("version", 1),
        "variables": [{"name": v, "unit": unit_of(v)} for v in (variables or norm.variables)],
        "files": {name: sha256_file(out / name) for name in (*GRAPH_FILES, CHECKPOINT)},
        "normalisation": norm.to_card(),
        **{k: v for k, v in card.items() if k not in ("name", "version")},
    }
    write_card(out, full)
    return full
