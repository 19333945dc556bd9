"""The producer's input screen (producer/jet_screen.py, docs/design.md "Input screen"): NaN, inf and -999 jets
are left out of their kept event and counted, events beyond the jet cap keep their leading jets, nothing is
lost; end to end, a file with a NaN leading-jet pt in every 50th event is recorded whole (it used to lose
every event: each message holding a NaN was rejected by the encoder on every resend)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from aetrig_cli import REPO, run_aetrig
from prometheus_client import generate_latest

from emulator.runtime.metrics import INPUT_DROP_REASONS, make_metrics
from emulator.runtime.recording import open_recording
from producer.config import ProducerConfig
from producer.jet_screen import SENTINEL_MAX, InputCounts, bad_values, cap_jets
from producer.reader import ReaderSpec, read_chunks, resolve_variables
from producer.replay import Replayer

QCD = REPO / "producer" / "samples" / "qcd.root"


def _write_aetrig(path: Path, columns: dict[str, ak.Array], event_number: np.ndarray) -> None:
    """An aetrig-layout TTree (jet_<var> counted by njet, event_number)."""
    jets = ak.zip(columns)
    with uproot.recreate(path) as f:
        f.mktree("events", {"jet": jets.type.content, "event_number": np.uint64},
                 field_name=lambda outer, inner: f"{outer}_{inner}", counter_name=lambda counted: "njet")
        f["events"].extend({"jet": jets, "event_number": event_number})


def _nan_leading_pt_file(path: Path, n_events: int = 3000, every: int = 50) -> int:
    """The first ``n_events`` of qcd.root with the leading-jet pt of every ``every``-th event set to NaN.
    Returns the number of NaN values written."""
    with uproot.open(QCD) as f:
        a = f["events"].arrays(["jet_pt", "jet_eta", "jet_phi", "jet_m", "jet_e", "event_number"],
                               entry_stop=n_events)
    counts = ak.to_numpy(ak.num(a["jet_pt"]))
    pt = ak.to_numpy(ak.flatten(a["jet_pt"])).copy()
    events = np.arange(0, n_events, every)
    events = events[counts[events] > 0]
    pt[(np.cumsum(counts) - counts)[events]] = np.nan
    columns = {v: a[f"jet_{v}"] for v in ("eta", "phi", "m", "e")} | {"pt": ak.unflatten(pt, counts)}
    _write_aetrig(path, columns, a["event_number"].to_numpy())
    return len(events)


# --- the screen itself --------------------------------------------------------------------------------------


def test_non_finite_and_sentinel_jets_leave_their_event_which_stays() -> None:
    counts = np.array([2, 0, 3, 1])
    pt = np.array([50, np.nan, 40, 30, -999, 25], np.float32)
    eta = np.array([0.1, 0.2, np.inf, 0.4, 0.5, -1e4], np.float32)
    px = np.array([-5e6, 1, 1, 1, 1, 1], np.float32)  # a signed component far below -999 is no sentinel
    found = InputCounts()
    kept, cols = bad_values(counts, {"pt": pt, "eta": eta, "px": px}, True, found)
    # jet 1 NaN pt, jet 2 inf eta -> non-finite; jet 4 pt -999 and jet 5 eta -1e4 -> sentinels
    np.testing.assert_array_equal(kept, [1, 0, 1, 0])
    np.testing.assert_array_equal(cols["pt"], [50, 30])
    np.testing.assert_array_equal(cols["px"], [-5e6, 1])
    assert (found.non_finite_values, found.sentinel_values) == (2, 2)
    assert (found.jets_dropped_non_finite, found.jets_dropped_sentinel, found.events_with_dropped_jets) == (2, 2, 3)
    assert SENTINEL_MAX == -999.0


def test_jet_cap_keeps_the_highest_pt_jets_in_their_order() -> None:
    counts = np.array([5, 2, 0])
    pt = np.array([10, 50, 30, 70, 20, 5, 6], np.float32)
    found = InputCounts()
    kept, cols = cap_jets(counts, {"pt": pt, "eta": np.arange(7, dtype=np.float32)}, 3, found)
    np.testing.assert_array_equal(kept, [3, 2, 0])
    np.testing.assert_array_equal(cols["pt"], [50, 30, 70, 5, 6])
    np.testing.assert_array_equal(cols["eta"], [1, 2, 3, 5, 6])
    assert (found.events_over_jet_cap, found.jets_dropped_over_cap) == (1, 2)


def test_reader_screens_every_chunk_in_the_files_unit(tmp_path: Path) -> None:
    """MeV file: -999 MeV is a sentinel (tested before the unit conversion), a float64 beyond float32 becomes
    inf and is dropped, an event with 40 jets keeps 12, an event that loses all its jets is kept with none."""
    rng = np.random.default_rng(3)
    counts = np.array([3, 1, 40, 0, 2])
    n = int(counts.sum())
    pt = rng.uniform(20e3, 500e3, n)
    eta = rng.uniform(-2, 2, n)
    pt[0] = -999.0  # event 0, sentinel
    eta[1] = 1e300  # event 0, beyond float32
    pt[3] = np.nan  # event 1's only jet
    path = tmp_path / "mev.root"
    _write_aetrig(path, {"pt": ak.unflatten(pt, counts), "eta": ak.unflatten(eta, counts)},
                  np.arange(5, dtype=np.uint64))
    spec = ReaderSpec(unit="MeV", columns=["pt", "eta"], step_size=2, max_jets=12)
    chunks = list(read_chunks([path], spec, resolve_variables(path, spec)))
    n_jets = np.concatenate([c.n_jets for c in chunks])
    np.testing.assert_array_equal(n_jets, [1, 0, 12, 0, 2])
    total = InputCounts()
    for c in chunks:
        total.add(c.checks)
    assert total.as_dict() == {"non_finite_values": 2, "sentinel_values": 1, "jets_dropped_non_finite": 2,
                               "jets_dropped_sentinel": 1, "events_with_dropped_jets": 2, "events_over_jet_cap": 1,
                               "jets_dropped_over_cap": 28, "zero_pt_jets_dropped": 0}
    got = np.concatenate([c.jets["pt"] for c in chunks])
    big = np.sort(pt[4:44])[::-1][:12] * 1e-3
    np.testing.assert_allclose(np.sort(got[1:13])[::-1], big, rtol=1e-6)  # the 12 leading of the 40
    assert np.isfinite(got).all() and (got > 0).all()


def test_the_replayer_reports_and_exports_what_the_screen_found() -> None:
    metrics = make_metrics()
    replayer = Replayer(ProducerConfig(), [], ReaderSpec(), [], {"run_id": 1}, metrics)
    replayer._count_input(InputCounts(non_finite_values=3, jets_dropped_non_finite=2, events_with_dropped_jets=2,
                                      events_over_jet_cap=1, jets_dropped_over_cap=7))
    replayer._count_input(InputCounts(sentinel_values=1, jets_dropped_sentinel=1, events_with_dropped_jets=1))
    text = generate_latest(metrics.registry).decode()
    assert 'aetrig_input_jets_dropped_total{reason="non_finite"} 2.0' in text
    assert 'aetrig_input_jets_dropped_total{reason="sentinel"} 1.0' in text
    assert 'aetrig_input_jets_dropped_total{reason="over_cap"} 7.0' in text
    assert 'aetrig_input_events_altered_total{reason="bad_values"} 3.0' in text
    assert 'aetrig_input_events_altered_total{reason="over_cap"} 1.0' in text
    assert set(InputCounts().jets_dropped()) == set(INPUT_DROP_REASONS)
    report = replayer.report(0.0, 0.0, 0.0, True)
    assert report["input_checks"]["jets_dropped_non_finite"] == 2 and report["input_checks"]["sentinel_values"] == 1


# --- end to end -------------------------------------------------------------------------------------------


def _run_pipeline(path: Path, out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """``aetrig run`` of ``path`` into ``out`` (one encoder, no rate limit); checks it exits 0, returns it and its
    summary.json."""
    run = run_aetrig("run", "--input", str(path), "--rate", "0", "--out", str(out), "--status-interval", "0",
                     "--encoders", "1", timeout=170)
    assert run.returncode == 0, run.stdout + run.stderr
    return run, json.loads((out / "summary.json").read_text())


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_nan_in_every_50th_event_loses_nothing(tmp_path: Path) -> None:
    """Before the screen: "INTEGRITY: 3000 events lost", 8 non_finite rejections, nothing recorded."""
    path = tmp_path / "nan.root"
    n_nan = _nan_leading_pt_file(path)
    assert n_nan == 60
    out = tmp_path / "run"
    run, summary = _run_pipeline(path, out)
    assert summary["events"]["produced"] == summary["events"]["recorded"] == 3000
    assert summary["events"]["lost"] == 0 and summary["rejected"] == {}
    assert summary["input"]["non_finite_values"] == summary["input"]["jets_dropped_non_finite"] == n_nan
    assert summary["input"]["events_with_dropped_jets"] == n_nan
    assert "left out jets: 60 with NaN/inf" in run.stdout
    rec = open_recording(out)
    recorded_jets = sum(int(np.sum(a["njet"])) for _, a in rec.iter_arrays(["njet"]))
    with uproot.open(QCD) as f:
        n_in = int(ak.sum(ak.num(f["events"]["jet_pt"].array(entry_stop=3000))))
    assert recorded_jets == n_in - n_nan  # every jet but the NaN ones


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sentinels_and_a_5000_jet_event_lose_nothing(tmp_path: Path) -> None:
    """-999 masses, an inf eta and one event of 5 000 jets (over the wire's 4 096 limit, which the encoder enforces
    per message: the whole message used to be rejected on every resend) among 1 000 QCD events."""
    with uproot.open(QCD) as f:
        a = f["events"].arrays(["jet_pt", "jet_eta", "jet_phi", "jet_m", "jet_e", "event_number"], entry_stop=1000)
    counts = ak.to_numpy(ak.num(a["jet_pt"])).copy()
    cols = {v: ak.to_numpy(ak.flatten(a[f"jet_{v}"])).copy() for v in ("pt", "eta", "phi", "m", "e")}
    starts = np.cumsum(counts) - counts
    assert (counts[10:20] > 0).all() and counts[30] > 0
    cols["m"][starts[10:20]] = -999.0  # ten leading jets with a sentinel mass
    cols["eta"][starts[30]] = np.inf
    rng = np.random.default_rng(5)
    big = 5000  # event 500 gets 5 000 jets; its leading 4 096 by pt are kept
    many = {"pt": rng.uniform(20, 200, big), "eta": rng.uniform(-2, 2, big), "phi": rng.uniform(-3, 3, big),
            "m": rng.uniform(1, 20, big)}
    many["e"] = np.sqrt(many["m"] ** 2 + (many["pt"] * np.cosh(many["eta"])) ** 2)
    s = int(starts[500])
    cols = {v: np.concatenate([x[:s], many[v].astype(np.float32), x[s + counts[500]:]]) for v, x in cols.items()}
    counts[500] = big
    path = tmp_path / "odd.root"
    _write_aetrig(path, {v: ak.unflatten(x, counts) for v, x in cols.items()}, a["event_number"].to_numpy())
    out = tmp_path / "run"
    _, summary = _run_pipeline(path, out)
    assert summary["events"]["produced"] == summary["events"]["recorded"] == 1000 and summary["rejected"] == {}
    screen = summary["input"]
    assert (screen["jets_dropped_sentinel"], screen["sentinel_values"]) == (10, 10)
    assert screen["jets_dropped_non_finite"] == screen["non_finite_values"] == 1
    assert (screen["events_over_jet_cap"], screen["jets_dropped_over_cap"]) == (1, big - 4096)
    rows = [(np.asarray(x["entry"]), np.asarray(x["njet"])) for _, x in open_recording(out).iter_arrays(["entry",
                                                                                                          "njet"])]
    entry, njet = np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])
    assert int(njet[entry == 500][0]) == 4096
    assert int(njet.sum()) == int(counts.sum()) - 10 - 1 - (big - 4096)
