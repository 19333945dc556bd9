"""Stream equals offline: a real `aetrig run` on the bundled QCD and dark-shower samples scores
every event with the default event model, and each recorded event_score equals models.runtime.event_scoring's
offline score of the same (file, entry) within 1e-5 relative; the recording names the model (anomaly_card,
card sha256 in the summary), verify checks its flags against the recorded thresholds, decode carries it on.
A stream without the event model's variables falls back to per-jet max error, announced at start-up and in
the summary."""

from __future__ import annotations

import hashlib
import json
from functools import partial
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from aetrig_cli import REPO, run_aetrig

from consumer.offline.verify import verify_recording
from emulator.runtime.defaults import DEFAULT_ANOMALY_MODEL, DEFAULT_MODEL
from emulator.runtime.recording import open_recording
from models.runtime.card import load_model_dir
from models.runtime.event_scoring import event_anomaly_scores

SAMPLES = [REPO / "producer/samples/qcd.root", REPO / "producer/samples/darkshower.root"]
EVENT_MODEL = DEFAULT_ANOMALY_MODEL  # the shipped default event-level model


_aetrig = partial(run_aetrig, timeout=240)


def _offline(model, path: Path) -> np.ndarray:
    with uproot.open(path) as f:
        arrays = f["events"].arrays([f"jet_{v}" for v in model.variables])
    counts = np.asarray(ak.num(arrays["jet_pt"]))
    return event_anomaly_scores(model, {v: np.asarray(ak.flatten(arrays[f"jet_{v}"])) for v in model.variables},
                                counts)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_recorded_event_scores_equal_offline_event_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = _aetrig("run", "--input", *map(str, SAMPLES), "--loops", "1", "--rate", "0", "--encoders", "2",
                  "--out", str(out), "--status-interval", "0", "--score-bits", "23")  # scores kept whole
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"aetrig run: anomaly scoring: event-level model {EVENT_MODEL.name}" in run.stderr
    model = load_model_dir(EVENT_MODEL, level="event")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["anomaly"]["scoring"] == f"event-level model {EVENT_MODEL.name}"
    assert summary["anomaly"]["card_sha256"] == hashlib.sha256(model.card_json.encode()).hexdigest()
    assert summary["anomaly"]["threshold"] == float(np.float32(model.threshold(fpr=1e-3)))

    rec = open_recording(out)
    assert all(s.anomaly_card == model.card for s in rec.segments)
    assert not rec.has_jet_error  # the event model flags: --jet-errors auto records latents without jet_error
    assert rec.card["name"] == DEFAULT_MODEL.name
    ev = rec.events()
    bits = rec.segments[0].layout["score_bits"]  # format 3 keeps this many mantissa bits of the score
    manifest = json.loads((out / "manifest.json").read_text())
    names = [Path(f["path"]).name for f in manifest["files"]]
    n_checked = 0
    for path in SAMPLES:
        offline = _offline(model, path)
        sel = ev["file_index"] == names.index(path.name)
        entry = ev["entry"][sel].astype(np.int64)
        assert sorted(entry.tolist()) == list(range(len(offline)))  # every event of the file, once
        # rounded away from the threshold: within 2**-bits of the offline score (and 1e-5 for ONNX Runtime)
        np.testing.assert_allclose(ev["event_score"][sel], offline[entry], rtol=2.0 ** -bits + 1e-5, atol=0)
        n_checked += int(sel.sum())
    assert n_checked == len(ev["event_score"]) == summary["events"]["produced"] == 25000
    threshold = np.float32(summary["anomaly"]["threshold"])
    assert (ev["event_threshold"] == threshold).all()
    assert np.array_equal(ev["flag"].astype(bool), ev["event_score"] > threshold)
    dark = ev["file_index"] == names.index("darkshower.root")
    assert ev["flag"][dark].mean() > 10 * max(ev["flag"][~dark].mean(), 1e-4)  # the event model sees the signal

    result = verify_recording(out)
    assert result.ok, result.problems
    assert result.stats["anomaly_models"] == [EVENT_MODEL.name] and result.stats["flags_checked_against_threshold"]
    decoded = tmp_path / "decoded.root"
    dec = _aetrig("decode", str(out), "--out", str(decoded))
    assert dec.returncode == 0, dec.stderr[-2000:]
    with uproot.open(decoded) as f:
        assert json.loads(str(f["anomaly_card"]))["name"] == EVENT_MODEL.name
        assert json.loads(str(f["metadata"]))["anomaly_model"] == EVENT_MODEL.name
        assert (f["events"]["event_threshold"].array(library="np") == threshold).all()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stream_without_the_event_models_variables_falls_back_announced(tmp_path: Path) -> None:
    """Without m (pt, eta, phi, e: neither EVT_AE_ht's substructure nor EVT_AE_4v's four-vector) the per-jet max
    error flags; a stream with the four-vector is scored by EVT_AE_4v (tests/test_four_vector_stream.py)."""
    out = tmp_path / "run"
    run = _aetrig("run", "--input", str(SAMPLES[0]), "--columns", "pt,eta,phi,e", "--events", "3000",
                  "--rate", "0", "--out", str(out), "--status-interval", "0")
    assert run.returncode == 0, run.stderr[-3000:]
    why = (f"fallback: stream lacks jet_m, jet_width, jet_tau21, jet_tau32 needed by {EVENT_MODEL.name}; "
           "stream lacks jet_m needed by EVT_AE_4v")
    compression = DEFAULT_MODEL.name
    assert f"anomaly scoring: per-jet max error of {compression} ({why})" in run.stderr
    assert why in (out / "logs" / "encoder-0.log").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["anomaly"]["scoring"] == f"per-jet max error of {compression} ({why})"
    assert summary["anomaly"]["level"] == "jet"
    rec = open_recording(out)
    assert rec.anomaly_card["name"] == compression
    result = verify_recording(out)  # per-jet scoring: score == max jet error, flags against the threshold
    assert result.ok, result.problems
