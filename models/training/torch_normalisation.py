"""Torch modules applying a ``Normalisation`` inside a graph (exported to ONNX with the network)."""

from __future__ import annotations

import torch
from torch import nn

from models.runtime.normalisation import Normalisation


class _Params(nn.Module):
    def __init__(self, norm: Normalisation):
        super().__init__()
        p = norm.arrays()
        for key in ("offset", "shift", "scale", "input_scale"):
            self.register_buffer(key, torch.tensor(p[key], dtype=torch.float32))
        self.register_buffer("log", torch.tensor(p["log"], dtype=torch.bool))
        self.any_log = bool(p["log"].any())


class Normalise(_Params):
    """Physical units -> normalised vector."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x * self.input_scale
        if self.any_log:
            logged = torch.log10(torch.where(self.log, u + self.offset, torch.ones_like(u)))
            u = torch.where(self.log, logged, u)
        return (u - self.shift) / self.scale


class Denormalise(_Params):
    """Normalised vector -> physical units (the exact inverse of ``Normalise``)."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        u = y * self.scale + self.shift
        if self.any_log:
            powered = torch.pow(10.0, torch.where(self.log, u, torch.zeros_like(u))) - self.offset
            u = torch.where(self.log, powered, u)
        return u / self.input_scale
