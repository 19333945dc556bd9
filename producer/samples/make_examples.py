"""Write the format example files from the bundled QCD sample: ``python -m producer.samples.make_examples``.

* ``physlite_example.root``: ATLAS PHYSLITE-like, tree ``CollectionTree``, ``AnalysisJetsAuxDyn.{pt,eta,phi,m}``
  in MeV, ``EventInfoAuxDyn.{eventNumber,runNumber}``;
* ``nanoaod_example.root``: CMS NanoAOD-like, tree ``Events``, ``nJet``, ``Jet_{pt,eta,phi,mass}`` in GeV,
  ``run``, ``luminosityBlock``, ``event``;
* ``cms_opendata_example.root``: CMS open-data tutorial-like, tree ``events``, ``NJet``,
  ``Jet_{Px,Py,Pz,E}`` in GeV (from pt, eta, phi, m with ``vector``), no event number.

uproot writes jagged branches as counted ``float[n]`` arrays with a counter branch; real PHYSLITE
has ``std::vector<float>`` branches and no counter, so the PHYSLITE example carries an extra
``nAnalysisJetsAuxDyn`` counter that the reader does not use.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from producer.kinematics import to_cartesian

SAMPLES = Path(__file__).resolve().parent
SOURCE = SAMPLES / "qcd.root"
N_EVENTS = 300


def _source(n_events: int) -> ak.Array:
    with uproot.open(SOURCE) as f:
        return f["events"].arrays(["jet_pt", "jet_eta", "jet_phi", "jet_m", "event_number", "run_number"],
                                  entry_stop=n_events)


def _write(path: Path, tree: str, jets_name: str, jets: ak.Array, scalars: dict[str, np.ndarray],
           field_name: Callable[[str, str], str], counter_name: Callable[[str], str], note: str) -> None:
    branches = {jets_name: jets, **scalars}
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()},
                 field_name=field_name, counter_name=counter_name)
        f[tree].extend(branches)
        f["metadata"] = json.dumps({"source": f"producer/samples/{SOURCE.name}", "entries": [0, len(jets)],
                                    "made_by": "python -m producer.samples.make_examples", "note": note})


def make_examples(out_dir: Path = SAMPLES, n_events: int = N_EVENTS) -> list[Path]:
    """Write the three example files into ``out_dir``; returns their paths."""
    a = _source(n_events)
    pt, eta, phi, m = (ak.values_astype(a[f"jet_{v}"], np.float32) for v in ("pt", "eta", "phi", "m"))
    event = a["event_number"].to_numpy().astype(np.uint64)
    run = a["run_number"].to_numpy().astype(np.uint32)
    counts = ak.num(pt)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "physlite_example.root", out_dir / "nanoaod_example.root", out_dir / "cms_opendata_example.root"]

    mev = np.float32(1000.0)
    _write(paths[0], "CollectionTree", "AnalysisJetsAuxDyn",
           ak.zip({"pt": pt * mev, "eta": eta, "phi": phi, "m": m * mev}),
           {"EventInfoAuxDyn.eventNumber": event, "EventInfoAuxDyn.runNumber": run},
           lambda outer, inner: f"{outer}.{inner}", lambda counted: f"n{counted}",
           "PHYSLITE-like layout written with uproot (counted arrays, not std::vector), MeV")
    _write(paths[1], "Events", "Jet", ak.zip({"pt": pt, "eta": eta, "phi": phi, "mass": m}),
           {"run": run, "luminosityBlock": np.ones(len(event), np.uint32), "event": event},
           lambda outer, inner: f"{outer}_{inner}", lambda counted: f"n{counted}",
           "NanoAOD-like layout written with uproot, GeV")
    p4 = to_cartesian(*(ak.to_numpy(ak.flatten(x)) for x in (pt, eta, phi, m)))
    cart = {k.capitalize(): ak.unflatten(v.astype(np.float32), counts) for k, v in p4.items()}
    _write(paths[2], "events", "Jet", ak.zip(cart), {}, lambda outer, inner: f"{outer}_{inner}",
           lambda counted: f"N{counted}",
           "CMS open-data tutorial-like layout written with uproot, Cartesian GeV, no event number")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=SAMPLES, help="where to write (default: this directory)")
    parser.add_argument("--events", type=int, default=N_EVENTS, help=f"events per file (default {N_EVENTS})")
    args = parser.parse_args()
    for path in make_examples(args.out_dir, args.events):
        print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
