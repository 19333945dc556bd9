"""Export encoder, decoder and scorer graphs to ONNX (float32, dynamic batch axis, normalisation inside)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from models.runtime.normalisation import Normalisation
from models.training.graphs import DecoderGraph, EncoderGraph, ScorerGraph

OPSET = 17
GRAPHS: dict[str, tuple[type[nn.Module], list[str], list[str]]] = {
    "encoder.onnx": (EncoderGraph, ["x"], ["latent"]),
    "decoder.onnx": (DecoderGraph, ["latent"], ["reconstruction"]),
    "scorer.onnx": (ScorerGraph, ["x"], ["latent", "reconstruction", "error"]),
}


def export_graph(module: nn.Module, example: torch.Tensor, path: Path, inputs: list[str], outputs: list[str]) -> None:
    """One graph to one self-contained .onnx file with batch axis ``N`` dynamic."""
    axes = {name: {0: "N"} for name in inputs + outputs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)


def export_all(net: nn.Module, norm: Normalisation, out_dir: Path) -> list[Path]:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``scorer.onnx`` for a network and its normalisation."""
    net = net.eval()
    n_vars = len(norm.transforms)
    latent_dim = int(net.sizes[-1])
    paths = []
    for filename, (graph_cls, inputs, outputs) in GRAPHS.items():
        module = graph_cls(net, norm).eval()
        width = latent_dim if inputs == ["latent"] else n_vars
        example = torch.ones(8, width, dtype=torch.float32)
        path = Path(out_dir) / filename
        export_graph(module, example, path, inputs, outputs)
        paths.append(path)
    return paths
