"""models.runtime.score_transform (HT-conditional p-value of an event model's raw score) against hand counting."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from models.runtime import score_transform as st
from models.runtime import trigger_menu as tm


@pytest.fixture(scope="module")
def background() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    ht = rng.uniform(100.0, 1000.0, 6000)
    raw = rng.gamma(2.0, 1.0, ht.size) * ht / 300.0  # the raw score grows with HT, as the AE error does on QCD
    return raw, ht


@pytest.fixture(scope="module")
def block(background) -> dict:
    raw, ht = background
    return st.fit({"error": raw}, ht, {"error": 1.0}, min_events=2000)


def hand_fraction_above(raw_bin: np.ndarray, s: float) -> float:
    return sum(1 for r in raw_bin if r > s) / len(raw_bin)


def test_bins_have_equal_population_and_edge_rule(background, block) -> None:
    _, ht = background
    edges = block["ht_bin_edges_gev"]
    assert len(edges) == 2 and len(block["terms"]) == 1 and len(block["terms"][0]["bins"]) == 3
    counts = [int(((ht >= lo) & (ht < hi)).sum()) for lo, hi in zip([-np.inf, *edges], [*edges, np.inf], strict=True)]
    assert counts == [b["n"] for b in block["terms"][0]["bins"]] and min(counts) >= 1999
    assert st.ht_bin(edges, np.array([-5.0, 0.0, edges[0], edges[1], 1e6])).tolist() == [0, 0, 1, 2, 2]


def test_p_value_is_the_bins_background_fraction_above(background, block) -> None:
    raw, ht = background
    edges = block["ht_bin_edges_gev"]
    for i, (lo, hi) in enumerate(zip([-np.inf, *edges], [*edges, np.inf], strict=True)):
        raw_bin = raw[(ht >= lo) & (ht < hi)]
        centre = float(np.median(ht[(ht >= lo) & (ht < hi)]))
        # at every knot the fraction is exact; between knots within 10% where >= 20 events are above
        for s in [*np.quantile(raw_bin, [0.3, 0.5, 0.8, 0.9, 0.95, 0.99]),
                  *(10 ** np.asarray(block["terms"][0]["bins"][i]["log10_x"][::5]))]:
            expected = hand_fraction_above(raw_bin, s)
            got = 10 ** -st.apply(block, np.array([s]), np.array([centre]))[0]
            tol = 0.1 if expected * len(raw_bin) >= 20 else 0.35
            assert got == pytest.approx(expected, rel=tol), (i, s)


def test_score_is_monotonic_in_raw_within_a_bin_and_beyond_the_knots(block) -> None:
    for b in block["terms"][0]["bins"]:
        lo, hi = 10 ** b["log10_x"][0], 10 ** b["log10_x"][-1]
        raw = np.geomspace(lo / 100, hi * 100, 5000)
        centre = 0.5 * (b["ht_min"] + b["ht_max"])
        score = st.apply(block, raw, np.full(raw.size, centre))
        assert np.all(np.diff(score) >= 0) and score[-1] > score[np.searchsorted(raw, hi)] > 0
        assert score[0] == pytest.approx(-np.log10((b["n"] - 1) / b["n"]))  # below the first knot: p of the first knot


def test_vectorised_and_the_same_per_micro_batch(background, block) -> None:
    rng = np.random.default_rng(1)
    raw = rng.gamma(2.0, 1.0, 1_000_000) * 2
    ht = rng.uniform(0.0, 2000.0, raw.size)
    t0 = time.perf_counter()
    whole = st.apply(block, raw, ht)
    assert time.perf_counter() - t0 < 5.0
    parts = np.concatenate([st.apply(block, raw[i:min(i + 777, 20000)], ht[i:min(i + 777, 20000)])
                            for i in range(0, 20000, 777)])
    np.testing.assert_array_equal(parts, whole[:20000])
    # each event as a batch of one: the same number as in the big batch
    for i in (0, 5, 19999):
        assert st.apply(block, raw[i:i + 1], ht[i:i + 1])[0] == whole[i]


def test_ht_weight_adds_the_ht_tail_probability(background) -> None:
    raw, ht = background
    flat = st.fit({"error": raw}, ht, {"error": 1.0}, min_events=2000)
    combined = st.fit({"error": raw}, ht, {"error": 1.0}, ht_weight=0.5, min_events=2000)
    x_raw, x_ht = np.array([1.0, 2.0, 3.0]), np.array([400.0, 700.0, 950.0])
    p_ht = np.array([hand_fraction_above(ht, h) for h in x_ht])
    got = st.apply(combined, x_raw, x_ht) - st.apply(flat, x_raw, x_ht)
    np.testing.assert_allclose(got, 0.5 * -np.log10(p_ht), atol=0.5 * 0.05)


def test_two_terms_card_round_trip_and_latent_raw(background) -> None:
    raw, ht = background
    rng = np.random.default_rng(2)
    z = rng.normal(1.0, 2.0, (raw.size, 2))
    mean, std = tm.standardisation(z)
    raws = {"error": raw, "latent": tm.latent_score(z, mean, std)}
    block = st.fit(raws, ht, {"error": 1.0, "latent": 0.5}, 1.0, 2000, mean, std, fitted_on={"split": "train"})
    card = json.loads(json.dumps({"name": "x", "score_transform": block}))
    got = st.raw_score(card, raw, z)
    np.testing.assert_allclose(got["latent"], raws["latent"])
    both = st.score(card, raw, z, ht)
    np.testing.assert_array_equal(both, st.apply(block, raws, ht))
    # the sum of its terms: each term alone (weight 1) and the HT term
    single = {k: st.fit({k: raws[k]}, ht, {k: 1.0}, 0.0, 2000, mean, std) for k in raws}
    ht_term = -st.log10_survival(block["ht_survival"], ht)
    by_term = st.apply(single["error"], raw, ht) + 0.5 * st.apply(single["latent"], raws["latent"], ht)
    np.testing.assert_allclose(both, by_term + ht_term)
    with pytest.raises(ValueError, match="latent"):
        st.raw_score(block, np.zeros(3))
    with pytest.raises(ValueError, match="terms"):
        st.apply(block, raw, ht)
    with pytest.raises(ValueError, match="kind"):
        st.apply({"score_transform": {"kind": "other"}}, raw, ht)
    with pytest.raises(ValueError, match="shape"):
        st.apply(single["error"], raw, ht[:-1])


def test_event_ht_is_the_trigger_menu_ht(block) -> None:
    pt = np.array([100.0, 50.0, 25.0, 40.0, 300.0])
    eta = np.array([0.0, 3.0, 0.0, -2.0, 1.0])
    counts = np.array([3, 0, 2])
    assert st.event_ht(block, pt, eta, counts).tolist() == [100.0, 0.0, 340.0]
