"""--latent-codec ans end to end: `aetrig run` with a rate-trained model records ANS-coded latent symbols
(layout latent_codec ans), `aetrig verify` accepts it, the recording's latents are exactly the offline encoder's
symbols times the step, and `aetrig decode` reconstructs the jets. The model runs from a directory outside
models/zoo under a name no zoo model has (its card carries the entropy model). A model without an entropy model is
refused by `aetrig run` at start-up (exit 2, one line)."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import uproot
from aetrig_cli import REPO, run_aetrig

from emulator.runtime.recording import LATENT_ANS_BRANCH, Recording
from models.runtime import latent_coding as lc
from models.runtime.data import load_jets

SAMPLE = REPO / "producer" / "samples" / "qcd.root"
MODEL = REPO / "models" / "zoo" / "RD_AE_l2"
EVENTS = 1500


_aetrig = partial(run_aetrig, timeout=180)


def _run(out: Path, model: Path) -> subprocess.CompletedProcess:
    return _aetrig("run", "--input", str(SAMPLE), "--model", str(model), "--latent-codec", "ans", "--events",
                   str(EVENTS), "--rate", "0", "--encoders", "1", "--out", str(out), "--status-interval", "0")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_run_records_coded_latents_that_verify_and_decode(tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "RD_moved"
    shutil.copytree(MODEL, moved)
    card = json.loads((moved / "card.json").read_text())
    (moved / "card.json").write_text(json.dumps({**card, "name": "RD_moved"}))
    out = tmp_path / "run"
    run = _run(out, moved)
    assert run.returncode == 0, run.stdout + run.stderr
    verify = _aetrig("verify", str(out))
    assert verify.returncode == 0 and "OK" in verify.stdout, verify.stdout + verify.stderr
    rec = Recording(out)
    assert all(s.layout["latent_codec"] == "ans" and LATENT_ANS_BRANCH in s.branches for s in rec.segments)
    assert not any(b.startswith("jet_latent_") for s in rec.segments for b in s.branches)
    # the default event model flags (the sample has its variables): no jet_error either, only the jet counter
    assert not rec.has_jet_error and all("jet_error" not in s.branches for s in rec.segments)
    events, latent = rec.events(), rec.latent()
    assert len(latent) == events["n_jets"].sum()

    sample = load_jets([SAMPLE], ["pt", "eta", "phi", "e"], max_events=EVENTS)
    entropy = lc.load_entropy_model(MODEL)
    offline = lc.quantise(lc.encoder_session(MODEL).run(["latent"], {"x": sample.values.astype(np.float32)})[0],
                          entropy)
    starts = np.concatenate([[0], np.cumsum(events["n_jets"])[:-1]])
    offline_starts = np.concatenate([[0], np.cumsum(sample.counts)[:-1]])
    for i in np.argsort(events["entry"]):  # each recorded event's latents are its jets' offline symbols
        entry, n = int(events["entry"][i]), int(events["n_jets"][i])
        got = latent[starts[i]:starts[i] + n]
        want = lc.dequantise(offline[offline_starts[entry]:offline_starts[entry] + n], entropy)
        np.testing.assert_array_equal(got, want)

    decoded = tmp_path / "decoded.root"
    decode = _aetrig("decode", str(out), "--out", str(decoded), "--model", str(moved))
    assert decode.returncode == 0, decode.stdout + decode.stderr
    with uproot.open(decoded) as f:
        assert f["events"].num_entries == EVENTS
        assert json.loads(str(f["metadata"]))["n_jets"] == int(events["n_jets"].sum())


@pytest.mark.timeout(60)
def test_a_model_without_entropy_model_is_refused_at_start_up(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = _run(out, REPO / "models" / "zoo" / "AE_3D_200_ptetaphie")
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aetrig run: error: --latent-codec ans"), run.stderr
    assert "has no entropy_model.json (not rate-trained)" in lines[0]
    assert not (out / "logs").exists()  # no stage was started
