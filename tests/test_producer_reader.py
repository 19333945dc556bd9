"""producer.reader against real ROOT files written with uproot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from producer_testdata import make_ntuple

from producer.reader import ENERGY_VARIABLES, ReaderError, ReaderSpec, expand_inputs, read_chunks, resolve_variables


def _read_all(files: list[Path], spec: ReaderSpec) -> tuple[list, list[str]]:
    variables = resolve_variables(files[0], spec)
    return list(read_chunks(files, spec, variables)), variables


def test_chunks_are_bounded_and_cover_the_file_in_order(tmp_path: Path) -> None:
    truth = make_ntuple(tmp_path / "a.root", 1050)
    chunks, variables = _read_all([tmp_path / "a.root"], ReaderSpec(step_size=100))
    assert variables == ["e", "eta", "m", "phi", "pt"]
    assert len(chunks) == 11 and all(len(c) <= 100 for c in chunks)
    entry = np.concatenate([c.entry for c in chunks])
    np.testing.assert_array_equal(entry, np.arange(1050))
    np.testing.assert_array_equal(np.concatenate([c.n_jets for c in chunks]), truth["n_jets"])
    np.testing.assert_array_equal(np.concatenate([c.event_number for c in chunks]), truth["event_number"])
    for var in variables:
        np.testing.assert_array_equal(np.concatenate([c.jets[var] for c in chunks]), truth[var])
        assert all(c.jets[var].dtype == np.dtype("<f4") for c in chunks)


def test_zero_jet_events_pass_through(tmp_path: Path) -> None:
    truth = make_ntuple(tmp_path / "a.root", 200)
    chunks, _ = _read_all([tmp_path / "a.root"], ReaderSpec(step_size=64))
    counts = np.concatenate([c.n_jets for c in chunks])
    assert (counts == 0).sum() == (truth["n_jets"] == 0).sum() > 0
    assert sum(len(c) for c in chunks) == 200


def test_branch_mapping_tree_name_and_mev_to_gev(tmp_path: Path) -> None:
    path = tmp_path / "atlas.root"
    truth = make_ntuple(path, 300, tree="CollectionTree", prefix="AntiKt4EMTopoJetsAuxDyn.", unit_scale=1000.0,
                        event_branch="EventInfoAuxDyn.eventNumber")
    mapping = {v: f"AntiKt4EMTopoJetsAuxDyn.{v}" for v in ("pt", "eta", "phi", "m", "e")}
    mapping["event_number"] = "EventInfoAuxDyn.eventNumber"
    spec = ReaderSpec(tree="CollectionTree", branch_map=mapping, unit="MeV", columns=["pt", "eta", "phi", "m", "e"])
    chunks, variables = _read_all([path], spec)
    assert variables == ["pt", "eta", "phi", "m", "e"]
    got = {v: np.concatenate([c.jets[v] for c in chunks]) for v in variables}
    for var in variables:
        # energies were written in MeV and must come back in GeV; angles untouched
        np.testing.assert_allclose(got[var], truth[var], rtol=1e-6)
    assert {"pt", "m", "e"} <= ENERGY_VARIABLES and not {"eta", "phi"} & ENERGY_VARIABLES
    np.testing.assert_array_equal(np.concatenate([c.event_number for c in chunks]), truth["event_number"])


def test_missing_branch_error_names_branch_and_file(tmp_path: Path) -> None:
    path = tmp_path / "nophi.root"
    make_ntuple(path, 20, variables=("pt", "eta", "m"))
    with pytest.raises(ReaderError) as err:
        resolve_variables(path, ReaderSpec(columns=["pt", "eta", "phi"]))
    assert "'jet_phi'" in str(err.value) and str(path) in str(err.value)
    with pytest.raises(ReaderError, match=r"'Jets\.phi'"):
        resolve_variables(path, ReaderSpec(columns=["phi"], branch_map={"phi": "Jets.phi"}))


def test_missing_tree_is_a_clear_error(tmp_path: Path) -> None:
    make_ntuple(tmp_path / "a.root", 10)
    with pytest.raises(ReaderError, match="no TTree or RNTuple 'CollectionTree'"):
        resolve_variables(tmp_path / "a.root", ReaderSpec(tree="CollectionTree"))


def test_derived_energy_matches_four_vector_sum(tmp_path: Path) -> None:
    path = tmp_path / "noe.root"
    truth = make_ntuple(path, 400, variables=("pt", "eta", "phi", "m"))
    for spec in (ReaderSpec(columns=["pt", "eta", "phi", "m", "e"]), ReaderSpec(derive_e=True)):
        chunks, variables = _read_all([path], spec)
        assert "e" in variables
        e = np.concatenate([c.jets["e"] for c in chunks]).astype(np.float64)
        pt, eta, phi, m = (truth[v].astype(np.float64) for v in ("pt", "eta", "phi", "m"))
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        np.testing.assert_allclose(e, np.sqrt(px**2 + py**2 + pz**2 + m**2), rtol=2e-6)


def test_derive_e_in_mev_file_gives_gev(tmp_path: Path) -> None:
    path = tmp_path / "mev.root"
    truth = make_ntuple(path, 100, variables=("pt", "eta", "phi", "m"), unit_scale=1000.0)
    chunks, _ = _read_all([path], ReaderSpec(unit="MeV", columns=["pt", "eta", "m", "e"]))
    np.testing.assert_allclose(np.concatenate([c.jets["e"] for c in chunks]), truth["e"], rtol=2e-6)


def test_globs_expand_in_order_and_set_file_index(tmp_path: Path) -> None:
    for i in range(3):
        make_ntuple(tmp_path / f"part{i}.root", 30 + i, seed=110 + i)
    files = expand_inputs([str(tmp_path / "part*.root")])
    assert [f.name for f in files] == ["part0.root", "part1.root", "part2.root"]
    chunks, _ = _read_all(files, ReaderSpec(step_size=1000))
    assert [(int(c.file_index[0]), len(c)) for c in chunks] == [(0, 30), (1, 31), (2, 32)]
    with pytest.raises(ReaderError, match="matches no file"):
        expand_inputs([str(tmp_path / "nothing*.root")])
    with pytest.raises(ReaderError, match="does not exist"):
        expand_inputs([str(tmp_path / "absent.root")])


def test_event_source_loops_limits_and_reads_ahead(tmp_path: Path) -> None:
    from producer.source import event_source, prefetch

    make_ntuple(tmp_path / "a.root", 250)
    spec = ReaderSpec(step_size=100)
    variables = resolve_variables(tmp_path / "a.root", spec)
    blocks = list(prefetch(event_source([tmp_path / "a.root"], spec, variables, loops=3, max_events=620)))
    entries = np.concatenate([b.entry for b in blocks])
    np.testing.assert_array_equal(entries, np.concatenate([np.arange(250), np.arange(250), np.arange(120)]))
    assert all(len(b.jets["pt"]) == int(b.n_jets.sum()) for b in blocks)
    assert sum(len(b) for b in prefetch(event_source([tmp_path / "a.root"], spec, variables, 1, 0))) == 250


def test_prefetch_reraises_reader_errors() -> None:
    from producer.source import prefetch

    def broken():
        yield 1
        raise ReaderError("file vanished")

    it = prefetch(broken())
    assert next(it) == 1
    with pytest.raises(ReaderError, match="file vanished"):
        next(it)


def test_looping_replays_the_first_pass_from_memory_or_rereads_when_too_big(tmp_path: Path) -> None:
    from producer.source import event_source

    truth = make_ntuple(tmp_path / "a.root", 300)
    spec = ReaderSpec(step_size=128)
    variables = resolve_variables(tmp_path / "a.root", spec)
    for cache_bytes in (1 << 30, 1000):  # everything cached / nothing fits
        blocks = list(event_source([tmp_path / "a.root"], spec, variables, loops=3, max_events=0,
                                   cache_bytes=cache_bytes))
        assert sum(len(b) for b in blocks) == 900
        pt = np.concatenate([b.jets["pt"] for b in blocks])
        np.testing.assert_array_equal(pt, np.tile(truth["pt"], 3))
        assert len({id(b) for b in blocks}) == len(blocks)  # fresh block objects: times may be set on each
