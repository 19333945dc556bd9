"""The encoder's anomaly scoring (emulator/encoder/anomaly.py), in process on real events of the bundled samples:

* default: the shipped event model scores every event (zero-jet events too) exactly as the offline
  event scoring does, flags = score > its float32 threshold, its card travels as anomaly_card_json;
* a stream without the event model's variables falls back to per-jet max error, announced in the log
  and the report; an explicit --anomaly-model whose variables are missing rejects as missing_variable;
* --anomaly-model none and a per-jet --anomaly-model; a card's score_transform block is applied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from encsink_support import MANIFEST, ROOT

from emulator.encoder.service import EncoderConfig, EncoderService
from emulator.runtime import wire
from emulator.runtime.defaults import DEFAULT_ANOMALY_MODEL
from models.runtime.card import ModelError, load_model_dir, write_card
from models.runtime.event_scoring import event_anomaly_scores

MODEL = ROOT / "models/zoo/AE_3D_200_ptetaphie"
EVENT_MODEL = DEFAULT_ANOMALY_MODEL  # the shipped default event-level model
RAW_EVENT_MODEL = ROOT / "models/zoo/EVT_AE_k1"  # an event model without a score_transform block
SAMPLE = ROOT / "producer/samples/darkshower.root"
ALL_VARS = ("pt", "eta", "phi", "m", "e", "width", "tau21", "tau32")
MANIFEST_SHA256 = wire.sha256_hex(wire.canonical_json(MANIFEST))


@pytest.fixture(scope="module")
def jets() -> dict[str, np.ndarray]:
    """The first 3000 dark-shower events: counts and flat jet columns (with some zero-jet events made)."""
    with uproot.open(SAMPLE) as f:
        arrays = f["events"].arrays([f"jet_{v}" for v in ALL_VARS], entry_stop=3000)
    counts = np.asarray(ak.num(arrays["jet_pt"]), np.int64)
    keep_event = np.arange(3000) % 97 != 0  # every 97th event loses its jets: zero-jet events are scored too
    keep_jet = np.repeat(keep_event, counts)
    out = {v: np.asarray(ak.flatten(arrays[f"jet_{v}"]), np.float32)[keep_jet] for v in ALL_VARS}
    out["counts"] = np.where(keep_event, counts, 0)
    return out


def frames(jets: dict[str, np.ndarray], seq: int, lo: int, hi: int, variables=ALL_VARS) -> list[memoryview]:
    counts = jets["counts"]
    starts = np.concatenate([[0], np.cumsum(counts)])
    j0, j1 = starts[lo], starts[hi]
    n = hi - lo
    cols = {"n_jets": counts[lo:hi].astype(np.uint32), "event_id": np.arange(lo, hi, dtype=np.uint64),
            "file_index": np.zeros(n, np.uint32), "entry": np.arange(lo, hi, dtype=np.uint64),
            "event_number": np.arange(lo, hi, dtype=np.uint64)}
    for v in variables:
        cols[f"jet_{v}"] = jets[v][j0:j1]
    return [memoryview(bytes(f)) for f in wire.encode(wire.KIND_EVENTS, 1, seq, cols, t_send=0.0, rate_hz=1e5,
                                                      manifest_sha256=MANIFEST_SHA256)]


def service(**kw: object) -> tuple[EncoderService, list[wire.Batch]]:
    svc = EncoderService(EncoderConfig(model=MODEL, connect="tcp://127.0.0.1:1", sink="tcp://127.0.0.1:1",
                                       max_batch_jets=4096, **kw))
    sent: list[wire.Batch] = []
    svc.send = lambda push, fr: sent.append(wire.validate(wire.decode([bytes(f) for f in fr]))) or True
    return svc, sent


def run(svc: EncoderService, jets: dict[str, np.ndarray], variables=ALL_VARS, n: int = 3000, size: int = 700) -> None:
    for seq, lo in enumerate(range(0, n, size)):
        svc.accept(frames(jets, seq, lo, min(lo + size, n), variables))
        if svc.due(queue_empty=True) or lo + size >= n:
            svc.run_micro_batch(None)


def test_default_event_model_scores_like_offline(jets, caplog) -> None:
    caplog.set_level(logging.INFO, "aetrig.encode")
    svc, sent = service()
    run(svc, jets)
    event = load_model_dir(EVENT_MODEL, level="event")
    offline = event_anomaly_scores(event, {v: jets[v] for v in event.variables}, jets["counts"])
    score = np.concatenate([b.columns["event_score"] for b in sent])
    flag = np.concatenate([b.columns["flag"] for b in sent]).astype(bool)
    entry = np.concatenate([b.columns["entry"] for b in sent]).astype(np.int64)
    assert len(score) == 3000 and np.array_equal(entry, np.arange(3000))
    np.testing.assert_allclose(score, offline, rtol=1e-5, atol=0)
    threshold = np.float32(event.threshold(fpr=1e-3))
    assert all(b.header["threshold"] == float(threshold) for b in sent)
    assert np.array_equal(flag, score > threshold) and 0 < flag.sum() < 3000
    empty = jets["counts"] == 0
    assert empty.sum() >= 31 and (score[empty] > 0).all()  # zero-jet events carry the event model's score
    for b in sent:
        assert b.header["anomaly_model"] == EVENT_MODEL.name and b.header["model"] == "AE_3D_200_ptetaphie"
        assert b.header["anomaly_card_sha256"] == hashlib.sha256(event.card_json.encode()).hexdigest()
        assert b.header["manifest_sha256"] == MANIFEST_SHA256  # copied from the events header
    report = svc.report()["anomaly"]
    assert report["scoring"] == f"event-level model {EVENT_MODEL.name}" and report["level"] == "event"
    assert report["card_sha256"] == hashlib.sha256(event.card_json.encode()).hexdigest()
    assert svc.report()["anomaly_events"] == 3000
    assert f"anomaly scoring: event-level model {EVENT_MODEL.name}" in caplog.text


def test_stream_without_substructure_gets_the_four_vector_model(jets, caplog) -> None:
    caplog.set_level(logging.INFO, "aetrig.encode")
    svc, sent = service()
    run(svc, jets, variables=("pt", "eta", "phi", "m", "e"), n=1400)
    report = svc.report()["anomaly"]
    why = f"stream lacks jet_width, jet_tau21, jet_tau32 needed by {EVENT_MODEL.name}"
    assert report["level"] == "event" and report["model"] == "EVT_AE_4v" and report["fallback"] == why
    assert report["scoring"] == f"event-level model EVT_AE_4v (fallback: {why})"
    assert why in caplog.text
    four = load_model_dir(ROOT / "models/zoo/EVT_AE_4v", level="event")
    keep = slice(0, int(jets["counts"][:1400].sum()))
    offline = event_anomaly_scores(four, {v: jets[v][keep] for v in four.variables}, jets["counts"][:1400])
    np.testing.assert_allclose(np.concatenate([b.columns["event_score"] for b in sent]), offline, rtol=1e-5)
    assert all(b.header["anomaly_model"] == "EVT_AE_4v" for b in sent)


def test_stream_without_the_four_vector_falls_back_loudly(jets, caplog) -> None:
    svc, sent = service()
    run(svc, jets, variables=("pt", "eta", "phi", "e"), n=1400)
    report = svc.report()["anomaly"]
    assert report["level"] == "jet" and report["model"] == "AE_3D_200_ptetaphie"
    assert report["scoring"] == ("per-jet max error of AE_3D_200_ptetaphie (fallback: stream lacks jet_m, jet_width, "
                                 f"jet_tau21, jet_tau32 needed by {EVENT_MODEL.name}; stream lacks jet_m needed by "
                                 "EVT_AE_4v)")
    assert "fallback: stream lacks jet_m" in caplog.text
    for b in sent:
        assert b.header["anomaly_model"] == "AE_3D_200_ptetaphie"
        assert b.header["anomaly_card_sha256"] == b.header["card_sha256"]
        counts = b.columns["n_jets"].astype(np.int64)
        starts = np.cumsum(counts) - counts
        want = np.zeros(len(counts), np.float32)
        want[counts > 0] = np.maximum.reduceat(b.columns["jet_error"], starts[counts > 0])
        assert np.array_equal(b.columns["event_score"], want)


def test_explicit_event_model_rejects_a_stream_without_its_variables(jets) -> None:
    svc, sent = service(anomaly_model=str(EVENT_MODEL))
    svc.accept(frames(jets, 0, 0, 100, variables=("pt", "eta", "phi", "m", "e")))
    assert svc.rejections.by_reason["missing_variable"] == 1 and not svc.pending
    run(svc, jets, n=700)
    assert len(sent) == 1 and sent[0].header["anomaly_model"] == EVENT_MODEL.name


def test_none_and_bad_anomaly_models(jets, tmp_path: Path) -> None:
    svc, sent = service(anomaly_model="none")
    run(svc, jets, n=700)
    assert svc.report()["anomaly"]["scoring"] == "per-jet max error of AE_3D_200_ptetaphie"
    assert sent[0].header["anomaly_model"] == "AE_3D_200_ptetaphie"
    with pytest.raises(ModelError, match="is a per-jet model; give an event-level model"):
        service(anomaly_model=str(MODEL))
    with pytest.raises(ModelError, match="does not exist"):
        service(anomaly_model=str(tmp_path / "nope"))


def test_score_transform_block_is_applied(jets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A card with a score_transform block: the stream's score is the transform (models/runtime/score_transform.py,
    here a stand-in with its interface: transform_block, compile_transform(card).score(error, latent, ht)) of the
    error and the event HT, the same as the offline event scoring gives."""
    import sys
    import types

    import models.runtime
    from models.runtime.trigger_menu import JetSelection, trigger_variables

    class Compiled:
        def __init__(self, card: dict) -> None:
            self.scale = card["score_transform"]["scale"]

        def score(self, error: np.ndarray, latent: np.ndarray, ht: np.ndarray) -> np.ndarray:
            return np.asarray(error, np.float64) * self.scale + 1e-3 * ht

    fake = types.ModuleType("models.runtime.score_transform")
    fake.transform_block = lambda card: card["score_transform"]
    fake.compile_transform = Compiled
    monkeypatch.setitem(sys.modules, "models.runtime.score_transform", fake)
    monkeypatch.setattr(models.runtime, "score_transform", fake, raising=False)

    event = load_model_dir(RAW_EVENT_MODEL, level="event")
    error = event_anomaly_scores(event, {v: jets[v] for v in event.variables}, jets["counts"])
    ht = trigger_variables(jets["pt"], jets["eta"], jets["counts"], JetSelection())[0]
    model_dir = tmp_path / "EVT_T"
    shutil.copytree(RAW_EVENT_MODEL, model_dir)
    card = json.loads((model_dir / "card.json").read_text())
    card["score_transform"] = {"kind": "test", "scale": 2.0, "ht": {"min_pt": 30.0, "max_abs_eta": 2.5}}
    write_card(model_dir, card)
    svc, sent = service(anomaly_model=str(model_dir), threshold=2.0)
    run(svc, jets)
    score = np.concatenate([b.columns["event_score"] for b in sent])
    np.testing.assert_allclose(score, 2.0 * error + 1e-3 * ht, rtol=1e-5)
    offline = event_anomaly_scores(load_model_dir(model_dir, level="event"), {v: jets[v] for v in ALL_VARS},
                                   jets["counts"])
    np.testing.assert_allclose(score, offline, rtol=1e-6)
