"""Run a model directory's scorer graph with ONNX Runtime over jets, in batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.runtime.onnx_session import ort_session


def run_scorer(scorer_path: str | Path, values: np.ndarray, batch: int = 65536,
               threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latent, reconstruction, error) for ``values`` [n_jets, n_vars] in physical units."""
    session = ort_session(scorer_path, threads)
    latents, recos, errors = [], [], []
    values = np.ascontiguousarray(values, dtype=np.float32)
    for start in range(0, max(len(values), 1), batch):
        chunk = values[start:start + batch]
        if len(chunk) == 0:
            break
        latent, reco, error = session.run(["latent", "reconstruction", "error"], {"x": chunk})
        latents.append(latent)
        recos.append(reco)
        errors.append(error)
    if not errors:
        width = session.get_outputs()[0].shape[1]
        return np.zeros((0, width), np.float32), np.zeros_like(values), np.zeros(0, np.float32)
    return np.concatenate(latents), np.concatenate(recos), np.concatenate(errors)
