"""ONNX Runtime against torch for every shipped model and all three graphs, on 10 000 real sample jets;
a model directory whose ONNX hash does not match its card is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.runtime.card import ModelError, load_model_dir

REPO = Path(__file__).resolve().parent.parent
ZOO = REPO / "models" / "zoo"
SAMPLE = REPO / "producer" / "samples" / "qcd.root"
ALL_SHIPPED = sorted(p.name for p in ZOO.iterdir() if (p / "card.json").is_file()) if ZOO.is_dir() else []
# float32 graphs must equal torch; quantised ones (card "precision": "int8") are checked against their
# float32 source in tests/test_models_quantize.py instead
SHIPPED = [n for n in ALL_SHIPPED if json.loads((ZOO / n / "card.json").read_text()).get("precision", "float32")
           == "float32"]
# per-jet models only: event-level ones (card "level": "event") are checked in tests/test_models_event_zoo.py
SHIPPED = [n for n in SHIPPED if json.loads((ZOO / n / "card.json").read_text()).get("level", "jet") == "jet"]
N_JETS = 10_000


def _sample_jets(variables: list[str]) -> np.ndarray:
    from models.runtime.data import load_jets

    sample = load_jets([SAMPLE], variables, max_events=6000)
    assert len(sample.values) >= N_JETS, f"{SAMPLE} has too few jets for the parity test"
    return sample.values[:N_JETS]


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _assert_close(onnx_out: np.ndarray, torch_out: np.ndarray, what: str) -> float:
    diff = np.abs(onnx_out.astype(np.float64) - torch_out.astype(np.float64))
    bound = 1e-4 * np.maximum(1.0, np.abs(torch_out.astype(np.float64)))
    worst = np.unravel_index(np.argmax(diff / bound), diff.shape)
    assert np.all(diff <= bound), f"{what}: |onnx - torch| = {diff[worst]:.3g} > {bound[worst]:.3g} at {worst}"
    return float(diff.max())


def test_models_are_shipped() -> None:
    assert {"TLA_4D_leading", "AE_3D_200_ptetaphie"} <= set(SHIPPED), f"shipped: {SHIPPED}"


@pytest.mark.torch
@pytest.mark.parametrize("name", SHIPPED)
def test_onnx_matches_torch_on_real_jets(name: str) -> None:
    import torch

    from models.training.graphs import DecoderGraph, EncoderGraph, ScorerGraph
    from models.training.modeldir import load_checkpoint

    model = load_model_dir(ZOO / name)
    net, norm, _ = load_checkpoint(model.path)
    assert norm.variables == model.variables
    x = _sample_jets(model.variables)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        latent_t, reco_t, error_t = (t.numpy() for t in ScorerGraph(net, norm).eval()(xt))
        enc_t = EncoderGraph(net, norm).eval()(xt).numpy()
        dec_t = DecoderGraph(net, norm).eval()(torch.from_numpy(enc_t)).numpy()
    latent_o, reco_o, error_o = _session(model.scorer_path).run(None, {"x": x})
    enc_o = _session(model.encoder_path).run(None, {"x": x})[0]
    dec_o = _session(model.decoder_path).run(None, {"latent": enc_t})[0]
    assert latent_o.shape == (N_JETS, model.latent_dim) and reco_o.shape == x.shape and error_o.shape == (N_JETS,)
    _assert_close(latent_o, latent_t, f"{name} scorer latent")
    _assert_close(reco_o, reco_t, f"{name} scorer reconstruction")
    _assert_close(error_o, error_t, f"{name} scorer error")
    _assert_close(enc_o, enc_t, f"{name} encoder")
    _assert_close(dec_o, dec_t, f"{name} decoder")
    # the scorer's error is the MSE in normalised space, computed independently here
    y = norm.forward(x.astype(np.float64))
    y_out = norm.forward(reco_t.astype(np.float64))
    np.testing.assert_allclose(error_t, np.mean((y_out - y) ** 2, axis=1), rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("graph", ["scorer.onnx", "encoder.onnx"])
def test_tampered_graph_is_refused(tmp_path: Path, graph: str) -> None:
    target = tmp_path / "model"
    shutil.copytree(ZOO / "TLA_4D_leading", target)
    data = bytearray((target / graph).read_bytes())
    data[-1] ^= 0xFF
    (target / graph).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"{graph}: sha256 .* does not match the card"):
        load_model_dir(target)


def test_dynamic_batch_axis() -> None:
    model = load_model_dir(ZOO / "TLA_4D_leading")
    session = _session(model.scorer_path)
    x = _sample_jets(model.variables)
    for n in (1, 7, 1000):
        latent, reco, error = session.run(None, {"x": x[:n]})
        assert latent.shape == (n, 3) and reco.shape == (n, 4) and error.shape == (n,)
