"""aetrig decode on a real recording (SegmentWriter) with a real ONNX decoder graph."""

from __future__ import annotations

import argparse
import json
import shutil

import awkward as ak
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import uproot
from onnx import TensorProto, helper, numpy_helper

from consumer.offline import decode, decode_command
from consumer.offline.rootwrite import create_tree
from consumer.sink.segment_writer import SegmentWriter
from emulator.runtime.recording import Layout, jagged_record, segment_name
from models.runtime.hashing import sha256_file

VARS = ["pt", "eta", "phi"]
K = 2
W = np.array([[50.0, 0.3, -0.2], [20.0, -0.5, 1.1]], dtype=np.float32)  # [K, n_vars]
B = np.array([100.0, 0.1, 0.0], dtype=np.float32)


def write_decoder(path) -> None:
    """latent [N, K] -> reconstruction [N, 3] = latent @ W + B, as a real ONNX graph."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["latent", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["reconstruction"])],
        "tiny_decoder",
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["N", K])],
        [helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, ["N", len(VARS)])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.fixture()
def setup(tmp_path):
    model = tmp_path / "tiny"
    model.mkdir()
    write_decoder(model / "decoder.onnx")
    card = {"name": "tiny", "version": 1, "variables": [{"name": v, "unit": "GeV" if v == "pt" else ""} for v in VARS],
            "files": {"decoder.onnx": sha256_file(model / "decoder.onnx")}, "architecture": {"latent_dim": K}}
    (model / "card.json").write_text(json.dumps(card))

    rng = np.random.default_rng(5)
    n = 120
    counts = rng.integers(0, 5, n)  # zero-jet events included
    n_jets = int(counts.sum())
    jets = {"pt": rng.uniform(20, 500, n_jets).astype(np.float32),
            "eta": rng.uniform(-2.5, 2.5, n_jets).astype(np.float32),
            "phi": rng.uniform(-3.14, 3.14, n_jets).astype(np.float32)}
    inp = tmp_path / "input.root"
    with uproot.recreate(inp) as f:
        create_tree(f, "events", {"jet": ak.zip({v: ak.unflatten(jets[v], counts) for v in VARS}),
                                  "event_number": np.full(n, 7, dtype=np.uint64)})  # repeated on purpose
    run_id = 0xABCDEF0123456789
    manifest = {"run_id": run_id, "files": [{"index": 0, "path": str(inp), "sha256": sha256_file(inp)}],
                "settings": {"tree": "events", "branch_map": {}, "unit": "GeV"}}
    entry = rng.permutation(n)  # recorded out of order
    rec_counts = counts[entry]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    order = np.concatenate([np.arange(offsets[e], offsets[e + 1]) for e in entry]).astype(np.int64)
    latent = rng.standard_normal((n_jets, K)).astype(np.float32)
    flag = (rng.uniform(size=n) < 0.3).astype(np.uint8)
    raw_counts = np.where(flag == 1, rec_counts, 0)
    raw_sel = np.repeat(flag == 1, rec_counts)
    chunk = {"run_id": np.full(n, run_id, np.uint64), "seq": np.arange(n, dtype=np.uint64) // 10,
             "event_id": np.arange(n, dtype=np.uint64) + 1000, "file_index": np.zeros(n, np.uint32),
             "entry": entry.astype(np.uint64), "event_number": np.full(n, 7, np.uint64),
             "event_score": rng.uniform(size=n).astype(np.float32), "flag": flag,
             "jet": jagged_record(rec_counts, {**{f"latent_{i}": latent[:, i].copy() for i in range(K)},
                                               "error": rng.uniform(size=n_jets).astype(np.float32)}),
             "raw_jet": jagged_record(raw_counts, {v: jets[v][order][raw_sel] for v in VARS})}
    rec = tmp_path / "run" / "recording"
    half = n // 2
    for idx, sl in enumerate([slice(0, half), slice(half, n)]):
        writer = SegmentWriter(rec / "segments" / segment_name(run_id, idx), json.dumps(card), json.dumps(manifest),
                               Layout(K, "float32", tuple(VARS)))
        part = {}
        for key, value in chunk.items():
            part[key] = value[sl]
        writer.commit(part)
        writer.close()
    return {"model": model, "rec": rec, "latent": latent, "flag": flag, "entry": entry, "jets": jets,
            "order": order, "raw_sel": raw_sel, "n": n}


def test_decode_matches_independent_onnxruntime_and_copies_raw_exactly(setup, tmp_path) -> None:
    out = tmp_path / "decoded.root"
    summary = decode.decode_recording(setup["rec"], out, model_dir=setup["model"], progress=False)
    assert summary.n_events == setup["n"] and not summary.forced
    with uproot.open(out) as f:
        t = f["events"].arrays(library="ak")
        assert json.loads(str(f["card"]))["name"] == "tiny"
    # independent decode: ORT session on the latents read straight from the segments, and numpy algebra
    lat = []
    for seg in sorted((setup["rec"] / "segments").iterdir()):
        with uproot.open(seg) as f:
            a = f["events"].arrays([f"jet_latent_{i}" for i in range(K)])
        lat.append(np.stack([ak.to_numpy(ak.flatten(a[f"jet_latent_{i}"])) for i in range(K)], axis=1))
    lat = np.concatenate(lat)
    np.testing.assert_array_equal(lat, setup["latent"])
    session = ort.InferenceSession(str(setup["model"] / "decoder.onnx"), providers=["CPUExecutionProvider"])
    ref = session.run(None, {"latent": lat})[0]
    algebra = lat.astype(np.float64) @ W.astype(np.float64) + B
    # decode runs per segment, this session on all rows at once: float32 sums may differ by a few ulps of their terms
    ulps = 4 * np.finfo(np.float32).eps * (np.abs(lat) @ np.abs(W) + np.abs(B))
    for i, v in enumerate(VARS):
        got = ak.to_numpy(ak.flatten(t[f"jet_{v}"]))
        assert np.all(np.abs(got - ref[:, i]) <= ulps[:, i]), f"jet_{v}: decode differs from one ORT session"
        np.testing.assert_allclose(got, algebra[:, i], rtol=1e-5, atol=1e-4)
    # identity and raw pass-through
    np.testing.assert_array_equal(ak.to_numpy(t["entry"]), setup["entry"])
    np.testing.assert_array_equal(ak.to_numpy(t["flag"]), setup["flag"])
    for v in VARS:
        raw = ak.to_numpy(ak.flatten(t[f"raw_jet_{v}"]))
        expected = setup["jets"][v][setup["order"]][setup["raw_sel"]]
        np.testing.assert_array_equal(raw.view(np.uint32), expected.view(np.uint32))
    assert all(len(x) == 0 for x in t["raw_jet_pt"][setup["flag"] == 0])


def test_decode_refuses_mismatching_decoder_unless_forced(setup, tmp_path, capsys) -> None:
    other = tmp_path / "other"
    shutil.copytree(setup["model"], other)
    data = bytearray((other / "decoder.onnx").read_bytes())
    W2 = W.copy()
    W2[0, 0] = 51.0
    graph_bytes = numpy_helper.from_array(W, "W").raw_data
    pos = bytes(data).find(graph_bytes)
    data[pos:pos + len(graph_bytes)] = numpy_helper.from_array(W2, "W").raw_data
    (other / "decoder.onnx").write_bytes(bytes(data))
    with pytest.raises(decode.DecodeError, match="refusing"):
        decode.decode_recording(setup["rec"], tmp_path / "x.root", model_dir=other, progress=False)
    assert not (tmp_path / "x.root").exists()
    summary = decode.decode_recording(setup["rec"], tmp_path / "y.root", model_dir=other, force=True, progress=False)
    assert summary.forced
    assert "WARNING" in capsys.readouterr().err
    # the CLI returns an error code without --force
    ns = argparse.Namespace(recording=str(setup["rec"]), out=str(tmp_path / "z.root"), model=str(other),
                            force=False, plots=None, plot_events=0, threads=1)
    assert decode_command.main(ns) == 2


@pytest.mark.slow
def test_decode_cli_with_plots_joins_inputs(setup, tmp_path) -> None:
    plots = tmp_path / "plots"
    ns = argparse.Namespace(recording=str(setup["rec"]), out=str(tmp_path / "d.root"), model=str(setup["model"]),
                            force=False, plots=str(plots), plot_events=0, threads=1)
    assert decode_command.main(ns) == 0
    summary = json.loads((plots / "summary.json").read_text())
    assert summary["n_events"] == setup["n"]
    assert summary["raw_passthrough"]["flagged_events"] == int(setup["flag"].sum())
    assert all(v["bit_exact"] for v in summary["raw_passthrough"]["variables"].values())
    for name in ("input_vs_decoded_pt", "residual_eta", "residual_correlation", "latent_pairs"):
        assert (plots / f"{name}.png").is_file() and (plots / f"{name}.pdf").is_file()
    # residuals in the summary are computed against the joined inputs: check pt by hand
    with uproot.open(tmp_path / "d.root") as f:
        t = f["events"].arrays(["jet_pt"])
    dec = ak.to_numpy(ak.flatten(t["jet_pt"])).astype(np.float64)
    inp = setup["jets"]["pt"][setup["order"]].astype(np.float64)
    rel = (dec - inp) / inp
    assert summary["stats"]["pt"]["mean"] == pytest.approx(rel.mean(), rel=1e-9)


def test_decoded_file_reads_like_an_input_ntuple(setup, tmp_path) -> None:
    from pathlib import Path

    from producer.reader import ReaderSpec, read_chunks, resolve_variables

    out = tmp_path / "decoded.root"
    decode.decode_recording(setup["rec"], out, model_dir=setup["model"], progress=False)
    spec = ReaderSpec(columns=VARS)
    assert resolve_variables(Path(out), spec) == VARS
    chunks = list(read_chunks([Path(out)], spec, VARS))
    n_jets = np.concatenate([c.n_jets for c in chunks])
    assert len(n_jets) == setup["n"] and int(n_jets.sum()) == len(setup["latent"])
    pt = np.concatenate([c.jets["pt"] for c in chunks])
    np.testing.assert_allclose(pt, setup["latent"].astype(np.float64) @ W[:, 0].astype(np.float64) + B[0],
                               rtol=1e-5, atol=1e-4)


def test_decode_float16_latent_recording(setup, tmp_path) -> None:
    """A recording whose sink stored latents as float16 bit patterns decodes from the float16 values."""
    rec = tmp_path / "rec16"
    for seg in sorted((setup["rec"] / "segments").iterdir()):
        with uproot.open(seg) as f:
            a = f["events"].arrays()
            card, manifest = str(f["card"]), str(f["manifest"])
        counts = ak.to_numpy(a["njet"]).astype(np.int64)
        jet = {f"latent_{i}": ak.to_numpy(ak.flatten(a[f"jet_latent_{i}"])).astype(np.float16).view(np.uint16)
               for i in range(K)}
        jet["error"] = ak.to_numpy(ak.flatten(a["jet_error"]))
        chunk = {c: ak.to_numpy(a[c]) for c in decode.EVENT_COLUMNS}
        chunk["jet"] = jagged_record(counts, jet)
        chunk["raw_jet"] = jagged_record(ak.to_numpy(a["nraw_jet"]).astype(np.int64),
                                         {v: ak.to_numpy(ak.flatten(a[f"raw_jet_{v}"])) for v in VARS})
        writer = SegmentWriter(rec / "segments" / seg.name, card, manifest, Layout(K, "float16-as-uint16", tuple(VARS)))
        writer.commit(chunk)
        writer.close()
    out = tmp_path / "d16.root"
    decode.decode_recording(rec, out, model_dir=setup["model"], progress=False)
    with uproot.open(out) as f:
        pt = ak.to_numpy(ak.flatten(f["events"]["jet_pt"].array()))
    lat16 = setup["latent"].astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(pt, lat16 @ W[:, 0].astype(np.float64) + B[0], rtol=1e-5, atol=1e-4)
