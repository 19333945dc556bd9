"""Autoencoder architectures: the thesis AE_3D_200, the published TLA network, a wide BatchNorm AE and the
small event-level AE (same BatchNorm pattern, n-64-32-k)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ARCHITECTURES = ("ae3d200", "tla", "wide", "event")
#: architectures built as ``WideAE`` (Linear -> BatchNorm -> LeakyReLU)
BATCHNORM_KINDS = ("wide", "event")


class TanhAE(nn.Module):
    """The original pattern: tanh between hidden layers, linear latent, decoder applies tanh to the latent first.

    Layers are named ``en1..enN`` and ``de1..deN`` as in the published state dicts.
    """

    def __init__(self, sizes: list[int]):
        super().__init__()
        self.sizes = list(sizes)
        self.n_layers = len(sizes) - 1
        for i in range(self.n_layers):
            self.add_module(f"en{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))
        reverse = sizes[::-1]
        for i in range(self.n_layers):
            self.add_module(f"de{i + 1}", nn.Linear(reverse[i], reverse[i + 1]))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i in range(1, self.n_layers):
            h = torch.tanh(getattr(self, f"en{i}")(h))
        return getattr(self, f"en{self.n_layers}")(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for i in range(1, self.n_layers + 1):
            h = getattr(self, f"de{i}")(torch.tanh(h))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class WideAE(nn.Module):
    """n-200-200-200-k-200-200-200-n: Linear -> BatchNorm -> LeakyReLU per hidden layer; linear latent and output."""

    def __init__(self, sizes: list[int]):
        super().__init__()
        self.sizes = list(sizes)
        self.encoder = self._stack(sizes)
        self.decoder = self._stack(sizes[::-1])

    @staticmethod
    def _stack(sizes: list[int]) -> nn.Sequential:
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers += [nn.BatchNorm1d(sizes[i + 1]), nn.LeakyReLU()]
        return nn.Sequential(*layers)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def layer_sizes(kind: str, n_vars: int, latent: int | None = None) -> list[int]:
    """Encoder layer sizes (input .. latent) of an architecture."""
    if kind == "ae3d200":
        return [n_vars, 200, 100, 50, latent or 3]
    if kind == "tla":
        return [n_vars, 200, 200, 20, latent or 3]
    if kind == "wide":
        return [n_vars, 200, 200, 200, latent or max(1, n_vars // 2)]
    if kind == "event":
        return [n_vars, 64, 32, latent or 2]
    raise ValueError(f"unknown architecture {kind!r}; choose from {ARCHITECTURES}")


def build(kind: str, n_vars: int, latent: int | None = None) -> nn.Module:
    """Instantiate an architecture by name."""
    sizes = layer_sizes(kind, n_vars, latent)
    return WideAE(sizes) if kind in BATCHNORM_KINDS else TanhAE(sizes)


def describe(kind: str, model: nn.Module) -> dict[str, Any]:
    """The card's ``architecture`` entry."""
    sizes = model.sizes
    full = sizes + sizes[-2::-1]
    activation = ("Linear->BatchNorm1d->LeakyReLU(0.01) per hidden layer, linear latent and output"
                  if kind in BATCHNORM_KINDS
                  else "tanh between hidden layers, linear latent, decoder applies tanh to the latent first, "
                       "linear output")
    return {"kind": kind, "layers": "-".join(str(s) for s in full), "latent_dim": sizes[-1], "activation": activation,
            "parameters": int(sum(p.numel() for p in model.parameters()))}
