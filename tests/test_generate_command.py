"""`aetrig generate` end to end: reproducibility, the input-ntuple contract, clear errors (needs Pythia)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emulator.cli import main as aetrig
from producer.generate.jets import VARIABLES

pytestmark = pytest.mark.generate


def generate(tmp_path, name: str, *extra: str) -> tuple[int, object]:
    out = tmp_path / name
    code = aetrig(["generate", "--out", str(out), *extra])
    return code, out


def read(path):
    import uproot

    with uproot.open(path) as f:
        arrays = f["events"].arrays(library="np")
        meta = json.loads(str(f["metadata"]))
        classname = f.classname_of("events")
    return arrays, meta, classname


@pytest.fixture(scope="module")
def qcd_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "qcd.root"
    assert aetrig(["generate", "--events", "60", "--seed", "11", "--chunk-events", "20", "--jobs", "2",
                   "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_input_contract(qcd_file):
    import uproot

    arrays, meta, classname = read(qcd_file)
    assert classname == "TTree"
    with uproot.open(qcd_file) as f:
        tree = f["events"]
        for name in VARIABLES:
            assert tree[f"jet_{name}"].interpretation.content.from_dtype == np.dtype(">f4"), name
        assert tree["event_number"].interpretation.from_dtype == np.dtype(">u8")
        assert tree["run_number"].interpretation.from_dtype == np.dtype(">u4")
        assert f.classname_of("metadata") == "TObjString"
    assert len(arrays["event_number"]) == 60 and meta["n_events"] == 60
    assert sorted(arrays["event_number"]) == list(range(60))  # distinct across the two workers
    assert np.all(arrays["run_number"] == 11)
    pts = arrays["jet_pt"]
    assert all(np.all(np.diff(p) <= 0) for p in pts)  # sorted by pt
    flat = {n: np.concatenate(arrays[f"jet_{n}"]) for n in VARIABLES}
    assert all(np.all(np.isfinite(v)) for v in flat.values())
    assert np.all(flat["pt"] > 20) and np.all(np.abs(flat["eta"]) < 4.5)
    leading = np.array([p[0] for p in pts if len(p)])
    assert 80 < np.median(leading) < 400  # GeV scale: pT-hat > 100 GeV dijets
    assert np.all(flat["nconst"] == np.round(flat["nconst"])) and np.all(flat["n90"] <= flat["nconst"])
    assert np.all(flat["m"] < flat["e"])
    assert meta["process"] == "qcd" and meta["seed"] == 11 and meta["jobs"] == 2
    assert "HardQCD:all = on" in meta["pythia_settings"] and "PhaseSpace:pTHatMin = 100" in meta["pythia_settings"]
    assert meta["generator"]["name"] == "Pythia" and meta["generator"]["version"].startswith("8.3")
    assert meta["detector"]["had_stochastic"] == 0.5 and meta["events_per_s"] > 0
    assert len({s["pythia"] for s in meta["worker_seeds"]}) == 2


@pytest.mark.slow
def test_same_seed_and_jobs_reproduce_identical_arrays(tmp_path, qcd_file):
    code, again = generate(tmp_path, "again.root", "--events", "60", "--seed", "11", "--chunk-events", "20",
                           "--jobs", "2")
    assert code == 0
    a, _, _ = read(qcd_file)
    b, _, _ = read(again)
    for key in a:
        assert len(a[key]) == len(b[key])
        for x, y in zip(a[key], b[key], strict=True):
            np.testing.assert_array_equal(x, y)
    code, other = generate(tmp_path, "other.root", "--events", "20", "--seed", "12", "--chunk-events", "20")
    assert code == 0
    c, _, _ = read(other)
    assert not np.array_equal(np.concatenate(c["jet_pt"]), np.concatenate(a["jet_pt"][:20]))


@pytest.mark.slow
def test_pileup_overlay_adds_constituents(tmp_path):
    base = ["--events", "10", "--seed", "21", "--process", "qcd"]
    assert generate(tmp_path, "nopu.root", *base)[0] == 0
    code, pu = generate(tmp_path, "pu.root", *base, "--pileup", "10")
    assert code == 0
    a, _, _ = read(tmp_path / "nopu.root")
    b, meta, _ = read(pu)
    assert meta["pileup_mu"] == 10 and 50 <= meta["pileup_events_overlaid"] <= 160
    assert "SoftQCD:nonDiffractive = on" in meta["pileup_settings"]
    assert sum(len(p) for p in b["jet_pt"]) >= sum(len(p) for p in a["jet_pt"])


def test_unknown_process_is_a_clear_error(tmp_path, capsys):
    code, out = generate(tmp_path, "x.root", "--process", "susy", "--events", "5")
    assert code == 2 and not out.exists()
    assert "unknown process 'susy'" in capsys.readouterr().err


def test_bad_pythia_setting_is_a_clear_error(tmp_path, capsys):
    code, out = generate(tmp_path, "x.root", "--events", "5", "--pythia", "HardQCD:allx = on")
    assert code == 2 and not out.exists() and not (tmp_path / "x.root.part").exists()
    assert "HardQCD:allx = on" in capsys.readouterr().err


def test_pythia_init_failure_is_a_clear_error(tmp_path, capsys):
    code, _ = generate(tmp_path, "x.root", "--process", "custom", "--events", "5")  # no process switched on
    assert code == 2
    assert "init() failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--events", "0"], "--events"), (["--jobs", "0"], "--jobs"), (["--pileup", "-1"], "--pileup"),
     (["--pythia", "no equals sign"], "Key = value"), (["--ecm", "-5"], "--ecm")],
)
def test_bad_arguments_are_clear_errors(tmp_path, capsys, args, message):
    code, out = generate(tmp_path, "x.root", *args)
    assert code == 2 and not out.exists()
    assert message in capsys.readouterr().err


def test_writer_refuses_non_finite_values(tmp_path):
    from producer.generate.writer import NtupleWriter

    writer = NtupleWriter(tmp_path / "w.root", run_number=1)
    columns = {n: np.ones(2, dtype=np.float32) for n in VARIABLES}
    columns["tau21"][1] = np.nan
    with pytest.raises(ValueError, match="jet_tau21"):
        writer.write(np.arange(2, dtype=np.uint64), np.array([1, 1]), columns)


@pytest.mark.slow
@pytest.mark.parametrize("process", ["ttbar", "zprime", "darkshower"])
def test_signal_processes_initialise_and_write(tmp_path, process):
    code, out = generate(tmp_path, f"{process}.root", "--process", process, "--events", "4", "--seed", "31")
    assert code == 0
    arrays, meta, _ = read(out)
    assert meta["process"] == process and len(arrays["event_number"]) == 4
    assert all(np.all(np.isfinite(np.concatenate(arrays[f"jet_{n}"]))) for n in VARIABLES)
