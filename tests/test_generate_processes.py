"""The resonance signals are generated on their mass peak, with the decays asked for (hard process only)."""

import numpy as np
import pytest

from producer.generate.processes import process_settings, seed_settings

pythia8 = pytest.importorskip("pythia8mc")

pytestmark = pytest.mark.slow  # Pythia initialisations, one per hard process


def hard_processes(process: str, n_events: int, capfd: pytest.CaptureFixture[str]):
    """Yield the hard-process record of ``n_events`` events (no shower, no hadrons); no setting rejected."""
    py = pythia8.Pythia("", False)
    for s in [*process_settings(process, 13000.0, 100.0, []), *seed_settings(7),
              "PartonLevel:all = off", "HadronLevel:all = off"]:
        assert py.readString(s), s
    assert py.init()
    assert "PYTHIA Error" not in capfd.readouterr().out
    for _ in range(n_events):
        assert py.next()
        yield py.process


def resonance_masses(process: str, pdg_id: int, capfd: pytest.CaptureFixture[str], n_events: int = 300) -> np.ndarray:
    """Mass of the first ``pdg_id`` (either sign) in the hard process of each event."""
    events = hard_processes(process, n_events, capfd)
    return np.array([next(p.m() for p in ev if abs(p.id()) == pdg_id) for ev in events])


def decays(ev, pdg_id: int) -> list[tuple[float, int, list[int]]]:
    """(mass, status, sorted daughter ids) of every ``pdg_id`` (either sign) in the hard-process record ``ev``."""
    return [(ev[i].m(), ev[i].status(), sorted(ev[d].id() for d in ev[i].daughterList()))
            for i in range(ev.size()) if abs(ev[i].id()) == pdg_id]


@pytest.mark.parametrize(("process", "pdg_id", "low", "high"),
                         [("darkshower", 4900023, 1200.0, 1800.0), ("zprime", 32, 1000.0, 3000.0),
                          ("hh4b", 35, 900.0, 1100.0), ("zprime500", 32, 400.0, 600.0)])
def test_resonance_is_on_its_peak(process: str, pdg_id: int, low: float, high: float, capfd) -> None:
    masses = resonance_masses(process, pdg_id, capfd)
    assert len(masses) == 300
    assert masses.min() >= low and masses.max() <= high
    assert abs(np.median(masses) - (low + high) / 2) < 0.05 * (low + high) / 2


def test_hh4b_is_x_to_two_125_gev_h_each_to_b_bbar(capfd) -> None:
    for ev in hard_processes("hh4b", 100, capfd):
        (x,) = decays(ev, 35)
        assert x[1] == -22 and x[2] == [25, 25]  # decayed intermediate resonance, forced to h h
        hs = decays(ev, 25)
        assert len(hs) == 2
        for m, status, daughters in hs:
            assert abs(m - 125.0) < 0.5 and status == -22 and daughters == [-5, 5]
        assert sorted(ev[i].status() for i in range(ev.size()) if abs(ev[i].id()) == 5) == [23] * 4


def test_tth_has_a_top_pair_and_a_125_gev_higgs_to_b_bbar(capfd) -> None:
    top_masses = []
    for ev in hard_processes("tth", 50, capfd):
        (h,) = decays(ev, 25)
        assert abs(h[0] - 125.0) < 0.5 and h[1] == -22 and h[2] == [-5, 5]
        tops = decays(ev, 6)
        assert sorted(ev[i].id() for i in range(ev.size()) if abs(ev[i].id()) == 6) == [-6, 6]
        for m, status, daughters in tops:
            assert status == -22 and sorted(map(abs, daughters)) == [5, 24]
            top_masses.append(m)
    assert abs(np.median(top_masses) - 173.0) < 2.0


def test_zprime500_decays_to_light_quarks_only(capfd) -> None:
    daughters = set()
    for ev in hard_processes("zprime500", 300, capfd):
        (zp,) = decays(ev, 32)
        assert zp[1] == -22 and zp[2][0] == -zp[2][1]
        daughters.add(abs(zp[2][1]))
    assert daughters <= {1, 2, 3, 4, 5} and len(daughters) >= 4
