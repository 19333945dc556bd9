"""consumer/offline/studies/nanoaod_bytes.py counts bytes right: the NanoAOD file's groups add up to its size and its
jet branches' bytes equal the basket keys' byte counts read from the raw file here; a real `aetrig run
--input-format nanoaod` recording of the bundled example is compared with ratios that equal the quotients of the
files' sizes and jet counts computed independently."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import awkward as ak
import pytest
import uproot

from consumer.offline.studies import nanoaod_bytes as nb

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "producer" / "samples" / "nanoaod_example.root"


def _raw_basket_bytes(path: Path, branch: str) -> int:
    """The sum of the TKey ``fNbytes`` (key + compressed payload) of every basket of ``branch``, read from the file's
    bytes at the basket seeks."""
    data = path.read_bytes()
    with uproot.open(path) as f:
        b = f[nb.TREE][branch]
        seeks = b.member("fBasketSeek")[:b.num_baskets]
    return sum(struct.unpack(">i", data[int(s):int(s) + 4])[0] for s in seeks)


def test_input_groups_add_up_and_jet_branches_match_the_raw_baskets() -> None:
    got = nb.input_bytes(EXAMPLE)
    assert sum(got["by_group"].values()) == got["bytes"] == os.path.getsize(EXAMPLE)
    assert all(v > 0 for v in got["by_group"].values())
    assert got["by_group"]["jet_branches"] == sum(_raw_basket_bytes(EXAMPLE, b) for b in nb.JET_BRANCHES)
    assert got["by_group"]["jet_counter"] == _raw_basket_bytes(EXAMPLE, nb.COUNTER)
    with uproot.open(EXAMPLE) as f:
        jets = f[nb.TREE]["Jet_pt"].array(library="ak")
        assert got["jets"] == len(ak.flatten(jets)) and got["events"] == len(jets)
    assert got["per_jet"]["jet_branches"] == pytest.approx(got["by_group"]["jet_branches"] / got["jets"])


def test_rewritten_jets_hold_the_same_values_and_count_like_the_original(tmp_path: Path) -> None:
    plain = nb.rewrite_jets(EXAMPLE, tmp_path / "plain.root", "none")
    packed = nb.rewrite_jets(EXAMPLE, tmp_path / "lzma.root", "lzma:9")
    with uproot.open(EXAMPLE) as a, uproot.open(packed) as b:
        for name in nb.JET_BRANCHES:
            assert ak.all(a[nb.TREE][name].array() == b[nb.TREE][name].array())
    got = {p.name: nb.input_bytes(p) for p in (plain, packed)}
    for path in (plain, packed):
        assert got[path.name]["by_group"]["jet_branches"] == sum(_raw_basket_bytes(path, b) for b in nb.JET_BRANCHES)
    # uncompressed: at least the 16 bytes of four float32 per jet; LZMA finds the 12- and 10-bit mantissas
    assert got["plain.root"]["per_jet"]["jet_branches"] >= 16.0 > got["lzma.root"]["per_jet"]["jet_branches"]


def test_a_file_without_nanoaod_jets_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no"):
        nb.input_bytes(REPO / "producer" / "samples" / "qcd.root", tree="events")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_recording_of_the_example_is_compared_every_byte_counted(tmp_path: Path) -> None:
    out = tmp_path / "nano"
    run = subprocess.run([sys.executable, "-m", "emulator.cli", "run", "--input", str(EXAMPLE), "--input-format",
                          "nanoaod", "--loops", "2", "--rate", "0", "--out", str(out), "--status-interval", "0"],
                         capture_output=True, text=True, timeout=240, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    result = nb.compare(out, EXAMPLE)
    segments = sorted((out / "segments").glob("*.root"))
    recorded = sum(os.path.getsize(p) for p in segments)
    with uproot.open(EXAMPLE) as f:
        input_jets = int(f[nb.TREE][nb.COUNTER].array(library="np").sum())
    assert result["recording"]["bytes"] == recorded and result["recording"]["jets"] == 2 * input_jets
    jet_bytes = sum(_raw_basket_bytes(EXAMPLE, b) for b in nb.JET_BRANCHES)
    want = (jet_bytes / input_jets) / (recorded / (2 * input_jets))
    assert result["ratios"]["four_jet_branches_over_recording"] == pytest.approx(want, rel=1e-12)
    assert result["ratios"]["file_over_recording"] == pytest.approx(
        (os.path.getsize(EXAMPLE) / input_jets) / (recorded / (2 * input_jets)), rel=1e-12)
    text = subprocess.run([sys.executable, "-m", "consumer.offline.studies.nanoaod_bytes", str(out), "--input",
                           str(EXAMPLE), "--rewrite", "lzma:9"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert text.returncode == 0 and f"{result['ratios']['four_jet_branches_over_recording']:.2f}x" in text.stdout
    assert "rewritten at lzma:9" in text.stdout
