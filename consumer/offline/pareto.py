"""Pareto fronts: the points no other point beats in every objective (all objectives minimised)."""

from __future__ import annotations

import numpy as np


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` is no worse than ``b`` in every objective and better in at least one."""
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_mask(objectives: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``objectives`` [n_points, n_objectives] (minimised).

    Sort-and-sweep: after a lexicographic sort a point can only be dominated by one before it, and
    a dominated point is dominated by some front point, so each point is checked against the front
    found so far. Duplicated rows are all on the front (neither dominates the other). NaN rows are
    never on the front and dominate nothing.
    """
    obj = np.asarray(objectives, dtype=np.float64)
    if obj.ndim != 2:
        raise ValueError(f"objectives must be 2-D [points, objectives], got shape {obj.shape}")
    mask = np.zeros(len(obj), dtype=bool)
    finite = ~np.isnan(obj).any(axis=1)
    idx = np.flatnonzero(finite)
    order = idx[np.lexsort(obj[idx].T[::-1])]
    front: list[int] = []
    for i in order:
        if not any(dominates(obj[j], obj[i]) for j in front):
            front.append(i)
            mask[i] = True
    return mask
