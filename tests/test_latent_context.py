"""models/runtime/latent_context.py: the context coder's round trip is bit-exact (escapes, empty events and
blocks), its coded size matches an entropy sum computed jet by jet here (independently of the coder's grouping),
its JSON is checked, and the shipped RD_AE_g23 context model codes real jets exactly in fewer bits than the
factorised tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.runtime import latent_coding as lc
from models.runtime import latent_context as lx

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "zoo" / "RD_AE_g23"
SAMPLE = REPO / "producer" / "samples" / "qcd.root"
FEATURES = [[{"of": "njet", "edges": [2, 4]}],
            [{"of": "rank", "edges": [1, 2]}, {"of": "lead", "latent": 1, "bins": 4}],
            [{"of": "prev", "latent": 2, "bins": 5}, {"of": "self", "latent": 0, "bins": 3}]]
ORDER = (0, 1, 2)


def _events(n_events: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Events of 0-7 jets whose symbols depend on the previous and the leading jet (as pT order and back-to-back
    phi make them in real events)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 8, n_events)
    rows = []
    for n in counts:
        lead = None
        for i in range(n):
            a = int(rng.laplace(0, 6)) if i == 0 else rows[-1][0] - abs(int(rng.laplace(0, 3)))
            b = int(rng.laplace(0, 20)) if i == 0 else -lead[1] + int(rng.laplace(0, 5))
            c = int(rng.laplace(0, 30)) + (rows[-1][2] // 2 if i else 0)
            rows.append((a, b, c))
            lead = lead or rows[-1]
    return np.array(rows, np.int32).reshape(-1, 3), counts


@pytest.fixture(scope="module")
def model() -> lx.ContextModel:
    q, counts = _events(20_000, seed=1)
    base = lc.fit_tables(q, np.array([1.0, 0.5, 2.0]))
    return lx.fit(q, counts, base, ORDER, FEATURES, smoothing=0.5)


@pytest.mark.parametrize("n_events", [0, 1, 2, 17, 3000])
def test_round_trip_is_exact(model: lx.ContextModel, n_events: int) -> None:
    q, counts = _events(n_events, seed=n_events + 7)
    data = lx.encode(q, counts, model)
    assert len(data) % 4 == 0 and (len(q) > 0 or data == b"")
    back = lx.decode(data, counts, model)
    assert back.dtype == np.int32 and np.array_equal(back, q)


def test_events_without_jets_and_escapes_round_trip(model: lx.ContextModel) -> None:
    q, counts = _events(500, seed=3)
    counts[:5] = 0  # leading empty events: the jets move to later events
    q = q[: counts.sum()].copy()
    q[0, 0], q[1, 1], q[2, 2], q[-1, 0] = 2**31 - 1, -(2**31), 10**6, -7 * 10**5  # outside every table
    back = lx.decode(lx.encode(q, counts, model), counts, model)
    assert np.array_equal(back, q)


def _jet_by_jet_bits(q: np.ndarray, counts: np.ndarray, model: lx.ContextModel) -> float:
    """-log2 p of every symbol, each jet's context computed here from its own event (no grouping by rank)."""
    total, start = 0.0, 0
    for n in counts:
        for i in range(n):
            jet, lead, prev = start + i, start, start + i - 1
            for position, spec in enumerate(model.latents):
                context = 0
                for f in spec.features:
                    value = {"rank": i, "njet": n}.get(f.of)
                    if f.of == "self":
                        value = q[jet, f.latent]
                    bins = int(np.searchsorted(f.edges, value, "right")) if value is not None else 0
                    if f.of in ("prev", "lead"):
                        bins = 0 if i == 0 else 1 + int(np.searchsorted(f.edges, q[prev if f.of == "prev" else lead,
                                                                                   f.latent], "right"))
                    context = context * f.n_bins + bins
                table = model.base.tables[spec.latent]
                p = model.probabilities(position, context)
                index = q[jet, spec.latent] - table.offset
                escaped = not 0 <= index < table.size
                total += -np.log2(p[table.size if escaped else index] / p.sum()) + (32 if escaped else 0)
        start += n
    return total


def test_coded_size_matches_a_jet_by_jet_entropy_sum(model: lx.ContextModel) -> None:
    q, counts = _events(2000, seed=11)
    expected = _jet_by_jet_bits(q, counts, model)
    assert lx.ideal_bits(q, counts, model) == pytest.approx(expected, rel=1e-9)
    coded = 8 * len(lx.encode(q, counts, model))
    assert expected < coded < 1.01 * expected + 64, (coded, expected)
    assert expected < lc.ideal_bits(q, model.base)  # the context helps on events built with one


def test_json_round_trip_and_errors(model: lx.ContextModel) -> None:
    data = json.loads(json.dumps(model.to_json()))
    again = lx.coder_from_json(data)
    q, counts = _events(100, seed=5)
    assert isinstance(again, lx.ContextModel) and lx.encode(q, counts, again) == lx.encode(q, counts, model)
    assert isinstance(lx.coder_from_json(model.base.to_json()), lc.EntropyModel)
    for change, match in [(lambda d: d.update(order=[0, 0, 1]), "permutation"),
                          (lambda d: d.update(smoothing=0), "smoothing"),
                          (lambda d: d["latents"][1]["features"].append({"of": "colour", "edges": []}), "feature"),
                          (lambda d: d["latents"][0]["features"].append({"of": "self", "latent": 2, "edges": []}),
                           "not coded before"),
                          (lambda d: d["latents"][0]["features"].append({"of": "prev", "latent": 2, "edges": []}),
                           "not coded before or with it"),
                          (lambda d: d["latents"][2]["counts"].pop(), "context tables"),
                          (lambda d: d["latents"][0]["counts"].__setitem__(0, "1,2"), "entries"),
                          (lambda d: d["latents"][0]["counts"].__setitem__(0, "1,x"), "integers")]:
        bad = json.loads(json.dumps(model.to_json()))
        change(bad)
        with pytest.raises(lc.LatentCodingError, match=match):
            lx.ContextModel.from_json(bad)
    with pytest.raises(lc.LatentCodingError, match="counts' sum"):
        lx.encode(q, counts + 1, model)


def test_the_shipped_context_model_codes_real_jets_exactly_in_fewer_bits() -> None:
    from models.runtime.card import read_card
    from models.runtime.data import load_jets

    card = read_card(MODEL)
    coder = lx.coder_from_text(lx.recording_model_text(card, []))
    assert isinstance(coder, lx.ContextModel)
    assert lx.recording_model_text(card, [], context=False) == lc.entropy_model_text(card, [])
    sample = load_jets([SAMPLE], ["pt", "eta", "phi", "e"], max_events=4000)
    latent = lc.encoder_session(MODEL).run(["latent"], {"x": sample.values.astype(np.float32)})[0]
    q = lc.quantise(latent, coder.base)
    data = lx.encode_block(q, sample.counts, coder)
    assert np.array_equal(lx.decode_block(data, sample.counts, coder), q)
    factorised = lc.encode(q, coder.base)
    assert len(data) < 0.97 * len(factorised), (len(data), len(factorised))
    tampered = json.loads(json.dumps(card))
    tampered["entropy_coding"]["context_model"]["smoothing"] = 2.0
    with pytest.raises(lc.LatentCodingError, match="context_model_sha256"):
        lx.context_text(tampered)
