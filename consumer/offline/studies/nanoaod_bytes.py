"""Study 2's question on the format people use: the bytes of a recording of a NanoAOD file against the file's own
bytes for its jets.

CMS NanoAOD stores jets as float32 ``Jet_pt Jet_eta Jet_phi Jet_mass`` counted by ``nJet``, eta and phi with 12
mantissa bits and mass with 10 (producer/samples/make_examples.py writes the bundled example that way). Both sides
are counted the same way, every byte of the file:

- the input (:func:`input_bytes`): each branch's bytes on disk (its baskets with their key headers, uproot's
  ``compressed_bytes``), grouped into the four jet branches, the jet counter, the other branches, the metadata
  keys and the ROOT overhead (the rest of the file); the groups add up to the file size;
- the recording (:func:`consumer.offline.recording_bytes.recording_bytes`): latents, identity, scores and flags,
  raw copies, cards and metadata, ROOT overhead, adding up to its segments' sizes.

The recording of ``aetrig run --input-format nanoaod`` holds each jet as the compression model's coded latents
(``RD_AE_g23``: pt, eta and phi within 1 % / 0.01, E from pt, eta and mass within 1 %; the jet mass itself is not
kept), so the comparison is bytes at that accuracy against NanoAOD's bytes at its own. A recording that loops the
file (``--loops N``) is compared per jet: its fixed costs (cards, ROOT's metadata) spread as over a long run.

    aetrig run --input producer/samples/nanoaod_example.root --input-format nanoaod --loops 1 --rate 0 --out runs/nano
    python -m consumer.offline.studies.nanoaod_bytes runs/nano --input producer/samples/nanoaod_example.root \
        --rewrite lzma:9

The example is written with uproot's default (zlib level 1); ``--rewrite lzma:9`` also counts its four jet
branches as CMS production writes them (LZMA level 9).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

JET_BRANCHES = ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass")
COUNTER = "nJet"
TREE = "Events"
GROUPS = ("jet_branches", "jet_counter", "other_branches", "metadata_keys", "root_overhead")


def input_bytes(path: str | Path, tree: str = TREE, jet_branches: Sequence[str] = JET_BRANCHES,
                counter: str = COUNTER) -> dict[str, Any]:
    """Bytes on disk of a NanoAOD-layout TTree file by group (they add up to the file size), per branch, and the
    event and jet counts."""
    import numpy as np
    import uproot

    size = os.path.getsize(path)
    groups = dict.fromkeys(GROUPS, 0)
    with uproot.open(path) as file:
        events = file[tree]
        branches = {b.name: int(b.compressed_bytes) for b in events.branches}
        missing = [b for b in (*jet_branches, counter) if b not in branches]
        if missing:
            raise ValueError(f"{path}: tree {tree!r} has no {missing}")
        n_jets = int(np.asarray(events[counter].array(library="np"), np.int64).sum())
        n_events = int(events.num_entries)
        for key in file.keys(cycle=False):
            if key != tree:
                groups["metadata_keys"] += int(file.key(key).fNbytes)
    for name, nbytes in branches.items():
        group = "jet_branches" if name in jet_branches else "jet_counter" if name == counter else "other_branches"
        groups[group] += nbytes
    groups["root_overhead"] = size - sum(groups.values())
    return {"path": str(path), "bytes": size, "events": n_events, "jets": n_jets, "by_group": groups,
            "branches": branches, "per_jet": {k: v / n_jets if n_jets else None for k, v in
                                              {**groups, "total": size}.items()}}


def rewrite_jets(path: str | Path, out: str | Path, compression: str, tree: str = TREE) -> Path:
    """The file's ``nJet`` and four jet branches, as they are, rewritten into ``out`` at ``compression``
    (``ALGO:LEVEL`` or ``none``: e.g. ``lzma:9``, what CMS production NanoAOD uses)."""
    import awkward as ak
    import uproot

    from consumer.sink.segment_writer import parse_compression

    with uproot.open(path) as file:
        arrays = file[tree].arrays(list(JET_BRANCHES))
    jets = ak.zip({name.removeprefix("Jet_"): arrays[name] for name in JET_BRANCHES})
    with uproot.recreate(out, compression=parse_compression(compression)) as file:
        file.mktree(tree, {"Jet": jets.type.content}, field_name=lambda outer, inner: f"{outer}_{inner}",
                    counter_name=lambda counted: f"n{counted}")
        file[tree].extend({"Jet": jets})
    return Path(out)


def compare(recording: str | Path, nanoaod: str | Path, compressions: Sequence[str] = ()) -> dict[str, Any]:
    """The recording's byte split against the NanoAOD file's, per jet, and the ratios (NanoAOD bytes per jet /
    recording bytes per jet: how many times fewer bytes the recording takes); for each of ``compressions`` also
    the four jet branches rewritten at it (:func:`rewrite_jets`) and their ratio."""
    import tempfile

    from consumer.offline.recording_bytes import recording_bytes

    rec = recording_bytes(recording)
    nano = input_bytes(nanoaod)
    rewritten = {}
    with tempfile.TemporaryDirectory(prefix="aetrig-nanoaod-") as tmp:
        for setting in compressions:
            again = input_bytes(rewrite_jets(nanoaod, Path(tmp) / "jets.root", setting))
            rewritten[setting] = {"jet_branches_per_jet": again["per_jet"]["jet_branches"],
                                  "over_recording": again["per_jet"]["jet_branches"] / rec["per_jet"]["total"]}
    rec_jet, nano_jet = rec["per_jet"], nano["per_jet"]
    if not rec["jets"] or not nano["jets"]:
        raise ValueError("no jets to compare")
    jets_plus_counter = nano_jet["jet_branches"] + nano_jet["jet_counter"]
    return {"recording": rec, "nanoaod": nano, "loops": rec["jets"] / nano["jets"], "rewritten": rewritten,
            "ratios": {"four_jet_branches_over_recording": nano_jet["jet_branches"] / rec_jet["total"],
                       "jet_branches_and_counter_over_recording": jets_plus_counter / rec_jet["total"],
                       "file_over_recording": nano_jet["total"] / rec_jet["total"],
                       "four_jet_branches_over_latents": nano_jet["jet_branches"] / rec_jet["latents"]}}


def comparison_text(result: Mapping[str, Any]) -> str:
    rec, nano, r = result["recording"], result["nanoaod"], result["ratios"]
    split = ", ".join(f"{k} {v:.3f}" for k, v in rec["per_jet"].items() if k != "total")
    return "\n".join([
        f"NanoAOD {nano['path']}: {nano['events']:,} events, {nano['jets']:,} jets, {nano['bytes']:,} bytes; "
        f"Jet_pt/eta/phi/mass {nano['per_jet']['jet_branches']:.2f} B/jet, nJet {nano['per_jet']['jet_counter']:.2f}, "
        f"whole file {nano['per_jet']['total']:.2f} B/jet",
        f"recording: {rec['events']:,} events, {rec['jets']:,} jets ({result['loops']:.1f}x the file's), "
        f"{rec['bytes']:,} bytes: {rec['per_jet']['total']:.2f} B/jet ({split} B/jet)",
        f"fewer bytes than the four jet branches: {r['four_jet_branches_over_recording']:.2f}x every byte of the "
        f"recording, {r['four_jet_branches_over_latents']:.2f}x its latents alone; than the jet branches and nJet "
        f"{r['jet_branches_and_counter_over_recording']:.2f}x; than the whole file {r['file_over_recording']:.2f}x",
        *(f"the four jet branches rewritten at {k}: {v['jet_branches_per_jet']:.2f} B/jet, "
          f"{v['over_recording']:.2f}x every byte of the recording" for k, v in result["rewritten"].items())])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recording", help="the --out of aetrig run --input-format nanoaod")
    parser.add_argument("--input", required=True, help="the NanoAOD file it recorded")
    parser.add_argument("--rewrite", action="append", default=[], metavar="ALGO:LEVEL",
                        help="also count the four jet branches rewritten at this compression (repeatable; lzma:9 is "
                             "CMS production's)")
    parser.add_argument("--json", action="store_true", help="print every number as JSON")
    args = parser.parse_args(argv)
    try:
        result = compare(args.recording, args.input, args.rewrite)
    except (OSError, ValueError, KeyError) as exc:
        print(f"nanoaod_bytes: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1) if args.json else comparison_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
