"""models/runtime/latent_coding.py: the ANS round trip is bit-exact (escapes, tiny and empty blocks), the coded
size is within a few % of the ideal entropy sum, and every shipped RD_AE_* model codes real jets exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.runtime import latent_coding as lc

REPO = Path(__file__).resolve().parent.parent
ZOO = REPO / "models" / "zoo"
SAMPLE = REPO / "producer" / "samples" / "qcd.root"
RD_MODELS = sorted(p for p in ZOO.glob("RD_AE_*") if (p / "card.json").is_file())


def _symbols(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.rint(rng.laplace(3, [4, 20, 60], size=(n, 3))).astype(np.int32)


@pytest.fixture(scope="module")
def model() -> lc.EntropyModel:
    return lc.fit_tables(_symbols(50_000), np.array([1.0, 0.5, 2.0]))


@pytest.mark.parametrize("n", [0, 1, 2, 17, 5000])
def test_round_trip_is_exact(model: lc.EntropyModel, n: int) -> None:
    q = _symbols(n, seed=n + 1)
    data = lc.encode(q, model)
    assert len(data) % 4 == 0 and (n > 0 or data == b"")
    back = lc.decode(data, n, model)
    assert back.dtype == np.int32 and np.array_equal(back, q)


def test_escapes_round_trip(model: lc.EntropyModel) -> None:
    q = _symbols(1000, seed=5)
    q[3, 0], q[10, 1], q[11, 1], q[999, 2] = 2**31 - 1, -(2**31), 10**6, -7 * 10**5
    back = lc.decode(lc.encode(q, model), len(q), model)
    assert np.array_equal(back, q)


def test_coded_size_is_close_to_the_ideal_entropy(model: lc.EntropyModel) -> None:
    q = _symbols(20_000, seed=9)
    coded_bits = 8 * len(lc.encode(q, model))
    ideal = lc.ideal_bits(q, model)
    assert ideal < coded_bits < 1.02 * ideal + 64, (coded_bits, ideal)


def test_entropy_model_json_round_trip_and_errors(model: lc.EntropyModel) -> None:
    again = lc.EntropyModel.from_json(json.loads(json.dumps(model.to_json())))
    q = _symbols(300, seed=3)
    assert lc.encode(q, again) == lc.encode(q, model)
    bad = model.to_json()
    bad["latents"][0]["pmf"][0] = 0
    with pytest.raises(lc.LatentCodingError, match="positive"):
        lc.EntropyModel.from_json(bad)
    with pytest.raises(lc.LatentCodingError, match="format"):
        lc.EntropyModel.from_json({**model.to_json(), "format": "x"})
    with pytest.raises(lc.LatentCodingError, match="shape"):
        lc.encode(q[:, :2], model)


def test_quantise_rounds_half_to_even(model: lc.EntropyModel) -> None:
    latent = np.array([[0.5, 0.25, 3.0], [1.5, -0.25, -3.0]], np.float32)  # deltas 1, 0.5, 2
    assert lc.quantise(latent, model).tolist() == [[0, 0, 2], [2, 0, -2]]
    assert lc.dequantise(lc.quantise(latent, model), model).tolist() == [[0.0, 0.0, 4.0], [2.0, 0.0, -4.0]]


def test_rate_family_is_shipped() -> None:
    assert len(RD_MODELS) >= 3, f"rate-trained models: {RD_MODELS}"
    bits = []
    for path in RD_MODELS:
        card = json.loads((path / "card.json").read_text())
        assert lc.is_rate_model(path) and lc.ENTROPY_MODEL_NAME in card["files"] and card["bits_per_jet"] > 0
        bits.append((card["training"]["rate"]["lambda"], card["bits_per_jet"]))
    assert not lc.is_rate_model(ZOO / "AE_3D_200_ptetaphie")
    rates = [b for _, b in sorted(bits)]
    assert rates == sorted(rates, reverse=True), f"bits per jet must fall as lambda grows: {sorted(bits)}"


@pytest.mark.parametrize("path", RD_MODELS, ids=[p.name for p in RD_MODELS])
def test_shipped_model_codes_real_jets_exactly(path: Path) -> None:
    from models.runtime.card import load_model_dir
    from models.runtime.data import load_jets
    from models.runtime.evaluate import run_scorer

    model = load_model_dir(path)  # verifies entropy_model.json's sha256 too
    x = load_jets([SAMPLE], model.variables, max_events=1500).values.astype(np.float32)
    entropy = lc.load_entropy_model(path)
    data = lc.code_jets(path, x)
    q = lc.quantise(lc.encoder_session(path).run(["latent"], {"x": x})[0], entropy)
    assert np.array_equal(lc.decode(data, len(x), entropy), q)
    assert 8 * len(data) < 1.05 * lc.ideal_bits(q, entropy) + 64
    _, reco, _ = run_scorer(model.scorer_path, x)
    np.testing.assert_allclose(lc.decode_jets(path, data, len(x)), reco, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ the entropy model inside the card


def _rd_card(name: str = "RD_AE_l2") -> dict:
    return json.loads((ZOO / name / "card.json").read_text())


@pytest.mark.parametrize("path", RD_MODELS, ids=[p.name for p in RD_MODELS])
def test_shipped_cards_carry_their_entropy_model(path: Path) -> None:
    card = json.loads((path / "card.json").read_text())
    text = lc.entropy_model_text(card, [])  # no directory to search: the card alone
    file_text = json.dumps(json.loads((path / lc.ENTROPY_MODEL_NAME).read_text()), sort_keys=True,
                           separators=(",", ":"))
    assert text == file_text and lc.is_rate_card(card)
    assert lc.card_entropy_model(card, []).to_json() == lc.load_entropy_model(path).to_json()


def test_card_entropy_model_is_found_anywhere_and_checked() -> None:
    card = _rd_card()
    moved = {**card, "name": "not_in_any_zoo"}
    assert lc.entropy_model_text(moved, [ZOO]) == lc.entropy_model_text(card, [])
    tampered = json.loads(json.dumps(card))
    tampered["entropy_coding"]["model"]["latents"][0]["pmf"][0] += 1
    with pytest.raises(lc.LatentCodingError, match="does not match its model_sha256"):
        lc.entropy_model_text(tampered, [ZOO])


def test_cards_written_before_the_embedding_use_the_zoo_file() -> None:
    card = _rd_card()
    old = {**card, "entropy_coding": {k: v for k, v in card["entropy_coding"].items()
                                      if k not in ("model", "model_sha256")}}
    assert lc.is_rate_card(old)
    assert lc.entropy_model_text(old, [ZOO]) == lc.entropy_model_text(card, [])
    with pytest.raises(lc.LatentCodingError, match="inside its card or under"):
        lc.entropy_model_text({**old, "name": "moved"}, [ZOO])
    plain = json.loads((ZOO / "AE_3D_200_ptetaphie" / "card.json").read_text())
    assert not lc.is_rate_card(plain)
    with pytest.raises(lc.LatentCodingError, match="not rate-trained"):
        lc.entropy_model_text(plain, [ZOO])


def test_embed_in_model_dir_round_trips(tmp_path: Path) -> None:
    import shutil

    target = tmp_path / "RD_copy"
    shutil.copytree(ZOO / "RD_AE_l4", target)
    card = json.loads((target / "card.json").read_text())
    card["entropy_coding"] = {"file": lc.ENTROPY_MODEL_NAME}
    (target / "card.json").write_text(json.dumps(card))
    lc.embed_in_model_dir(target)
    assert lc.entropy_model_text(json.loads((target / "card.json").read_text()), []) == \
        lc.entropy_model_text(_rd_card("RD_AE_l4"), [])
