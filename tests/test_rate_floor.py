"""consumer/offline/studies/rate_floor.py: the quantiser step gives the goal's core half-width, the entropies match
closed forms (uniform and Gaussian data), and the event context helps only where jets are correlated."""

from __future__ import annotations

import numpy as np
import pytest

from consumer.offline.studies import rate_floor as rf
from models.runtime.residuals import core_half_width


def test_step_gives_the_core_half_width() -> None:
    x = np.random.default_rng(1).uniform(-3, 3, 400_000)
    step = rf.step_for(0.01)
    assert core_half_width(np.rint(x / step) * step - x) == pytest.approx(0.01, rel=0.01)


def test_entropy_matches_closed_forms() -> None:
    rng = np.random.default_rng(2)
    step = rf.step_for(0.01)
    assert rf.entropy_bits(rng.uniform(-np.pi, np.pi, 500_000), step) == pytest.approx(
        np.log2(2 * np.pi / step), abs=0.02)
    sigma = 0.5  # Gaussian: h = log2(sigma sqrt(2 pi e)) - log2(step) for step << sigma
    assert rf.entropy_bits(rng.normal(0, sigma, 500_000), step) == pytest.approx(
        np.log2(sigma * np.sqrt(2 * np.pi * np.e) / step), abs=0.02)
    assert rf.entropy_bits(np.zeros(0), step) == 0.0


def _events(rng: np.random.Generator, n_events: int, back_to_back: bool) -> tuple[np.ndarray, np.ndarray]:
    counts = np.full(n_events, 2)
    phi1 = rng.uniform(-np.pi, np.pi, n_events)
    phi2 = phi1 + np.pi + rng.normal(0, 0.2, n_events) if back_to_back else rng.uniform(-np.pi, np.pi, n_events)
    pt = np.exp(rng.normal(5, 0.5, (n_events, 2)))
    pt.sort(axis=1)
    pt = pt[:, ::-1]
    eta = rng.normal(0, 1.5, (n_events, 2))
    phi = np.angle(np.exp(1j * np.stack([phi1, phi2], axis=1)))
    e = pt * np.cosh(eta) * 1.01
    x = np.stack([pt.ravel(), eta.ravel(), phi.ravel(), e.ravel()], axis=1)
    return x, counts


def test_event_context_saves_bits_only_for_correlated_jets() -> None:
    rng = np.random.default_rng(3)
    x, counts = _events(rng, 100_000, back_to_back=True)
    out = rf.reference_bits(x, counts)
    saved_phi = out["per_jet"]["phi"] - out["event_context"]["phi"]
    # the second jet's phi: log2(2 pi) -> h of N(0, 0.2) (both over the step), on half the jets
    expect = 0.5 * (np.log2(2 * np.pi) - np.log2(0.2 * np.sqrt(2 * np.pi * np.e)))
    assert saved_phi == pytest.approx(expect, abs=0.1)
    assert out["event_context"]["eta"] == pytest.approx(out["per_jet"]["eta"], abs=0.05)
    assert out["per_jet"]["ln_e_over_p"] == 0.0  # e/p constant
    x, counts = _events(rng, 100_000, back_to_back=False)
    out = rf.reference_bits(x, counts)
    assert out["event_context"]["phi"] == pytest.approx(out["per_jet"]["phi"], abs=0.05)
    assert out["per_jet"]["total"] == pytest.approx(sum(v for k, v in out["per_jet"].items() if k != "total"))
