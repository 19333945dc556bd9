"""Event vector of the event-level models: numpy twin against the torch module and the exported ONNX graph on
real events, against independent per-event sums, and padding/truncation of zero-jet and many-jet events."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.runtime.event_features import (
    DEFAULT_JETS,
    EVENT_VARIABLES,
    SLOT_FEATURES,
    event_features,
    feature_names,
    fit_empty_slot_fill,
    padded_jets,
)

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "producer" / "samples"
V = list(EVENT_VARIABLES)


def _events(name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    from models.runtime.data import load_jets

    s = load_jets([SAMPLES / f"{name}.root"], V, max_events=n)
    return s.values, s.counts


@pytest.fixture(scope="module")
def real_x() -> np.ndarray:
    """Padded jets of 1500 QCD, 1000 Z' and 1000 dark-shower events (the latter include zero-jet events)."""
    parts = [padded_jets(*_events(n, k)) for n, k in (("qcd", 1500), ("zprime", 1000), ("darkshower", 1000))]
    return np.concatenate(parts)


def test_padding_zero_jet_and_many_jet_events() -> None:
    rng = np.random.default_rng(5)
    counts = np.array([0, 2, 30, 0, 6, 7])
    n = int(counts.sum())
    ranges = {"pt": (21.0, 500.0), "eta": (-4.5, 4.5), "phi": (-math.pi, math.pi), "m": (0.0, 100.0),
              "width": (0.0, 0.4), "tau21": (0.0, 1.0), "tau32": (0.0, 1.0)}
    values = np.stack([rng.uniform(*ranges[v], size=n) for v in V], axis=1).astype(np.float32)
    x = padded_jets(values, counts)
    assert x.shape == (6, DEFAULT_JETS, len(V)) and x.dtype == np.float32
    starts = np.cumsum(counts) - counts
    for e, (start, c) in enumerate(zip(starts, counts, strict=True)):
        kept = min(c, DEFAULT_JETS)
        np.testing.assert_array_equal(x[e, :kept], values[start:start + kept])  # the leading jets, in order
        assert not x[e, kept:].any()  # zero padding (pt = 0)
    f = event_features(x)
    assert f.shape == (6, len(feature_names())) and np.isfinite(f).all()
    # a zero-jet event gives the fixed empty-event vector: every entry 0 without fill ...
    assert not f[0].any() and not f[3].any()
    # ... and the globals 0 plus the fill values in every slot with it; present jets keep their values
    fill = np.arange(1.0, 1.0 + 4 * len(SLOT_FEATURES)).reshape(4, len(SLOT_FEATURES))
    ff = event_features(x, fill=fill)
    n_glob = len(feature_names()) - fill.size
    np.testing.assert_array_equal(ff[0], np.concatenate([np.zeros(n_glob), fill.ravel()]))
    np.testing.assert_array_equal(ff[1, :n_glob + 2 * len(SLOT_FEATURES)], f[1, :n_glob + 2 * len(SLOT_FEATURES)])
    np.testing.assert_array_equal(ff[1, n_glob + 2 * len(SLOT_FEATURES):], fill[2:].ravel())
    np.testing.assert_array_equal(ff[2], f[2])
    # a 30-jet event is truncated: its vector equals that of its 6 leading jets alone
    lead6 = values[starts[2]:starts[2] + DEFAULT_JETS]
    np.testing.assert_allclose(f[2], event_features(padded_jets(lead6, np.array([6])))[0], rtol=1e-12)
    assert f[2, feature_names().index("n_jets")] == DEFAULT_JETS
    with pytest.raises(ValueError, match="do not match"):
        padded_jets(values, counts[:-1])


def test_features_against_independent_per_event_sums(real_x: np.ndarray) -> None:
    names = feature_names()
    f = event_features(real_x)
    ipt, ieta, iphi, im = (V.index(v) for v in ("pt", "eta", "phi", "m"))
    for e in range(0, len(real_x), 97):
        jets = [j for j in real_x[e].astype(np.float64) if j[ipt] > 0]
        ht = sum(j[ipt] for j in jets)
        mx = -sum(j[ipt] * math.cos(j[iphi]) for j in jets)
        my = -sum(j[ipt] * math.sin(j[iphi]) for j in jets)
        mht = math.hypot(mx, my)
        four = np.zeros(4)
        for j in jets:
            pt, eta, phi, m = j[ipt], j[ieta], j[iphi], j[im]
            p = np.array([pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)])
            four += np.array([math.sqrt(p @ p + m * m), *p])
        m_all = math.sqrt(max(four[0] ** 2 - four[1:] @ four[1:], 0.0))
        row = dict(zip(names, f[e], strict=True))
        assert row["log_ht"] == pytest.approx(math.log10(ht + 1), abs=1e-9)
        assert row["log_mht"] == pytest.approx(math.log10(mht + 1), abs=1e-9)
        assert row["n_jets"] == len(jets)
        assert row["log_m_all"] == pytest.approx(math.log10(m_all + 1), abs=1e-6)
        if jets and mht > 0:
            dphi = jets[0][iphi] - math.atan2(my, mx)  # independent: via the MHT angle
            assert row["j0_cos_dphi_mht"] == pytest.approx(math.cos(dphi), abs=1e-6)
            cos_all = [math.cos(j[iphi] - math.atan2(my, mx)) for j in jets]
            assert row["max_cos_dphi_mht"] == pytest.approx(max(cos_all), abs=1e-6)


def test_numpy_torch_onnx_agree_on_real_events(real_x: np.ndarray, tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    from models.training.event_graphs import EventFeatures
    from models.training.onnx_export import export_graph

    fill = fit_empty_slot_fill(event_features(real_x))
    assert fill.shape == (4, len(SLOT_FEATURES)) and fill[:, 0].min() > np.log10(21)
    ref = event_features(real_x, fill=fill)
    module = EventFeatures(fill=fill).eval()
    with torch.no_grad():
        got_t = module(torch.from_numpy(real_x)).numpy().astype(np.float64)
    export_graph(module, torch.from_numpy(real_x[:8]), tmp_path / "f.onnx", ["x"], ["features"])
    session = ort.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"])
    got_o = session.run(None, {"x": real_x})[0].astype(np.float64)
    # float32 graph vs float64 numpy: the system mass loses ~1e-3 in log10 to cancellation in E^2 - p^2
    tol = np.full(ref.shape[1], 2e-5)
    tol[feature_names().index("log_m_all")] = 5e-3
    for got, what in ((got_t, "torch"), (got_o, "onnx")):
        diff = np.abs(got - ref) / np.maximum(1.0, np.abs(ref))
        worst = np.argmax(np.max(diff / tol, axis=0))
        assert np.all(diff <= tol), f"{what}: feature {feature_names()[worst]} differs by {diff[:, worst].max():.3g}"


def test_four_vector_vector_is_the_substructure_vector_without_substructure(real_x: np.ndarray) -> None:
    """The four-vector feature set (EVT_AE_4v) is the substructure set's vector without the width, tau21 and tau32
    slot columns, from the jets' pt, eta, phi, m alone; numpy and torch agree on it (the slim graph: see
    tests/test_event_graph_slim.py on EVT_AE_4v)."""
    import torch

    from models.runtime.event_features import FOUR_VECTOR, SUBSTRUCTURE, feature_set, slot_features
    from models.training.event_graphs import EventFeatures

    names7, names4 = feature_names(), feature_names(variables=FOUR_VECTOR)
    assert feature_set(list(FOUR_VECTOR)) == FOUR_VECTOR and feature_set(V) == EVENT_VARIABLES
    assert slot_features(FOUR_VECTOR) == ("log_pt", "log_m", "m_over_pt", "cos_dphi_mht")
    assert names4 == [n for n in names7 if not any(n.endswith(f"_{s}") for s in SUBSTRUCTURE)]
    x4 = np.ascontiguousarray(real_x[..., :4])  # EVENT_VARIABLES starts with pt, eta, phi, m
    f7, f4 = event_features(real_x), event_features(x4, variables=FOUR_VECTOR)
    np.testing.assert_array_equal(f4, f7[:, [names7.index(n) for n in names4]])
    fill = fit_empty_slot_fill(f4)
    assert fill.shape == (4, 4)
    ref = event_features(x4, variables=FOUR_VECTOR, fill=fill)
    with torch.no_grad():
        got = EventFeatures(variables=FOUR_VECTOR, fill=fill).eval()(torch.from_numpy(x4)).numpy()
    tol = np.full(ref.shape[1], 2e-5)
    tol[names4.index("log_m_all")] = 5e-3
    assert np.all(np.abs(got - ref) / np.maximum(1.0, np.abs(ref)) <= tol)
    with pytest.raises(ValueError, match=r"need jet variables \['m'\]"):
        event_features(x4[..., :3], variables=["pt", "eta", "phi"])
