"""The limit: ONNX Runtime called in-process on scorer.onnx, and PyTorch eager on the same model, one thread each.

Both run on the same jets (from :mod:`emulator.bench.data`), over micro-batch sizes 1..8192, for
a time budget per size. Each size reports jets per wall second, jets per CPU second (robust to
other processes taking the core), the median per-call rate, and CPU seconds and cycles per jet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emulator.bench import stats
from emulator.bench.data import batches
from models.runtime.onnx_session import ort_session
from models.training.modeldir import load_checkpoint

#: Micro-batch sizes of the full benchmark (powers of two, 1 to 8192 jets).
BATCH_SIZES = tuple(2**i for i in range(14))


def time_calls(fn: Callable[[np.ndarray], object], x: np.ndarray, size: int, budget_s: float,
               min_calls: int = 3, max_calls: int = 1_000_000, clock_hz: float | None = None) -> dict:
    """Call ``fn`` on consecutive batches of ``size`` jets for about ``budget_s`` seconds; summarise."""
    pool = batches(x, size, max(1, min(64, 65536 // size)))
    fn(pool[0])  # warm-up: first-call allocations and kernel selection
    walls, n = [], 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while n < max_calls and (n < min_calls or time.perf_counter() - wall0 < budget_s):
        t0 = time.perf_counter()
        fn(pool[n % len(pool)])
        walls.append(time.perf_counter() - t0)
        n += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    jets = n * size
    tp = stats.throughput(jets, wall, cpu)
    out = {"batch_jets": size, "calls": n, "jets": jets, "wall_s": wall, "cpu_s": cpu,
           "jets_per_s": tp["per_s"], "jets_per_cpu_s": tp["per_cpu_s"], "cpu_s_per_jet": tp["cpu_s_per_unit"],
           "jets_per_s_median_call": stats.median_rate([size] * n, walls)}
    if clock_hz and tp["cpu_s_per_unit"]:
        out["cycles_per_jet"] = stats.cycles_from_cpu_seconds(tp["cpu_s_per_unit"], clock_hz)
    return out


#: The outputs the encoder service asks scorer.onnx for; in-process asks for the same, so both do equal work.
SERVICE_OUTPUTS = ["latent", "error"]


def bench_onnx(scorer: str | Path, x: np.ndarray, sizes: tuple[int, ...], budget_s: float,
               clock_hz: float | None = None, outputs: list[str] | None = SERVICE_OUTPUTS) -> list[dict]:
    """ONNX Runtime in-process on ``scorer.onnx``, one intra-op thread, spinning off.

    ``outputs`` defaults to what the service fetches (latent, error: the reconstruction is still
    computed inside the graph, only its denormalisation is skipped); None fetches all three.
    """
    sess = ort_session(scorer)
    name = sess.get_inputs()[0].name
    return [time_calls(lambda b: sess.run(outputs, {name: b}), x, s, budget_s, clock_hz=clock_hz) for s in sizes]


def torch_scorer(model_dir: str | Path):
    """The model's ScorerGraph (normalisation + network + error) rebuilt from ``model.pt`` in eager mode."""
    from models.training.graphs import ScorerGraph

    net, norm, _ = load_checkpoint(model_dir)
    return ScorerGraph(net, norm).eval()


def bench_torch(module, x: np.ndarray, sizes: tuple[int, ...], budget_s: float,
                clock_hz: float | None = None) -> list[dict]:
    """PyTorch eager on one thread: ``module(x)`` must compute what scorer.onnx computes."""
    import torch

    torch.set_num_threads(1)
    module.eval()

    def call(b: np.ndarray) -> object:
        with torch.inference_mode():
            return module(torch.from_numpy(b))

    return [time_calls(call, x, s, budget_s, clock_hz=clock_hz) for s in sizes]
