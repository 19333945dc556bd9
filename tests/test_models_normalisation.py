"""Normalisation schemes: forward then inverse is the identity within float32 precision (property tests),
the TLA transform matches the published formulas, and torch agrees with numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.runtime.normalisation import CUSTOM_LOG_OFFSETS, fit, tla_normalisation

NAMES = ["pt", "eta", "phi", "m", "e", "nconst", "charged_frac", "width", "n90", "tau21"]
EPS32 = float(np.finfo(np.float32).eps)


def _jets(rng: np.random.Generator, n: int) -> np.ndarray:
    """Jet-like columns in the order of NAMES (positive momenta, masses that can be 0, counts >= 1)."""
    pt = 20 + rng.pareto(3, n) * 50
    eta = rng.uniform(-4.5, 4.5, n)
    m = rng.choice([0.0, 1.0], n) * pt * rng.uniform(0, 0.3, n)
    return np.stack([pt, eta, rng.uniform(-math.pi, math.pi, n), m,
                     pt * np.cosh(eta) + 1, rng.integers(1, 60, n), rng.uniform(0, 1, n), rng.uniform(0, 0.4, n),
                     rng.integers(1, 30, n), rng.uniform(0, 1, n)], axis=1)


def _tolerance(norm, x: np.ndarray) -> np.ndarray:
    """float32 round-trip tolerance: a few ulps of the largest intermediate, amplified by log/exp for log columns."""
    p = norm.arrays()
    u = np.abs(x) * p["input_scale"] + p["offset"] + np.abs(p["shift"]) * np.where(p["log"], 0, 1)
    logged = np.abs(np.log10(np.maximum(np.abs(x) * p["input_scale"] + p["offset"], 1e-30)))
    amplification = np.where(p["log"], 2.4 * (logged + np.abs(p["shift"]) + 1), 1.0)
    # plus a floor at the smallest normal float32: subnormal inputs (e.g. eta = 1e-45) flush to 0 when scaled
    return 4 * EPS32 * amplification * u / p["input_scale"] + 8 * float(np.finfo(np.float32).tiny)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scheme=st.sampled_from(["standard", "custom"]), n=st.integers(1, 300))
def test_round_trip_fitted_schemes(seed: int, scheme: str, n: int) -> None:
    rng = np.random.default_rng(seed)
    norm = fit(scheme, NAMES, _jets(rng, 500))
    x = _jets(rng, n).astype(np.float32)
    back = norm.inverse(norm.forward(x))
    assert back.dtype == np.float32
    assert np.all(np.abs(back.astype(np.float64) - x) <= _tolerance(norm, x.astype(np.float64)))


@settings(max_examples=60, deadline=None)
@given(m=st.floats(0, 5000), pt=st.floats(1, 1e4), phi=st.floats(-math.pi, math.pi), eta=st.floats(-5, 5))
def test_round_trip_tla(m: float, pt: float, phi: float, eta: float) -> None:
    norm = tla_normalisation()
    x = np.array([[m, pt, phi, eta]], dtype=np.float32)
    back = norm.inverse(norm.forward(x))
    assert np.all(np.abs(back.astype(np.float64) - x) <= _tolerance(norm, x.astype(np.float64)))


def test_tla_matches_published_formulas() -> None:
    x = np.array([[12.5, 250.0, 1.2, -0.7], [0.0, 31.0, -3.0, 2.4]])
    y = tla_normalisation().forward(x)
    m_mev, pt_mev = x[:, 0] * 1000, x[:, 1] * 1000
    expected = np.stack([np.log10(m_mev + 1) / 1.8 - 2, (np.log10(pt_mev) - 1.3) / 1.2 - 3,
                         x[:, 2] / 3, x[:, 3] / 5], axis=1)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    # the correct inverse: pt = 10**((pt' + 3) * 1.2 + 1.3) MeV
    inv = tla_normalisation().inverse(expected)
    np.testing.assert_allclose(inv[:, 1], 10 ** ((expected[:, 1] + 3) * 1.2 + 1.3) / 1000, rtol=1e-12)
    np.testing.assert_allclose(inv, x, rtol=1e-12, atol=1e-9)


def test_custom_uses_logs_and_angle_scales() -> None:
    rng = np.random.default_rng(3)
    norm = fit("custom", NAMES, _jets(rng, 1000))
    by_name = {t.name: t for t in norm.transforms}
    for name, offset in CUSTOM_LOG_OFFSETS.items():
        if name in by_name:
            assert by_name[name].log and by_name[name].offset == offset
    assert by_name["m"].offset > 0  # m can be 0
    assert by_name["phi"].scale == pytest.approx(math.pi / 2) and by_name["eta"].scale == 1.0
    y = norm.forward(_jets(rng, 5000))
    assert np.all(np.abs(y.mean(0)) < 1.5) and np.all(y.std(0) < 3)
    with pytest.raises(ValueError, match="log10"):
        fit("custom", ["pt"], np.array([[-1.0], [2.0]]))


def test_standard_stores_training_mean_and_std() -> None:
    data = np.random.default_rng(4).normal(5.0, 2.0, size=(2000, 2))
    norm = fit("standard", ["pt", "eta"], data)
    assert [t.shift for t in norm.transforms] == pytest.approx(list(data.mean(0)))
    assert [t.scale for t in norm.transforms] == pytest.approx(list(data.std(0)))
    with pytest.raises(ValueError, match="unknown normalisation"):
        fit("minmax", ["pt"], data[:, :1])


@pytest.mark.torch
@pytest.mark.parametrize("scheme", ["standard", "custom", "tla"])
def test_torch_modules_match_numpy(scheme: str) -> None:
    import torch

    from models.training.torch_normalisation import Denormalise, Normalise

    rng = np.random.default_rng(5)
    if scheme == "tla":
        names, x = ["m", "pt", "phi", "eta"], _jets(rng, 2000)[:, [3, 0, 2, 1]]
    else:
        names, x = NAMES, _jets(rng, 2000)
    norm = fit(scheme, names, x)
    x32 = x.astype(np.float32)
    y_torch = Normalise(norm)(torch.from_numpy(x32)).numpy()
    np.testing.assert_allclose(y_torch, norm.forward(x.astype(np.float64)), rtol=1e-5, atol=1e-5)
    back = Denormalise(norm)(torch.from_numpy(y_torch)).numpy()
    np.testing.assert_allclose(back, x32, rtol=1e-4, atol=1e-4)
