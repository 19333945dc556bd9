"""`aetrig evaluate`, `aetrig report` and Run.evaluate read PHYSLITE and NanoAOD (TTree and RNTuple) as the producer
does: a real `aetrig run` per layout, then the equal-rate table from the recording, its HT and leading-jet pT per
event checked against uproot reading the raw branches (unit and input screen done by hand here)."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from aetrig_cli import run_aetrig

from consumer.analysis import open_run
from consumer.offline.evaluate import trigger_scores
from emulator.cli import build_parser
from emulator.cli import main as cli_main
from emulator.runtime.defaults import SAMPLES_DIR
from models.runtime import trigger_menu as tm

MODEL = "EVT_AE_4v"  # takes pt, eta, phi, m: what PHYSLITE and NanoAOD hold
FPRS = ("0.1", "0.02")
PHYSLITE_JETS = "AnalysisJetsAuxDyn"
SELECTION = tm.JetSelection()


def _dirty_physlite(path: Path) -> None:
    """physlite_example.root with a NaN leading-jet pt every 20th event, a sentinel eta (-999) every 30th, and
    jets outside EVT_AE_4v's training domain (pt 15 GeV; |eta| 4.7) every 25th: what the screen and the
    domain selection must handle."""
    with uproot.open(SAMPLES_DIR / "physlite_example.root") as f:
        tree = f["CollectionTree"]
        jets = {v: tree[f"{PHYSLITE_JETS}.{v}"].array() for v in ("pt", "eta", "phi", "m")}
        number = tree["EventInfoAuxDyn.eventNumber"].array(library="np")
    lists = {v: ak.to_list(a) for v, a in jets.items()}
    for i in range(len(number)):
        if i % 20 == 0 and lists["pt"][i]:
            lists["pt"][i][0] = float("nan")
        if i % 30 == 0 and len(lists["eta"][i]) > 1:
            lists["eta"][i][1] = -999.0
        if i % 25 == 0:
            for var, extra in (("pt", (15000.0, 50000.0)), ("eta", (0.3, 4.7)), ("phi", (0.1, -0.2)),
                               ("m", (1000.0, 2000.0))):
                lists[var][i].extend(extra)
    record = ak.zip({v: ak.values_astype(ak.Array(lists[v]), np.float32) for v in lists})
    with uproot.recreate(path) as f:
        f.mktree("CollectionTree", {PHYSLITE_JETS: record.type.content, "EventInfoAuxDyn.eventNumber": np.uint64},
                 field_name=lambda outer, inner: f"{outer}.{inner}", counter_name=lambda counted: f"{counted}Count")
        f["CollectionTree"].extend({PHYSLITE_JETS: record, "EventInfoAuxDyn.eventNumber": number})


def independent_triggers(path: Path, tree: str, branch: str, mev: bool,
                         names: tuple[str, ...] = ("pt", "eta", "phi", "m")) -> tuple[np.ndarray, np.ndarray]:
    """(HT, leading-jet pT) per entry from the raw branches: jets with a NaN or a <= -999 value dropped (in the
    file's unit), MeV -> GeV by hand, jets pT > 30 GeV and |eta| < 2.5."""
    with uproot.open(path) as f:
        arrays = f[tree].arrays([branch.format(v) for v in names], library="ak")
    pt, eta, phi, m = (arrays[branch.format(v)] for v in names)
    good = np.isfinite(pt) & np.isfinite(eta) & np.isfinite(phi) & np.isfinite(m)
    good = good & (pt > -999) & (eta > -999) & (phi > -999) & (m > -999)
    pt_gev = pt * (1e-3 if mev else 1.0)
    chosen = pt_gev[good & (pt_gev > 30.0) & (abs(eta) < 2.5)]
    ht = ak.to_numpy(ak.sum(chosen, axis=1)).astype(np.float64)
    lead = ak.to_numpy(ak.fill_none(ak.max(chosen, axis=1), 0.0)).astype(np.float64)
    return ht, lead


LAYOUTS = {
    # background file, signal file (its name is the signal's pattern), input format, independent reading of each
    "physlite": dict(fmt="physlite", background=None, signal=SAMPLES_DIR / "physlite_rntuple_example.root",
                     read=lambda p: independent_triggers(p, "CollectionTree", f"{PHYSLITE_JETS}.{{}}", True)
                     if p.name == "dirty_physlite.root" else
                     independent_triggers(p, "EventData", f"{PHYSLITE_JETS}:{{}}", True)),
    "nanoaod": dict(fmt="nanoaod", background=SAMPLES_DIR / "nanoaod_rntuple_example.root",
                    signal=SAMPLES_DIR / "nanoaod_example.root",
                    read=lambda p: independent_triggers(p, "Events", "Jet_{}", False, ("pt", "eta", "phi", "mass"))),
}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def recording(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real `aetrig run` per layout (300 + 300 events, full-precision scores) and its inputs."""
    layout = dict(LAYOUTS[request.param])
    tmp = tmp_path_factory.mktemp(request.param)
    if layout["background"] is None:
        layout["background"] = tmp / "dirty_physlite.root"
        _dirty_physlite(layout["background"])
    out = tmp / "run"
    done = run_aetrig("run", "--input-format", layout["fmt"], "--input", str(layout["background"]),
                      str(layout["signal"]), "--rate", "0", "--loops", "1", "--anomaly-model", MODEL,
                      "--score-bits", "23", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {**layout, "name": request.param, "out": out, "tmp": tmp,
            "truth": {"background": layout["read"](layout["background"]), "sig": layout["read"](layout["signal"])}}


def _check_table(rows: dict, truth: dict) -> None:
    """Each FPR's HT and leading-jet-pT thresholds and TPRs equal those of the independently computed values (the
    threshold: the background value with floor(FPR n) values above it)."""
    for key in FPRS:
        r = rows["fpr"][key]
        for var, column in (("ht", 0), ("lead_pt", 1)):
            background, signal = truth["background"][column], truth["sig"][column]
            threshold = np.sort(background)[::-1][int(np.floor(float(key) * len(background) + 1e-9))]
            assert r[f"{var}_threshold"] == pytest.approx(threshold, rel=1e-5)
            assert r[f"{var}_tpr"] == pytest.approx(np.mean(signal > threshold), abs=1e-12)


def test_evaluate_recording_reads_the_inputs_as_the_producer_did(recording: dict) -> None:
    out = recording["tmp"] / "evaluate"
    code = cli_main(["evaluate", "--recording", str(recording["out"]), "--signal", f"sig={recording['signal']}",
                     "--models", MODEL, "--fpr", *FPRS, "--out", str(out), "--no-plots"])
    assert code == 0
    res = json.loads((out / "evaluate.json").read_text())
    row = res["models"][f"recording ({MODEL})"]
    assert row["join"]["n_scored"] == {"background": 300, "sig": 300} and row["join"]["n_not_in_samples"] == 0
    assert res["background"]["files"] == [str(recording["background"])]  # the recording's other input
    # the offline model on the jets inside its training domain, as the encoder scored them
    assert row["agreement_with_offline"]["n_events"] == 600 and row["score_bits"] == 23
    assert row["agreement_with_offline"]["max_rel_difference"] < 1e-4
    _check_table(row["signals"]["sig"], recording["truth"])
    _check_table(res["models"][MODEL]["signals"]["sig"], recording["truth"])


def test_evaluate_reads_the_files_with_the_input_options(recording: dict) -> None:
    """File mode: the same files given with --input-format (no recording) give the same table."""
    out = recording["tmp"] / "evaluate_files"
    code = cli_main(["evaluate", "--input-format", recording["fmt"], "--background", str(recording["background"]),
                     "--signal", f"sig={recording['signal']}", "--models", MODEL, "--fpr", *FPRS, "--out", str(out),
                     "--no-plots"])
    assert code == 0
    res = json.loads((out / "evaluate.json").read_text())
    assert res["background"]["n_events"] == 300 and res["signals"]["sig"]["n_events"] == 300
    _check_table(res["models"][MODEL]["signals"]["sig"], recording["truth"])


def test_the_manifest_records_each_files_layout(recording: dict) -> None:
    """The layout each file was read with (the preset tries TTree then RNTuple), which evaluate reads again."""
    from consumer.offline.evaluate_recording import recorded_inputs

    manifest = json.loads((recording["out"] / "manifest.json").read_text())
    layouts = [(f["layout"]["kind"], f["layout"]["tree"], f["layout"]["branch_map"]["pt"]) for f in manifest["files"]]
    assert layouts == {"physlite": [("TTree", "CollectionTree", "AnalysisJetsAuxDyn.pt"),
                                    ("RNTuple", "EventData", "AnalysisJetsAuxDyn:pt")],
                       "nanoaod": [("RNTuple", "Events", "Jet_pt"), ("TTree", "Events", "Jet_pt")]}[recording["name"]]
    specs = [r.spec for r in recorded_inputs([manifest])]
    assert [(s.tree, s.branch_map["pt"], s.layouts, s.unit) for s in specs] == [
        (tree, pt, (), "MeV" if recording["name"] == "physlite" else "GeV") for _, tree, pt in layouts]


def test_trigger_variables_per_event_equal_uproot_by_hand(recording: dict) -> None:
    """HT and leading-jet pT of every event as evaluate --recording reads the files (per file, the manifest's
    settings), against the raw branches read with uproot."""
    from consumer.offline.evaluate_command import _recording_dirs, _samples

    parser, _ = build_parser("evaluate")
    args = parser.parse_args(["--recording", str(recording["out"]), "--signal", f"sig={recording['signal']}"])
    background, signals = _samples(args, _recording_dirs(args))
    for sample, name in ((background, "background"), (signals["sig"], "sig")):
        ht, lead = trigger_scores(sample, SELECTION)
        want_ht, want_lead = recording["truth"][name]
        np.testing.assert_allclose(ht, want_ht, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(lead, want_lead, rtol=1e-6, atol=1e-4)


def test_run_evaluate_gives_the_equal_rate_table(recording: dict) -> None:
    results = open_run(recording["out"]).evaluate({"sig": recording["signal"].name},
                                                  fprs=tuple(float(f) for f in FPRS))
    row = results["models"][f"recording ({MODEL})"]
    assert row["join"]["n_scored"] == {"background": 300, "sig": 300}
    _check_table(row["signals"]["sig"], recording["truth"])


@pytest.mark.parametrize("argv,message", [
    (["--input-format", "physlite", "--branch-map", "pt=AnalysisJetsAuxDyn.ptt"],
     "has no branch 'AnalysisJetsAuxDyn.ptt' for variable 'pt'"),
    (["--input-format", "nanoaod"], "no TTree or RNTuple 'Events' (input format nanoaod)"),
])
@pytest.mark.parametrize("command", ["evaluate", "report"])
def test_a_missing_branch_or_wrong_preset_is_a_clear_error(command: str, argv: list[str], message: str,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    physlite = str(SAMPLES_DIR / "physlite_example.root")
    extra = ["--studies", "3", "--out", str(tmp_path / "r")] if command == "report" else []
    code = cli_main([command, "--background", physlite, "--signal", f"s={physlite}", "--models", MODEL,
                     *argv, *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_report_reads_a_physlite_sample_as_the_producer_does() -> None:
    from consumer.offline.report_command import config_from_args

    parser, _ = build_parser("report")
    cfg = config_from_args(parser.parse_args(["--input-format", "physlite", "--background",
                                              str(SAMPLES_DIR / "physlite_example.root")]))
    assert cfg.background == [str(SAMPLES_DIR / "physlite_example.root")]
    assert cfg.options.tree == "CollectionTree" and cfg.options.unit == "MeV"
    assert [t for t, _ in cfg.options.layouts] == ["CollectionTree", "EventData"]
