"""models/training/rate_ae.py and rate_train.py: the injected rate gradient equals that of D + λ·R, the density
is a pmf over unit bins, eval mode decodes rounded latents, and a short training writes a model directory whose
ONNX graphs match torch and whose symbols code exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.training.rate_ae import AddRate, LogisticMixture, RateAE  # noqa: E402

pytestmark = pytest.mark.torch
REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "producer" / "samples" / "qcd.root"


def test_add_rate_gradient_is_that_of_distortion_plus_lambda_rate() -> None:
    torch.manual_seed(0)
    a = torch.randn(64, 4, requires_grad=True)
    target = torch.randn(64, 4)
    density = LogisticMixture(4, components=3, spread=3.0)
    lam = 0.07

    def grads(loss: torch.Tensor) -> list[torch.Tensor]:
        return torch.autograd.grad(loss, [a, *density.parameters()])

    injected = torch.mean((AddRate.apply(a * 2, density.bits(a), lam) - target) ** 2)
    explicit = torch.mean((a * 2 - target) ** 2) + lam * density.bits(a).mean()
    for g1, g2 in zip(grads(injected), grads(explicit), strict=True):
        torch.testing.assert_close(g1, g2)


def test_density_is_a_pmf_over_unit_bins() -> None:
    density = LogisticMixture(2, components=4, spread=20.0)
    grid = torch.arange(-400, 401, dtype=torch.float32).unsqueeze(1).repeat(1, 2)
    with torch.no_grad():
        total = density.mass(grid).sum(dim=0)
    torch.testing.assert_close(total, torch.ones(2), atol=1e-4, rtol=0)


def test_eval_decodes_rounded_latents() -> None:
    from models.training.architectures import build

    net = RateAE(build("ae3d200", 4, 3), lam=1e-4).eval()
    y = torch.randn(32, 3) * 50
    with torch.no_grad():
        torch.testing.assert_close(net.decode(y), net.decode(torch.round(y)))
        torch.testing.assert_close(net(torch.randn(5, 4)).shape, torch.Size([5, 4]))


@pytest.mark.slow
def test_short_training_writes_a_coded_model_dir(tmp_path: Path) -> None:
    from docs_commands import check_aetrig

    from emulator import cli
    from models.runtime import latent_coding as lc
    from models.runtime.card import load_model_dir
    from models.runtime.data import load_jets

    out = tmp_path / "rd"
    argv = ["train", "--rate-lambda", "0.0001", "--input", str(SAMPLE), "--latent", "3", "--loss-weights",
            "pt=1", "eta=2.25", "phi=5.5", "e=2.45", "--epochs", "2", "--batch-size", "512", "--max-events", "1500",
            "--no-progress", "--out", str(out)]
    assert cli.main(argv) == 0
    model = load_model_dir(out)
    card = model.card
    assert card["training"]["command"].startswith("aetrig train --rate-lambda 0.0001 --input ")
    assert card["training"]["rate"]["lambda"] == 1e-4
    check_aetrig(card["training"]["command"].split()[1:], "the card's training command")  # it parses
    assert card["source"]["rebuild"]["commands"] == [card["training"]["command"]]
    assert len(card["source"]["rebuild"]["data"]) == 2  # qcd.root (training and measured) and ttbar.root (measured)
    assert json.loads((out / "card.json").read_text())["bits_per_jet"] == card["bits_per_jet"] > 0
    assert card["metrics"]["samples"]["qcd.root"]["round_trip_exact"]
    x = load_jets([SAMPLE], model.variables, max_events=300).values.astype(np.float32)
    entropy = lc.load_entropy_model(out)
    q = lc.quantise(lc.encoder_session(out).run(["latent"], {"x": x})[0], entropy)
    assert np.array_equal(lc.decode(lc.encode(q, entropy), len(x), entropy), q)
    assert not (out / "checkpoint.pt").exists()


RD_MODELS = sorted(p for p in (REPO / "models" / "zoo").glob("RD_AE_*") if (p / "card.json").is_file())


@pytest.mark.parametrize("path", RD_MODELS, ids=[p.name for p in RD_MODELS])
def test_shipped_graphs_match_torch(path: Path) -> None:
    """Encoder and decoder equal torch; the scorer too, except jets with a latent within 1e-3 of a rounding edge."""
    import onnxruntime as ort

    from models.runtime.card import load_model_dir
    from models.runtime.data import load_jets
    from models.training.graphs import DecoderGraph, EncoderGraph, ScorerGraph
    from models.training.rate_ae import load_rate_checkpoint

    model = load_model_dir(path)
    assert json.loads((path / "card.json").read_text())["precision"] == "float32, rint latents"
    net, norm = load_rate_checkpoint(path)
    x = load_jets([SAMPLE], model.variables, max_events=3000).values.astype(np.float32)

    def run(graph: str, name: str, value: np.ndarray) -> list[np.ndarray]:
        return ort.InferenceSession(str(path / graph), providers=["CPUExecutionProvider"]).run(None, {name: value})

    with torch.no_grad():
        y = EncoderGraph(net, norm)(torch.from_numpy(x)).numpy()
        q = np.rint(y).astype(np.float32)
        reco = DecoderGraph(net, norm)(torch.from_numpy(q)).numpy()
        _, reco_s, _ = (t.numpy() for t in ScorerGraph(net, norm)(torch.from_numpy(x)))
    np.testing.assert_allclose(run("encoder.onnx", "x", x)[0], y, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(run("decoder.onnx", "latent", q)[0], reco, rtol=1e-4, atol=1e-4)
    safe = np.all(np.abs(np.abs(y - np.floor(y)) - 0.5) > 1e-3, axis=1)
    assert safe.mean() > 0.99
    np.testing.assert_allclose(run("scorer.onnx", "x", x)[1][safe], reco_s[safe], rtol=1e-4, atol=1e-4)
