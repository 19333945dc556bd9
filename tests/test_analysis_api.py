"""The Python API of consumer/analysis on one real recording (`aetrig run` on QCD and Z' with small commits and
segments): its events equal the recording reader's columns, decoded with the ONNX decoder run here by hand; parts
hold whole commits and add up to the whole; the equal-rate comparison equals `aetrig evaluate --recording`'s and a
TPR computed here; and the Dask path and `aetrig decode` give the same numbers."""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import awkward as ak
import numpy as np
import onnxruntime as ort
import pytest
import uproot
from aetrig_cli import REPO, run_aetrig

from consumer.analysis import AnalysisError, open_run
from consumer.analysis.chunks import commit_starts, plan
from consumer.offline.join import join_inputs
from emulator.runtime.defaults import SAMPLES_DIR, ZOO
from emulator.runtime.recording import open_recording

QCD, ZPRIME = SAMPLES_DIR / "qcd.root", SAMPLES_DIR / "zprime.root"
ROTATE, COMMIT = 10_000, 1_500
EVENT_COLUMNS = ("run_id", "seq", "event_id", "file_index", "entry", "event_number", "event_score", "flag",
                 "event_threshold")


_aetrig = partial(run_aetrig, timeout=240)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Z' then QCD once through the default models, several segments of several commits each."""
    out = tmp_path_factory.mktemp("analysis") / "run"
    done = _aetrig("run", "--input", str(ZPRIME), str(QCD), "--loops", "1", "--rate", "0", "--out", str(out),
                   "--commit-events", str(COMMIT), "--rotate-events", str(ROTATE), "--status-interval", "0",
                   "--lossless-events", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_every_public_name_has_an_example_and_the_page_names_them() -> None:
    import importlib
    import inspect

    from consumer.analysis import Run

    missing = []
    for module in ("run", "chunks", "equal_rate", "dask_events"):
        mod = importlib.import_module(f"consumer.analysis.{module}")
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            members = [(f"{name}.{a}", v) for a, v in vars(obj).items() if not a.startswith("_")] \
                if inspect.isclass(obj) else []
            for label, value in [(name, obj), *members]:
                target = value.fget if isinstance(value, property) else getattr(value, "func", value)  # cached
                if callable(target) and "Example" not in (inspect.getdoc(target) or ""):
                    missing.append(f"{module}.{label}")
    assert not missing
    page = (REPO / "docs" / "python.md").read_text()
    public = [a for a in vars(Run) if not a.startswith("_") and a != "decode_part"]
    assert [a for a in public if f"Run.{a}" not in page] == []


def test_events_are_the_recorded_columns_decoded(recording: Path) -> None:
    run, rec = open_run(recording), open_recording(recording)
    events = run.events()
    assert len(rec.segments) >= 3 and len(events) == len(rec) == 25_000
    columns = rec.events()
    for name in EVENT_COLUMNS:
        np.testing.assert_array_equal(np.asarray(events[name]), columns[name], err_msg=name)
    np.testing.assert_array_equal(np.asarray(ak.num(events.jet, axis=1)), columns["n_jets"])
    latent = rec.latent()
    k = latent.shape[1]
    mine = np.stack([np.asarray(ak.flatten(events.jet[f"latent_{i}"])) for i in range(k)], axis=1)
    np.testing.assert_array_equal(mine, latent)
    session = ort.InferenceSession(str(ZOO / run.card["name"] / "decoder.onnx"), providers=["CPUExecutionProvider"])
    by_hand = session.run(None, {session.get_inputs()[0].name: latent})[0]
    for i, var in enumerate(run.variables):
        np.testing.assert_allclose(np.asarray(ak.flatten(events.jet[var])), by_hand[:, i], rtol=1e-6, atol=1e-5,
                                   err_msg=var)
    raw = rec.raw_jets()
    assert set(events.raw_jet.fields) == set(raw) and len(raw["pt"]) > 0
    for var, values in raw.items():
        np.testing.assert_array_equal(np.asarray(ak.flatten(events.raw_jet[var])), values, err_msg=var)
    assert not ak.any(ak.num(events.raw_jet, axis=1)[events.flag == 0])


def test_decoded_jets_follow_the_input_jets(recording: Path) -> None:
    """The decoded pT of the first 2000 events against the input files' jets, joined by (file_index, entry)."""
    run = open_run(recording)
    events = next(run.iterate(step=2000))
    inputs = join_inputs(np.asarray(events.file_index), np.asarray(events.entry), run.manifest, ["pt"])
    assert ak.all(ak.num(inputs.pt, axis=1) == ak.num(events.jet, axis=1))
    ratio = np.asarray(ak.flatten(events.jet.pt)) / np.asarray(ak.flatten(inputs.pt))
    assert abs(np.median(ratio) - 1) < 0.05 and np.quantile(np.abs(ratio - 1), 0.5) < 0.2


def test_parts_hold_whole_commits_and_add_up(recording: Path) -> None:
    run = open_run(recording, decode=False)
    whole = run.events()
    assert run.variables == [] and [f for f in whole.jet.fields if not f.startswith("latent_")] == []
    step = 1000
    parts = plan(run.recording.segments, step)
    starts = {seg.path: commit_starts(seg) for seg in run.recording.segments}
    biggest = max(int(np.diff([*s, seg.n_entries]).max()) for seg in run.recording.segments
                  for s in [starts[seg.path]])
    assert biggest <= COMMIT + 2048 and len(parts) > len(run.recording.segments)  # a commit: >= COMMIT events
    for part in parts:
        assert part.start in starts[part.segment.path] and part.stop <= part.segment.n_entries
        assert len(part) < step + biggest
    pieces = list(run.iterate(step=step))
    assert [len(p) for p in pieces] == [len(p) for p in parts]
    joined = ak.concatenate(pieces)
    for name in ("seq", "event_id", "entry", "event_number", "event_score"):
        np.testing.assert_array_equal(np.asarray(joined[name]), np.asarray(whole[name]), err_msg=name)
    np.testing.assert_array_equal(np.asarray(ak.flatten(joined.jet.latent_0)),
                                  np.asarray(ak.flatten(whole.jet.latent_0)))
    with pytest.raises(ValueError, match="step"):
        next(run.iterate(step=0))


def test_summary_manifest_and_bytes(recording: Path) -> None:
    run = open_run(recording)
    assert run.summary["events"]["recorded"] == len(run)
    assert run.summary["events"]["flagged"] == int(ak.sum(run.events().flag))
    assert [Path(f["path"]).name for f in run.manifest["files"]] == ["zprime.root", "qcd.root"]
    split = run.recording_bytes()
    assert split["events"] == len(run) and split["bytes"] == sum(p.stat().st_size for p in
                                                                 (recording / "segments").glob("*.root"))


def test_equal_rate_comparison_is_aetrig_evaluate_recording(recording: Path, tmp_path: Path) -> None:
    run = open_run(recording)
    results = run.evaluate({"zprime": "zprime.root"}, fprs=(1e-2, 1e-3))
    name = f"recording ({run.anomaly_card['name']})"
    row = results["models"][name]["signals"]["zprime"]["fpr"]["0.01"]
    events = run.events()
    score, from_zprime = np.asarray(events.event_score, np.float64), np.asarray(events.file_index) == 0
    threshold = np.sort(score[~from_zprime])[::-1][int(0.01 * (~from_zprime).sum())]
    assert row["tpr"] == pytest.approx(float(np.mean(score[from_zprime] > threshold)), abs=1e-9)
    assert row["threshold"] == pytest.approx(threshold)
    cli = _aetrig("evaluate", "--recording", str(recording), "--background", str(QCD), "--signal",
                  f"zprime={ZPRIME}", "--model", str(ZOO / run.anomaly_card["name"]), "--fpr", "1e-2", "1e-3",
                  "--out", str(tmp_path / "eval"), "--no-plots")
    assert cli.returncode == 0, cli.stderr
    theirs = json.loads((tmp_path / "eval" / "evaluate.json").read_text())["models"][name]["signals"]["zprime"]
    assert _same(results["models"][name]["signals"]["zprime"], theirs)
    with pytest.raises(AnalysisError, match="no input file"):
        run.evaluate({"darkshower": "darkshower*.root"})


def _same(mine, theirs) -> bool:
    """Nested results equal up to JSON's None for NaN."""
    if isinstance(mine, dict):
        return set(mine) == set(theirs) and all(_same(mine[k], theirs[k]) for k in mine)
    if isinstance(mine, (list, tuple)):
        return len(mine) == len(theirs) and all(_same(a, b) for a, b in zip(mine, theirs, strict=True))
    if isinstance(mine, float) and mine != mine:
        return theirs is None
    return mine == pytest.approx(theirs)


def test_decoder_is_the_recorded_one(recording: Path, tmp_path: Path) -> None:
    run = open_run(recording)
    moved = tmp_path / "model"
    shutil.copytree(ZOO / run.card["name"], moved)
    assert open_run(recording, model=moved).model_path == moved
    with (moved / "decoder.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(AnalysisError, match="sha256"):
        open_run(recording, model=moved)
    with pytest.raises(AnalysisError, match="not a recording"):
        open_run(tmp_path)


@pytest.mark.timeout(300)
def test_api_aetrig_decode_and_dask_give_the_same_numbers(recording: Path, tmp_path: Path) -> None:
    """One recording three ways: the in-process API, decoded.root of `aetrig decode`, and the dask-awkward
    collection (partitions along segments, and along commits) computed on a LocalCluster of two worker processes
    (which load the decoder themselves)."""
    import dask_awkward as dak
    from dask.distributed import Client, LocalCluster

    from consumer.analysis import dask_events

    run = open_run(recording)
    events = run.events()
    done = _aetrig("decode", str(recording), "--out", str(tmp_path / "decoded.root"))
    assert done.returncode == 0, done.stderr
    with uproot.open(tmp_path / "decoded.root") as f:
        decoded = f["events"].arrays(library="ak")
    assert len(decoded) == len(events)
    for name in EVENT_COLUMNS:
        np.testing.assert_array_equal(np.asarray(decoded[name]), np.asarray(events[name]), err_msg=name)
    for record in ("jet", "raw_jet"):
        for field in events[record].fields:
            np.testing.assert_array_equal(np.asarray(ak.flatten(decoded[f"{record}_{field}"])),
                                          np.asarray(ak.flatten(events[record][field])), err_msg=f"{record}.{field}")

    lazy, by_commits = run.dask(), run.dask(step=2000)
    assert lazy.npartitions == len(run.recording.segments) >= 3 and by_commits.npartitions >= 2 * lazy.npartitions
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        computed, computed_by_commits = lazy.compute(), by_commits.compute()
        n_flagged = dak.sum(lazy.flag).compute()
        mean_pt = (dak.sum(dak.flatten(lazy.jet.pt)) / dak.sum(dak.num(lazy.jet, axis=1))).compute()
        loaded = client.run(lambda: len(dask_events._DECODERS))
    assert len(loaded) == 2 and sum(loaded.values()) >= 1  # the workers decoded
    assert ak.array_equal(computed, events, equal_nan=True)
    assert ak.array_equal(computed_by_commits, events, equal_nan=True)
    assert n_flagged == int(ak.sum(events.flag)) == int(ak.sum(decoded.flag)) > 0
    pt = np.asarray(ak.flatten(decoded.jet_pt), np.float64)
    assert mean_pt == pytest.approx(pt.mean(), rel=1e-6)  # dask sums float32 per partition
