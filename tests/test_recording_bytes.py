"""The byte split of a recording (consumer/offline/recording_bytes.py): categories that add up to the file,
checked against an uncompressed segment's known column sizes, and the lossless reference against zlib run by hand;
a real `aetrig run` reports it in summary.json and its end-of-run line, and `aetrig verify` says when the inputs
are gone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import uproot

from consumer.offline import recording_bytes as rb
from consumer.offline import stream_codecs
from consumer.sink.segment_writer import SegmentWriter
from emulator.runtime.recording import Layout, jagged_record

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "producer" / "samples" / "qcd.root"


def _chunk(n_events: int, k: int, rng: np.random.Generator) -> tuple[dict, int]:
    counts = rng.integers(0, 6, n_events)
    n_jets = int(counts.sum())
    chunk = {"run_id": np.full(n_events, 7, np.uint64), "seq": np.zeros(n_events, np.uint64),
             "event_id": np.arange(n_events, dtype=np.uint64), "file_index": np.zeros(n_events, np.uint32),
             "entry": np.arange(n_events, dtype=np.uint64), "event_number": np.arange(n_events, dtype=np.uint64),
             "event_score": rng.random(n_events).astype(np.float32), "flag": np.zeros(n_events, np.uint8),
             "event_threshold": np.full(n_events, 2.0, np.float32),
             "jet": jagged_record(counts, {f"latent_{i}": rng.normal(size=n_jets).astype(np.float32)
                                           for i in range(k)})}
    return chunk, n_jets


def test_branch_categories() -> None:
    assert rb.branch_category("jet_latent_2") == rb.branch_category("latent_ans_bytes") == "latents"
    assert rb.branch_category("njet") == rb.branch_category("nlatent_ans") == "latents"
    assert rb.branch_category("event_id") == rb.branch_category("entry_delta") == "identity"
    assert rb.branch_category("event_score") == rb.branch_category("jet_error") == "scores_flags"
    assert rb.branch_category("raw_jet_pt") == rb.branch_category("nraw_jet") == "raw"


def test_split_adds_up_and_matches_an_uncompressed_segment(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    k, n_events = 3, 4000
    card, manifest = json.dumps({"name": "m", "variables": []}), json.dumps({"files": []})
    path = tmp_path / "segments" / f"{7:016x}-000000.root"
    writer = SegmentWriter(path, card, manifest, Layout(k, "float32", ()), compression="none",
                           anomaly_card_text=card)
    chunk, n_jets = _chunk(n_events, k, rng)
    writer.commit(chunk)
    writer.close()
    split = rb.segment_bytes(path)
    assert sum(split.values()) == os.path.getsize(path)
    # uncompressed: the latents are k float32 per jet, plus per-entry offsets of each jagged branch and the
    # int32 counter njet; identity six 8/4-byte columns; scores 4 + 1 + 4 bytes per event (+ a basket header
    # of under 200 bytes per branch)
    latents = 4 * k * n_jets + 4 * n_events + 4 * k * (n_events + 1)
    assert latents <= split["latents"] <= latents + 200 * (k + 1)
    assert (5 * 8 + 4) * n_events <= split["identity"] <= (5 * 8 + 4) * n_events + 200 * 6
    assert 9 * n_events <= split["scores_flags"] <= 9 * n_events + 200 * 3
    assert split["raw"] == 0
    assert split["cards_metadata"] > 2 * len(card) + len(manifest)
    assert split["root_overhead"] > 0
    whole = rb.recording_bytes(tmp_path)
    assert whole["events"] == n_events and whole["jets"] == n_jets and whole["bytes"] == os.path.getsize(path)
    assert whole["per_jet"]["total"] == pytest.approx(os.path.getsize(path) / n_jets)


def _run(out: Path, *extra: str, sample: Path = SAMPLE) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "emulator.cli", "run", "--input", str(sample), "--out", str(out), "--rate", "0",
           "--max-events", "6000", "--status-interval", "0", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=REPO)


@pytest.mark.timeout(300)
def test_run_reports_bytes_and_ratio_and_verify_without_inputs(tmp_path: Path) -> None:
    sample = tmp_path / "inputs" / "qcd_copy.root"
    sample.parent.mkdir()
    shutil.copy(SAMPLE, sample)
    out = tmp_path / "run"
    proc = _run(out, "--lossless-events", "4000", sample=sample)
    assert proc.returncode == 0, proc.stderr[-2000:]
    block = json.loads((out / "summary.json").read_text())["recording_bytes"]
    assert block["events"] == 6000
    assert set(block["by_category"]) == set(rb.CATEGORIES)
    assert block["bytes"] == sum(block["by_category"].values()) == sum(p.stat().st_size
                                                                        for p in (out / "segments").iterdir()
                                                                        if p.suffix == ".root")
    assert block["per_jet"]["total"] == pytest.approx(block["bytes"] / block["jets"])
    ref = block["lossless_reference"]
    assert ref["available"] and ref["events"] == 4000 and ref["variables"] == ["pt", "eta", "phi", "e"]
    assert ref["best_codec"] in stream_codecs.LOSSLESS
    assert ref["bytes_per_jet"] == min(ref["bytes_per_jet_by_codec"].values())
    # zlib-9 of the same jets, by hand: the first 4000 events' jet counts (uint16, zstd-19) and four float32 columns
    with uproot.open(SAMPLE) as f:
        jets = f["events"].arrays(["jet_pt", "jet_eta", "jet_phi", "jet_e"], entry_stop=4000, library="np")
    counts = np.array([len(a) for a in jets["jet_pt"]], np.uint16)
    by_hand = len(stream_codecs.encode(counts, "zstd-19")) + sum(
        len(zlib.compress(np.concatenate(jets[c]).astype(np.float32).tobytes(), 9)) for c in jets)
    assert ref["bytes_per_jet_by_codec"]["zlib-9"] * int(counts.sum()) == pytest.approx(by_hand, rel=0.01)
    assert block["ratio_vs_best_lossless"] == pytest.approx(ref["bytes_per_jet"] / block["per_jet"]["total"])
    assert f"{block['per_jet']['total']:.2f} B/jet" in proc.stdout
    assert f"{block['ratio_vs_best_lossless']:.2f}x fewer bytes" in proc.stdout
    # without the compress extra's codec libraries (the container image): the split alone, and why
    blocked = ("import sys; sys.modules['numcodecs'] = sys.modules['zfpy'] = None; from emulator.cli import main; "
               f"sys.exit(main(['verify', {str(out)!r}]))")
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert f"{block['per_jet']['total']:.2f} B/jet" in done.stdout
    assert "no lossless comparison" in done.stdout and "aetrig[compress]" in done.stdout
    # the inputs gone: verify prints the split alone and says why
    sample.unlink()
    done = subprocess.run([sys.executable, "-m", "emulator.cli", "verify", str(out)], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert f"{block['per_jet']['total']:.2f} B/jet" in done.stdout
    assert "no lossless comparison" in done.stdout and "qcd_copy.root" in done.stdout
