"""ROOT ntuples (input contract) -> float32 jet arrays, and disjoint train/val/test splits by (file, entry)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.hashing import sha256_file

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


class DataError(Exception):
    """An input file is missing, lacks a branch, or holds non-finite values."""


@dataclass
class JetSample:
    """Jets of one or several files: ``values`` [n_jets, n_vars]; per event ``counts``, ``file_index``, ``entry``."""

    variables: list[str]
    values: np.ndarray
    counts: np.ndarray
    file_index: np.ndarray
    entry: np.ndarray
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_events(self) -> int:
        return len(self.counts)

    @property
    def jet_rank(self) -> np.ndarray:
        """Index of each jet within its event (0 = leading, jets are pt-sorted)."""
        starts = np.repeat(np.cumsum(self.counts) - self.counts, self.counts)
        return np.arange(len(self.values)) - starts

    def jet_event_mask(self, event_mask: np.ndarray) -> np.ndarray:
        """Per-jet boolean mask of the jets belonging to the selected events."""
        return np.repeat(event_mask, self.counts)

    def select_events(self, event_mask: np.ndarray) -> JetSample:
        """A new sample with only the selected events (and their jets)."""
        return JetSample(self.variables, self.values[self.jet_event_mask(event_mask)], self.counts[event_mask],
                         self.file_index[event_mask], self.entry[event_mask], self.files)

    def sample_info(self) -> dict[str, Any]:
        """Files with sha256 and event counts, for model cards."""
        return {"files": self.files, "n_events": self.n_events, "n_jets": len(self.values)}


def load_file(path: str | Path, variables: list[str], tree: str = "events",
              max_events: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One file -> (values [n_jets, n_vars] float32, counts [n_events] int64)."""
    import uproot

    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file {path} does not exist")
    with uproot.open(path) as handle:
        if tree not in handle:
            raise DataError(f"{path}: no TTree {tree!r} (keys: {sorted(handle.keys())[:10]})")
        ttree = handle[tree]
        branches = [f"jet_{v}" for v in variables]
        available = set(ttree.keys())
        missing = [b for b in branches if b not in available]
        if missing:
            raise DataError(f"{path}: missing branch(es) {missing}; available jet branches: "
                            f"{sorted(k for k in available if k.startswith('jet_'))}")
        arrays = ttree.arrays(branches, entry_stop=max_events, library="ak")
    import awkward as ak

    counts = np.asarray(ak.num(arrays[branches[0]]), dtype=np.int64)
    columns = [np.asarray(ak.flatten(arrays[b]), dtype=np.float32) for b in branches]
    values = np.stack(columns, axis=1) if columns else np.zeros((0, 0), np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{path}: {int(bad.sum())} non-finite values, first in {branches[col]} jet {row}")
    return values, counts


def load_jets(paths: list[str | Path], variables: list[str], tree: str = "events",
              max_events: int | None = None) -> JetSample:
    """Concatenate jets of several files, remembering (file_index, entry) of every event."""
    if not paths:
        raise DataError("no input files given")
    values, counts, file_index, entry, files = [], [], [], [], []
    for index, path in enumerate(paths):
        v, c = load_file(path, variables, tree, max_events)
        values.append(v)
        counts.append(c)
        file_index.append(np.full(len(c), index, dtype=np.int64))
        entry.append(np.arange(len(c), dtype=np.int64))
        files.append({"name": Path(path).name, "sha256": sha256_file(path), "n_events": len(c), "n_jets": len(v)})
    return JetSample(list(variables), np.concatenate(values), np.concatenate(counts), np.concatenate(file_index),
                     np.concatenate(entry), files)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def split_keys(sample: JetSample, seed: int = 0) -> np.ndarray:
    """A uniform number in [0, 1) per event from a hash of (file sha256, entry, seed)."""
    file_keys = np.array([int(f["sha256"][:15], 16) for f in sample.files], dtype=np.uint64)
    with np.errstate(over="ignore"):
        mixed = _splitmix64(file_keys[sample.file_index] ^ _splitmix64(sample.entry.astype(np.uint64)
                                                                       + np.uint64(seed)))
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def split_events(sample: JetSample, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """Event masks for train/val/test: a pure function of (file content, entry, seed), never overlapping."""
    if abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    key = split_keys(sample, seed)
    edges = np.cumsum(fractions)
    return {"train": key < edges[0], "val": (key >= edges[0]) & (key < edges[1]), "test": key >= edges[1]}
