"""The three exported graphs as torch modules: normalisation + network, physical units in and out."""

from __future__ import annotations

import torch
from torch import nn

from models.runtime.normalisation import Normalisation
from models.training.torch_normalisation import Denormalise, Normalise


class EncoderGraph(nn.Module):
    """``x`` (physical units) -> ``latent``."""

    def __init__(self, net: nn.Module, norm: Normalisation):
        super().__init__()
        self.net, self.normalise = net, Normalise(norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.encode(self.normalise(x))


class DecoderGraph(nn.Module):
    """``latent`` -> ``reconstruction`` (physical units)."""

    def __init__(self, net: nn.Module, norm: Normalisation):
        super().__init__()
        self.net, self.denormalise = net, Denormalise(norm)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.denormalise(self.net.decode(z))


class ScorerGraph(nn.Module):
    """``x`` -> ``latent``, ``reconstruction``, ``error`` (per-jet MSE in normalised space)."""

    def __init__(self, net: nn.Module, norm: Normalisation):
        super().__init__()
        self.net, self.normalise, self.denormalise = net, Normalise(norm), Denormalise(norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = self.normalise(x)
        latent = self.net.encode(y)
        out = self.net.decode(latent)
        error = torch.mean((out - y) ** 2, dim=1)
        return latent, self.denormalise(out), error
