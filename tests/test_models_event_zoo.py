"""Every shipped event-level model (models/zoo, card "level": "event"): its three ONNX graphs equal the torch
graphs rebuilt from model.pt on real events, its card is complete and per-jet loading refuses it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.runtime.card import ModelError, load_model_dir

REPO = Path(__file__).resolve().parent.parent
ZOO = REPO / "models" / "zoo"
SAMPLES = REPO / "producer" / "samples"
SHIPPED = sorted(p.name for p in ZOO.iterdir() if (p / "card.json").is_file()
                 and json.loads((p / "card.json").read_text()).get("level") == "event") if ZOO.is_dir() else []


def test_an_event_model_is_shipped() -> None:
    assert SHIPPED, "no event-level model under models/zoo"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_event_model_parity_and_card(name: str) -> None:
    import onnxruntime as ort
    import torch

    from models.runtime.data import load_jets
    from models.runtime.event_features import padded_jets
    from models.training.event_graphs import EventEncoderGraph, EventScorerGraph
    from models.training.graphs import DecoderGraph
    from models.training.modeldir import load_checkpoint

    with pytest.raises(ModelError, match="event-level"):
        load_model_dir(ZOO / name)
    model = load_model_dir(ZOO / name, level="event")
    card = model.card
    spec = card["event_input"]
    trained_on = card["training"]["data"]["files"][0]["name"]  # the recorded command's path is history
    assert trained_on.startswith("qcd_train_") and f"data/{trained_on}" in card["training"]["command"]
    assert card["thresholds"]["per_event"][1]["fpr"] == 0.01 and card["thresholds"]["per_event"][1]["reliable"]
    net, norm, config = load_checkpoint(model.path)
    x = np.concatenate([padded_jets(*(lambda s: (s.values, s.counts))(load_jets([SAMPLES / f"{n}.root"],
                                                                                 model.variables, max_events=700)),
                                    spec["jets"]) for n in ("qcd", "zprime", "darkshower")])
    with torch.no_grad():
        xt = torch.from_numpy(x)
        ref = [t.numpy() for t in EventScorerGraph(net, norm, spec["slots"], model.variables,
                                                   config["score_weights"], config["empty_slot_fill"])(xt)]
        enc = EventEncoderGraph(net, norm, spec["slots"], model.variables, config["empty_slot_fill"])(xt).numpy()
        dec = DecoderGraph(net, norm)(torch.from_numpy(enc)).numpy()
    def run(path: Path, feed: dict) -> list[np.ndarray]:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    got = run(model.scorer_path, {"x": x})
    # cos(phi_jet - phi_MHT) is sensitive to float32 rounding when MHT is small: 1e-3 absolute on the vector
    for a, b, what, atol in zip(got, ref, ("latent", "reconstruction", "error"), (1e-4, 1e-3, 1e-4), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol, err_msg=f"{name} scorer {what}")
    np.testing.assert_allclose(run(model.encoder_path, {"x": x})[0], enc, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(run(model.decoder_path, {"latent": enc})[0], dec, rtol=1e-4, atol=1e-3)
