"""Anti-kT jets (FastJet, R = 0.4, pT > 20 GeV, |eta| < 4.5) on towers, and the 13 per-jet variables.

Variables (GeV for pt, m, e; distances in rapidity-phi; ratios with a zero denominator are 0):
pt, eta (pseudorapidity), phi, m, e of the E-scheme jet four-vector; nconst (towers in the jet);
charged_frac = sum E_charged / E; em_frac = sum E_em / E; width = sum pT_k DeltaR(k, jet) / sum pT_k;
lead_frac = max pT_k / jet pT; n90 = fewest constituents (highest pT first) whose pT sum reaches
90% of the constituents' scalar pT sum; tau21 = tau2/tau1, tau32 = tau3/tau2 (see substructure).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from producer.generate.detector import Towers
from producer.generate.substructure import (
    delta_phi,
    exclusive_kt_axes,
    nsubjettiness,
    rapidity,
    safe_ratio,
)

#: The per-jet variables, in output order (branch ``jet_<name>``).
VARIABLES: tuple[str, ...] = (
    "pt", "eta", "phi", "m", "e", "nconst", "charged_frac", "em_frac",
    "width", "lead_frac", "n90", "tau21", "tau32",
)


@dataclass(frozen=True)
class JetParams:
    algorithm: str = "antikt"
    r: float = 0.4
    pt_min: float = 20.0
    abs_eta_max: float = 4.5
    nsubjettiness: str = "beta=1, R0=0.4, exclusive-kT axes (kT R=1000)"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Constituents:
    """Flat constituents of all jets of a chunk, grouped by jet (``jet`` non-decreasing)."""

    jet: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    e: np.ndarray
    e_em: np.ndarray
    e_charged: np.ndarray


def silence_fastjet_banner() -> None:
    """Stop FastJet printing its banner. Its Python package has no public switch, so this is the one place that
    reaches its internals (the SWIG module ``fastjet._swig``); tests/test_library_internals.py fails when the
    package changes them."""
    import fastjet._swig

    fastjet._swig.ClusterSequence.set_fastjet_banner_stream(None)


def cluster(towers: Towers, n_events: int, params: JetParams) -> tuple[np.ndarray, Constituents]:
    """Cluster each event's towers; returns (event index per jet, constituents), jets ordered by event then pT."""
    import awkward as ak
    import fastjet

    silence_fastjet_banner()  # cited in docs/samples.md and the metadata instead
    counts = np.bincount(towers.event, minlength=n_events)
    pt = towers.pt
    px, py, pz = pt * np.cos(towers.phi), pt * np.sin(towers.phi), pt * np.sinh(towers.eta)
    events = ak.zip(
        {k: ak.unflatten(v, counts) for k, v in (("px", px), ("py", py), ("pz", pz), ("E", towers.e))},
        with_name="Momentum4D",
    )
    algorithm = {"antikt": fastjet.antikt_algorithm, "kt": fastjet.kt_algorithm}[params.algorithm]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = fastjet.ClusterSequence(events, fastjet.JetDefinition(algorithm, params.r)).constituent_index(
            min_pt=params.pt_min
        )
    n_jets_per_event = ak.to_numpy(ak.num(index, axis=1))
    n_const_per_jet = ak.to_numpy(ak.flatten(ak.num(index, axis=2)))
    local = ak.to_numpy(ak.flatten(index, axis=None)).astype(np.int64)
    event_of_jet = np.repeat(np.arange(n_events), n_jets_per_event)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tower = local + np.repeat(offsets[event_of_jet], n_const_per_jet)
    jet_of_const = np.repeat(np.arange(len(n_const_per_jet)), n_const_per_jet)

    cons = _constituents(jet_of_const, tower, towers)
    jpx, jpy, jpz, _ = four_vector_sums(cons, len(n_const_per_jet))
    jpt = np.hypot(jpx, jpy)
    jeta = np.arcsinh(safe_ratio(jpz, jpt))
    keep = (jpt > params.pt_min) & (np.abs(jeta) < params.abs_eta_max)
    order = np.lexsort((-jpt, event_of_jet))
    order = order[keep[order]]
    new_id = np.full(len(n_const_per_jet), -1)
    new_id[order] = np.arange(len(order))
    const_new = new_id[jet_of_const]
    sel = const_new >= 0
    resort = np.argsort(const_new[sel], kind="stable")
    picked = np.flatnonzero(sel)[resort]
    cons = _constituents(const_new[picked], tower[picked], towers)
    return event_of_jet[order], cons


def _constituents(jet: np.ndarray, tower: np.ndarray, towers: Towers) -> Constituents:
    return Constituents(
        jet=jet, pt=towers.pt[tower], eta=towers.eta[tower], phi=towers.phi[tower], e=towers.e[tower],
        e_em=towers.e_em[tower], e_charged=towers.e_charged[tower],
    )


def four_vector_sums(c: Constituents, n_jets: int) -> tuple[np.ndarray, ...]:
    """E-scheme jet four-vectors (px, py, pz, E) from massless constituents."""
    px, py, pz = c.pt * np.cos(c.phi), c.pt * np.sin(c.phi), c.pt * np.sinh(c.eta)
    return tuple(np.bincount(c.jet, weights=w, minlength=n_jets) for w in (px, py, pz, c.e))


def n90(const_jet: np.ndarray, const_pt: np.ndarray, n_jets: int, fraction: float = 0.9) -> np.ndarray:
    """Fewest constituents (highest pT first) whose pT sum reaches ``fraction`` of the jet's scalar pT sum."""
    order = np.lexsort((-const_pt, const_jet))
    jet, pt = const_jet[order], const_pt[order]
    total = np.bincount(jet, weights=pt, minlength=n_jets)
    before = np.cumsum(pt) - pt  # running pT sum before each constituent, over the whole chunk
    starts = np.concatenate([[0], np.cumsum(np.bincount(jet, minlength=n_jets))[:-1]])
    before_in_jet = before - before[np.minimum(starts[jet], len(before) - 1)]
    needed = before_in_jet < fraction * total[jet] * (1 - 1e-9)
    return np.bincount(jet, weights=needed.astype(np.float64), minlength=n_jets)


def jet_variables(c: Constituents, n_jets: int) -> dict[str, np.ndarray]:
    """The 13 variables (float64) for jets built from constituents ``c`` (massless, grouped by jet)."""
    px, py, pz, e = four_vector_sums(c, n_jets)
    pt = np.hypot(px, py)
    eta = np.arcsinh(safe_ratio(pz, pt))
    phi = np.arctan2(py, px)
    m = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))
    rap = rapidity(px, py, pz, e)
    nconst = np.bincount(c.jet, minlength=n_jets).astype(np.float64)
    scalar_pt = np.bincount(c.jet, weights=c.pt, minlength=n_jets)
    dr = np.hypot(c.eta - rap[c.jet], delta_phi(c.phi, phi[c.jet]))  # massless constituents: rapidity == eta
    lead = np.zeros(n_jets)
    np.maximum.at(lead, c.jet, c.pt)
    cpx, cpy, cpz = c.pt * np.cos(c.phi), c.pt * np.sin(c.phi), c.pt * np.sinh(c.eta)
    taus = {1: nsubjettiness(c.jet, c.pt, c.eta, c.phi, rap[:, None], phi[:, None], n_jets)}
    for n_axes in (2, 3):
        axes_rap, axes_phi = exclusive_kt_axes(c.jet, cpx, cpy, cpz, c.e, n_jets, n_axes)
        taus[n_axes] = nsubjettiness(c.jet, c.pt, c.eta, c.phi, axes_rap, axes_phi, n_jets)
    return {
        "pt": pt,
        "eta": eta,
        "phi": phi,
        "m": m,
        "e": e,
        "nconst": nconst,
        "charged_frac": safe_ratio(np.bincount(c.jet, weights=c.e_charged, minlength=n_jets), e),
        "em_frac": safe_ratio(np.bincount(c.jet, weights=c.e_em, minlength=n_jets), e),
        "width": safe_ratio(np.bincount(c.jet, weights=c.pt * dr, minlength=n_jets), scalar_pt),
        "lead_frac": safe_ratio(lead, pt),
        "n90": n90(c.jet, c.pt, n_jets),
        "tau21": safe_ratio(taus[2], taus[1]),
        "tau32": safe_ratio(taus[3], taus[2]),
    }
