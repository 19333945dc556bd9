"""Cartesian jets (px, py, pz, E): pt, eta, phi, m, e derived with scikit-hep vector; pt = 0 jets dropped."""

from __future__ import annotations

import logging
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import vector

from producer.kinematics import from_cartesian, to_cartesian
from producer.reader import ReaderError, ReaderSpec, plan_read, read_chunks, resolve_variables
from producer.source import event_source

SAMPLES = Path(__file__).resolve().parents[1] / "producer" / "samples"
CMS = {"px": "Jet_Px", "py": "Jet_Py", "pz": "Jet_Pz", "e": "Jet_E"}


def _write_cartesian(path: Path, counts: np.ndarray, p4: dict[str, np.ndarray], scale: float = 1.0) -> None:
    """The CMS open-data tutorial layout: tree events, NJet, Jet_Px/Py/Pz/E (float32), no event number."""
    jets = ak.zip({k.capitalize(): ak.unflatten((v * scale).astype(np.float32), counts) for k, v in p4.items()})
    with uproot.recreate(path) as f:
        f.mktree("events", {"Jet": jets.type.content}, counter_name=lambda counted: f"N{counted}")
        f["events"].extend({"Jet": jets})


def _qcd(n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with uproot.open(SAMPLES / "qcd.root") as f:
        a = f["events"].arrays(["jet_pt", "jet_eta", "jet_phi", "jet_m"], entry_stop=n)
    return ak.num(a.jet_pt).to_numpy(), {v: ak.flatten(a[f"jet_{v}"]).to_numpy() for v in ("pt", "eta", "phi", "m")}


def _read(path: Path, spec: ReaderSpec) -> tuple[list[str], list]:
    variables = resolve_variables(path, spec)
    return variables, list(read_chunks([path], spec, variables))


def _cat(chunks: list, var: str) -> np.ndarray:
    return np.concatenate([c.jets[var] for c in chunks]).astype(np.float64)


def _dphi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (a - b))))


@pytest.mark.parametrize("unit", ["GeV", "MeV"])
def test_round_trip_through_a_cartesian_file(tmp_path: Path, unit: str) -> None:
    counts, truth = _qcd(2000)
    p4 = to_cartesian(truth["pt"], truth["eta"], truth["phi"], truth["m"])
    path = tmp_path / "cms.root"
    _write_cartesian(path, counts, p4, scale=1000.0 if unit == "MeV" else 1.0)
    variables, chunks = _read(path, ReaderSpec(branch_map=CMS, unit=unit, step_size=512))
    assert set(variables) == {"px", "py", "pz", "e", "pt", "eta", "phi", "m"}
    assert sum(c.checks.zero_pt_jets_dropped for c in chunks) == 0
    np.testing.assert_array_equal(np.concatenate([c.n_jets for c in chunks]), counts)
    np.testing.assert_array_equal(np.concatenate([c.event_number for c in chunks]), np.arange(2000))
    pt, eta, phi, m = (truth[v].astype(np.float64) for v in ("pt", "eta", "phi", "m"))
    e = p4["e"]
    np.testing.assert_allclose(_cat(chunks, "pt"), pt, rtol=1e-5)
    np.testing.assert_allclose(_cat(chunks, "e"), e, rtol=1e-5)
    np.testing.assert_allclose(_cat(chunks, "eta"), eta, rtol=0, atol=1e-5)
    assert _dphi(_cat(chunks, "phi"), phi).max() < 1e-5
    # m = sqrt(E^2 - p^2) loses precision as m << E (float32 storage): m^2 to 1e-6 E^2, so m to 1e-3 E
    got_m = _cat(chunks, "m")
    assert np.all(np.abs(got_m**2 - m**2) <= 1e-6 * e**2) and np.all(np.abs(got_m - m) <= 1e-3 * e)
    # and back: the derived (pt, eta, phi, m) give the file's components again
    back = to_cartesian(*(_cat(chunks, v) for v in ("pt", "eta", "phi", "m")))
    for var in ("px", "py", "pz", "e"):
        np.testing.assert_allclose(back[var], _cat(chunks, var), rtol=0, atol=1e-5 * e.max())
        np.testing.assert_allclose(_cat(chunks, var), p4[var], rtol=1e-6, atol=1e-6 * np.abs(p4[var]).max())


def test_kinematics_match_vector_and_clip_spacelike_mass() -> None:
    rng = np.random.default_rng(5)
    pt, eta, phi, m = rng.uniform(20, 500, 100), rng.uniform(-4, 4, 100), rng.uniform(-np.pi, np.pi, 100), \
        rng.uniform(0, 50, 100)
    p4 = to_cartesian(pt, eta, phi, m)
    v = vector.array({"pt": pt, "eta": eta, "phi": phi, "mass": m})
    np.testing.assert_allclose(p4["pz"], pt * np.sinh(eta), rtol=1e-12)
    np.testing.assert_allclose(p4["e"], v.E, rtol=1e-12)
    back = from_cartesian(**p4)
    for var, ref in (("pt", pt), ("eta", eta), ("phi", phi), ("e", v.E)):
        np.testing.assert_allclose(back[var], ref, rtol=1e-9)
    np.testing.assert_allclose(back["m"], m, atol=1e-5)
    spacelike = from_cartesian(np.array([3.0]), np.array([4.0]), np.array([0.0]), np.array([4.999]))
    assert spacelike["m"][0] == 0.0 and spacelike["pt"][0] == 5.0


def test_pt_zero_jets_are_dropped_and_counted_and_zero_jet_events_pass(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    # events: [jet, pt=0 jet], [], [pt=0 jet], [jet, jet]; then the pattern repeated over chunk borders
    good = to_cartesian(np.array([50.0, 80.0, 120.0]), np.array([0.5, -1.0, 2.0]), np.array([0.1, 2.0, -2.5]),
                        np.array([5.0, 10.0, 15.0]))
    zero = {"px": 0.0, "py": 0.0, "pz": 40.0, "e": 41.0}
    rows = [[0, None], [], [None], [1, 2]]
    counts = np.tile([len(r) for r in rows], 25)
    p4 = {k: np.array([good[k][j] if j is not None else zero[k] for r in rows for j in r] * 25) for k in good}
    path = tmp_path / "zero.root"
    _write_cartesian(path, counts, p4)
    spec = ReaderSpec(branch_map=CMS, columns=["pt", "eta", "phi", "e"], step_size=7)
    with caplog.at_level(logging.WARNING, logger="producer.reader"):
        variables, chunks = _read(path, spec)
    assert variables == ["pt", "eta", "phi", "e"]
    n_jets = np.concatenate([c.n_jets for c in chunks])
    np.testing.assert_array_equal(n_jets, np.tile([1, 0, 0, 2], 25))
    assert sum(c.checks.zero_pt_jets_dropped for c in chunks) == 50
    assert all(len(c.jets["pt"]) == int(c.n_jets.sum()) for c in chunks)
    np.testing.assert_array_equal(np.concatenate([c.entry for c in chunks]), np.arange(100))
    pt = _cat(chunks, "pt")
    np.testing.assert_allclose(pt, np.tile([50.0, 80.0, 120.0], 25), rtol=1e-6)
    assert np.isfinite(_cat(chunks, "eta")).all()
    np.testing.assert_allclose(_cat(chunks, "e"), np.tile(good["e"], 25), rtol=1e-6)
    drops = [r for r in caplog.records if "pt = 0" in r.getMessage()]
    assert len(drops) == 1 and "dropped 50 jet(s)" in drops[0].getMessage() and "zero.root" in drops[0].getMessage()
    # the producer's event source tells its caller (the replayer's report: zero_pt_jets_dropped)
    told: list = []
    blocks = list(event_source([path], spec, variables, loops=1, max_events=0, on_input_counts=told.append))
    assert sum(t.zero_pt_jets_dropped for t in told) == 50 and sum(len(b) for b in blocks) == 100


def test_only_what_is_asked_is_derived(tmp_path: Path) -> None:
    counts, truth = _qcd(50)
    path = tmp_path / "cms.root"
    _write_cartesian(path, counts, to_cartesian(truth["pt"], truth["eta"], truth["phi"], truth["m"]))
    with uproot.open(path) as f:
        names = set(f["events"].keys())
    plan = plan_read(["pt", "eta", "phi", "e"], names, ReaderSpec(branch_map=CMS))
    assert plan.from_cartesian == ("pt", "eta", "phi") and not plan.derive_e
    assert set(plan.read) == {"px", "py", "pz", "e"} and plan.entry_as_event_number
    assert plan_read(["px", "e"], names, ReaderSpec(branch_map=CMS)).from_cartesian == ()  # no derivation, no drop
    # --derive-e on Cartesian input: e from the derived pt, eta, m equals E
    _, chunks = _read(path, ReaderSpec(branch_map=CMS, columns=["e"], derive_e=True))
    _, direct = _read(path, ReaderSpec(branch_map=CMS, columns=["e"]))
    np.testing.assert_allclose(_cat(chunks, "e"), _cat(direct, "e"), rtol=1e-6)


def test_an_incomplete_cartesian_map_is_named(tmp_path: Path) -> None:
    counts, truth = _qcd(20)
    p4 = to_cartesian(truth["pt"], truth["eta"], truth["phi"], truth["m"])
    path = tmp_path / "noE.root"
    jets = ak.zip({k.capitalize(): ak.unflatten(v.astype(np.float32), counts) for k, v in p4.items() if k != "e"})
    with uproot.recreate(path) as f:
        f.mktree("events", {"Jet": jets.type.content, "EventNumber": np.uint64})
        f["events"].extend({"Jet": jets, "EventNumber": np.arange(20, dtype=np.uint64)})
    with pytest.raises(ReaderError) as err:
        resolve_variables(path, ReaderSpec(branch_map=CMS, columns=["pt", "eta", "phi", "e"]))
    msg = str(err.value)
    assert "noE.root" in msg and "'jet_pt'" in msg and "Cartesian branches missing: 'Jet_E'" in msg
