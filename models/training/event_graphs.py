"""Torch modules of the event-level models: the event vector in the graph, and the three exported graphs.

``EventFeatures`` computes the numbers of ``models.runtime.event_features.event_features`` (float32) from
the padded jets ``x`` [N, J, V] (GeV), empty slots taking the fitted fill values. The event AE
standardises that vector with the training-set mean and standard deviation
(``models.training.torch_normalisation``), so every graph takes physical units:

- scorer: ``x`` -> ``latent`` [N, k], ``reconstruction`` [N, n_features] (event vector), ``error``
  [N] = mean over features of w_i (out_i - y_i)^2 in the standardised space, the event's anomaly
  score. w_i = 1 / (variance of feature i's residual on background validation events), so each
  feature's error counts in units of its typical background error (a chi^2 per feature) and no
  feature dominates merely because the AE reconstructs it poorly on background too;
- encoder: ``x`` -> ``latent``;  decoder: ``latent`` -> ``reconstruction`` (event vector).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.runtime.event_features import DEFAULT_SLOTS, EVENT_VARIABLES, SLOT_FEATURES
from models.runtime.normalisation import Normalisation
from models.training.onnx_export import export_graph
from models.training.torch_normalisation import Denormalise, Normalise


class EventFeatures(nn.Module):
    """[N, J, V] jets (GeV, zero-padded, pt = 0 marks a missing jet) -> [N, n_features] event vector."""

    def __init__(self, slots: int = DEFAULT_SLOTS, variables: Sequence[str] = EVENT_VARIABLES,
                 fill: Any = None):
        super().__init__()
        missing = [v for v in EVENT_VARIABLES if v not in variables]
        if missing:
            raise ValueError(f"event features need jet variables {missing} (have {list(variables)})")
        self.slots = slots
        self.index = {v: list(variables).index(v) for v in EVENT_VARIABLES}
        fill_t = torch.zeros(slots, len(SLOT_FEATURES)) if fill is None else torch.tensor(
            [list(map(float, row)) for row in fill], dtype=torch.float32)
        if fill_t.shape != (slots, len(SLOT_FEATURES)):
            raise ValueError(f"fill must be [{slots}, {len(SLOT_FEATURES)}], got {tuple(fill_t.shape)}")
        self.register_buffer("fill", fill_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        col = {v: x[:, :, i] for v, i in self.index.items()}
        mask = (col["pt"] > 0).to(x.dtype)
        pt, m = col["pt"] * mask, col["m"] * mask
        eta, phi = col["eta"] * mask, col["phi"] * mask
        px, py = pt * torch.cos(phi), pt * torch.sin(phi)
        e_eta, e_neg = torch.exp(eta), torch.exp(-eta)  # sinh/cosh via exp: ONNX opset 17 export lacks aten::sinh
        pz = pt * 0.5 * (e_eta - e_neg)
        energy = torch.sqrt((pt * 0.5 * (e_eta + e_neg)) ** 2 + m ** 2) * mask
        ht = pt.sum(dim=1)
        mhx, mhy = -px.sum(dim=1), -py.sum(dim=1)
        mht = torch.sqrt(mhx ** 2 + mhy ** 2)
        m2 = energy.sum(dim=1) ** 2 - px.sum(dim=1) ** 2 - py.sum(dim=1) ** 2 - pz.sum(dim=1) ** 2
        m_all = torch.sqrt(torch.clamp(m2, min=0.0))
        cos = (px * mhx[:, None] + py * mhy[:, None]) / torch.clamp(pt * mht[:, None], min=1e-6)
        n_jets = mask.sum(dim=1)
        max_cos = torch.amax(torch.where(mask > 0, cos, -torch.ones_like(cos)), dim=1) * (n_jets > 0).to(x.dtype)
        glob = [torch.log10(ht + 1), torch.log10(mht + 1), mht / torch.clamp(ht, min=1.0), n_jets,
                torch.log10(m.sum(dim=1) + 1), torch.log10(m_all + 1), max_cos]
        per_slot = [torch.log10(pt + 1), torch.log10(m + 1), m / torch.clamp(pt, min=1.0), col["width"] * mask,
                    col["tau21"] * mask, col["tau32"] * mask, cos]
        block = torch.stack([f[:, :self.slots] for f in per_slot], dim=2)
        block = torch.where(mask[:, :self.slots, None] > 0, block, self.fill[None])
        return torch.cat([torch.stack(glob, dim=1), block.reshape(x.shape[0], -1)], dim=1)


class EventScorerGraph(nn.Module):
    """``x`` [N, J, V] -> ``latent``, ``reconstruction`` (event vector), ``error`` (weighted per-event MSE)."""

    def __init__(self, net: nn.Module, norm: Normalisation, slots: int, variables: Sequence[str],
                 weights: Sequence[float] | None = None, fill: Any = None):
        super().__init__()
        self.features = EventFeatures(slots, variables, fill)
        self.net, self.normalise, self.denormalise = net, Normalise(norm), Denormalise(norm)
        n = len(norm.transforms)
        w = torch.ones(n) if weights is None else torch.tensor(list(weights), dtype=torch.float32)
        if w.shape != (n,):
            raise ValueError(f"score weights must be {n} numbers, got {tuple(w.shape)}")
        self.register_buffer("weights", w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = self.normalise(self.features(x))
        latent = self.net.encode(y)
        out = self.net.decode(latent)
        return latent, self.denormalise(out), torch.mean(self.weights * (out - y) ** 2, dim=1)


class EventEncoderGraph(nn.Module):
    """``x`` [N, J, V] -> ``latent``."""

    def __init__(self, net: nn.Module, norm: Normalisation, slots: int, variables: Sequence[str], fill: Any = None):
        super().__init__()
        self.features, self.net, self.normalise = EventFeatures(slots, variables, fill), net, Normalise(norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.encode(self.normalise(self.features(x)))


class EventDecoderGraph(nn.Module):
    """``latent`` -> ``reconstruction`` (event vector in its physical units)."""

    def __init__(self, net: nn.Module, norm: Normalisation):
        super().__init__()
        self.net, self.denormalise = net, Denormalise(norm)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.denormalise(self.net.decode(z))


def residual_weights(net: nn.Module, y: torch.Tensor, floor: float = 1e-6) -> list[float]:
    """1 / variance of each standardised feature's residual on (background) events ``y``."""
    with torch.no_grad():
        var = torch.var(net.eval()(y) - y, dim=0)
    return [float(1.0 / max(v, floor)) for v in var.tolist()]


def export_event_graphs(net: nn.Module, norm: Normalisation, out_dir: str | Path, n_jets: int, slots: int,
                        variables: Sequence[str], weights: Sequence[float] | None = None,
                        fill: Any = None) -> list[Path]:
    """Write ``scorer.onnx``, ``encoder.onnx`` and ``decoder.onnx`` (opset of onnx_export, batch axis N)."""
    net = net.eval()
    out_dir = Path(out_dir)
    x = torch.ones(8, n_jets, len(variables), dtype=torch.float32)
    z = torch.ones(8, int(net.sizes[-1]), dtype=torch.float32)
    jobs = [("scorer.onnx", EventScorerGraph(net, norm, slots, variables, weights, fill), x, ["x"],
             ["latent", "reconstruction", "error"]),
            ("encoder.onnx", EventEncoderGraph(net, norm, slots, variables, fill), x, ["x"], ["latent"]),
            ("decoder.onnx", EventDecoderGraph(net, norm), z, ["latent"], ["reconstruction"])]
    paths = []
    for filename, module, example, inputs, outputs in jobs:
        export_graph(module.eval(), example, out_dir / filename, inputs, outputs)
        paths.append(out_dir / filename)
    return paths
