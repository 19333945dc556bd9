"""A simple calorimeter: visible particles summed into eta-phi towers, then Gaussian energy smearing.

Numbers (``DetectorParams`` defaults, all documented in docs/samples.md):
- towers 0.1 x 0.1 in eta x phi: 98 eta bins over |eta| < 4.9, 63 phi bins of 2pi/63 (0.0997);
- EM part (photons, electrons; so also pi0 photons): sigma/E = 10%/sqrt(E/GeV) (+) 0.7%;
- HAD part (all other visible particles): sigma/E = 50%/sqrt(E/GeV) (+) 3%; (+) = in quadrature;
- neutrinos, muons (minimum ionising, measured elsewhere) and invisible BSM particles
  (Pythia ``isVisible`` false, e.g. stable dark mesons) deposit nothing;
- a smeared part below 0 is set to 0; towers are massless, pointing to the tower centre.
Per tower we keep E_em, E_had and the charged-particle share of the energy (scaled to the
smeared energy), so jets get an EM fraction and a charged fraction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MUON = 13
EM_IDS = (11, 22)


@dataclass(frozen=True)
class DetectorParams:
    eta_max: float = 4.9
    n_eta: int = 98
    n_phi: int = 63
    em_stochastic: float = 0.10
    em_constant: float = 0.007
    had_stochastic: float = 0.50
    had_constant: float = 0.03

    def as_dict(self) -> dict:
        d = asdict(self)
        d["tower_deta"] = 2 * self.eta_max / self.n_eta
        d["tower_dphi"] = 2 * np.pi / self.n_phi
        d["resolution"] = "sigma/E = a/sqrt(E/GeV) (+) b in quadrature, Gaussian, negative -> 0"
        d["invisible"] = "neutrinos, muons, Pythia isVisible()==false (e.g. stable dark mesons)"
        d["em"] = "photons and electrons; everything else visible is hadronic"
        return d


@dataclass
class Towers:
    """Flat tower arrays, grouped by event (``event`` non-decreasing)."""

    event: np.ndarray  # int64
    eta: np.ndarray
    phi: np.ndarray
    e: np.ndarray  # smeared total energy, > 0
    e_em: np.ndarray  # smeared EM part
    e_charged: np.ndarray  # charged share of e

    @property
    def pt(self) -> np.ndarray:
        return self.e / np.cosh(self.eta)


class ParticleClassifier:
    """Per-PDG-id flags (visible, EM, charged), looked up once per id from Pythia's particle data."""

    def __init__(self, particle_data: object):
        self._pd = particle_data
        self._cache: dict[int, tuple[bool, bool, bool]] = {}

    def _flags(self, pid: int) -> tuple[bool, bool, bool]:
        if pid not in self._cache:
            apid = abs(pid)
            visible = bool(self._pd.isVisible(pid)) and apid != MUON
            self._cache[pid] = (visible, apid in EM_IDS, self._pd.charge(pid) != 0)
        return self._cache[pid]

    def classify(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boolean arrays (visible, em, charged) for an array of PDG ids."""
        uniq, inverse = np.unique(ids, return_inverse=True)
        table = np.array([self._flags(int(p)) for p in uniq], dtype=bool).reshape(-1, 3)
        flags = table[inverse]
        return flags[:, 0], flags[:, 1], flags[:, 2]


def smear(energy: np.ndarray, stochastic: float, constant: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian smearing with sigma = sqrt(stochastic^2 E + constant^2 E^2); negative results -> 0."""
    sigma = np.sqrt(stochastic**2 * energy + (constant * energy) ** 2)
    return np.maximum(energy + sigma * rng.standard_normal(energy.shape), 0.0)


def build_towers(
    event: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    e: np.ndarray,
    is_em: np.ndarray,
    is_charged: np.ndarray,
    params: DetectorParams,
    rng: np.random.Generator,
) -> Towers:
    """Sum visible particles (already selected) into towers per event and smear them.

    ``event`` is each particle's event index; the result is sorted by (event, tower).
    """
    pt = np.hypot(px, py)
    ok = pt > 0
    event, px, py, pz, e, is_em, is_charged, pt = (a[ok] for a in (event, px, py, pz, e, is_em, is_charged, pt))
    eta = np.arcsinh(pz / pt)
    phi = np.arctan2(py, px)
    inside = np.abs(eta) < params.eta_max
    event, e, is_em, is_charged, eta, phi = (a[inside] for a in (event, e, is_em, is_charged, eta, phi))
    deta = 2 * params.eta_max / params.n_eta
    dphi = 2 * np.pi / params.n_phi
    ieta = np.clip(((eta + params.eta_max) / deta).astype(np.int64), 0, params.n_eta - 1)
    iphi = np.clip(((phi + np.pi) / dphi).astype(np.int64), 0, params.n_phi - 1)
    n_cells = params.n_eta * params.n_phi
    key = event.astype(np.int64) * n_cells + ieta * params.n_phi + iphi
    uniq, inverse = np.unique(key, return_inverse=True)
    n = len(uniq)
    e_em_true = np.bincount(inverse, weights=np.where(is_em, e, 0.0), minlength=n)
    e_had_true = np.bincount(inverse, weights=np.where(is_em, 0.0, e), minlength=n)
    e_ch_true = np.bincount(inverse, weights=np.where(is_charged, e, 0.0), minlength=n)
    e_em = smear(e_em_true, params.em_stochastic, params.em_constant, rng)
    e_had = smear(e_had_true, params.had_stochastic, params.had_constant, rng)
    total = e_em + e_had
    true_total = e_em_true + e_had_true
    charged_share = np.divide(e_ch_true, true_total, out=np.zeros(n), where=true_total > 0)
    keep = total > 0
    cell = uniq % n_cells
    return Towers(
        event=(uniq // n_cells)[keep],
        eta=(-params.eta_max + ((cell // params.n_phi) + 0.5) * deta)[keep],
        phi=(-np.pi + ((cell % params.n_phi) + 0.5) * dphi)[keep],
        e=total[keep],
        e_em=e_em[keep],
        e_charged=(charged_share * total)[keep],
    )
