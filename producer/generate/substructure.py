"""N-subjettiness (Thaler & Van Tilburg) with exclusive-kT axes, beta = 1, written in numpy.

tau_N = sum_k pT_k min_a DeltaR(k, axis_a) / (R0 sum_k pT_k), DeltaR in rapidity-phi.
The axes are the N exclusive kT subjets of the jet's constituents (FastJet, kT with R = 1000,
as FastJet contrib's ExclusiveJetAxes does). A jet with nconst <= N has tau_N = 0 exactly.
"""

from __future__ import annotations

import warnings

import numpy as np

R0 = 0.4
KT_R = 1000.0


def delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """phi difference wrapped to [-pi, pi)."""
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def rapidity(px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Rapidity 0.5 ln((E+pz)/(E-pz)), safe for massless particles along the beam (clipped)."""
    del px, py
    num = np.maximum(e + pz, 1e-300)
    den = np.maximum(e - pz, 1e-300)
    return 0.5 * np.log(num / den)


def nsubjettiness(
    const_jet: np.ndarray,
    const_pt: np.ndarray,
    const_rap: np.ndarray,
    const_phi: np.ndarray,
    axes_rap: np.ndarray,
    axes_phi: np.ndarray,
    n_jets: int,
    r0: float = R0,
) -> np.ndarray:
    """tau_N per jet (beta = 1) given axes of shape (n_jets, N); rows of jets with nconst <= N are ignored."""
    n_axes = axes_rap.shape[1]
    nconst = np.bincount(const_jet, minlength=n_jets)
    drap = const_rap[:, None] - axes_rap[const_jet]
    dphi = delta_phi(const_phi[:, None], axes_phi[const_jet])
    dmin = np.sqrt(drap**2 + dphi**2).min(axis=1)
    dmin = np.where(nconst[const_jet] > n_axes, dmin, 0.0)
    num = np.bincount(const_jet, weights=const_pt * dmin, minlength=n_jets)
    den = np.bincount(const_jet, weights=const_pt, minlength=n_jets) * r0
    return safe_ratio(num, den)


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where den == 0 (the documented zero-denominator convention)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def exclusive_kt_axes(
    const_jet: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    e: np.ndarray,
    n_jets: int,
    n_axes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Rapidity and phi (n_jets, n_axes) of the exclusive kT subjets; NaN rows for jets with nconst <= n_axes.

    ``const_jet`` must be non-decreasing (constituents grouped by jet).
    """
    import awkward as ak
    import fastjet

    axes_rap = np.full((n_jets, n_axes), np.nan)
    axes_phi = np.full((n_jets, n_axes), np.nan)
    nconst = np.bincount(const_jet, minlength=n_jets)
    chosen = np.flatnonzero(nconst > n_axes)
    if len(chosen) == 0:
        return axes_rap, axes_phi
    take = np.isin(const_jet, chosen)
    counts = nconst[chosen]
    parts = ak.zip(
        {name: ak.unflatten(arr[take], counts) for name, arr in (("px", px), ("py", py), ("pz", pz), ("E", e))},
        with_name="Momentum4D",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subjets = fastjet.ClusterSequence(parts, fastjet.JetDefinition(fastjet.kt_algorithm, KT_R)).exclusive_jets(
            n_jets=n_axes
        )
    sx, sy, sz, se = (ak.to_numpy(ak.flatten(subjets[f])).reshape(len(chosen), n_axes) for f in ("px", "py", "pz", "E"))
    axes_rap[chosen] = rapidity(sx, sy, sz, se)
    axes_phi[chosen] = np.arctan2(sy, sx)
    return axes_rap, axes_phi
