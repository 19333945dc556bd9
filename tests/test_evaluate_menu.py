"""models.runtime.trigger_menu (the HT and leading-jet-pT triggers an anomaly model is
judged against at equal rate) against hand computations on small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.runtime import trigger_menu as tm


def wilson68(k: int, n: int) -> tuple[float, float]:
    """The Wilson score interval at z = 1, written out independently of models.runtime.anomaly."""
    p = k / n
    centre = (p + 1 / (2 * n)) / (1 + 1 / n)
    half = math.sqrt(p * (1 - p) / n + 1 / (4 * n * n)) / (1 + 1 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.fixture()
def constructed() -> tuple[tm.TriggerScores, tm.TriggerScores]:
    rng = np.random.default_rng(3)
    n = 1000
    # background: model 0..999, HT 0, 10, .., 9990 and lead pT 0.5 .. 999.5, each shuffled independently
    b = tm.TriggerScores(rng.permutation(n).astype(float), 10.0 * rng.permutation(n), rng.permutation(n) + 0.5)
    # at FPR 1e-2 (10 of 1000 above): model > 989, HT > 9890, lead pT > 989.5
    events = [(995, 100, 10),     # model only: pure
              (995, 9900, 10),    # model and HT
              (995, 100, 990),    # model and lead pT
              (100, 9900, 995),   # HT and lead pT, not the model
              (989, 100, 10),     # model score equal to the threshold: not flagged (score > threshold)
              (5, 5, 5)]          # nothing
    s = tm.TriggerScores(*(np.array(c, dtype=float) for c in zip(*events, strict=True)))
    return b, s


def test_compare_at_fpr_matches_hand_counting(constructed) -> None:
    b, s = constructed
    r = tm.compare_at_fpr(b, s, 1e-2)
    assert r["threshold"] == 989.0 and r["ht_threshold"] == 9890.0 and r["lead_pt_threshold"] == 989.5
    assert r["n_background_pass"] == r["ht_n_background_pass"] == r["lead_pt_n_background_pass"] == 10
    assert r["reliable"] and r["fpr_achieved"] == pytest.approx(0.01)
    assert r["tpr"] == pytest.approx(3 / 6) and r["n_signal_pass"] == 3
    assert r["ht_tpr"] == pytest.approx(2 / 6) and r["lead_pt_tpr"] == pytest.approx(2 / 6)
    assert r["pure_tpr"] == pytest.approx(1 / 6) and r["n_signal_pure"] == 1
    assert (r["tpr_low"], r["tpr_high"]) == pytest.approx(wilson68(3, 6), abs=1e-12)
    assert (r["pure_tpr_low"], r["pure_tpr_high"]) == pytest.approx(wilson68(1, 6), abs=1e-12)
    assert r["rate_hz"] == {"100kHz": pytest.approx(1000.0), "1MHz": pytest.approx(10000.0)}
    # pure background: flagged by the model and by neither simple trigger, counted by hand
    pure_b = sum(1 for m, h, lp in zip(b.model, b.ht, b.lead_pt, strict=True) if m > 989 and h <= 9890 and lp <= 989.5)
    assert r["pure_fpr"] == pytest.approx(pure_b / 1000)
    assert r["pure_rate_hz"]["100kHz"] == pytest.approx(pure_b / 1000 * 1e5)
    assert r["tpr_err_background"] >= 0


def test_rows_below_ten_background_events_are_unreliable(constructed) -> None:
    b, s = constructed
    r = tm.compare_at_fpr(b, s, 1e-3)  # one background event above each threshold
    assert r["threshold"] == 998.0 and r["n_background_pass"] == 1 and not r["reliable"]
    assert r["tpr"] == 0.0 and r["ht_tpr"] == 0.0 and r["lead_pt_tpr"] == 0.0
    assert r["background_needed"] == 10_000
    assert tm.background_needed(1e-5) == 1_000_000 and tm.background_needed(1e-2) == 1000


def test_against_brute_force_with_ties() -> None:
    """Integer scores with many ties: every count equals an explicit loop over 'score > threshold'."""
    rng = np.random.default_rng(7)
    b = tm.TriggerScores(rng.integers(0, 50, 3000).astype(float), rng.integers(0, 400, 3000).astype(float),
                         rng.normal(100, 30, 3000))
    s = tm.TriggerScores(rng.integers(20, 60, 700).astype(float), rng.integers(100, 500, 700).astype(float),
                         rng.normal(130, 30, 700))
    for fpr in (0.05, 1e-2, 1e-3):
        r = tm.compare_at_fpr(b, s, fpr)
        t = {"model": r["threshold"], "ht": r["ht_threshold"], "lead_pt": r["lead_pt_threshold"]}
        allowed = math.floor(fpr * 3000)
        for key, prefix in (("model", ""), ("ht", "ht_"), ("lead_pt", "lead_pt_")):
            above = [v for v in getattr(b, key) if v > t[key]]
            assert r[f"{prefix}n_background_pass"] == len(above) <= allowed
            assert t[key] in getattr(b, key)
            assert r[f"{prefix}tpr"] == pytest.approx(sum(v > t[key] for v in getattr(s, key)) / 700)
        pure = sum(1 for m, h, lp in zip(s.model, s.ht, s.lead_pt, strict=True)
                   if m > t["model"] and not h > t["ht"] and not lp > t["lead_pt"])
        assert r["pure_tpr"] == pytest.approx(pure / 700)
        assert r["reliable"] == (min(r["n_background_pass"], r["ht_n_background_pass"],
                                     r["lead_pt_n_background_pass"]) >= 10)


def test_judge_has_auc_ht_bins_and_every_fpr(constructed) -> None:
    b, s = constructed
    out = tm.judge(b, s)
    assert set(out["fpr"]) == {"0.01", "0.001", "0.0001", "1e-05"}
    pairs = [(sm, bm) for sm in s.model for bm in b.model]
    brute = (sum(sm > bm for sm, bm in pairs) + 0.5 * sum(sm == bm for sm, bm in pairs)) / len(pairs)
    assert out["auc"] == pytest.approx(brute, abs=1e-12) and out["auc_err"] > 0
    assert [row["low"] for row in out["auc_vs_ht"]] == list(tm.HT_EDGES[:-1])
    with pytest.raises(ValueError):
        tm.TriggerScores(np.zeros(3), np.zeros(2), np.zeros(3))


def test_trigger_variables_select_jets() -> None:
    pt = np.array([50.0, 40.0, 25.0, 35.0, 100.0, 31.0])
    eta = np.array([0.1, 3.0, 0.0, -2.4, 2.6, -2.49])
    counts = np.array([3, 0, 3])  # event 1: no jets; event 2: the 100 GeV jet is outside |eta| < 2.5
    ht, lead = tm.trigger_variables(pt, eta, counts)
    np.testing.assert_allclose(ht, [50.0, 0.0, 66.0])
    np.testing.assert_allclose(lead, [50.0, 0.0, 35.0])
    ht_all, lead_all = tm.trigger_variables(pt, eta, counts, tm.JetSelection(min_pt=0.0, max_abs_eta=10.0))
    np.testing.assert_allclose(ht_all, [115.0, 0.0, 166.0])
    np.testing.assert_allclose(lead_all, [50.0, 0.0, 100.0])
    assert tm.JetSelection().describe() == "jets pT > 30 GeV, |eta| < 2.5"


def test_latent_score_standardised_on_the_background() -> None:
    z_b = np.array([[1.0, 5.0], [3.0, 5.0]])  # second coordinate constant: sigma 0 is taken as 1
    mean, std = tm.standardisation(z_b)
    np.testing.assert_allclose(mean, [2.0, 5.0])
    np.testing.assert_allclose(std, [1.0, 1.0])
    np.testing.assert_allclose(tm.latent_score(z_b, mean, std), [1.0, 1.0])
    np.testing.assert_allclose(tm.latent_score(np.array([[4.0, 7.0]]), mean, std), [4.0 + 4.0])
    assert tm.rate_key(100e3) == "100kHz" and tm.rate_key(1e6) == "1MHz" and tm.rate_key(40.0) == "40Hz"
