"""`aetrig calibrate` reads its background with the producer's input options and reader (--input-format, --tree,
--branch-map, --unit, Cartesian maps, the input screen) and calibrates either kind of model, to an FPR or to a
rate in Hz at a stated input rate."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from emulator import cli
from models.runtime.card import load_model_dir
from producer.samples.make_examples import convert

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "producer" / "samples"
ZOO = REPO / "models" / "zoo"


def _calibrate(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["calibrate", "--model", *argv])  # argv[0]: the model
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_same_background_in_two_layouts_calibrates_alike(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The first 2 000 QCD events as a PHYSLITE RNTuple (MeV, e derived) and as Cartesian open-data jets (pt, eta,
    phi, m derived from px, py, pz, e): the per-jet model's thresholds agree to float32 round-off."""
    physlite = convert("physlite_rntuple", tmp_path / "bg_physlite.root", SAMPLES / "qcd.root", 2000)
    ours = convert("cms_opendata", tmp_path / "bg_cartesian.root", SAMPLES / "qcd.root", 2000)
    model = ZOO / "AE_3D_200_ptetaphie"
    code, out, err = _calibrate(str(model), "--background", str(physlite), "--input-format", "physlite",
                                "--out", str(tmp_path / "a"), capsys=capsys)
    assert code == 0, err
    assert "AE_3D_200_ptetaphie (jet-level) version" in out and "2000 events" in out
    code, _, err = _calibrate(str(model), "--background", str(ours), "--branch-map", "px=Jet_Px", "py=Jet_Py",
                              "pz=Jet_Pz", "e=Jet_E", "--out", str(tmp_path / "b"), capsys=capsys)
    assert code == 0, err
    a, b = (load_model_dir(tmp_path / name).card["thresholds"] for name in ("a", "b"))
    assert a["sample"]["n_events"] == b["sample"]["n_events"] == 2000
    assert a["sample"]["files"][0]["name"] == "bg_physlite.root"
    for key in ("per_jet", "per_event"):
        for row_a, row_b in zip(a[key], b[key], strict=True):
            assert row_a["n"] == row_b["n"]
            # Cartesian float32 -> pt, eta, phi, m vs MeV float32 -> GeV: a few float32 ulps of each jet variable
            assert row_a["threshold"] == pytest.approx(row_b["threshold"], rel=2e-3), (key, row_a, row_b)
    assert load_model_dir(tmp_path / "a").card["version"] == load_model_dir(model).card["version"] + 1


def test_an_event_model_calibrates_to_an_fpr_or_a_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = ZOO / "EVT_AE_ht"
    shipped = load_model_dir(model, level=None)
    code, out, err = _calibrate(str(model), "--background", str(SAMPLES / "qcd.root"), "--out", str(tmp_path / "c"),
                                "--fpr", "1e-3", capsys=capsys)
    assert code == 0, err
    cal = load_model_dir(tmp_path / "c", level=None)
    table = cal.card["thresholds"]
    assert cal.card["version"] == shipped.card["version"] + 1 and table["per_jet"] == []
    assert table["sample"]["n_events"] == 20000 and table["sample"]["n_jets"] == 70552
    assert table["rule"] == shipped.card["thresholds"]["rule"]  # the score (its HT transform) is unchanged
    for row in table["per_event"]:
        assert row["n"] == math.floor(row["fpr"] * 20000)
    printed = float(re.search(r"threshold (\S+): aetrig run --anomaly-model (\S+) --fpr 0.001", out).group(1))
    assert printed == pytest.approx(cal.threshold(fpr=1e-3), rel=1e-5)
    # the bundled 20 000 events and the card's 200 000-event background put the 1e-3 threshold close together
    assert printed == pytest.approx(shipped.threshold(fpr=1e-3), rel=0.05)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["fpr"] for r in rows] == [r["fpr"] for r in table["per_event"]]

    # 100 Hz accepted out of a 100 kHz stream is FPR 1e-3: the same threshold, and the run flags that select it
    code, out, err = _calibrate(str(model), "--background", str(SAMPLES / "qcd.root"), "--out", str(tmp_path / "d"),
                                "--accept-rate", "100", "--input-rate", "100000", capsys=capsys)
    assert code == 0, err
    rate = re.search(r"threshold (\S+): aetrig run --anomaly-model \S+ --accept-rate 100 --rate 100000", out)
    assert rate and float(rate.group(1)) == pytest.approx(printed, rel=1e-6)


def test_jets_outside_the_training_domain_are_left_out_as_in_the_stream(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A 15 GeV jet (below the card's pt > 20 GeV) added to every event: calibrating with the training domain
    gives exactly the thresholds of the file without them; --score-all-jets scores them too."""
    with uproot.open(SAMPLES / "qcd.root") as f:
        a = f["events"].arrays(["jet_pt", "jet_eta", "jet_phi", "jet_m", "jet_e", "event_number"], entry_stop=2000)
    soft = {"pt": 15.0, "eta": 1.0, "phi": 0.5, "m": 3.0}
    soft["e"] = float(np.sqrt(soft["m"] ** 2 + (soft["pt"] * np.cosh(soft["eta"])) ** 2))
    clean, dirty = tmp_path / "clean.root", tmp_path / "dirty.root"
    for path, extra in ((clean, False), (dirty, True)):
        jets = {v: a[f"jet_{v}"] for v in ("pt", "eta", "phi", "m", "e")}
        if extra:
            jets = {v: ak.concatenate([x, ak.values_astype(ak.Array([[soft[v]]] * len(x)), np.float32)], axis=1)
                    for v, x in jets.items()}
        with uproot.recreate(path) as f:
            f["events"] = {**{f"jet_{v}": x for v, x in jets.items()}, "event_number": a["event_number"]}
    model = str(ZOO / "AE_3D_200_ptetaphie")
    for name, path, flags in (("c", clean, []), ("d", dirty, []), ("all", dirty, ["--score-all-jets"])):
        code, _, err = _calibrate(model, "--background", str(path), "--out", str(tmp_path / name), *flags,
                                    capsys=capsys)
        assert code == 0, err
    c, d, every = (load_model_dir(tmp_path / n).card["thresholds"] for n in ("c", "d", "all"))
    assert d["sample"]["jets_outside_domain"] == 2000 and d["sample"]["domain_selection"] == "on"
    assert every["sample"]["domain_selection"] == "off (all jets scored)"
    assert d["per_event"] == c["per_event"] and d["per_jet"] == c["per_jet"]
    assert every["per_event"][1]["threshold"] > c["per_event"][1]["threshold"]  # soft jets score high


def test_bad_calibrate_inputs_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(ZOO / "AE_3D_200_ptetaphie")
    code, _, err = _calibrate(model, "--out", str(tmp_path / "x"), capsys=capsys)
    assert code == 2 and "give the background file(s)" in err
    code, _, err = _calibrate(model, "--background", str(SAMPLES / "qcd.root"), "--accept-rate", "100",
                              "--out", str(tmp_path / "y"), capsys=capsys)
    assert code == 2 and "--accept-rate needs --input-rate" in err
    code, _, err = _calibrate(model, "--background", str(SAMPLES / "delphes_example.root"), "--input-format",
                              "physlite", "--out", str(tmp_path / "z"), capsys=capsys)
    assert code == 2 and "no TTree or RNTuple 'CollectionTree' or 'EventData'" in err and "TTrees: Delphes" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "z").exists()
