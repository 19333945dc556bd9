"""`aetrig run` on each input-format example (PHYSLITE, NanoAOD, Cartesian open data): every event produced is
recorded, verifies, decodes, and the decoded jets join back to the input file; an input that lacks what the
model needs fails at start-up with the producer's error, before any stage starts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from consumer.offline.join import join_inputs
from emulator import cli
from emulator.runtime.recording import Recording
from producer import config
from producer.inputs import open_inputs
from producer.reader import read_chunks

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "producer" / "samples"
MODEL = REPO / "models" / "zoo" / "AE_3D_200_ptetaphie"
CASES = {  # the layouts of producer/samples/README.md "Format examples"
    "physlite": ("physlite_example.root", ["--input-format", "physlite"]),
    "nanoaod": ("nanoaod_example.root", ["--input-format", "nanoaod"]),
    "cartesian": ("cms_opendata_example.root",
                  ["--tree", "events", "--branch-map", "px=Jet_Px", "py=Jet_Py", "pz=Jet_Pz", "e=Jet_E"]),
}
EVENTS = 300


def _aetrig(*argv: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emulator.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def _truth(path: Path, flags: list[str], variables: list[str]) -> dict[str, np.ndarray]:
    """The input file as the producer reads it: per-event entry, event number and jet count, flat jet variables."""
    parser, _ = cli.build_parser("produce")
    cfg = config.resolve(parser.parse_args(["--input", str(path), *flags, "--columns", ",".join(variables)]))
    inputs = open_inputs(cfg)
    chunks = list(read_chunks(inputs.files, inputs.spec, inputs.variables))
    return {"n_jets": np.concatenate([c.n_jets for c in chunks]),
            "event_number": np.concatenate([c.event_number for c in chunks]),
            **{v: np.concatenate([c.jets[v] for c in chunks]) for v in variables}}


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", CASES)
def test_run_records_verifies_and_decodes_each_example(tmp_path: Path, case: str) -> None:
    name, flags = CASES[case]
    out = tmp_path / "run"
    run = _aetrig("run", "--input", str(SAMPLES / name), *flags, "--model", str(MODEL), "--events", str(EVENTS),
                  "--rate", "0", "--encoders", "1", "--out", str(out), "--status-interval", "0")
    assert run.returncode == 0, run.stdout + run.stderr
    events = json.loads((out / "summary.json").read_text())["events"]
    assert events["produced"] == events["recorded"] == EVENTS, events
    assert events["lost"] == events["duplicates_recorded"] == 0
    producer_argv = next(s["args"] for s in json.loads((out / "run.json").read_text())["stages"]
                         if s["name"] == "producer")
    assert "--columns" not in producer_argv  # every per-jet variable is sent: the model's are among them
    verify = _aetrig("verify", str(out))
    assert verify.returncode == 0 and "OK" in verify.stdout, verify.stdout + verify.stderr
    decoded = tmp_path / "decoded.root"
    decode = _aetrig("decode", str(out), "--out", str(decoded))
    assert decode.returncode == 0, decode.stdout + decode.stderr

    truth = _truth(SAMPLES / name, flags, ["pt", "e"])
    with uproot.open(decoded) as f:
        dec = f["events"].arrays(["entry", "event_number", "jet_pt", "jet_e"], library="ak")
    order = np.argsort(dec["entry"].to_numpy())
    np.testing.assert_array_equal(dec["entry"].to_numpy()[order], np.arange(EVENTS))
    np.testing.assert_array_equal(dec["event_number"].to_numpy()[order], truth["event_number"])
    np.testing.assert_array_equal(ak.num(dec["jet_pt"]).to_numpy()[order], truth["n_jets"])
    # the recording's manifest holds the effective reading settings: its events join back to the input exactly
    recording = Recording(out)
    rec = recording.events()
    joined = join_inputs(rec["file_index"], rec["entry"], next(iter(recording.manifests.values())), ["pt", "e"],
                         search_dirs=[str(SAMPLES)])
    rows = np.argsort(rec["entry"])
    for var in ("pt", "e"):
        np.testing.assert_array_equal(ak.flatten(joined[var][rows]).to_numpy(), truth[var])
        reco = ak.flatten(dec[f"jet_{var}"][order]).to_numpy()  # and the decoded jets are those jets
        assert np.median(np.abs(reco - truth[var]) / truth[var]) < 0.02, var
        assert np.corrcoef(reco, truth[var])[0, 1] > 0.999, var


@pytest.mark.parametrize("flags,model,expected", [
    # the PHYSLITE preset on the NanoAOD file: its tree is not there; the trees present are named
    (["--input-format", "physlite"], MODEL, ["nanoaod_example.root", "no tree 'CollectionTree'", "['Events']"]),
    # the right tree but this project's branch names: the missing branch and the close ones present
    (["--tree", "Events", "--branch-map", "event_number=event"], MODEL,
     ["nanoaod_example.root", "tree 'Events'", "no branch 'jet_pt' for variable 'pt'", "look close: Jet_pt"]),
    # a model needing variables NanoAOD does not have: the run asks the producer for them
    (["--input-format", "nanoaod"], REPO / "models" / "zoo" / "wide_k6",
     ["nanoaod_example.root", "tree 'Events' (input format nanoaod)", "no branch 'jet_nconst' for variable 'nconst'"]),
])
def test_run_fails_at_start_up_when_the_input_lacks_what_the_model_needs(
        tmp_path: Path, flags: list[str], model: Path, expected: list[str]) -> None:
    out = tmp_path / "run"
    t0 = time.monotonic()
    run = _aetrig("run", "--input", str(SAMPLES / "nanoaod_example.root"), *flags, "--model", str(model),
                  "--events", str(EVENTS), "--rate", "0", "--out", str(out), timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert time.monotonic() - t0 < 30
    for text in expected:
        assert text in run.stderr, (text, run.stderr)
    assert not (out / "logs").exists()  # no stage was started
