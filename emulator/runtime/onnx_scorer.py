"""ONNX Runtime session on a model graph: ``scorer.onnx`` x [N, ...] -> latent [N, k], error [N], or
``encoder.onnx`` x -> latent [N, k] only (``outputs=LATENT_ONLY``: the encoder half, without the decoder
and the per-jet error, for streams whose events an event-level model flags).

Per-jet models take ``x`` [N jets, n_vars], event-level models [N events, J, V]; rows are the first axis.

The session comes from :func:`models.runtime.onnx_session.ort_session` (explicit threads, no spinning).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from models.runtime.onnx_session import ort_session


def chunk_bounds(n_rows: int, max_rows: int) -> list[int]:
    """Boundaries splitting ``n_rows`` into the fewest chunks of at most ``max_rows``, of near-equal size.

    ``[0, ..., n_rows]``; equal sizes avoid a small, less efficient last chunk."""
    parts = max(1, -(-n_rows // max_rows))
    return [n_rows * i // parts for i in range(parts + 1)]


#: the outputs of a scorer graph the encoder uses, and of an encoder graph
SCORER_OUTPUTS = ("latent", "error")
LATENT_ONLY = ("latent",)


class OnnxScorer:
    """Runs a scorer (or, ``outputs=LATENT_ONLY``, an encoder) graph in near-equal chunks of at most ``max_rows`` jets.

    Per-jet cost on one core is lowest at one to two thousand jets per call; larger calls get slower
    (their activations no longer fit in the cache), so a large micro-batch is scored in chunks."""

    def __init__(self, path: str | Path, latent_dim: int, threads: int = 1, max_rows: int = 65536,
                 outputs: tuple[str, ...] = SCORER_OUTPUTS):
        self.path = Path(path)
        self.latent_dim = int(latent_dim)
        self.outputs = list(outputs)
        self.session = ort_session(self.path, threads)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"{self.path}: graph must have one input, has {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        have = {o.name for o in self.session.get_outputs()}
        missing = set(self.outputs) - have
        if missing:
            raise ValueError(f"{self.path}: graph lacks outputs {sorted(missing)} (has {sorted(have)})")
        self.max_rows = max(1, int(max_rows))
        self.warm_up(inputs[0].shape)

    def warm_up(self, input_shape: list) -> None:
        """One call at the largest chunk size (at most 8192 rows), so ONNX Runtime's memory arena
        reaches its working size at start-up instead of stepping up mid-run (seen as a 4 MiB resident
        memory step in the soak) and the first real message does not pay for it."""
        row = list(input_shape[1:]) if input_shape else []
        if row and all(isinstance(d, int) and d > 0 for d in row):
            self.session.run(self.outputs, {self.input_name: np.ones((min(self.max_rows, 8192), *row), np.float32)})

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """The graph's ``outputs`` for input rows ``x`` [N, ...], in chunks of at most ``max_rows`` rows."""
        if len(x) <= self.max_rows:
            return self.session.run(self.outputs, {self.input_name: x})
        parts = [self.session.run(self.outputs, {self.input_name: x[lo:hi]})
                 for lo, hi in itertools.pairwise(chunk_bounds(len(x), self.max_rows))]
        return [np.concatenate(column) for column in zip(*parts, strict=True)]

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latent [N, k] float32 and error [N] float32 (per jet or per event) for input rows ``x`` [N, ...]."""
        if "error" not in self.outputs:
            raise ValueError(f"{self.path}: this session computes {self.outputs} only, not the error")
        if len(x) == 0:
            return np.zeros((0, self.latent_dim), np.float32), np.zeros(0, np.float32)
        latent, error = self.run(x)[:2]
        return latent, error.reshape(-1)

    def latents(self, x: np.ndarray) -> np.ndarray:
        """Latent [N, k] float32 for input rows ``x`` [N, ...] (the error, if the graph has it, is not asked for)."""
        if len(x) == 0:
            return np.zeros((0, self.latent_dim), np.float32)
        return self.run(x)[0]
