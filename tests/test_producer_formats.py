"""Input-format presets (--input-format / input_format), their example files, missing-branch errors and
jagged reading without a counter branch (std::vector<float> as ROOT writes it, counted arrays as uproot does)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from producer_testdata import make_ntuple

from producer import config
from producer.formats import FORMATS, get_format
from producer.inputs import reader_spec
from producer.reader import ReaderError, ReaderSpec, close_branches, read_chunks, resolve_variables

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "producer" / "samples"
STL_VECTOR_FILE = Path(__file__).resolve().parent / "data" / "uproot-small-evnt-tree-fullsplit.root"
CARTESIAN_MAP = ["px=Jet_Px", "py=Jet_Py", "pz=Jet_Pz", "e=Jet_E"]
EXAMPLES = {  # example file -> extra produce flags
    "physlite_example.root": ["--input-format", "physlite"],
    "physlite_rntuple_example.root": ["--input-format", "physlite"],
    "nanoaod_example.root": ["--input-format", "nanoaod"],
    "nanoaod_rntuple_example.root": ["--input-format", "nanoaod"],
    "delphes_example.root": ["--input-format", "delphes"],
    "cms_opendata_example.root": ["--branch-map", *CARTESIAN_MAP],
}
STREAMED = ("physlite_example.root", "nanoaod_example.root", "cms_opendata_example.root")  # one per reader path


def _cfg(*argv: str, config_file: Path | None = None) -> config.ProducerConfig:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    extra = ["--config", str(config_file)] if config_file else []
    return config.resolve(parser.parse_args([*argv, *extra]))


def _spec(cfg: config.ProducerConfig, **kw) -> ReaderSpec:
    return replace(reader_spec(cfg), **kw)


def _read(path: Path, spec: ReaderSpec) -> tuple[list[str], dict[str, np.ndarray], np.ndarray, np.ndarray]:
    variables = resolve_variables(path, spec)
    chunks = list(read_chunks([path], spec, variables))
    jets = {v: np.concatenate([c.jets[v] for c in chunks]) for v in variables}
    return (variables, jets, np.concatenate([c.n_jets for c in chunks]),
            np.concatenate([c.event_number for c in chunks]))


def _qcd(n: int) -> ak.Array:
    with uproot.open(SAMPLES / "qcd.root") as f:
        return f["events"].arrays(["jet_pt", "jet_eta", "jet_phi", "jet_m", "event_number"], entry_stop=n)


def _write_tree(path: Path, tree: str, jets_name: str, jets: dict[str, ak.Array], scalars: dict[str, np.ndarray],
                sep: str = "_", counter: str | None = None) -> None:
    """A TTree with one counted jet collection (``jets_name + sep + field``), as uproot writes it."""
    record = ak.zip(jets)
    branches = {jets_name: record, **scalars}
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()},
                 field_name=lambda outer, inner: f"{outer}{sep}{inner}",
                 counter_name=lambda counted: counter or f"n{counted}")
        f[tree].extend(branches)


# --- presets and config -------------------------------------------------------------------------------------


def test_presets_fill_tree_unit_and_branches() -> None:
    physlite = _cfg("--input-format", "physlite")
    assert (physlite.tree, physlite.unit) == ("CollectionTree", "MeV")
    assert physlite.branch_map == {"pt": "AnalysisJetsAuxDyn.pt", "eta": "AnalysisJetsAuxDyn.eta",
                                   "phi": "AnalysisJetsAuxDyn.phi", "m": "AnalysisJetsAuxDyn.m",
                                   "event_number": "EventInfoAuxDyn.eventNumber"}
    nano = _cfg("--input-format", "nanoaod")
    assert (nano.tree, nano.unit) == ("Events", "GeV")
    assert nano.branch_map == {"pt": "Jet_pt", "eta": "Jet_eta", "phi": "Jet_phi", "m": "Jet_mass",
                               "event_number": "event"}
    default = _cfg()
    assert (default.input_format, default.tree, default.unit, default.branch_map) == ("aetrig", "events", "GeV", {})
    assert _cfg("--input-format", "aetrig").as_dict() == default.as_dict() | {"input_format": "aetrig"}


def test_explicit_settings_override_the_preset() -> None:
    cfg = _cfg("--input-format", "nanoaod", "--tree", "Friends", "--unit", "MeV", "--branch-map", "pt=Jet_pt_nom")
    assert (cfg.tree, cfg.unit) == ("Friends", "MeV")
    assert cfg.branch_map["pt"] == "Jet_pt_nom" and cfg.branch_map["m"] == "Jet_mass"


def test_input_format_config_key_and_flag_share_one_check(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('input-format = "physlite"\ntree = "MyTree"\n')
    cfg = _cfg(config_file=toml)
    assert cfg.input_format == "physlite" and cfg.tree == "MyTree" and cfg.unit == "MeV"
    assert _cfg("--input-format", "nanoaod", config_file=toml).tree == "MyTree"  # flag format, file tree
    (tmp_path / "bad.json").write_text(json.dumps({"input_format": "miniaod"}))
    messages = []
    for argv, cfg_file in ((["--input-format", "miniaod"], None), ([], tmp_path / "bad.json")):
        with pytest.raises(ValueError,
                           match=r"input-format must be one of \('aetrig', 'physlite', 'nanoaod', 'delphes'\)") as e:
            _cfg(*argv, config_file=cfg_file)
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    with pytest.raises(ValueError, match="input-format"):
        config.check(config.ProducerConfig(input_format="miniaod"))
    assert set(FORMATS) == {"aetrig", "physlite", "nanoaod", "delphes"} and get_format("physlite").unit == "MeV"


def test_produce_exits_2_on_unknown_format(capsys: pytest.CaptureFixture[str]) -> None:
    from emulator.cli import main

    assert main(["produce", "--input-format", "miniaod"]) == 2
    assert "input-format must be one of" in capsys.readouterr().err


def test_help_shows_presets_and_cartesian_examples() -> None:
    from emulator.cli import build_parser

    text = build_parser("produce")[0].format_help()
    assert "--input-format physlite" in text and "--input-format nanoaod" in text
    assert "px=Jet_Px py=Jet_Py pz=Jet_Pz e=Jet_E" in text


# --- the example files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_files_read_back_as_the_qcd_sample(name: str) -> None:
    path = SAMPLES / name
    assert path.stat().st_size < 1 << 20
    variables, jets, counts, event_number = _read(path, _spec(_cfg(*EXAMPLES[name])))
    truth = _qcd(len(counts))
    assert len(counts) == 300 and {"pt", "eta", "phi", "m", "e"} <= set(variables)
    np.testing.assert_array_equal(counts, ak.num(truth["jet_pt"]).to_numpy())
    expected_events = np.arange(300) if name.startswith("cms") else truth["event_number"].to_numpy()
    np.testing.assert_array_equal(event_number, expected_events)  # no event number in the CMS tutorial layout
    pt, eta, phi, m = (ak.flatten(truth[f"jet_{v}"]).to_numpy().astype(np.float64) for v in ("pt", "eta", "phi", "m"))
    nano = name.startswith("nanoaod")
    np.testing.assert_allclose(jets["pt"], pt, rtol=1e-5)
    np.testing.assert_allclose(jets["eta"], eta, rtol=2.0**-13 if nano else 0, atol=0 if nano else 1e-5)
    np.testing.assert_allclose(jets["phi"], phi, rtol=2.0**-13 if nano else 0, atol=0 if nano else 1e-5)
    if nano:  # rounded as NanoAOD stores them, not truncated: errors on both sides, at most half a step
        assert np.any(jets["eta"] != eta.astype(np.float32))
        np.testing.assert_allclose(jets["m"], m, rtol=2.0**-11)
        return
    e = np.sqrt(m**2 + (pt * np.cosh(eta)) ** 2)
    np.testing.assert_allclose(jets["e"], e, rtol=1e-5)
    assert np.all(np.abs(jets["m"].astype(np.float64) ** 2 - m**2) <= 1e-6 * e**2)


def test_physlite_example_is_a_counted_ttree_with_the_preset_branches() -> None:
    with uproot.open(SAMPLES / "physlite_example.root") as f:
        tree = f["CollectionTree"]
        assert tree.classname == "TTree"
        assert {"AnalysisJetsAuxDyn.pt", "AnalysisJetsAuxDyn.m", "EventInfoAuxDyn.eventNumber",
                "nAnalysisJetsAuxDyn"} <= set(tree.keys())
        assert float(ak.max(tree["AnalysisJetsAuxDyn.pt"].array())) > 1e5  # MeV


def test_make_examples_reproduces_the_shipped_contents(tmp_path: Path) -> None:
    from producer.samples.make_examples import make_examples

    paths = make_examples(tmp_path, 300)
    assert sorted(p.name for p in paths) == sorted(EXAMPLES)
    for path in paths:
        with uproot.open(path) as new, uproot.open(SAMPLES / path.name) as shipped:
            tree = next(k for k, c in new.classnames().items() if c in ("TTree", "ROOT::RNTuple"))
            a, b = new[tree].arrays(), shipped[tree].arrays()
            assert a.fields == b.fields and len(a) == len(b)
            assert ak.array_equal(a, b), path.name


# --- missing branches ---------------------------------------------------------------------------------------


def test_missing_preset_branch_names_file_tree_branch_and_close_ones(tmp_path: Path) -> None:
    path = tmp_path / "DAOD_PHYSLITE.old.root"
    make_ntuple(path, 20, tree="CollectionTree", prefix="AntiKt4EMTopoJetsAuxDyn.", unit_scale=1000.0,
                event_branch="EventInfoAuxDyn.eventNumber")
    with pytest.raises(ReaderError) as err:
        resolve_variables(path, _spec(_cfg("--input-format", "physlite")))
    msg = str(err.value)
    assert str(path) in msg and "'CollectionTree'" in msg and "'AnalysisJetsAuxDyn.pt'" in msg
    assert "input format physlite" in msg and "AntiKt4EMTopoJetsAuxDyn.pt" in msg
    assert "--branch-map pt=BRANCH" in msg
    # mapping the old collection explicitly over the preset reads it
    override = ["--branch-map", *(f"{v}=AntiKt4EMTopoJetsAuxDyn.{v}" for v in ("pt", "eta", "phi", "m"))]
    variables, jets, counts, _ = _read(path, _spec(_cfg("--input-format", "physlite", *override)))
    assert variables == ["pt", "eta", "phi", "m", "e"] and len(counts) == 20 and len(jets["pt"]) == counts.sum()


def test_missing_event_number_of_a_preset_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nano.root"
    a = _qcd(10)
    _write_tree(path, "Events", "Jet", {"pt": a.jet_pt, "eta": a.jet_eta, "phi": a.jet_phi, "mass": a.jet_m},
                {"eventNumber": a.event_number.to_numpy()})
    with pytest.raises(ReaderError) as err:
        resolve_variables(path, _spec(_cfg("--input-format", "nanoaod")))
    msg = str(err.value)
    assert "no branch 'event'" in msg and "'Events'" in msg and "eventNumber" in msg and "nano.root" in msg


def test_close_branches_by_spelling_and_by_suffix() -> None:
    names = {"AntiKt4EMTopoJetsAuxDyn.pt", "AntiKt4EMTopoJetsAuxDyn.eta", "AnalysisJetsAuxDyn.ptt",
             "EventInfoAuxDyn.eventNumber", "Muons.pt"}
    close = close_branches("AnalysisJetsAuxDyn.pt", names)
    assert close[0] == "AntiKt4EMTopoJetsAuxDyn.pt"  # close spelling and the same .pt suffix
    assert "AnalysisJetsAuxDyn.ptt" in close and close[-1] == "Muons.pt"  # a typo; the same suffix only
    assert "EventInfoAuxDyn.eventNumber" not in close
    assert close_branches("Jet_mass", {"FatJet_mass", "Jet_msoftdrop", "nJet"})[0] == "FatJet_mass"


# --- jagged reading without a counter -----------------------------------------------------------------------


def test_counted_arrays_read_without_knowing_the_counter(tmp_path: Path) -> None:
    path = tmp_path / "odd_counter.root"
    a = _qcd(500)
    _write_tree(path, "Events", "Jet", {"pt": a.jet_pt, "eta": a.jet_eta, "phi": a.jet_phi, "mass": a.jet_m},
                {"event": a.event_number.to_numpy()}, counter="whatever_the_writer_chose")
    with uproot.open(path) as f:
        names = set(f["Events"].keys())
        assert "whatever_the_writer_chose" in names and "nJet" not in names
    _, jets, counts, _ = _read(path, _spec(_cfg("--input-format", "nanoaod"), step_size=128))
    np.testing.assert_array_equal(counts, ak.num(a.jet_pt).to_numpy())
    np.testing.assert_array_equal(jets["pt"], ak.flatten(a.jet_pt).to_numpy())


def test_std_vector_float_branches_written_by_root() -> None:
    with uproot.open(STL_VECTOR_FILE) as f:
        assert f["tree"]["evt/StlVecF32"].typename == "std::vector<float>"
    spec = ReaderSpec(tree="tree", branch_map={"pt": "StlVecF32", "eta": "StlVecF64", "phi": "StlVecF32",
                                               "m": "StlVecF64", "event_number": "U64"},
                      columns=["pt", "eta", "phi", "m"], step_size=30)  # values i up to 99: no e from eta = 99
    variables, jets, counts, event_number = _read(STL_VECTOR_FILE, spec)
    assert variables == ["pt", "eta", "phi", "m"]
    np.testing.assert_array_equal(counts, np.arange(100) % 10)  # entries 0, 10, ... have no jets
    np.testing.assert_array_equal(event_number, np.arange(100))
    np.testing.assert_array_equal(jets["pt"], np.repeat(np.arange(100), np.arange(100) % 10).astype(np.float32))


def test_unequal_counts_across_jet_branches_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mixed.root"
    a = _qcd(50)
    b = _qcd(51)[1:]  # eta from the next event: different jet counts
    with uproot.recreate(path) as f:
        f.mktree("Events", {"Jet_pt": a.jet_pt.type.content, "Jet_eta": b.jet_eta.type.content,
                            "Jet_phi": a.jet_phi.type.content, "Jet_mass": a.jet_m.type.content, "event": np.uint64},
                 counter_name=lambda counted: f"n{counted}")
        f["Events"].extend({"Jet_pt": a.jet_pt, "Jet_eta": b.jet_eta, "Jet_phi": a.jet_phi, "Jet_mass": a.jet_m,
                            "event": a.event_number.to_numpy()})
    first_bad = int(np.flatnonzero(ak.num(a.jet_pt).to_numpy() != ak.num(b.jet_eta).to_numpy())[0])
    with pytest.raises(ReaderError, match=r"'Jet_eta'.*'Jet_pt'|'Jet_pt'.*'Jet_eta'") as err:
        _read(path, _spec(_cfg("--input-format", "nanoaod")))
    assert f"at entry {first_bad}" in str(err.value) and "mixed.root" in str(err.value)


# --- end to end: produce -> encode -> sink -> decode ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_examples_stream_record_and_decode(tmp_path: Path, running_pipeline) -> None:
    from consumer.offline.join import join_inputs
    from emulator.runtime.recording import Recording

    for name in STREAMED:
        flags = EXAMPLES[name]
        work = tmp_path / name.split("_example")[0]
        work.mkdir()
        pipeline = running_pipeline(SAMPLES / name, work=work, input_flags=tuple(flags))
        pipeline.sink()
        pipeline.encoder("enc0")
        report = pipeline.finish(pipeline.producer("--rate", "0", *flags))
        assert report["produced"] == 300 and report["unacked_events"] == 0
        assert pipeline.counts(300)["recorded"] == 300
        decoded = work / "decoded.root"
        result = subprocess.run([sys.executable, "-m", "emulator.cli", "decode", str(pipeline.out), "--out",
                                 str(decoded)], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert result.returncode == 0, result.stdout + result.stderr
        _, truth_jets, truth_counts, truth_events = _read(SAMPLES / name, _spec(_cfg(*flags)))
        with uproot.open(decoded) as f:
            out = f["events"].arrays(["entry", "event_number", "jet_pt"], library="ak")
        order = np.argsort(out["entry"].to_numpy())
        np.testing.assert_array_equal(out["entry"].to_numpy()[order], np.arange(300))
        np.testing.assert_array_equal(out["event_number"].to_numpy()[order], truth_events)
        np.testing.assert_array_equal(ak.num(out["jet_pt"]).to_numpy()[order], truth_counts)
        # the recorded manifest holds the effective tree/branches/unit: the inputs join back exactly
        rec = Recording(pipeline.out)
        events = rec.events()
        joined = join_inputs(events["file_index"], events["entry"], next(iter(rec.manifests.values())),
                             ["pt", "e"], search_dirs=[str(SAMPLES)])
        rows = np.argsort(events["entry"])
        np.testing.assert_array_equal(ak.flatten(joined["pt"][rows]).to_numpy(), truth_jets["pt"])
        np.testing.assert_array_equal(ak.flatten(joined["e"][rows]).to_numpy(), truth_jets["e"])
