"""An autoencoder trained for rate: quantised latents, a factorised entropy model and loss = D + λ·R.

``RateAE`` wraps a built architecture (models/training/architectures.py). Its latents are scaled by a learnable
per-latent factor so the quantisation step is 1 in symbol units (``q = rint(y)``). Training: the decoder sees
straight-through rounded latents, the rate is ``-log2 P(y + u)``, ``u ~ U(-1/2, 1/2)``, under a per-latent
mixture of logistics integrated over the unit bin (CompressAI's EntropyBottleneck approach with a parametric
density). The rate enters the shared training loop (models/training/train.py) through ``AddRate``: identity in
the forward pass, ``λ / n_jets`` as the gradient of every jet's bits, so the loop's MSE gradient becomes that of
``D + λ · mean bits per jet``; its reported and validation losses stay D (eval mode decodes rounded latents).
In eval mode ``decode`` rounds, so the exported scorer and decoder reconstruct from the coded symbols.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.runtime.normalisation import Normalisation
from models.training.modeldir import CHECKPOINT

LOG2 = math.log(2.0)


class LogisticMixture(nn.Module):
    """Per-latent mixture of ``components`` logistics; ``bits(y)`` = -log2 of the mass on [y - 1/2, y + 1/2]."""

    def __init__(self, k: int, components: int = 4, spread: float = 50.0):
        super().__init__()
        self.loc = nn.Parameter(torch.linspace(-spread, spread, components).repeat(k, 1))
        self.log_scale = nn.Parameter(torch.full((k, components), math.log(spread / components)))
        self.logits = nn.Parameter(torch.zeros(k, components))

    def mass(self, y: torch.Tensor) -> torch.Tensor:
        """Probability of the unit bin around each ``y`` [n, k] (per latent)."""
        z = y.unsqueeze(-1) - self.loc
        inv = torch.exp(-self.log_scale)
        upper, lower = (z + 0.5) * inv, (z - 0.5) * inv
        # evaluate on the side of the tail where sigmoid differences are accurate (+1 at the centre, not sign's 0)
        sign = torch.where(upper + lower > 0, -1.0, 1.0).detach()
        per = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return torch.sum(torch.softmax(self.logits, dim=-1) * per, dim=-1)

    def bits(self, y: torch.Tensor) -> torch.Tensor:
        """Bits per jet (summed over latents) [n]."""
        return torch.sum(-torch.log(torch.clamp(self.mass(y), min=1e-9)), dim=1) / LOG2


class AddRate(torch.autograd.Function):
    """Forward: ``out`` unchanged. Backward: ``out``'s gradient passes, every jet's bits get ``lam / n_jets``."""

    @staticmethod
    def forward(ctx: Any, out: torch.Tensor, bits: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam, ctx.n, ctx.bits_shape = lam, bits.shape[0], bits.shape
        return out.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        return grad, torch.full(ctx.bits_shape, ctx.lam / ctx.n, dtype=grad.dtype), None


class RateAE(nn.Module):
    """A network with quantised, entropy-modelled latents; ``encode`` gives y (symbol units), ``decode`` takes q."""

    def __init__(self, net: nn.Module, lam: float, init_scale: float = 64.0, components: int = 4):
        super().__init__()
        self.net, self.lam = net, float(lam)
        self.sizes = list(net.sizes)
        k = self.sizes[-1]
        self.log_scale = nn.Parameter(torch.full((k,), math.log(init_scale)))
        self.density = LogisticMixture(k, components)
        self.last_bits = float("nan")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.encode(x) * torch.exp(self.log_scale)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if not self.training:
            z = torch.round(z)
        return self.net.decode(z * torch.exp(-self.log_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.encode(x)
        if not self.training:
            return self.decode(y)
        y_hat = y + (torch.round(y) - y).detach()
        bits = self.density.bits(y + torch.rand_like(y) - 0.5)
        self.last_bits = float(bits.detach().mean())
        return AddRate.apply(self.decode(y_hat), bits, self.lam)


def describe_rate(net: RateAE) -> dict[str, Any]:
    """The card's ``rate`` training entry."""
    return {"lambda": net.lam, "loss": "weighted MSE of the normalised vector + lambda * bits per jet",
            "quantisation": "decoder: straight-through rint(y); rate: y + U(-1/2, 1/2)",
            "density": f"per-latent mixture of {net.density.loc.shape[1]} logistics over unit bins",
            "latent_scale": torch.exp(net.log_scale).detach().tolist(),
            "last_train_batch_bits": net.last_bits}


def load_rate_checkpoint(model_dir: str | Path) -> tuple[RateAE, Any]:
    """(RateAE in eval mode, normalisation) rebuilt from a rate-trained model directory's ``model.pt``."""
    from models.training.architectures import build

    blob = torch.load(Path(model_dir) / CHECKPOINT, weights_only=True, map_location="cpu")
    config, state = blob["config"], blob["state_dict"]
    kind = config["kind"].removeprefix("rate_")
    sizes = config["sizes"]
    net = RateAE(build(kind, sizes[0], sizes[-1]), lam=float("nan"), components=state["density.loc"].shape[1])
    net.load_state_dict(state)
    return net.eval(), Normalisation.from_card(config["normalisation"])
