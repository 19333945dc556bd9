"""Anomaly metrics against known distributions and explicit counting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.runtime import anomaly


def gaussian_auc(mu_b: float, sigma_b: float, mu_s: float, sigma_s: float) -> float:
    """Analytic AUC of two Gaussians: Phi((mu_s - mu_b) / sqrt(sigma_b^2 + sigma_s^2))."""
    z = (mu_s - mu_b) / math.sqrt(sigma_b**2 + sigma_s**2)
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_auc_two_gaussians_matches_analytic() -> None:
    rng = np.random.default_rng(10)
    b = rng.normal(0.0, 1.0, 40000)
    s = rng.normal(1.5, 2.0, 30000)
    expected = gaussian_auc(0.0, 1.0, 1.5, 2.0)
    got = anomaly.auc(b, s)
    err = anomaly.auc_uncertainty(got, b.size, s.size)
    assert 0 < err < 0.01
    assert abs(got - expected) < 4 * err + 1e-3


def test_auc_against_pairwise_count_with_ties() -> None:
    rng = np.random.default_rng(11)
    b = rng.integers(0, 10, 300).astype(float)
    s = rng.integers(2, 12, 200).astype(float)
    diff = s[:, None] - b[None, :]
    brute = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    assert anomaly.auc(b, s) == pytest.approx(brute, abs=1e-12)
    assert anomaly.auc(b, b) == pytest.approx(0.5)
    assert anomaly.auc(np.zeros(3), np.ones(3)) == 1.0


def test_roc_curve_endpoints_and_area() -> None:
    rng = np.random.default_rng(12)
    b, s = rng.normal(0, 1, 5000), rng.normal(1, 1, 5000)
    roc = anomaly.roc_curve(b, s)
    assert roc["fpr"][0] == 1.0 and roc["tpr"][0] == 1.0
    assert roc["fpr"][-1] == 0.0 and roc["tpr"][-1] == 0.0
    area = -np.trapezoid(roc["tpr"], roc["fpr"])
    assert area == pytest.approx(anomaly.auc(b, s), abs=2e-3)


def test_tpr_at_fpr_on_constructed_samples() -> None:
    # background 0..9999: exactly 100 values (9900..9999) lie above 9899.
    b = np.arange(10000, dtype=float)
    s = np.concatenate([np.full(300, 20000.0), np.full(700, -1.0)])
    r = anomaly.tpr_at_fpr(b, s, 1e-2)
    assert r["threshold"] == 9899.0
    assert r["n_background_above"] == 100 and r["fpr_achieved"] == 0.01
    assert r["tpr"] == pytest.approx(0.3)
    assert r["tpr_err_signal"] == pytest.approx(math.sqrt(0.3 * 0.7 / 1000))
    assert r["reliable"]
    # 1e-4 of 10000 is one event: flagged unreliable
    assert not anomaly.tpr_at_fpr(b, s, 1e-4)["reliable"]


def test_tpr_background_uncertainty_follows_threshold_shift() -> None:
    b = np.arange(10000, dtype=float)
    s = np.linspace(9000, 10000, 100001)  # uniform over the tail: TPR moves with the threshold
    r = anomaly.tpr_at_fpr(b, s, 1e-2)
    # +-sqrt(100)=10 background events moves threshold by 10 units = 1% of the signal range
    assert r["tpr_err_background"] == pytest.approx(0.01, rel=0.05)


def test_wilson_and_binomial() -> None:
    lo, hi = anomaly.wilson_interval(30, 100)
    assert lo < 0.3 < hi
    assert hi - lo == pytest.approx(2 * math.sqrt(0.3 * 0.7 / 100), rel=0.05)
    assert anomaly.binomial_error(0, 10) == 0.0


def test_event_scores_max_and_zero_jets() -> None:
    errors = np.array([0.1, 0.5, 0.2, 0.9, 0.3])
    counts = np.array([2, 0, 1, 0, 2])
    np.testing.assert_allclose(anomaly.event_scores(errors, counts), [0.5, 0, 0.2, 0, 0.9])
    with pytest.raises(ValueError):
        anomaly.event_scores(errors, np.array([1, 1]))


def test_binned_auc_and_flag_rate() -> None:
    rng = np.random.default_rng(13)
    b, s = rng.normal(0, 1, 4000), rng.normal(2, 1, 4000)
    bv, sv = rng.uniform(0, 100, 4000), rng.uniform(0, 100, 4000)
    rows = anomaly.binned_auc(b, s, bv, sv, [0, 50, 100])
    assert len(rows) == 2 and all(abs(r["auc"] - gaussian_auc(0, 1, 2, 1)) < 0.03 for r in rows)
    curve = anomaly.flag_rate_curve(b, np.array([-np.inf, 0.0, np.inf]), 100e3, signal=s)
    np.testing.assert_allclose(curve["accept_rate_hz"][[0, 2]], [100e3, 0.0])
    assert curve["flag_fraction"][1] == pytest.approx((b > 0).mean())
