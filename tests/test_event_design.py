"""models/training/event_design.py: the re-exported graphs carry the reweighted score, ship writes a usable card."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from docs_commands import check_aetrig

from emulator.cli import main as cli_main
from emulator.runtime.defaults import SAMPLES_DIR
from models.runtime import score_transform as st
from models.runtime.card import load_model_dir
from models.runtime.event_features import GLOBAL_FEATURES, event_features, padded_jets
from models.training import event_design as ed

QCD = SAMPLES_DIR / "qcd.root"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evt") / "tiny"
    code = cli_main(["train", "--level", "event", "--input", str(QCD), "--max-events", "4000", "--latent", "2",
                     "--epochs", "1", "--batch-size", "256", "--threads", "1", "--no-progress", "--out", str(out)])
    assert code == 0
    return out


def test_reweighted_copy_scores_with_the_new_weights(trained: Path, tmp_path: Path) -> None:
    source = load_model_dir(trained, level="event")
    sample = ed.load([str(QCD)])
    same = ed.reweighted_copy(source, tmp_path / "g1", 1.0, sample)
    sub = sample.select_events(np.arange(sample.n_events) < 1500)
    np.testing.assert_allclose(ed.outputs(same, sub).error, ed.outputs(source, sub).error, rtol=1e-5, atol=1e-6)

    model = ed.reweighted_copy(source, tmp_path / "g4", 4.0, sample)
    base = np.asarray(source.card["score"]["inverse_residual_variance"])
    n, g = base.size, len(GLOBAL_FEATURES)
    factor = np.r_[np.full(g, 4.0), np.ones(n - g)] * n / (4.0 * g + n - g)
    np.testing.assert_allclose(model.card["score"]["weights"], base * factor)
    # the scorer's error is mean_i w_i (out_i - y_i)^2 in the standardised space, computed here in numpy
    spec = model.card["event_input"]
    x = padded_jets(sub.values[:, [sub.variables.index(v) for v in model.variables]], sub.counts, spec["jets"])
    f = event_features(x, spec["slots"], model.variables, np.asarray(spec["empty_slot_fill"]))
    scale = np.array([t["scale"] for t in model.card["normalisation"]["transforms"]])
    reco = ed.outputs(model, sub)
    from models.runtime.event_scoring import run_event_scorer

    _, out, error = run_event_scorer(model.scorer_path, x)
    expected = np.mean(base * factor * ((out - f) / scale) ** 2, axis=1)
    np.testing.assert_allclose(error, expected, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(reco.error, error, rtol=1e-6)
    assert model.card["thresholds"]["sample"]["split"] == "test"


def test_ship_writes_the_transform_and_its_thresholds(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "shipped"
    assert ed.main(["ship", "--model", str(trained), "--global-weight", "3", "--combo", "1,0.5,1",
                    "--train-background", str(QCD), "--calibrate", str(QCD), "--min-bin-events", "500",
                    "--design-signal", f"zprime={SAMPLES_DIR / 'zprime.root'}", "--out", str(out)]) == 0
    model = load_model_dir(out, level="event")
    card = model.card
    block = card["score_transform"]
    assert [(t["raw"], t["weight"]) for t in block["terms"]] == [("error", 1.0), ("latent", 0.5)]
    assert block["ht_weight"] == 1.0 and card["score"]["global_weight"] == 3.0
    assert block["fitted_on"]["split"] == "train" and card["source"]["design_signals"][0]["name"] == "zprime"
    sample = ed.load([str(QCD)])
    o = ed.outputs(model, sample)
    score = st.score(card, o.error, o.latent, o.ht)
    for row in card["thresholds"]["per_event"]:  # calibrated on this very sample: exactly n events above
        assert int((score > row["threshold"]).sum()) <= row["n"]
        assert int((score >= row["threshold"]).sum()) >= row["n"] + 1
    assert json.loads((out / "card.json").read_text())["name"] == "shipped"
    check_aetrig(shlex.split(card["source"]["command"])[1:], "the ship step in the card")  # an aetrig command
    rebuild = card["source"]["rebuild"]  # the training's data and command, then the ship step's
    assert rebuild["commands"] == [load_model_dir(trained, level="event").card["training"]["command"],
                                   card["source"]["command"]]
    assert len(rebuild["data"]) == 2 and all(c.startswith("aetrig generate --process ") for c in rebuild["data"])
    with pytest.raises(SystemExit, match="not empty"):
        ed.main(["ship", "--model", str(trained), "--train-background", str(QCD), "--calibrate", str(QCD),
                 "--out", str(out)])


def test_a_model_of_other_training_files_is_refused(trained: Path) -> None:
    with pytest.raises(SystemExit, match="trained on other files"):
        ed.training_split(load_model_dir(trained, level="event"), ed.load([str(SAMPLES_DIR / "zprime.root")]))
