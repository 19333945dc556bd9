"""Invertible per-variable normalisation, the same numbers in numpy, torch and the ONNX graphs.

Every variable gets one transform ``y = (f(s * x) - shift) / scale`` where ``s`` is a unit factor
(1, or 1000 for GeV -> MeV), and ``f`` is the identity or ``log10(u + offset)``. Its exact inverse
is ``x = (g(y * scale + shift)) / s`` with ``g(v) = 10**v - offset`` for log variables.

Schemes:
- ``standard``: identity ``f``; shift/scale = training-set mean and standard deviation.
- ``custom`` (after the original study): ``log10(x + c)`` for positive heavy-tailed variables
  (``c > 0`` where x can be 0), then standardised; angles scaled by fixed constants (eta / 1,
  phi / (pi/2): spreads comparable to the standardised variables, so the loss does not neglect
  them); every other variable standardised.
- ``tla``: the published TLA network's fixed normalisation on MeV values (pretrained README):
  m' = log10(m + 1) / 1.8 - 2, pt' = (log10(pt) - 1.3) / 1.2 - 3, phi' = phi / 3, eta' = eta / 5.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: custom scheme: variable -> log offset c (log10(x + c) then standardise)
CUSTOM_LOG_OFFSETS: dict[str, float] = {"pt": 0.0, "e": 0.0, "m": 1.0, "nconst": 1.0, "n90": 1.0}
#: custom scheme: variable -> fixed divisor for angles
CUSTOM_ANGLE_SCALES: dict[str, float] = {"eta": 1.0, "phi": math.pi / 2}
SCHEMES = ("standard", "custom", "tla")
UNITS: dict[str, str] = {"pt": "GeV", "m": "GeV", "e": "GeV"}


@dataclass(frozen=True)
class VariableTransform:
    """``y = (f(input_scale * x) - shift) / scale`` with ``f = log10(. + offset)`` when ``log``."""

    name: str
    log: bool = False
    offset: float = 0.0
    shift: float = 0.0
    scale: float = 1.0
    input_scale: float = 1.0


@dataclass(frozen=True)
class Normalisation:
    """The per-variable transforms of one model, in input order."""

    scheme: str
    transforms: tuple[VariableTransform, ...]

    @property
    def variables(self) -> list[str]:
        return [t.name for t in self.transforms]

    def arrays(self) -> dict[str, np.ndarray]:
        """Parameter vectors (float64) keyed by field name, for vectorised use."""
        fields = ("offset", "shift", "scale", "input_scale")
        out = {f: np.array([getattr(t, f) for t in self.transforms], dtype=np.float64) for f in fields}
        out["log"] = np.array([t.log for t in self.transforms], dtype=bool)
        return out

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Physical units -> normalised (numpy, computed in the dtype of ``x``)."""
        p = {k: v.astype(x.dtype) if v.dtype != bool else v for k, v in self.arrays().items()}
        u = x * p["input_scale"]
        logged = np.log10(np.where(p["log"], u + p["offset"], 1).astype(x.dtype))
        u = np.where(p["log"], logged, u)
        return ((u - p["shift"]) / p["scale"]).astype(x.dtype)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """Normalised -> physical units (numpy)."""
        p = {k: v.astype(y.dtype) if v.dtype != bool else v for k, v in self.arrays().items()}
        u = y * p["scale"] + p["shift"]
        powered = np.power(np.asarray(10, dtype=y.dtype), np.where(p["log"], u, 0).astype(y.dtype)) - p["offset"]
        u = np.where(p["log"], powered, u)
        return (u / p["input_scale"]).astype(y.dtype)

    def to_card(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "formula": "y = (f(input_scale*x) - shift)/scale, f = log10(u + offset) if log",
                "transforms": [asdict(t) for t in self.transforms]}

    @classmethod
    def from_card(cls, data: dict[str, Any]) -> Normalisation:
        return cls(scheme=data["scheme"], transforms=tuple(VariableTransform(**t) for t in data["transforms"]))


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    std = float(values.std())
    return float(values.mean()), std if std > 0 else 1.0


def fit_standard(names: list[str], data: np.ndarray) -> Normalisation:
    """Standardise each column with the training-set mean and standard deviation."""
    transforms = []
    for i, name in enumerate(names):
        mean, std = _mean_std(data[:, i])
        transforms.append(VariableTransform(name=name, shift=mean, scale=std))
    return Normalisation("standard", tuple(transforms))


def fit_custom(names: list[str], data: np.ndarray) -> Normalisation:
    """log10(x + c) + standardise for heavy-tailed positive variables, fixed angle scales, else standard."""
    transforms = []
    for i, name in enumerate(names):
        column = np.asarray(data[:, i], dtype=np.float64)
        if name in CUSTOM_LOG_OFFSETS:
            offset = CUSTOM_LOG_OFFSETS[name]
            if np.any(column + offset <= 0):
                raise ValueError(f"custom normalisation: {name} has values <= {-offset}, "
                                 f"cannot take log10(x + {offset})")
            mean, std = _mean_std(np.log10(column + offset))
            transforms.append(VariableTransform(name=name, log=True, offset=offset, shift=mean, scale=std))
        elif name in CUSTOM_ANGLE_SCALES:
            transforms.append(VariableTransform(name=name, scale=CUSTOM_ANGLE_SCALES[name]))
        else:
            mean, std = _mean_std(column)
            transforms.append(VariableTransform(name=name, shift=mean, scale=std))
    return Normalisation("custom", tuple(transforms))


def tla_normalisation() -> Normalisation:
    """The published TLA network's normalisation; inputs in GeV (x1000 to MeV inside), order m, pt, phi, eta."""
    return Normalisation("tla", (
        # m' = log10(m + 1)/1.8 - 2 = (log10(m + 1) - 3.6)/1.8
        VariableTransform("m", log=True, offset=1.0, shift=3.6, scale=1.8, input_scale=1000.0),
        # pt' = (log10(pt) - 1.3)/1.2 - 3 = (log10(pt) - 4.9)/1.2
        VariableTransform("pt", log=True, offset=0.0, shift=4.9, scale=1.2, input_scale=1000.0),
        VariableTransform("phi", scale=3.0),
        VariableTransform("eta", scale=5.0),
    ))


def fit(scheme: str, names: list[str], data: np.ndarray) -> Normalisation:
    """Fit a normalisation scheme on training data (rows = jets, columns = ``names``)."""
    if scheme == "standard":
        return fit_standard(names, data)
    if scheme == "custom":
        return fit_custom(names, data)
    if scheme == "tla":
        if names != ["m", "pt", "phi", "eta"]:
            raise ValueError(f"the tla normalisation needs variables m, pt, phi, eta in that order, got {names}")
        return tla_normalisation()
    raise ValueError(f"unknown normalisation scheme {scheme!r}; choose from {SCHEMES}")


def unit_of(name: str) -> str:
    """Unit of an input-contract variable (GeV for energies/momenta/masses, '' otherwise)."""
    return UNITS.get(name, "")
