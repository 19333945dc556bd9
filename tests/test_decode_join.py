"""Join recorded events to inputs by (file_index, entry), with event_numbers repeated across files."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from consumer.offline.join import JoinError, join_inputs, sha256_file
from consumer.offline.rootwrite import create_tree


def write_input(path, pt_offset: float, n: int = 50) -> None:
    counts = np.arange(n) % 4  # includes zero-jet events
    pt = np.arange(counts.sum(), dtype=np.float32) + pt_offset
    eta = np.linspace(-2, 2, counts.sum()).astype(np.float32)
    with uproot.recreate(path) as f:
        create_tree(f, "events", {
            "jet": ak.zip({"pt": ak.unflatten(pt, counts), "eta": ak.unflatten(eta, counts)}),
            "event_number": np.arange(n, dtype=np.uint64),  # the same numbers in every file
            "run_number": np.zeros(n, dtype=np.uint32),
        })


def test_join_by_file_and_entry_not_event_number(tmp_path) -> None:
    a, b = tmp_path / "a.root", tmp_path / "b.root"
    write_input(a, 0.0)
    write_input(b, 10000.0)
    manifest = {"files": [{"path": str(a), "sha256": sha256_file(str(a))},
                          {"path": str(b), "sha256": sha256_file(str(b))}]}
    file_index = np.array([1, 0, 1, 0, 1, 1])
    entry = np.array([7, 7, 3, 49, 0, 7])
    joined = join_inputs(file_index, entry, manifest, ["pt", "eta"])
    with uproot.open(a) as fa, uproot.open(b) as fb:
        ref = [fa["events"].arrays(["jet_pt", "jet_eta"]), fb["events"].arrays(["jet_pt", "jet_eta"])]
    for i, (fi, e) in enumerate(zip(file_index, entry, strict=True)):
        assert ak.to_list(joined.pt[i]) == ak.to_list(ref[fi].jet_pt[e])
        assert ak.to_list(joined.eta[i]) == ak.to_list(ref[fi].jet_eta[e])
    # same event_number 7 in both files, different jets: a join by event number would mix them
    assert ak.to_list(joined.pt[0]) != ak.to_list(joined.pt[1])
    assert len(joined.pt[4]) == 0  # entry 0 has zero jets and is kept


def test_join_errors(tmp_path) -> None:
    a = tmp_path / "a.root"
    write_input(a, 0.0)
    manifest = {"files": [{"path": str(a), "sha256": "0" * 64}]}
    with pytest.raises(JoinError, match="sha256"):
        join_inputs(np.array([0]), np.array([1]), manifest, ["pt"])
    ok = {"files": [str(a)]}
    with pytest.raises(JoinError, match="outside"):
        join_inputs(np.array([3]), np.array([1]), ok, ["pt"])
    with pytest.raises(JoinError, match="not in tree"):
        join_inputs(np.array([0]), np.array([500]), ok, ["pt"])
    with pytest.raises(JoinError, match="jet_m"):
        join_inputs(np.array([0]), np.array([1]), ok, ["m"])
    with pytest.raises(JoinError, match="not found"):
        join_inputs(np.array([0]), np.array([1]), {"files": [str(tmp_path / "gone.root")]}, ["pt"])
