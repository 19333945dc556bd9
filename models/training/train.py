"""The training loop: Adam on (optionally per-variable weighted) MSE of the normalised vector,
LR schedule, early stopping, checkpoints, resume.

Deterministic for a fixed seed and thread count: the shuffle of epoch ``e`` uses a generator
seeded with ``seed + e``, and the checkpoint stores network, optimiser, scheduler and history,
so an interrupted run resumed with ``resume=True`` continues exactly where it stopped.
"""

from __future__ import annotations

import copy
import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emulator.runtime.progress import Progress

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class Hyperparameters:
    """The training loop's settings, with their one set of defaults (``aetrig train``'s options share them)."""

    latent: int | None = None
    epochs: int = 30
    batch_size: int = 2048
    lr: float = 3e-3
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    patience: int = 10
    seed: int = 0
    threads: int = 1


@dataclass
class TrainConfig(Hyperparameters):
    """Hyper-parameters of one training run (stored in checkpoints and cards)."""

    kind: str = "ae3d200"
    variables: list[str] = field(default_factory=list)
    loss_weights: list[float] | None = None


@dataclass
class TrainState:
    """What a checkpoint restores."""

    epoch: int = 0
    best_val: float = float("inf")
    best_epoch: int = -1
    since_best: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _make_scheduler(opt: Any, config: TrainConfig, steps_per_epoch: int) -> Any:
    import torch

    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
                                                   pct_start=0.25)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.3, patience=2)
    raise ValueError(f"unknown schedule {config.schedule!r}; choose onecycle or plateau")


def loss_weights(config: TrainConfig, n_vars: int) -> Any:
    """Per-variable loss weights normalised to mean 1 (all ones by default: plain MSE)."""
    import torch

    weights = torch.ones(n_vars) if config.loss_weights is None else torch.tensor(config.loss_weights)
    if weights.shape != (n_vars,) or not bool(torch.all(weights > 0)):
        raise ValueError(f"loss weights must be {n_vars} positive numbers, got {config.loss_weights}")
    return weights / weights.mean()


def mse_loss(net: Any, y: Any, weights: Any = None, batch: int = 65536) -> float:
    """(Weighted) mean squared error of the reconstruction of normalised ``y`` (eval mode, no grad)."""
    import torch

    net.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(y), batch):
            chunk = y[start:start + batch]
            sq = (net(chunk) - chunk) ** 2
            total += float(torch.sum(sq if weights is None else sq * weights))
            n += chunk.numel()
    return total / max(n, 1)


def train(net: Any, y_train: np.ndarray, y_val: np.ndarray, config: TrainConfig, out: Path,
          resume: bool = False, progress: bool = True, stop_after: int | None = None) -> tuple[Any, TrainState]:
    """Train ``net`` on normalised arrays; returns the network with its best-validation weights and the state.

    ``stop_after`` ends the run after that many epochs of this call (simulates an interruption).
    """
    import torch


    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    xt = torch.from_numpy(np.ascontiguousarray(y_train, dtype=np.float32))
    xv = torch.from_numpy(np.ascontiguousarray(y_val, dtype=np.float32))
    steps = max(1, len(xt) // config.batch_size)
    weights = loss_weights(config, xt.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = _make_scheduler(opt, config, steps)
    state = TrainState()
    best_weights = copy.deepcopy(net.state_dict())
    ckpt_path = Path(out) / CHECKPOINT_NAME
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        blob = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        saved = TrainConfig(**blob["config"])
        if (saved.kind, saved.latent, saved.variables, saved.seed, saved.batch_size, saved.loss_weights) != (
                config.kind, config.latent, config.variables, config.seed, config.batch_size, config.loss_weights):
            raise ValueError(f"--resume: checkpoint {ckpt_path} was made with a different configuration: {saved}")
        net.load_state_dict(blob["net"])
        opt.load_state_dict(blob["opt"])
        sched.load_state_dict(blob["sched"])
        best_weights = blob["best_weights"]
        state = TrainState(**blob["state"])
    Path(out).mkdir(parents=True, exist_ok=True)
    done_now = 0
    total = config.epochs * steps
    with Progress(total, "train", unit="step", stream=None if progress else io.StringIO()) as bar:
        bar.done = state.epoch * steps
        while state.epoch < config.epochs and state.since_best < config.patience:
            if stop_after is not None and done_now >= stop_after:
                break
            t0 = time.perf_counter()
            net.train()
            gen = torch.Generator().manual_seed(config.seed * 100_003 + state.epoch)
            order = torch.randperm(len(xt), generator=gen)
            running = 0.0
            for step in range(steps):
                batch = xt[order[step * config.batch_size:(step + 1) * config.batch_size]]
                opt.zero_grad(set_to_none=True)
                loss = torch.mean(weights * (net(batch) - batch) ** 2)
                loss.backward()
                opt.step()
                if config.schedule == "onecycle":
                    sched.step()
                running += loss.item()
                bar.update(1, epoch=state.epoch + 1, loss=running / (step + 1),
                           val=state.history[-1]["val"] if state.history else float("nan"))
            val = mse_loss(net, xv, weights)
            if config.schedule == "plateau":
                sched.step(val)
            state.history.append({"epoch": state.epoch + 1, "train": running / steps, "val": val,
                                  "lr": float(opt.param_groups[0]["lr"])})
            if val < state.best_val:
                state.best_val, state.best_epoch, state.since_best = val, state.epoch + 1, 0
                best_weights = copy.deepcopy(net.state_dict())
            else:
                state.since_best += 1
            state.epoch += 1
            state.seconds += time.perf_counter() - t0
            done_now += 1
            bar.update(0, val=val)
            torch.save({"config": asdict(config), "net": net.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "best_weights": best_weights, "state": asdict(state)}, ckpt_path)
    net.load_state_dict(best_weights)
    return net.eval(), state
