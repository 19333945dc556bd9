"""Event-level AE: `aetrig train --level event` exports a model directory whose ONNX scorer agrees with the torch
graph and with a numpy recomputation on real events; per-jet tools refuse it with a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stage_keys import stage_flags

from emulator import cli
from models.runtime.card import ModelError, load_model_dir

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "producer" / "samples"


@pytest.fixture(scope="module")
def event_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evt") / "EVT_test"
    code = cli.main(["train", "--level", "event", "--input", str(SAMPLES / "qcd.root"), "--max-events", "3000",
                     "--latent", "2", "--epochs", "3", "--batch-size", "256", "--seed", "3", "--no-progress",
                     "--keep-checkpoint", "--out", str(out)])
    assert code == 0
    return out


def _real_events(n: int = 800) -> np.ndarray:
    from models.runtime.data import load_jets
    from models.runtime.event_features import EVENT_VARIABLES, padded_jets

    parts = []
    for name in ("qcd", "zprime", "darkshower"):
        s = load_jets([SAMPLES / f"{name}.root"], list(EVENT_VARIABLES), max_events=n)
        parts.append(padded_jets(s.values, s.counts))
    return np.concatenate(parts)


def test_card_describes_an_event_model(event_model: Path) -> None:
    model = load_model_dir(event_model, level="event")
    card = model.card
    assert model.level == "event" and card["level"] == "event" and model.latent_dim == 2
    spec = card["event_input"]
    assert spec["jets"] == 6 and spec["slots"] == 4
    n_features = len(spec["features"])
    assert len(card["normalisation"]["transforms"]) == len(card["score"]["inverse_residual_variance"]) == n_features
    assert [v["name"] for v in card["variables"]] == ["pt", "eta", "phi", "m", "width", "tau21", "tau32"]
    assert card["variables"][0]["unit"] == "GeV" and card["variables"][1]["unit"] == ""
    assert card["training"]["command"].startswith("aetrig train --level event --input")
    assert card["training"]["data"]["files"][0]["sha256"] and card["training"]["data"]["n_events"] == 3000
    rows = card["thresholds"]["per_event"]
    assert [r["fpr"] for r in rows][:3] == [0.1, 0.01, 0.001] and rows[0]["reliable"]
    assert model.threshold(fpr=1e-2) == pytest.approx(rows[1]["threshold"], rel=0.05)
    assert card["metrics"]["test_split"]["fidelity"]["ht_relative"]["core_half_width"] > 0


def test_onnx_torch_numpy_scores_agree_on_real_events(event_model: Path) -> None:
    import torch

    from models.runtime.event_features import event_features
    from models.runtime.event_scoring import run_event_scorer
    from models.training.event_graphs import EventEncoderGraph, EventScorerGraph
    from models.training.graphs import DecoderGraph
    from models.training.modeldir import load_checkpoint

    model = load_model_dir(event_model, level="event")
    net, norm, config = load_checkpoint(event_model)
    assert config["level"] == "event" and config["jets"] == 6
    x = _real_events()
    fill = np.asarray(config["empty_slot_fill"])
    assert fill.shape == (4, 7) and np.allclose(fill, model.card["event_input"]["empty_slot_fill"])
    assert fill[:, 0].min() > np.log10(21)  # the fill of log10(pt + 1) is a real jet's, above threshold
    latent_o, reco_o, err_o = run_event_scorer(model.scorer_path, x)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        latent_t, reco_t, err_t = (t.numpy() for t in EventScorerGraph(net, norm, 4, model.variables,
                                                                         config["score_weights"], fill)(xt))
        enc_t = EventEncoderGraph(net, norm, 4, model.variables, fill)(xt).numpy()
        dec_t = DecoderGraph(net, norm)(torch.from_numpy(enc_t)).numpy()
        # numpy twin of the features, standardised in float64, through the torch network
        y = norm.forward(event_features(x, 4, model.variables, fill))
        out = net.decode(net.encode(torch.from_numpy(y.astype(np.float32)))).numpy().astype(np.float64)
    weights = np.asarray(model.card["score"]["inverse_residual_variance"])
    err_np = np.mean((out - y) ** 2 * weights, axis=1)
    assert latent_o.shape == (len(x), 2) and err_o.shape == (len(x),)
    np.testing.assert_allclose(latent_o, latent_t, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(reco_o, reco_t, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(err_o, err_t, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(enc_t, latent_t, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dec_t, reco_t, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(err_o, err_np, rtol=2e-3, atol=2e-3)
    assert np.corrcoef(err_o, err_np)[0, 1] > 0.9999


def test_zero_jet_and_many_jet_events_pass_the_scorer(event_model: Path) -> None:
    from models.runtime.event_features import padded_jets
    from models.runtime.event_scoring import score_flat_events

    model = load_model_dir(event_model, level="event")
    rng = np.random.default_rng(8)
    counts = np.array([0, 30, 1, 0, 6])
    n = int(counts.sum())
    values = np.stack([rng.uniform(21, 400, n), rng.uniform(-4, 4, n), rng.uniform(-3, 3, n), rng.uniform(1, 80, n),
                       rng.uniform(0, 0.3, n), rng.uniform(0.1, 1, n), rng.uniform(0.1, 1, n)], axis=1)
    latent, _, err = score_flat_events(model.scorer_path, values, counts, 6)
    assert err.shape == (5,) and np.isfinite(err).all() and np.isfinite(latent).all()
    # float32 scores of rows in other places of a batch (or in another batch) agree only to the last bits
    assert err[0] == pytest.approx(float(err[3]), rel=1e-5)  # every zero-jet event has the empty-event score
    # the 30-jet event scores as its 6 leading jets alone (truncation)
    alone = score_flat_events(model.scorer_path, values[0:6], np.array([6]), 6)[2]  # event 1 starts at jet 0
    assert err[1] == pytest.approx(float(alone[0]), rel=1e-5)
    assert padded_jets(values, counts).shape == (5, 6, 7)
    assert cli.main(["train", "--level", "event", "--input", str(SAMPLES / "qcd.root"), "--variables", "pt,eta",
                     "--out", str(event_model.parent / "nope")]) == 2


def test_per_jet_tools_refuse_an_event_model(event_model: Path, tmp_path: Path) -> None:
    from consumer.offline.decode import DecodeError, locate_model

    with pytest.raises(ModelError, match="event-level model"):
        load_model_dir(event_model)
    assert load_model_dir(event_model, level=None).level == "event"
    with pytest.raises(ModelError, match="needs a event-level model"):
        load_model_dir(REPO / "models" / "zoo" / "AE_3D_200_ptetaphie", level="event")
    card = json.loads((event_model / "card.json").read_text())
    with pytest.raises(DecodeError, match="event-level model"):
        locate_model({"name": "AE_3D_200_ptetaphie"}, event_model)
    with pytest.raises(DecodeError, match="event-level model"):
        locate_model(card)
    # the encoder service refuses it at start-up (exit 2, message on stderr), before any socket is used
    proc = subprocess.run([sys.executable, "-m", "emulator.cli", "encode", "--model", str(event_model),
                           "--connect", "tcp://127.0.0.1:9", "--sink", "tcp://127.0.0.1:9", *stage_flags("encode")],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2 and "event-level model" in proc.stderr, proc.stderr
    # (aetrig calibrate takes either kind of model: tests/test_input_calibrate.py)
