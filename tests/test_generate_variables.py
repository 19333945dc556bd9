"""Per-jet variables, towers and the writer, checked against independent computations on hand-made inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from producer.generate.detector import DetectorParams, Towers, build_towers, smear
from producer.generate.jets import VARIABLES, Constituents, JetParams, cluster, jet_variables, n90
from producer.generate.substructure import nsubjettiness, safe_ratio

NO_SMEAR = DetectorParams(em_stochastic=0.0, em_constant=0.0, had_stochastic=0.0, had_constant=0.0)


def constituents(jets: list[list[tuple[float, float, float]]], em: float = 0.0, charged: float = 0.0) -> Constituents:
    """Massless constituents from [(pt, eta, phi), ...] per jet; EM/charged shares as given fractions of E."""
    rows = [(j, *c) for j, cs in enumerate(jets) for c in cs]
    jet, pt, eta, phi = (np.array(x) for x in zip(*rows, strict=True))
    e = pt * np.cosh(eta)
    return Constituents(jet=jet.astype(np.int64), pt=pt, eta=eta, phi=phi, e=e, e_em=em * e, e_charged=charged * e)


def four(pt, eta, phi):
    return np.array([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)])


def test_two_particle_jet_mass_width_and_fractions():
    (pt1, eta1, phi1), (pt2, eta2, phi2) = (120.0, 0.2, 1.0), (40.0, -0.05, 1.2)
    c = constituents([[(pt1, eta1, phi1), (pt2, eta2, phi2)]], em=0.25, charged=0.5)
    v = jet_variables(c, 1)
    m_expected = np.sqrt(2 * pt1 * pt2 * (np.cosh(eta1 - eta2) - np.cos(phi1 - phi2)))
    p = four(pt1, eta1, phi1) + four(pt2, eta2, phi2)
    jet_pt = np.hypot(p[0], p[1])
    jet_rap = 0.5 * np.log((p[3] + p[2]) / (p[3] - p[2]))
    jet_phi = np.arctan2(p[1], p[0])
    dr = [np.hypot(eta - jet_rap, phi - jet_phi) for eta, phi in ((eta1, phi1), (eta2, phi2))]
    assert v["m"][0] == pytest.approx(m_expected, rel=1e-9)
    assert v["pt"][0] == pytest.approx(jet_pt, rel=1e-12)
    assert v["e"][0] == pytest.approx(p[3], rel=1e-12)
    assert v["eta"][0] == pytest.approx(np.arcsinh(p[2] / jet_pt), rel=1e-12)
    assert v["width"][0] == pytest.approx((pt1 * dr[0] + pt2 * dr[1]) / (pt1 + pt2), rel=1e-9)
    assert v["lead_frac"][0] == pytest.approx(pt1 / jet_pt, rel=1e-12)
    assert v["em_frac"][0] == pytest.approx(0.25)
    assert v["charged_frac"][0] == pytest.approx(0.5)
    assert v["nconst"][0] == 2
    assert v["n90"][0] == 2  # 120/160 = 75% < 90%
    assert v["tau21"][0] == 0.0 and v["tau32"][0] == 0.0  # tau2 = 0 with two constituents


def test_one_constituent_jet_conventions():
    v = jet_variables(constituents([[(55.0, 1.3, -2.0)]]), 1)
    assert v["m"][0] == pytest.approx(0.0, abs=1e-5)
    assert v["width"][0] == pytest.approx(0.0, abs=1e-9)
    assert v["lead_frac"][0] == pytest.approx(1.0)
    assert (v["nconst"][0], v["n90"][0], v["tau21"][0], v["tau32"][0]) == (1, 1, 0.0, 0.0)


def test_phi_wraparound_jet():
    v = jet_variables(constituents([[(50.0, 0.0, np.pi - 0.05), (50.0, 0.0, -np.pi + 0.05)]]), 1)
    assert abs(v["phi"][0]) == pytest.approx(np.pi, abs=1e-9)
    assert v["width"][0] == pytest.approx(0.05, rel=1e-6)
    assert v["m"][0] == pytest.approx(np.sqrt(2 * 50 * 50 * (1 - np.cos(0.1))), rel=1e-9)


@pytest.mark.parametrize(
    ("pts", "expected"),
    [([90.0, 10.0], 1), ([50.0, 30.0, 20.0], 3), ([85.0, 5.0, 5.0, 5.0], 2), ([1.0] * 10, 9), ([7.0], 1)],
)
def test_n90_against_definition(pts, expected):
    rng = np.random.default_rng(3)
    shuffled = rng.permutation(pts)
    assert n90(np.zeros(len(pts), dtype=np.int64), shuffled, 1)[0] == expected


def test_n90_many_jets_matches_brute_force():
    rng = np.random.default_rng(7)
    counts = rng.integers(1, 12, 40)
    jet = np.repeat(np.arange(40), counts)
    pt = rng.exponential(20.0, len(jet))
    perm = rng.permutation(len(jet))
    got = n90(jet[perm], pt[perm], 40)
    for j in range(40):
        p = np.sort(pt[jet == j])[::-1]
        brute = min(k for k in range(1, len(p) + 1) if p[:k].sum() >= 0.9 * p.sum() * (1 - 1e-9))
        assert got[j] == brute


def brute_exclusive_kt(parts: list[np.ndarray], n: int) -> list[np.ndarray]:
    """Exclusive kT (E-scheme, no beam) by direct pairwise merging: an independent reference."""
    parts = [p.copy() for p in parts]

    def rap_phi(p):
        return 0.5 * np.log((p[3] + p[2]) / (p[3] - p[2])), np.arctan2(p[1], p[0])

    while len(parts) > n:
        best = None
        for i, j in itertools.combinations(range(len(parts)), 2):
            (yi, fi), (yj, fj) = rap_phi(parts[i]), rap_phi(parts[j])
            dphi = (fi - fj + np.pi) % (2 * np.pi) - np.pi
            dij = min(np.hypot(*parts[i][:2]) ** 2, np.hypot(*parts[j][:2]) ** 2) * ((yi - yj) ** 2 + dphi**2)
            if best is None or dij < best[0]:
                best = (dij, i, j)
        _, i, j = best
        merged = parts[i] + parts[j]
        parts = [p for k, p in enumerate(parts) if k not in (i, j)] + [merged]
    return parts


def brute_tau(cs: list[tuple[float, float, float]], axes: list[np.ndarray], r0: float = 0.4) -> float:
    total = 0.0
    for pt, eta, phi in cs:
        dists = []
        for a in axes:
            y, f = 0.5 * np.log((a[3] + a[2]) / (a[3] - a[2])), np.arctan2(a[1], a[0])
            dists.append(np.hypot(eta - y, (phi - f + np.pi) % (2 * np.pi) - np.pi))
        total += pt * min(dists)
    return total / (r0 * sum(c[0] for c in cs))


@pytest.mark.generate
def test_nsubjettiness_ratios_against_brute_force():
    rng = np.random.default_rng(11)
    jets = []
    for n in (3, 4, 5, 8):
        jets.append([(float(rng.uniform(5, 80)), float(rng.uniform(-0.25, 0.25)), float(rng.uniform(0.8, 1.3)))
                     for _ in range(n)])
    v = jet_variables(constituents(jets), len(jets))
    for j, cs in enumerate(jets):
        parts = [four(*c) for c in cs]
        taus = {k: brute_tau(cs, brute_exclusive_kt(parts, k)) for k in (1, 2, 3)}
        assert v["tau21"][j] == pytest.approx(taus[2] / taus[1], rel=1e-6)
        expected32 = taus[3] / taus[2] if taus[2] > 0 else 0.0
        assert v["tau32"][j] == pytest.approx(expected32, rel=1e-6, abs=1e-12)
    assert v["tau32"][0] == 0.0  # three constituents: tau3 = 0


def test_nsubjettiness_with_given_axes_and_zero_convention():
    jet = np.array([0, 0, 1])
    pt, rap, phi = np.array([10.0, 30.0, 5.0]), np.array([0.1, -0.1, 2.0]), np.array([0.0, 0.2, 1.0])
    tau1 = nsubjettiness(jet, pt, rap, phi, np.array([[0.0], [2.0]]), np.array([[0.1], [1.0]]), 2)
    d = [np.hypot(0.1, -0.1), np.hypot(-0.1, 0.1)]
    assert tau1[0] == pytest.approx((10 * d[0] + 30 * d[1]) / (40 * 0.4))
    assert tau1[1] == 0.0  # one constituent, N = 1
    assert list(safe_ratio(np.array([1.0, 0.0, 2.0]), np.array([0.0, 0.0, 4.0]))) == [0.0, 0.0, 0.5]


def test_no_jets_gives_empty_columns():
    empty = Constituents(*(np.zeros(0, dtype=np.int64 if i == 0 else float) for i in range(7)))
    v = jet_variables(empty, 0)
    assert set(v) == set(VARIABLES) and all(len(x) == 0 for x in v.values())


def test_towers_sum_energy_and_split_em_charged():
    # two particles in the same tower (one photon, one charged hadron) and one elsewhere
    pts, etas, phis = np.array([10.0, 20.0, 5.0]), np.array([0.51, 0.52, -2.0]), np.array([0.31, 0.32, 2.5])
    px, py, pz, e = four(pts, etas, phis)
    towers = build_towers(np.zeros(3, dtype=np.int64), px, py, pz, e, np.array([True, False, False]),
                          np.array([False, True, False]), NO_SMEAR, np.random.default_rng(0))
    assert len(towers.e) == 2
    assert towers.e.sum() == pytest.approx(e.sum())
    shared = np.argmax(towers.e)
    assert towers.e_em[shared] == pytest.approx(e[0])
    assert towers.e_charged[shared] == pytest.approx(e[1])
    deta = 9.8 / 98
    assert np.all(np.isclose((towers.eta + 4.9) / deta % 1, 0.5))  # tower centres
    assert towers.eta[shared] == pytest.approx(0.55)


def test_smearing_resolution_matches_formula():
    energy = np.full(40000, 100.0)
    out = smear(energy, 0.5, 0.03, np.random.default_rng(1))
    assert out.mean() == pytest.approx(100.0, rel=0.005)
    assert out.std() == pytest.approx(np.sqrt(0.25 * 100 + 9.0), rel=0.03)
    assert np.all(smear(np.full(1000, 0.01), 0.5, 0.03, np.random.default_rng(2)) >= 0)


@pytest.mark.generate
def test_back_to_back_particles_give_two_massless_jets():
    dphi = 2 * np.pi / 63
    phi0 = -np.pi + 20.5 * dphi  # a tower centre; the other particle is pi away (31.5 bins)
    etas, phis = np.array([0.05, 0.05]), np.array([phi0, phi0 + 31.5 * dphi])
    px, py, pz, e = four(np.array([100.0, 80.0]), etas, phis)
    towers = build_towers(np.zeros(2, dtype=np.int64), px, py, pz, e, np.zeros(2, bool), np.ones(2, bool),
                          NO_SMEAR, np.random.default_rng(0))
    jet_event, c = cluster(towers, 1, JetParams())
    v = jet_variables(c, len(jet_event))
    assert list(jet_event) == [0, 0]
    assert v["pt"] == pytest.approx([100.0, 80.0], rel=1e-9)  # sorted by pt
    assert v["m"] == pytest.approx([0.0, 0.0], abs=1e-4)
    assert v["width"] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert list(v["n90"]) == [1, 1] and list(v["charged_frac"]) == pytest.approx([1.0, 1.0])
    dijet = four(v["pt"][0], v["eta"][0], v["phi"][0]) + four(v["pt"][1], v["eta"][1], v["phi"][1])
    m_jj = np.sqrt(dijet[3] ** 2 - np.sum(dijet[:3] ** 2))
    dphi_jj = v["phi"][0] - v["phi"][1]
    assert abs(abs(dphi_jj) - np.pi) <= dphi  # back to back within one tower (63 phi bins: no exact pi)
    assert m_jj == pytest.approx(np.sqrt(2 * 100 * 80 * (1 - np.cos(dphi_jj))), rel=1e-6)  # equal eta


@pytest.mark.generate
def test_cluster_selection_and_ordering_with_empty_events():
    rng = np.random.default_rng(5)
    n_events = 6
    counts = np.array([0, 40, 3, 0, 60, 1])
    event = np.repeat(np.arange(n_events), counts)
    pt = rng.exponential(15.0, len(event)) + 0.5
    eta = rng.uniform(-4.8, 4.8, len(event))
    phi = rng.uniform(-np.pi, np.pi, len(event))
    px, py, pz, e = four(pt, eta, phi)
    towers: Towers = build_towers(event, px, py, pz, e, rng.random(len(event)) < 0.3,
                                  rng.random(len(event)) < 0.6, DetectorParams(), rng)
    jet_event, c = cluster(towers, n_events, JetParams())
    v = jet_variables(c, len(jet_event))
    assert np.all(np.diff(jet_event) >= 0)
    for ev in range(n_events):
        pts = v["pt"][jet_event == ev]
        assert np.all(np.diff(pts) <= 0)
    assert np.all(v["pt"] > 20) and np.all(np.abs(v["eta"]) < 4.5)
    for name in VARIABLES:
        assert np.all(np.isfinite(v[name])), name
    assert np.all((v["em_frac"] >= 0) & (v["em_frac"] <= 1)) and np.all(v["charged_frac"] <= 1 + 1e-9)
