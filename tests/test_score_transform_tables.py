"""The compiled score transform (models.runtime.score_transform.CompiledTransform, lookup tables) against a
straightforward reference: per HT bin and term, np.interp of the knots in (log10 raw, log10 p) plus the power-law
tail, summed in the block's order (the implementation before the tables). Shipped card and fitted blocks; knots,
bin edges, the tails, 0, inf and nan."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from models.runtime import score_transform as st
from models.runtime import trigger_menu as tm

CARD = Path(__file__).resolve().parents[1] / "models" / "zoo" / "EVT_AE_ht" / "card.json"


def reference_log10_survival(knots: dict, x: np.ndarray) -> np.ndarray:
    tk, lpk = np.asarray(knots["log10_x"], float), np.asarray(knots["log10_p"], float)
    t = np.log10(np.maximum(np.asarray(x, float) + float(knots["offset"]), 1e-30))
    out = np.interp(t, tk, lpk)
    beyond = t > tk[-1]
    out[beyond] = lpk[-1] + float(knots["tail_slope"]) * (t[beyond] - tk[-1])
    return np.minimum(out, 0.0)


def reference_apply(block: dict, raw: dict, ht: np.ndarray) -> np.ndarray:
    b = np.searchsorted(np.asarray(block["ht_bin_edges_gev"], float), ht, side="right")
    score = np.zeros(ht.shape)
    for term in block["terms"]:
        for i, knots in enumerate(term["bins"]):
            here = b == i
            if here.any():
                score[here] += float(term["weight"]) * -reference_log10_survival(knots, raw[term["raw"]][here])
    return score + float(block.get("ht_weight", 0.0)) * -reference_log10_survival(block["ht_survival"], ht)


def probe_values(block: dict, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Raw scores of each term: random over the knots' range and beyond, every knot exactly, 0, inf, nan."""
    out = {}
    for term in block["terms"]:
        tk = np.concatenate([b["log10_x"] for b in term["bins"]])
        special = np.concatenate([10.0 ** tk, [0.0, -1.0, 1e-40, np.inf, np.nan, 1e300]])
        rand = 10.0 ** rng.uniform(tk.min() - 2, tk.max() + 2, n - special.size)
        out[term["raw"]] = rng.permutation(np.concatenate([rand, special]))
    return out


def probe_ht(block: dict, rng: np.random.Generator, n: int) -> np.ndarray:
    edges = np.asarray(block["ht_bin_edges_gev"])
    knots = 10.0 ** np.asarray(block["ht_survival"]["log10_x"]) - 1.0
    special = np.concatenate([edges, np.nextafter(edges, -np.inf), knots, [0.0, 1e6]])
    return rng.permutation(np.concatenate([rng.uniform(0, 3 * edges.max(), n - special.size), special]))


def check(block: dict, seed: int, n: int = 20000) -> None:
    rng = np.random.default_rng(seed)
    raw, ht = probe_values(block, rng, n), probe_ht(block, rng, n)
    ref = reference_apply(block, raw, ht)
    got = st.compile_transform(block).apply(raw, ht)
    assert np.array_equal(np.isnan(got), np.isnan(ref)) and np.array_equal(np.isinf(got), np.isinf(ref))
    ok = np.isfinite(ref)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(st.apply(block, raw, ht)[ok], ref[ok], rtol=1e-12, atol=1e-12)


def test_shipped_card_transform_equals_reference() -> None:
    check(json.loads(CARD.read_text())["score_transform"], 0)


@pytest.mark.parametrize("seed", [1, 2])
def test_fitted_blocks_equal_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ht = rng.uniform(50.0, 1500.0, 9000)
    error = rng.gamma(2.0, 1.0, ht.size) * ht / 300.0
    latent = rng.standard_normal((ht.size, 2))
    lat_raw = tm.latent_score(latent, np.zeros(2), np.ones(2))
    block = st.fit({"error": error, "latent": lat_raw}, ht, {"error": 1.0, "latent": 0.5}, ht_weight=1.25,
                   min_events=2000, latent_mean=[0.0, 0.0], latent_std=[1.0, 1.0])
    block["terms"][0]["bins"][1]["offset"] = 0.5  # per-bin offsets that differ take the general path
    check(block, seed)


def test_score_of_error_and_latent_equals_reference_on_the_card() -> None:
    card = json.loads(CARD.read_text())
    block = card["score_transform"]
    rng = np.random.default_rng(3)
    error, latent = rng.gamma(2.0, 0.3, 5000), rng.standard_normal((5000, 3)).astype(np.float32)
    ht = rng.uniform(0.0, 1500.0, 5000)
    term = block["terms"][1]
    u = (latent.astype(np.float64) - np.asarray(term["latent_mean"])) / np.asarray(term["latent_std"])
    ref = reference_apply(block, {"error": error, "latent": np.sum(u * u, axis=1)}, ht)
    np.testing.assert_allclose(st.score(card, error, latent, ht), ref, rtol=1e-12, atol=1e-12)


def test_tables_are_fast() -> None:
    compiled = st.compile_transform(json.loads(CARD.read_text()))
    rng = np.random.default_rng(4)
    error, latent, ht = rng.gamma(2.0, 0.3, 1000), rng.standard_normal((1000, 3)), rng.uniform(0, 1500, 1000)
    compiled.score(error, latent, ht)
    t0 = time.perf_counter()
    for _ in range(50):
        compiled.score(error, latent, ht)
    assert (time.perf_counter() - t0) / 50 < 5e-3  # ~0.2 ms on one free core; generous for a shared machine
