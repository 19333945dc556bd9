"""Pareto front against a brute-force definition check."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.offline.pareto import pareto_mask


def brute_force(obj: np.ndarray) -> np.ndarray:
    """Row i is on the front unless some row j is <= in every objective and < in one (NaN rows never)."""
    out = []
    for i, a in enumerate(obj):
        if np.isnan(a).any():
            out.append(False)
            continue
        beaten = False
        for j, b in enumerate(obj):
            if j != i and not np.isnan(b).any() and all(b <= a) and any(b < a):
                beaten = True
                break
        out.append(not beaten)
    return np.array(out, dtype=bool)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), st.lists(st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, 0.5, np.nan]), min_size=4,
                                            max_size=4), min_size=0, max_size=25))
def test_matches_brute_force_with_ties(n_obj: int, rows: list[list[float]]) -> None:
    obj = np.array([r[:n_obj] for r in rows], dtype=float).reshape(len(rows), n_obj)
    np.testing.assert_array_equal(pareto_mask(obj), brute_force(obj))


def test_random_continuous() -> None:
    rng = np.random.default_rng(0)
    for n_obj in (2, 3, 5):
        obj = rng.lognormal(size=(200, n_obj))
        np.testing.assert_array_equal(pareto_mask(obj), brute_force(obj))


def test_simple_cases() -> None:
    obj = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [2, 2]], dtype=float)
    assert pareto_mask(obj).tolist() == [True, True, True, False, True]
