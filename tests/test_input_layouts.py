"""How the reader finds a file's layout and fields (producer/formats.py layouts, producer/reader.py inspect_file):
presets with several layouts, the missing-tree error, RNTuple record fields, Delphes' event number, and one
start-up check whose plan the reader reuses."""

from __future__ import annotations

import argparse
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from producer import config, reader
from producer.formats import FORMATS, layouts
from producer.inputs import open_inputs
from producer.reader import ReaderError, ReaderSpec, inspect_file, read_chunks

SAMPLES = Path(__file__).resolve().parents[1] / "producer" / "samples"


def _inputs(*argv: str):
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return open_inputs(config.resolve(parser.parse_args(list(argv))))


def _read(inputs) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    chunks = list(read_chunks(inputs.files, inputs.spec, inputs.variables, plans=inputs.plans))
    return (np.concatenate([c.n_jets for c in chunks]), np.concatenate([c.event_number for c in chunks]),
            {v: np.concatenate([c.jets[v] for c in chunks]) for v in inputs.variables})


def test_layouts_try_the_preset_in_order_and_keep_what_the_user_set() -> None:
    first = FORMATS["physlite"].layouts[0]
    tried = layouts("physlite", first.tree, {**first.branch_map, "pt": "AnalysisJetsAuxDyn.pt_calib"})
    assert [t for t, _ in tried] == ["CollectionTree", "EventData"]
    assert tried[1][1]["pt"] == "AnalysisJetsAuxDyn.pt_calib"  # the user's entry holds in every layout
    assert tried[1][1]["eta"] == "AnalysisJetsAuxDyn:eta"
    assert tried[1][1]["event_number"] == "EventInfoAuxDyn:eventNumber"
    assert layouts("physlite", "MyTree", first.branch_map) == (("MyTree", dict(first.branch_map)),)  # chosen tree only
    assert len(layouts("aetrig", "events", {})) == 1 and len(layouts(None, "t", {})) == 1


def test_the_physlite_preset_reads_either_layout_with_the_same_jets() -> None:
    ttree, rntuple = _inputs("--input-format", "physlite", "--input", str(SAMPLES / "physlite_example.root"),
                             str(SAMPLES / "physlite_rntuple_example.root")).plans
    assert (ttree.spec.tree, ttree.kind, rntuple.spec.tree, rntuple.kind) == ("CollectionTree", "TTree", "EventData",
                                                                              "RNTuple")
    a = _read(_inputs("--input-format", "physlite", "--input", str(SAMPLES / "physlite_example.root")))
    b = _read(_inputs("--input-format", "physlite", "--input", str(SAMPLES / "physlite_rntuple_example.root")))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    for var in a[2]:
        np.testing.assert_array_equal(a[2][var], b[2][var])


def test_missing_tree_lists_each_tree_and_rntuple_once_and_the_closest(tmp_path: Path) -> None:
    path = tmp_path / "meta.root"
    with uproot.recreate(path) as f:
        f.mktree("MetaData", {"x": np.int32})
        f["MetaData"].extend({"x": np.arange(3, dtype=np.int32)})
        f.mktree("Sub/CollectionTrees", {"x": np.int32})
        f["Sub/CollectionTrees"].extend({"x": np.arange(3, dtype=np.int32)})
        f.mkrntuple("EventDat", {"x": np.arange(3, dtype=np.int32)})
    with uproot.update(path) as f:  # a second cycle of MetaData, as real files have
        f.mktree("MetaData", {"y": np.int32})
    assert sorted(uproot.open(path).keys()).count("MetaData;2") == 1
    spec = ReaderSpec(tree="CollectionTree", input_format="physlite",
                      layouts=layouts("physlite", "CollectionTree", FORMATS["physlite"].branch_map))
    with pytest.raises(ReaderError) as err:
        inspect_file(path, spec)
    message = str(err.value)
    assert "no TTree or RNTuple 'CollectionTree' or 'EventData' (input format physlite)" in message
    assert "TTrees: MetaData, Sub/CollectionTrees; RNTuples: EventDat" in message
    assert message.count("MetaData") == 1 and ";1" not in message and ";2" not in message
    assert "closest: 'Sub/CollectionTrees' (TTree), read it with --tree Sub/CollectionTrees" in message


def test_an_rntuple_of_jet_records_is_read_as_the_check_accepts_it(tmp_path: Path) -> None:
    """uproot writes a dict of records as an RNTuple with fields jet.pt, jet.eta ... under jet: the producer
    used to accept them at start-up and die reading (FieldNotFoundError: no field 'jet.pt')."""
    with uproot.open(SAMPLES / "qcd.root") as f:
        a = f["events"].arrays(["jet_pt", "jet_eta", "jet_phi", "jet_m", "event_number"], entry_stop=500)
    path = tmp_path / "records.root"
    with uproot.recreate(path) as f:
        f["events"] = {"jet": ak.zip({v: a[f"jet_{v}"] for v in ("pt", "eta", "phi", "m")}),
                       "event_number": a["event_number"]}
    assert uproot.open(path).classnames()["events;1"] == "ROOT::RNTuple"
    inputs = _inputs("--input", str(path), "--branch-map", "pt=jet.pt", "eta=jet.eta", "phi=jet.phi", "m=jet.m",
                     "--step-size", "128")
    assert inputs.plans[0].fields["pt"] == ("jet", "pt") and inputs.plans[0].kind == "RNTuple"
    counts, events, jets = _read(inputs)
    np.testing.assert_array_equal(counts, ak.num(a["jet_pt"]).to_numpy())
    np.testing.assert_array_equal(events, a["event_number"].to_numpy())
    for var in ("pt", "eta", "phi", "m"):
        np.testing.assert_array_equal(jets[var], ak.flatten(a[f"jet_{var}"]).to_numpy())
    # a field the file holds that is no jagged per-jet array fails at start-up, in one line
    with pytest.raises(ReaderError, match=r"branch 'event_number' is not a jagged per-jet array"):
        _inputs("--input", str(path), "--branch-map", "pt=event_number", "eta=jet.eta", "phi=jet.phi", "m=jet.m")


def test_delphes_event_number_is_the_one_element_of_its_collection(tmp_path: Path) -> None:
    counts, events, _ = _read(_inputs("--input-format", "delphes", "--input", str(SAMPLES / "delphes_example.root")))
    with uproot.open(SAMPLES / "qcd.root") as f:
        truth = f["events"]["event_number"].array(entry_stop=300, library="np")
    np.testing.assert_array_equal(events, truth)
    assert len(counts) == 300
    path = tmp_path / "two.root"  # an Event collection with two entries in one event is refused
    number = ak.Array([[1], [2, 3], [4]])
    jets = ak.zip({"PT": ak.Array([[50.0], [60.0], []]), "Eta": ak.Array([[0.1], [0.2], []]),
                   "Phi": ak.Array([[0.1], [0.2], []]), "Mass": ak.Array([[5.0], [6.0], []])})
    with uproot.recreate(path) as f:
        f.mktree("Delphes", {"Event": ak.zip({"Number": number}).type.content, "Jet": jets.type.content},
                 field_name=lambda outer, inner: f"{outer}.{inner}", counter_name=lambda counted: f"{counted}_size")
        f["Delphes"].extend({"Event": ak.zip({"Number": number}), "Jet": jets})
    spec = ReaderSpec(tree="Delphes", branch_map=FORMATS["delphes"].branch_map, step_size=2)
    plan = inspect_file(path, spec)  # entry 0 is fine
    with pytest.raises(ReaderError, match=r"'Event.Number' holds 2 values at entry 1; it must hold one per event"):
        list(read_chunks([path], spec, list(plan.variables), plans=[plan]))


def test_the_reader_does_not_check_a_planned_file_again(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = _inputs("--input-format", "nanoaod", "--input", str(SAMPLES / "nanoaod_rntuple_example.root"))
    calls = []
    monkeypatch.setattr(reader, "inspect_file", lambda *a, **k: calls.append(a))
    assert sum(len(c) for c in read_chunks(inputs.files, inputs.spec, inputs.variables, plans=inputs.plans)) == 300
    assert calls == []
