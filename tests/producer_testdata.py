"""Small real ROOT ntuples (written with uproot) for the producer and pipeline tests."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

VARIABLES = ("pt", "eta", "phi", "m", "e")


def make_ntuple(path: Path, n_events: int, seed: int = 101, *, tree: str = "events", prefix: str = "jet_",
                unit_scale: float = 1.0, variables: tuple[str, ...] = VARIABLES, event_branch: str = "event_number",
                max_jets: int = 8) -> dict[str, np.ndarray]:
    """Write a jet ntuple with 0..max_jets jets per event (zero-jet events included); return its columns.

    Energies (pt, m, e) are multiplied by ``unit_scale`` (1000 writes MeV). Returned arrays are in GeV.
    """
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, max_jets + 1, n_events)
    counts[::7] = 0  # guarantee zero-jet events
    n = int(counts.sum())
    pt = rng.exponential(60.0, n).astype(np.float32) + 20.0
    eta = rng.uniform(-2.5, 2.5, n).astype(np.float32)
    phi = rng.uniform(-np.pi, np.pi, n).astype(np.float32)
    m = rng.uniform(1.0, 30.0, n).astype(np.float32)
    e = np.sqrt(m.astype(np.float64) ** 2 + (pt * np.cosh(eta.astype(np.float64))) ** 2).astype(np.float32)
    cols = {"pt": pt, "eta": eta, "phi": phi, "m": m, "e": e}
    energy = {"pt", "m", "e"}
    branches = {}
    for var in variables:
        values = cols[var] * np.float32(unit_scale) if var in energy else cols[var]
        branches[prefix + var] = ak.unflatten(values, counts)
    event_number = (np.arange(n_events, dtype=np.uint64) * 3 + 1000 * seed).astype(np.uint64)
    branches[event_branch] = event_number
    branches["run_number"] = np.full(n_events, 7, dtype=np.uint32)
    with uproot.recreate(path) as f:
        f[tree] = branches
    return {"n_jets": counts.astype(np.uint32), "event_number": event_number, **cols}

