"""Jet four-vector conversions with scikit-hep ``vector``: Cartesian (px, py, pz, E) <-> (pt, eta, phi, m).

Computed in float64 whatever the input precision; callers cast for the wire.
"""

from __future__ import annotations

import numpy as np
import vector

CARTESIAN = ("px", "py", "pz", "e")
CYLINDRICAL = ("pt", "eta", "phi", "m")


def _f8(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def transverse_momentum(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """pt of (px, py)."""
    return vector.array({"px": _f8(px), "py": _f8(py)}).pt


def from_cartesian(px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray) -> dict[str, np.ndarray]:
    """pt, eta, phi, m and e of Cartesian four-momenta.

    A jet with pt = 0 has no finite eta: drop those first (:func:`transverse_momentum`). Spacelike
    vectors (m^2 < 0, float rounding of a near-massless jet) get m = 0 instead of vector's negative mass.
    """
    v = vector.array({"px": _f8(px), "py": _f8(py), "pz": _f8(pz), "E": _f8(e)})
    return {"pt": v.pt, "eta": v.eta, "phi": v.phi, "m": np.maximum(v.mass, 0.0), "e": v.E}


def to_cartesian(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, m: np.ndarray) -> dict[str, np.ndarray]:
    """px, py, pz, e of (pt, eta, phi, m) four-momenta."""
    v = vector.array({"pt": _f8(pt), "eta": _f8(eta), "phi": _f8(phi), "mass": _f8(m)})
    return {"px": v.px, "py": v.py, "pz": v.pz, "e": v.E}
