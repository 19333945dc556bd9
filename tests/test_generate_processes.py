"""The resonance signals are generated on their mass peak (hard process only, a few hundred events)."""

import numpy as np
import pytest

from producer.generate.processes import process_settings, seed_settings

pythia8 = pytest.importorskip("pythia8mc")


def resonance_masses(process: str, pdg_id: int, n_events: int = 300) -> np.ndarray:
    """Masses of the resonance in the hard process of ``n_events`` events (no shower, no hadrons)."""
    py = pythia8.Pythia("", False)
    for s in [*process_settings(process, 13000.0, 100.0, []), *seed_settings(7),
              "PartonLevel:all = off", "HadronLevel:all = off"]:
        assert py.readString(s), s
    assert py.init()
    masses = []
    for _ in range(n_events):
        assert py.next()
        masses += [py.process[i].m() for i in range(py.process.size()) if abs(py.process[i].id()) == pdg_id][:1]
    return np.array(masses)


@pytest.mark.parametrize(("process", "pdg_id", "low", "high"),
                         [("darkshower", 4900023, 1200.0, 1800.0), ("zprime", 32, 1000.0, 3000.0)])
def test_resonance_is_on_its_peak(process: str, pdg_id: int, low: float, high: float) -> None:
    masses = resonance_masses(process, pdg_id)
    assert len(masses) == 300
    assert masses.min() >= low and masses.max() <= high
    assert abs(np.median(masses) - (low + high) / 2) < 0.05 * (low + high) / 2
