"""`aetrig evaluate --recording`: recorded event scores land on their (file, entry), and the row equals the
same model scored offline on the same events; a recording is refused when not made with the model given for it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from consumer.offline.evaluate_recording import RecordingMismatch, recording_set
from consumer.offline.studies.common import load_model, load_sample
from consumer.offline.studies.study_anomaly import scores
from consumer.sink.segment_writer import SegmentWriter
from emulator.cli import main as cli_main
from emulator.runtime.defaults import SAMPLES_DIR, ZOO
from emulator.runtime.recording import Layout, jagged_record, segment_name
from models.runtime import trigger_menu as tm
from models.runtime.hashing import sha256_file

MODEL = ZOO / "AE_3D_200_ptetaphie"
N = 1000  # events read per sample
QCD, ZPRIME, TTBAR = (SAMPLES_DIR / f"{n}.root" for n in ("qcd", "zprime", "ttbar"))


def write_recording(directory: Path, card: dict, file_index: np.ndarray, entry: np.ndarray,
                    score: np.ndarray, anomaly_card: dict | None = None) -> None:
    """Two segments of a recording with these events (no jets stored: only the event scores matter here)."""
    run_id = 0x1234
    files = [QCD, ZPRIME, TTBAR]
    manifest = {"run_id": run_id, "files": [{"index": i, "path": str(f), "sha256": sha256_file(f)}
                                            for i, f in enumerate(files)], "settings": {"tree": "events"}}
    n = len(entry)
    zero = np.zeros(n, np.int64)
    chunk = {"run_id": np.full(n, run_id, np.uint64), "seq": np.arange(n, dtype=np.uint64),
             "event_id": np.arange(n, dtype=np.uint64), "file_index": file_index.astype(np.uint32),
             "entry": entry.astype(np.uint64), "event_number": entry.astype(np.uint64),
             "event_score": score.astype(np.float32), "flag": np.zeros(n, np.uint8),
             "jet": jagged_record(zero, {"latent_0": np.zeros(0, np.float32), "error": np.zeros(0, np.float32)})}
    half = n // 2
    for idx, sl in enumerate((slice(0, half), slice(half, n))):
        writer = SegmentWriter(directory / "segments" / segment_name(run_id, idx), json.dumps(card),
                               json.dumps(manifest), Layout(1, "float32", ()),
                               anomaly_card_text=None if anomaly_card is None else json.dumps(anomaly_card))
        writer.commit({k: v[sl] for k, v in chunk.items()})
        writer.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    bkg = load_sample("background", [QCD], max_events=N)
    sig = load_sample("zprime", [ZPRIME], max_events=N)
    model = load_model(MODEL)
    off_b, off_s = scores(model, bkg)["event"], scores(model, sig)["event"]
    rng = np.random.default_rng(4)
    # qcd entries 0..1199 (200 beyond the events read), the first 100 again (a second loop), zprime 0..299,
    # and 50 ttbar events (a file that is not among the samples); out of order
    idx = np.concatenate([np.zeros(1200, int), np.zeros(100, int), np.ones(300, int), np.full(50, 2)])
    entry = np.concatenate([np.arange(1200), np.arange(100), np.arange(300), np.arange(50)])
    score = np.concatenate([np.concatenate([off_b, np.full(200, 0.5)]), off_b[:100], off_s[:300], np.full(50, 9.0)])
    order = rng.permutation(len(entry))
    rec = tmp_path_factory.mktemp("rec") / "recording"
    card = json.loads((MODEL / "card.json").read_text())
    write_recording(rec, card, idx[order], entry[order], score[order])
    return {"bkg": bkg, "sig": sig, "model": model, "off_b": off_b, "off_s": off_s, "rec": rec, "card": card}


def test_recorded_scores_land_on_their_events(setup) -> None:
    st = recording_set([str(setup["rec"])], setup["bkg"], {"zprime": setup["sig"]}, setup["model"])
    np.testing.assert_allclose(st.background, setup["off_b"].astype(np.float32), rtol=0, atol=0)
    s = st.signals["zprime"]
    np.testing.assert_allclose(s[:300], setup["off_s"][:300].astype(np.float32), rtol=0, atol=0)
    assert np.isnan(s[300:]).all()
    join = st.extra["join"]
    assert join["n_recorded"] == 1650 and join["n_not_in_samples"] == 250 and join["n_repeats"] == 100
    assert join["max_repeat_difference"] == 0 and join["n_scored"] == {"background": N, "zprime": 300}
    assert st.model == "AE_3D_200_ptetaphie" and "'AE_3D_200_ptetaphie'" in st.note


def test_recording_row_equals_the_model_on_the_same_events(setup, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    code = cli_main(["evaluate", "--background", str(QCD), "--signal", f"zprime={ZPRIME}", "--max-events", str(N),
                     "--models", str(MODEL), "--recording", str(setup["rec"]), "--recording-model", str(MODEL),
                     "--out", str(out), "--no-plots"])
    assert code == 0
    res = json.loads((out / "evaluate.json").read_text())
    row = res["models"]["recording (AE_3D_200_ptetaphie)"]
    assert row["kind"] == "recording" and row["n_background"] == N
    assert row["agreement_with_offline"]["max_abs_difference"] < 1e-6
    # independently: trigger_menu on the offline scores of the 300 recorded signal events
    ht_b, lead_b = tm.trigger_variables(setup["bkg"].column("pt"), setup["bkg"].column("eta"), setup["bkg"].counts)
    ht_s, lead_s = tm.trigger_variables(setup["sig"].column("pt"), setup["sig"].column("eta"), setup["sig"].counts)
    expected = tm.judge(tm.TriggerScores(setup["off_b"].astype(np.float32).astype(float), ht_b, lead_b),
                        tm.TriggerScores(setup["off_s"][:300].astype(np.float32).astype(float), ht_s[:300],
                                         lead_s[:300]))
    got = row["signals"]["zprime"]
    assert got["auc"] == pytest.approx(expected["auc"], abs=1e-12)
    for key, r in expected["fpr"].items():
        for field in ("tpr", "ht_tpr", "lead_pt_tpr", "pure_tpr", "n_background_pass", "n_signal", "reliable"):
            assert got["fpr"][key][field] == pytest.approx(r[field]), (key, field)
    assert got["fpr"]["0.01"]["n_signal"] == 300
    assert res["models"]["AE_3D_200_ptetaphie"]["signals"]["zprime"]["fpr"]["0.01"]["n_signal"] == N
    md = (out / "evaluate.md").read_text()
    assert "the recording's card names model 'AE_3D_200_ptetaphie'" in md


def test_recording_not_made_with_the_given_model_is_refused(setup, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["evaluate", "--background", str(QCD), "--signal", f"zprime={ZPRIME}", "--max-events", "200",
                     "--models", str(MODEL), "--recording", str(setup["rec"]), "--recording-model", "TLA_4D_leading"])
    assert code == 2
    assert "not the model given for it" in capsys.readouterr().err
    # same name, other graphs: refused too
    card = json.loads(json.dumps(setup["card"]))
    card["files"]["scorer.onnx"] = "0" * 64
    other = tmp_path / "other"
    write_recording(other, card, np.zeros(10, int), np.arange(10), np.zeros(10))
    with pytest.raises(RecordingMismatch, match=r"sha256 scorer\.onnx"):
        recording_set([str(other)], setup["bkg"], {"zprime": setup["sig"]}, setup["model"])
    # and two recordings of different models are not merged into one row
    with pytest.raises(RecordingMismatch, match="different models"):
        recording_set([str(setup["rec"]), str(other)], setup["bkg"], {"zprime": setup["sig"]})


def test_recording_row_is_named_by_the_model_that_scored(setup, tmp_path: Path) -> None:
    """Event-level anomaly scoring: the row is the anomaly card's model, checked against --recording-model."""
    event_card = json.loads((ZOO / "EVT_AE_k1" / "card.json").read_text())
    rec = tmp_path / "rec"
    write_recording(rec, setup["card"], np.zeros(10, int), np.arange(10), np.ones(10), anomaly_card=event_card)
    st = recording_set([str(rec)], setup["bkg"], {"zprime": setup["sig"]}, load_model(ZOO / "EVT_AE_k1", level=None))
    assert st.model == "EVT_AE_k1" and st.name == "recording (EVT_AE_k1)"
    with pytest.raises(RecordingMismatch, match="not the model given for it"):
        recording_set([str(rec)], setup["bkg"], {"zprime": setup["sig"]}, setup["model"])
