"""Real `aetrig run`s of the four-vector event model (models/zoo/EVT_AE_4v), the training domain and the threshold
check (does the flagged fraction match the threshold's?). A stream without substructure is scored by EVT_AE_4v
(announced, quiet on the bundled background). A stream with soft jets (2-10 GeV, as a file written without a jet
pt cut keeps them; outside the models' pt > 20 GeV domain) keeps every jet in the recording and counts the jets
outside; with the selection on, its flags are those of the same events without the soft jets; with the selection
switched off (--score-all-jets) it warns that the threshold may not fit, naming both readings, the out-of-domain
share and the recalibration command. `aetrig decode --plots` reports the fidelity inside and outside the domain
apart."""

from __future__ import annotations

import json
import subprocess
from functools import partial
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from aetrig_cli import REPO, run_aetrig

from consumer.offline.verify import verify_recording
from emulator.runtime.recording import open_recording
from models.runtime.card import load_model_dir
from models.runtime.event_scoring import event_anomaly_scores

QCD = REPO / "producer" / "samples" / "qcd.root"
FOUR_VECTOR_MODEL = REPO / "models" / "zoo" / "EVT_AE_4v"
N_EVENTS = 3000


_aetrig = partial(run_aetrig, timeout=300)


def _run(out: Path, *argv: str) -> tuple[subprocess.CompletedProcess, dict]:
    # --score-bits 23: the recording keeps each score whole (the default keeps 3 mantissa bits)
    run = _aetrig("run", *argv, "--rate", "0", "--out", str(out), "--status-interval", "0", "--score-bits", "23")
    assert run.returncode == 0, run.stderr[-3000:]
    return run, json.loads((out / "summary.json").read_text())


def _qcd(n: int) -> ak.Array:
    with uproot.open(QCD) as f:
        return f["events"].arrays(["jet_pt", "jet_eta", "jet_phi", "jet_m", "event_number"], entry_stop=n)


def _soft_jet_file(path: Path, n: int = N_EVENTS, seed: int = 7) -> tuple[int, int]:
    """The first ``n`` QCD events (pt, eta, phi, m) with 3-6 soft jets (pt 2-10 GeV, |eta| < 4) appended to each,
    after its own jets (the file stays pt-sorted), as PHYSLITE keeps them. Returns (soft jets, all jets)."""
    a = _qcd(n)
    rng = np.random.default_rng(seed)
    k = rng.integers(3, 7, n)
    # pt descending over all soft jets, so within each event too
    soft = {"pt": -np.sort(-rng.uniform(2, 10, k.sum())), "eta": rng.uniform(-4, 4, k.sum()),
            "phi": rng.uniform(-np.pi, np.pi, k.sum()), "m": rng.uniform(1, 4, k.sum())}
    columns = {}
    for v in ("pt", "eta", "phi", "m"):
        both = ak.concatenate([a[f"jet_{v}"], ak.unflatten(soft[v].astype(np.float32), k)], axis=1)
        columns[v] = ak.values_astype(both, np.float32)
    jets = ak.zip(columns)
    with uproot.recreate(path) as f:
        f.mktree("events", {"jet": jets.type.content, "event_number": np.uint64},
                 field_name=lambda outer, inner: f"{outer}_{inner}", counter_name=lambda counted: "njet")
        f["events"].extend({"jet": jets, "event_number": a["event_number"].to_numpy()})
    return int(k.sum()), int(ak.sum(ak.num(columns["pt"])))


pytestmark = pytest.mark.skipif(not (FOUR_VECTOR_MODEL / "card.json").is_file(), reason="EVT_AE_4v not shipped")


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_four_vector_model_scores_a_stream_without_substructure_and_stays_quiet(tmp_path: Path) -> None:
    run, summary = _run(tmp_path / "run", "--input", str(QCD), "--columns", "pt,eta,phi,m,e", "--events", "6000")
    why = "stream lacks jet_width, jet_tau21, jet_tau32 needed by EVT_AE_ht"
    assert f"anomaly scoring: event-level model EVT_AE_4v (fallback: {why})" in run.stderr
    assert summary["anomaly"]["scoring"] == f"event-level model EVT_AE_4v (fallback: {why})"
    assert summary["anomaly"]["model"] == "EVT_AE_4v" and summary["anomaly"]["level"] == "event"
    assert summary["anomaly"]["domain"] == {"min_pt_gev": 20.0, "max_abs_eta": 4.5, "max_jets": 10}
    assert summary["anomaly"]["out_of_domain_jets"] == 0 and summary["anomaly"]["domain_selection"] == "on"
    check = summary["threshold_check"]
    assert check["events"] == 6000 and check["expected_flagged"] == pytest.approx(6.0)
    assert check["mismatch"] is None and check["warning"] is None  # the bundled background: quiet
    assert "WARNING" not in run.stderr and "THRESHOLD MAY NOT FIT" not in (tmp_path / "run/logs/encoder-0.log"
                                                                           ).read_text()
    model = load_model_dir(FOUR_VECTOR_MODEL, level="event")
    a = _qcd(6000)
    ev = open_recording(tmp_path / "run").events()
    offline = event_anomaly_scores(model, {v: ak.to_numpy(ak.flatten(a[f"jet_{v}"])) for v in model.variables},
                                   ak.to_numpy(ak.num(a["jet_pt"])))
    np.testing.assert_allclose(ev["event_score"][np.argsort(ev["entry"])], offline, rtol=1e-5)
    assert verify_recording(tmp_path / "run").ok


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_soft_jets_are_kept_counted_and_left_out_unless_asked_and_the_warning_fires(tmp_path: Path) -> None:
    soft_path = tmp_path / "soft.root"
    n_soft, n_jets = _soft_jet_file(soft_path)
    # selection on (default): the soft jets are recorded and counted, the model sees the events as in training
    run_on, on = _run(tmp_path / "on", "--input", str(soft_path), "--loops", "1")
    assert on["anomaly"]["model"] == "EVT_AE_4v" and on["anomaly"]["out_of_domain_jets"] == n_soft
    assert on["threshold_check"]["jets"] == n_jets
    assert on["threshold_check"]["out_of_domain_share"] == pytest.approx(n_soft / n_jets)
    assert f"{n_soft} of {n_jets} jets" in run_on.stdout
    rec = open_recording(tmp_path / "on")
    assert int(rec.events()["n_jets"].sum()) == n_jets  # the compression model encoded every jet
    model = load_model_dir(FOUR_VECTOR_MODEL, level="event")
    a = _qcd(N_EVENTS)
    clean = event_anomaly_scores(model, {v: ak.to_numpy(ak.flatten(a[f"jet_{v}"])) for v in model.variables},
                                 ak.to_numpy(ak.num(a["jet_pt"])))
    ev_on = rec.events()
    np.testing.assert_allclose(ev_on["event_score"][np.argsort(ev_on["entry"])], clean, rtol=1e-5)
    assert on["threshold_check"]["warning"] is None
    # selection off: the same stream, every jet given to the model: the flagged fraction is far off and it says so
    run_off, off = _run(tmp_path / "off", "--input", str(soft_path), "--loops", "1", "--score-all-jets")
    assert off["anomaly"]["domain_selection"] == "off (--score-all-jets)"
    check = off["threshold_check"]
    assert check["mismatch"] == "above" and check["flagged"] > 10 * check["expected_flagged"]
    for part in ("THRESHOLD MAY NOT FIT THIS STREAM", "rich in signal", "does not fit this background",
                 f"{100 * n_soft / n_jets:.1f}% of the jets are outside",
                 f"aetrig calibrate --model {FOUR_VECTOR_MODEL}"):
        assert part in check["warning"], part
        assert part in run_off.stderr, part
        assert part in (tmp_path / "off/logs/encoder-0.log").read_text(), part
    assert off["events"]["flagged"] == check["flagged"]  # information only: the flags are the model's
    assert verify_recording(tmp_path / "off").ok

    dec = _aetrig("decode", str(tmp_path / "on"), "--out", str(tmp_path / "dec.root"), "--plots",
                  str(tmp_path / "plots"))
    assert dec.returncode == 0, dec.stderr[-2000:]
    by_domain = json.loads((tmp_path / "plots" / "summary.json").read_text())["by_domain"]
    assert by_domain["inside"]["n_jets"] == n_jets - n_soft and by_domain["outside"]["n_jets"] == n_soft
    assert f"outside the training domain ({n_soft} jets)" in dec.stdout
    inside_pt = by_domain["inside"]["stats"]["pt"]["core_half_width"]
    outside_pt = by_domain["outside"]["stats"]["pt"]["core_half_width"]
    assert 0 < inside_pt < outside_pt  # the compression model is worse on jets it never saw
