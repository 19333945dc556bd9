"""Each input layout end to end on its shipped example (producer/samples/README.md "Format examples"):
`aetrig run --input-format X --input EXAMPLE` with no other input flag records every event, `aetrig verify`
passes, `aetrig decode` decodes it and the decoded events join back to the input file; the anomaly decision
is the one `aetrig run` announced, event-level whenever the default event model can run on the stream.
One recording per layout, shared by the tests of that layout (module-scoped fixture)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from aetrig_cli import REPO, run_aetrig

from consumer.offline.join import join_inputs
from emulator import cli
from emulator.runtime.recording import Recording
from producer import config
from producer.inputs import open_inputs
from producer.reader import read_chunks

SAMPLES = REPO / "producer" / "samples"
CASES = {  # layout -> (example file, the only input flags given)
    "physlite": ("physlite_example.root", ["--input-format", "physlite"]),
    "physlite_rntuple": ("physlite_rntuple_example.root", ["--input-format", "physlite"]),
    "nanoaod": ("nanoaod_example.root", ["--input-format", "nanoaod"]),
    "nanoaod_rntuple": ("nanoaod_rntuple_example.root", ["--input-format", "nanoaod"]),
    "delphes": ("delphes_example.root", ["--input-format", "delphes"]),
    "cartesian": ("cms_opendata_example.root", ["--branch-map", "px=Jet_Px", "py=Jet_Py", "pz=Jet_Pz", "e=Jet_E"]),
}
EVENTS = 300


aetrig = partial(run_aetrig, timeout=180)


def assert_decision_as_announced(run: subprocess.CompletedProcess, summary: dict) -> None:
    """The anomaly decision of a four-vector stream (pt, eta, phi, m, e; no substructure): the four-vector event
    model models/zoo/EVT_AE_4v, announced at start-up as the encoders then did, on the jets inside its training
    domain."""
    anomaly = summary["anomaly"]
    announced = re.search(r"anomaly scoring: (.*)", run.stderr + run.stdout)
    assert announced and anomaly["scoring"] == announced.group(1).strip(), (announced, anomaly)
    assert anomaly["level"] == "event" and anomaly["model"] == "EVT_AE_4v", anomaly
    assert anomaly["scoring"].startswith("event-level model EVT_AE_4v") and anomaly["domain_selection"] == "on"


@dataclass
class Recorded:
    case: str
    path: Path
    flags: list[str]
    out: Path
    run: subprocess.CompletedProcess
    summary: dict


@pytest.fixture(scope="module", params=list(CASES))
def recorded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    name, flags = CASES[request.param]
    out = tmp_path_factory.mktemp(request.param) / "run"
    run = aetrig("run", "--input", str(SAMPLES / name), *flags, "--rate", "0", "--encoders", "1", "--out", str(out),
                 "--status-interval", "0")
    assert run.returncode == 0, run.stdout + run.stderr
    return Recorded(request.param, SAMPLES / name, flags, out, run, json.loads((out / "summary.json").read_text()))


def _truth(path: Path, flags: list[str], variables: list[str]) -> dict[str, np.ndarray]:
    """The input file as the producer reads it: per-event entry, event number and jet count, flat jet variables."""
    parser, _ = cli.build_parser("produce")
    cfg = config.resolve(parser.parse_args(["--input", str(path), *flags, "--columns", ",".join(variables)]))
    inputs = open_inputs(cfg)
    chunks = list(read_chunks(inputs.files, inputs.spec, inputs.variables, plans=inputs.plans))
    return {"n_jets": np.concatenate([c.n_jets for c in chunks]),
            "event_number": np.concatenate([c.event_number for c in chunks]),
            **{v: np.concatenate([c.jets[v] for c in chunks]) for v in variables}}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_every_event_is_recorded_from_the_preset_alone(recorded: Recorded) -> None:
    events = recorded.summary["events"]
    assert events["produced"] == events["recorded"] == EVENTS, events
    assert events["lost"] == events["duplicates_recorded"] == 0
    assert recorded.summary["rejected"] == {}
    assert not any(recorded.summary["input"].values()), recorded.summary["input"]  # the examples are clean
    producer_argv = next(s["args"] for s in json.loads((recorded.out / "run.json").read_text())["stages"]
                         if s["name"] == "producer")
    assert "--columns" not in producer_argv  # every per-jet variable is sent: the model's are among them
    assert_decision_as_announced(recorded.run, recorded.summary)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_recording_verifies_decodes_and_joins_back(recorded: Recorded, tmp_path: Path) -> None:
    verify = aetrig("verify", str(recorded.out))
    assert verify.returncode == 0 and "OK" in verify.stdout, verify.stdout + verify.stderr
    decoded = tmp_path / "decoded.root"
    decode = aetrig("decode", str(recorded.out), "--out", str(decoded))
    assert decode.returncode == 0, decode.stdout + decode.stderr

    truth = _truth(recorded.path, recorded.flags, ["pt", "e"])
    with uproot.open(decoded) as f:
        dec = f["events"].arrays(["entry", "event_number", "jet_pt", "jet_e"], library="ak")
    order = np.argsort(dec["entry"].to_numpy())
    np.testing.assert_array_equal(dec["entry"].to_numpy()[order], np.arange(EVENTS))
    np.testing.assert_array_equal(dec["event_number"].to_numpy()[order], truth["event_number"])
    np.testing.assert_array_equal(ak.num(dec["jet_pt"]).to_numpy()[order], truth["n_jets"])
    # the manifest records the effective reading settings: the recorded events join back to the input exactly
    rec = Recording(recorded.out)
    events = rec.events()
    joined = join_inputs(events["file_index"], events["entry"], next(iter(rec.manifests.values())), ["pt", "e"],
                         search_dirs=[str(SAMPLES)])
    rows = np.argsort(events["entry"])
    for var in ("pt", "e"):
        np.testing.assert_array_equal(ak.flatten(joined[var][rows]).to_numpy(), truth[var])
        reco = ak.flatten(dec[f"jet_{var}"][order]).to_numpy()  # and the decoded jets are those jets
        assert np.median(np.abs(reco - truth[var]) / truth[var]) < 0.02, var
        assert np.corrcoef(reco, truth[var])[0, 1] > 0.999, var


def _delphes_without_mass(path: Path) -> Path:
    with uproot.open(SAMPLES / "delphes_example.root") as f:
        a = f["Delphes"].arrays(["Jet.PT", "Jet.Eta", "Jet.Phi", "Event.Number"])
    branches = {"Jet": ak.zip({"PT": a["Jet.PT"], "Eta": a["Jet.Eta"], "Phi": a["Jet.Phi"]}),
                "Event": ak.zip({"Number": a["Event.Number"]})}
    with uproot.recreate(path) as f:
        f.mktree("Delphes", {k: v.type.content for k, v in branches.items()},
                 field_name=lambda outer, inner: f"{outer}.{inner}", counter_name=lambda counted: f"{counted}_size")
        f["Delphes"].extend(branches)
    return path


@pytest.mark.parametrize("name,flags,model,expected", [
    # the PHYSLITE preset on the NanoAOD file: neither of its layouts is there; each tree is named once, by kind
    ("nanoaod_example.root", ["--input-format", "physlite"], "AE_3D_200_ptetaphie",
     ["nanoaod_example.root", "no TTree or RNTuple 'CollectionTree' or 'EventData' (input format physlite)",
      "TTrees: Events; RNTuples: none", "closest: 'Events'"]),
    # the right tree but this project's branch names: the missing branch and the close ones present
    ("nanoaod_example.root", ["--tree", "Events", "--branch-map", "event_number=event"], "AE_3D_200_ptetaphie",
     ["nanoaod_example.root", "tree 'Events'", "no branch 'jet_pt' for variable 'pt'", "look close: Jet_pt"]),
    # a model needing variables NanoAOD does not have: the run asks the producer for them
    ("nanoaod_rntuple_example.root", ["--input-format", "nanoaod"], "wide_k6",
     ["nanoaod_rntuple_example.root", "tree 'Events' (input format nanoaod)",
      "no branch 'jet_nconst' for variable 'nconst'"]),
    # an explicit --columns without the compression model's e: every message would have been rejected
    ("nanoaod_example.root", ["--input-format", "nanoaod", "--columns", "pt,eta,phi,m"], "AE_3D_200_ptetaphie",
     ["--columns pt,eta,phi,m lacks e, needed by the model", "add e"]),
    # a Delphes file without Jet.Mass
    ("nomass", ["--input-format", "delphes"], "AE_3D_200_ptetaphie",
     ["has no branch 'Jet.Mass' for variable 'm'", "--branch-map m=BRANCH"]),
])
@pytest.mark.timeout(120)
def test_run_fails_at_start_up_when_the_input_lacks_what_the_model_needs(
        tmp_path: Path, name: str, flags: list[str], model: str, expected: list[str]) -> None:
    path = _delphes_without_mass(tmp_path / "nomass.root") if name == "nomass" else SAMPLES / name
    out = tmp_path / "run"
    t0 = time.monotonic()
    run = aetrig("run", "--input", str(path), *flags, "--model", str(REPO / "models" / "zoo" / model),
                 "--events", str(EVENTS), "--rate", "0", "--out", str(out), timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert time.monotonic() - t0 < 30
    for text in expected:
        assert text in run.stderr, (text, run.stderr)
    assert not (out / "logs").exists()  # no stage was started
