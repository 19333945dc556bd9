"""Write the format example files from a bundled sample: ``python -m producer.samples.make_examples``.

Each layout is what its users' files look like, as far as uproot can write it (``uproot.recreate`` with
``mktree`` for TTrees, ``mkrntuple`` for RNTuples):

* ``physlite``: ATLAS PHYSLITE (Run 3), TTree ``CollectionTree``, ``AnalysisJetsAuxDyn.{pt,eta,phi,m}`` in MeV,
  ``EventInfoAuxDyn.{eventNumber,runNumber}``;
* ``physlite_rntuple``: ATLAS PHYSLITE in ROOT's Run-4 format, RNTuple ``EventData``,
  ``AnalysisJetsAuxDyn:{pt,eta,phi,m}`` in MeV, ``EventInfoAuxDyn:{eventNumber,runNumber}``;
* ``nanoaod`` / ``nanoaod_rntuple``: CMS NanoAOD, TTree or RNTuple ``Events``, ``nJet``,
  ``Jet_{pt,eta,phi,mass}`` in GeV (eta and phi keep 12 mantissa bits and mass 10, rounded, as NanoAOD
  stores them; pt is full float32), ``run``, ``luminosityBlock``, ``event``;
* ``delphes``: Delphes, TTree ``Delphes``, ``Jet.{PT,Eta,Phi,Mass}`` counted by ``Jet_size`` and
  ``Event.Number`` (one per event) counted by ``Event_size``: flat jagged branches with the names uproot gives
  the leaves of Delphes' split TClonesArrays (uproot cannot write a TClonesArray);
* ``cms_opendata``: CMS open-data tutorial-like, tree ``events``, ``NJet``, ``Jet_{Px,Py,Pz,E}`` in GeV (from
  pt, eta, phi, m with ``vector``), no event number.

uproot writes a TTree's jagged branches as counted ``float[n]`` arrays with a counter branch; real PHYSLITE
has ``std::vector<float>`` branches and no counter, so the PHYSLITE TTree carries an extra
``nAnalysisJetsAuxDyn`` counter that the reader does not use. :func:`convert` writes any layout of any
sample in this project's layout (the tests convert ``ttbar.root`` to each).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from emulator.runtime.float_bits import reduce_mantissa
from producer.kinematics import to_cartesian

SAMPLES = Path(__file__).resolve().parent
SOURCE = SAMPLES / "qcd.root"
N_EVENTS = 300
#: layout -> example file name, in the order they are written
EXAMPLES = {"physlite": "physlite_example.root", "physlite_rntuple": "physlite_rntuple_example.root",
            "nanoaod": "nanoaod_example.root", "nanoaod_rntuple": "nanoaod_rntuple_example.root",
            "delphes": "delphes_example.root", "cms_opendata": "cms_opendata_example.root"}
#: --input-format of each layout (cms_opendata has none: it is read with a Cartesian --branch-map)
INPUT_FORMAT = {"physlite": "physlite", "physlite_rntuple": "physlite", "nanoaod": "nanoaod",
                "nanoaod_rntuple": "nanoaod", "delphes": "delphes"}
#: explicit mantissa bits NanoAOD keeps (CMS NanoAOD's P4Vars: eta and phi precision 12, mass 10, pt full)
NANOAOD_MANTISSA_BITS = {"eta": 12, "phi": 12, "mass": 10}
MEV = np.float32(1000.0)


def read_source(source: Path = SOURCE, n_events: int | None = N_EVENTS) -> dict[str, ak.Array | np.ndarray]:
    """The jets (float32 pt, eta, phi, m in GeV), event and run numbers of the first ``n_events`` (None: all)."""
    with uproot.open(source) as f:
        a = f["events"].arrays(["jet_pt", "jet_eta", "jet_phi", "jet_m", "event_number", "run_number"],
                               entry_stop=n_events)
    out: dict[str, ak.Array | np.ndarray] = {v: ak.values_astype(a[f"jet_{v}"], np.float32)
                                             for v in ("pt", "eta", "phi", "m")}
    out["event"] = a["event_number"].to_numpy().astype(np.uint64)
    out["run"] = a["run_number"].to_numpy().astype(np.uint32)
    return out


def _metadata(source: Path, n: int, layout: str, note: str) -> str:
    return json.dumps({"source": f"producer/samples/{source.name}", "entries": [0, n], "layout": layout,
                       "made_by": "python -m producer.samples.make_examples", "note": note})


def _write_tree(path: Path, tree: str, collections: dict[str, ak.Array], scalars: dict[str, np.ndarray],
                field_name: Callable[[str, str], str], counter_name: Callable[[str], str], meta: str) -> None:
    branches = {**collections, **scalars}
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()},
                 field_name=field_name, counter_name=counter_name)
        f[tree].extend(branches)
        f["metadata"] = meta


def _write_rntuple(path: Path, name: str, fields: dict[str, ak.Array | np.ndarray], meta: str) -> None:
    with uproot.recreate(path) as f:
        f.mkrntuple(name, fields)
        f["metadata"] = meta


def _nano_round(values: ak.Array, var: str) -> ak.Array:
    bits = NANOAOD_MANTISSA_BITS.get(var)
    if bits is None:
        return values
    return ak.unflatten(reduce_mantissa(ak.to_numpy(ak.flatten(values)), bits), ak.num(values))


def convert(layout: str, path: Path, source: Path = SOURCE, n_events: int | None = N_EVENTS) -> Path:
    """Write the first ``n_events`` of ``source`` (this project's layout) to ``path`` in ``layout``."""
    s = read_source(source, n_events)
    pt, eta, phi, m = s["pt"], s["eta"], s["phi"], s["m"]
    event, run = s["event"], s["run"]
    n = len(event)
    path.parent.mkdir(parents=True, exist_ok=True)
    dot = lambda outer, inner: f"{outer}.{inner}"  # noqa: E731
    under = lambda outer, inner: f"{outer}_{inner}"  # noqa: E731
    if layout == "physlite":
        _write_tree(path, "CollectionTree",
                    {"AnalysisJetsAuxDyn": ak.zip({"pt": pt * MEV, "eta": eta, "phi": phi, "m": m * MEV})},
                    {"EventInfoAuxDyn.eventNumber": event, "EventInfoAuxDyn.runNumber": run}, dot,
                    lambda counted: f"n{counted}",
                    _metadata(source, n, layout, "PHYSLITE-like TTree written with uproot (counted arrays, not "
                              "std::vector), MeV"))
    elif layout == "physlite_rntuple":
        fields = {f"AnalysisJetsAuxDyn:{v}": x for v, x in
                  (("pt", pt * MEV), ("eta", eta), ("phi", phi), ("m", m * MEV))}
        _write_rntuple(path, "EventData", {**fields, "EventInfoAuxDyn:eventNumber": event,
                                           "EventInfoAuxDyn:runNumber": run},
                       _metadata(source, n, layout, "PHYSLITE-like RNTuple EventData written with uproot, MeV"))
    elif layout in ("nanoaod", "nanoaod_rntuple"):
        jets = {v: _nano_round(x, v) for v, x in (("pt", pt), ("eta", eta), ("phi", phi), ("mass", m))}
        scalars = {"run": run, "luminosityBlock": np.ones(n, np.uint32), "event": event}
        meta = _metadata(source, n, layout, "NanoAOD-like layout written with uproot, GeV; eta, phi rounded to 12 "
                         "and mass to 10 mantissa bits as NanoAOD stores them")
        if layout == "nanoaod":
            _write_tree(path, "Events", {"Jet": ak.zip(jets)}, scalars, under, lambda counted: f"n{counted}", meta)
        else:
            fields = {f"Jet_{v}": x for v, x in jets.items()}
            _write_rntuple(path, "Events", {"nJet": ak.to_numpy(ak.num(pt)).astype(np.uint32), **fields, **scalars},
                           meta)
    elif layout == "delphes":
        one = np.ones(n, dtype=np.int64)
        _write_tree(path, "Delphes",
                    {"Event": ak.zip({"Number": ak.unflatten(event.astype(np.int64), one)}),
                     "Jet": ak.zip({"PT": pt, "Eta": eta, "Phi": phi, "Mass": m})},
                    {}, dot, lambda counted: f"{counted}_size",
                    _metadata(source, n, layout, "Delphes-like TTree written with uproot: flat jagged branches named "
                              "as uproot names the leaves of Delphes' split TClonesArrays, GeV"))
    elif layout == "cms_opendata":
        counts = ak.num(pt)
        p4 = to_cartesian(*(ak.to_numpy(ak.flatten(x)) for x in (pt, eta, phi, m)))
        cart = {k.capitalize(): ak.unflatten(v.astype(np.float32), counts) for k, v in p4.items()}
        _write_tree(path, "events", {"Jet": ak.zip(cart)}, {}, under, lambda counted: f"N{counted}",
                    _metadata(source, n, layout, "CMS open-data tutorial-like layout written with uproot, Cartesian "
                              "GeV, no event number"))
    else:
        raise ValueError(f"layout must be one of {tuple(EXAMPLES)}, got {layout!r}")
    return path


def make_examples(out_dir: Path = SAMPLES, n_events: int = N_EVENTS, source: Path = SOURCE) -> list[Path]:
    """Write every example file into ``out_dir``; returns their paths."""
    return [convert(layout, out_dir / name, source, n_events) for layout, name in EXAMPLES.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=SAMPLES, help="where to write (default: this directory)")
    parser.add_argument("--events", type=int, default=N_EVENTS, help=f"events per file (default {N_EVENTS})")
    parser.add_argument("--source", type=Path, default=SOURCE, help="sample to convert (default: qcd.root)")
    args = parser.parse_args()
    for path in make_examples(args.out_dir, args.events, args.source):
        print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
