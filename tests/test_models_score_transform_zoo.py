"""Every shipped event model with a ``score_transform`` card block: the block is complete, the transformed score
reproduces the card thresholds' FPR on an independent background within binomial error, it is the same per
micro-batch, and `aetrig evaluate` scores the model with it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from models.runtime import score_transform as st
from models.runtime.card import load_model_dir

REPO = Path(__file__).resolve().parent.parent
ZOO = REPO / "models" / "zoo"
QCD = REPO / "producer" / "samples" / "qcd.root"  # seed 101: neither the training (901) nor the calibration (902) file
SHIPPED = sorted(p.name for p in ZOO.iterdir() if (p / "card.json").is_file()
                 and "score_transform" in json.loads((p / "card.json").read_text())) if ZOO.is_dir() else []


def test_a_transformed_model_is_shipped() -> None:
    assert SHIPPED, "no event model with a score_transform under models/zoo"


@pytest.fixture(scope="module")
def background():  # -> models.runtime.data.JetSample
    from models.runtime.data import load_jets
    from models.runtime.event_features import EVENT_VARIABLES

    return load_jets([QCD], list(EVENT_VARIABLES))


def transformed_score(model, sample, batch: int | None = None) -> np.ndarray:
    """The card's score from the scorer's outputs and the event HT, over micro-batches of ``batch`` events."""
    from models.runtime.event_scoring import score_flat_events

    values = sample.values[:, [sample.variables.index(v) for v in model.variables]]
    n, batch = sample.n_events, batch or sample.n_events
    starts = np.concatenate([[0], np.cumsum(sample.counts)])
    parts = []
    for i in range(0, n, batch):
        j = min(i + batch, n)
        counts = sample.counts[i:j]
        jets = slice(starts[i], starts[j])
        latent, _, error = score_flat_events(model.scorer_path, values[jets], counts,
                                             int(model.card["event_input"]["jets"]))
        pt, eta = (sample.values[jets, sample.variables.index(v)] for v in ("pt", "eta"))
        parts.append(st.score(model.card, error, latent, st.event_ht(model.card, pt, eta, counts)))
    return np.concatenate(parts)


@pytest.mark.parametrize("name", SHIPPED)
def test_block_is_complete_and_fitted_on_the_training_split(name: str) -> None:
    card = load_model_dir(ZOO / name, level="event").card
    block = card["score_transform"]
    assert block["kind"] == st.KIND and block["terms"] and block["fitted_on"]["split"] == "train"
    assert block["fitted_on"]["files"] == card["training"]["data"]["files"]
    edges = block["ht_bin_edges_gev"]
    assert edges == sorted(edges)
    for term in block["terms"]:
        assert term["raw"] in st.RAW_KINDS and len(term["bins"]) == len(edges) + 1
        assert all(b["n"] >= st.MIN_BIN_EVENTS for b in term["bins"])
    assert "score_transform" in card["thresholds"]["rule"]
    assert card["thresholds"]["sample"]["files"][0]["sha256"] != card["training"]["data"]["files"][0]["sha256"]


@pytest.mark.parametrize("name", SHIPPED)
def test_card_thresholds_give_their_fpr_on_an_independent_background(name: str, background) -> None:
    model = load_model_dir(ZOO / name, level="event")
    score = transformed_score(model, background)
    n_cal = model.card["thresholds"]["sample"]["n_events"]
    checked = 0
    for row in model.card["thresholds"]["per_event"]:
        f = row["fpr"]
        if f * background.n_events < 10:
            continue
        observed = float((score > row["threshold"]).mean())
        sigma = math.sqrt(f * (1 - f) * (1 / background.n_events + 1 / n_cal))
        assert abs(observed - f) < 3 * sigma, (f, observed)
        # the dense curve, interpolated, flags the same fraction (with 20k calibration events the interpolated
        # threshold can differ from the row's empirical quantile by more than 1e-3 relative)
        assert abs(float((score > model.threshold(fpr=f)).mean()) - f) < 3 * sigma, (f, "curve")
        if n_cal >= 100_000:
            assert model.threshold(fpr=f) == pytest.approx(row["threshold"], rel=1e-3)
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("name", SHIPPED)
def test_micro_batches_and_evaluate_give_the_same_score(name: str, background) -> None:
    from consumer.offline.evaluate import model_score
    from consumer.offline.studies.common import Sample
    from consumer.offline.studies.study_anomaly import scores
    from models.runtime.event_features import padded_jets
    from models.runtime.event_scoring import run_event_scorer

    model = load_model_dir(ZOO / name, level="event")
    sub = background.select_events(np.arange(background.n_events) < 3000)
    whole = transformed_score(model, sub)
    # ONNX Runtime float32 sums differ in the last bits with the batch size; the numpy transform does not
    np.testing.assert_allclose(transformed_score(model, sub, batch=257), whole, rtol=1e-4, atol=1e-4)
    sample = Sample("qcd", [str(QCD)], list(sub.variables), sub.values, sub.counts)
    # study 3's event score is the model's anomaly score (the card's transform applied once) ...
    np.testing.assert_allclose(scores(model, sample)["event"], whole, rtol=1e-4, atol=1e-4)
    # ... and evaluate's model_score of the raw error gives the same (encoder.onnx latent vs the scorer's: float32)
    raw = run_event_scorer(model.scorer_path, padded_jets(sample.take(model.variables), sample.counts,
                                                          int(model.card["event_input"]["jets"])))[2]
    np.testing.assert_allclose(model_score(model, sample, raw), whole, rtol=1e-4, atol=1e-4)
    # the encoder service's hook (models.runtime.event_scoring.anomaly_score, via its offline twin)
    from models.runtime.event_scoring import event_anomaly_scores

    columns = {v: sub.values[:, sub.variables.index(v)] for v in sub.variables}
    np.testing.assert_allclose(event_anomaly_scores(model, columns, sub.counts), whole, rtol=1e-5, atol=1e-5)
