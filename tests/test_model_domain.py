"""A model's training domain (models/runtime/domain.py): every shipped card states it, and the selection of the
jets inside matches an independent per-event loop on real and hand-made jets (NaN, soft, forward, many jets)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from models.runtime.domain import RULE, Domain, DomainError, select, training_domain

REPO = Path(__file__).resolve().parents[1]
ZOO = REPO / "models" / "zoo"
CARDS = sorted(p for p in ZOO.glob("*/card.json"))


def loop_mask(d: Domain, pt: np.ndarray, eta: np.ndarray, counts: np.ndarray, limit: bool) -> np.ndarray:
    """The rule, one jet at a time."""
    out, i = [], 0
    for c in counts:
        kept = 0
        for _ in range(c):
            inside = pt[i] > d.min_pt_gev and abs(eta[i]) < d.max_abs_eta  # False for NaN
            if inside and limit and d.max_jets is not None:
                inside = kept < d.max_jets
            kept += inside
            out.append(bool(inside))
            i += 1
    return np.array(out, dtype=bool)


@pytest.mark.parametrize("card_path", CARDS, ids=[p.parent.name for p in CARDS])
def test_every_shipped_card_states_its_training_domain(card_path: Path) -> None:
    card = json.loads(card_path.read_text())
    d = Domain.from_card(card)
    assert d is not None, f"{card['name']}: no domain"
    assert card["domain"]["rule"] == RULE and card["domain"]["source"]
    if card.get("level") == "event":
        assert d.max_jets == card["event_input"]["jets"] and (d.min_pt_gev, d.max_abs_eta) == (20.0, 4.5)
    elif card["name"] != "TLA_4D_leading":
        assert (d.min_pt_gev, d.max_abs_eta, d.max_jets) == (20.0, 4.5, None)


def test_mask_matches_a_per_jet_loop() -> None:
    rng = np.random.default_rng(3)
    counts = np.array([0, 3, 25, 0, 1, 12, 4, 0])
    n = int(counts.sum())
    pt = rng.uniform(5, 80, n).astype(np.float32)
    eta = rng.uniform(-5.2, 5.2, n).astype(np.float32)
    pt[[2, 9]] = np.nan
    eta[14] = np.inf
    pt[5] = 20.0  # exactly at the cut: outside (pt > min_pt)
    for d in (Domain(20.0, 4.5, None), Domain(20.0, 4.5, 6), Domain(15.0, 2.5, 1)):
        for limit in (True, False):
            got = d.mask(pt, eta, counts, limit_jets=limit)
            np.testing.assert_array_equal(got, loop_mask(d, pt, eta, counts, limit))
            kept = select(got, counts)
            assert kept.tolist() == [int(got[s:s + c].sum()) for s, c in zip(np.cumsum(counts) - counts, counts,
                                                                                 strict=True)]
    assert not Domain(20.0, 4.5, 6).mask(np.zeros(0), np.zeros(0), np.zeros(3, np.int64)).size


def test_card_block_round_trip_and_malformed_block() -> None:
    d = Domain(20.0, 4.5, 10)
    assert Domain.from_card({"domain": d.card_block("test")}) == d
    assert Domain.from_card({"name": "old"}) is None
    with pytest.raises(DomainError, match=r"malformed domain\.jets"):
        Domain.from_card({"name": "x", "domain": {"jets": {"min_pt_gev": "soft"}}})
    assert d.text() == "pt > 20 GeV, |eta| < 4.5, leading 10 jets"


def test_training_domain_reads_the_generator_metadata() -> None:
    block = training_domain([REPO / "producer" / "samples" / "qcd.root"], np.array([25.0]), np.array([0.1]), 10)
    assert block["jets"] == {"min_pt_gev": 20.0, "max_abs_eta": 4.5, "max_jets": 10}
    assert "metadata" in block["source"]


def test_training_domain_without_metadata_measures_the_jets(tmp_path: Path) -> None:
    import uproot

    path = tmp_path / "plain.root"
    with uproot.recreate(path) as f:
        f["events"] = {"x": np.zeros(3)}
    pt, eta = np.array([31.2, 17.9, 250.0]), np.array([0.2, -2.43, 1.0])
    block = training_domain([path], pt, eta, None)
    d = Domain.from_card({"domain": block})
    assert d is not None and d.max_jets is None and "measured" in block["source"]
    assert d.mask(pt, eta, np.array([3])).all() and math.isclose(d.max_abs_eta, 2.55)
