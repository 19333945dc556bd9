"""Run an event-level model's scorer graph with ONNX Runtime on padded jets, or on flat jets + counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.runtime.evaluate import scorer_session
from models.runtime.event_features import padded_jets


def run_event_scorer(scorer_path: str | Path, x: np.ndarray, batch: int = 32768,
                     threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latent [N, k], reconstructed event vector [N, n_features], error [N]) for ``x`` [N, J, V] in GeV."""
    session = scorer_session(scorer_path, threads)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"event scorer input must be [N, J, V], got shape {x.shape}")
    expected = session.get_inputs()[0].shape
    if list(x.shape[1:]) != list(expected[1:]):
        raise ValueError(f"event scorer {scorer_path} expects [N, {expected[1]}, {expected[2]}], got {list(x.shape)}")
    parts = [session.run(["latent", "reconstruction", "error"], {"x": x[i:i + batch]})
             for i in range(0, len(x), batch)]
    if not parts:
        k = session.get_outputs()[0].shape[1]
        n_feat = session.get_outputs()[1].shape[1]
        return np.zeros((0, k), np.float32), np.zeros((0, n_feat), np.float32), np.zeros(0, np.float32)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def score_flat_events(scorer_path: str | Path, values: np.ndarray, counts: np.ndarray, n_jets: int,
                      threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``run_event_scorer`` on flat jets [n_jets_total, V] with per-event counts (padded/truncated to ``n_jets``)."""
    return run_event_scorer(scorer_path, padded_jets(values, counts, n_jets), threads=threads)
