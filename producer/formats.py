"""Input-format presets: the tree (or RNTuple), branch names, unit and event-number branch of common formats.

``--input-format NAME`` (config key ``input_format``) fills in ``--tree``, ``--unit`` and the
``--branch-map`` entries of a preset; an explicit ``--tree``, ``--unit`` or ``--branch-map VAR=...``
wins over the preset's entry for that setting or variable.

A preset may know several layouts of its format (ATLAS PHYSLITE is a TTree ``CollectionTree`` with
``AnalysisJetsAuxDyn.pt`` in Run 3 and an RNTuple ``EventData`` with ``AnalysisJetsAuxDyn:pt`` in ROOT's
Run-4 format). The first is the one a resolved config names; the reader takes, file by file, the first
layout whose tree or RNTuple the file holds (:func:`layouts`), so one flag reads either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

EVENT_NUMBER = "event_number"


@dataclass(frozen=True)
class Layout:
    """One way a format stores its jets: a TTree or RNTuple name and the branch (field) of each variable."""

    tree: str
    branch_map: Mapping[str, str]  # variable (or event_number) -> branch or RNTuple field
    kind: str = "TTree"  # "TTree" or "RNTuple": only named in help and error messages


@dataclass(frozen=True)
class InputFormat:
    """One preset: its layouts (the first is the default) and their energy unit."""

    name: str
    unit: str
    layouts: tuple[Layout, ...]
    description: str = ""

    @property
    def tree(self) -> str:
        return self.layouts[0].tree

    @property
    def branch_map(self) -> Mapping[str, str]:
        return self.layouts[0].branch_map


def _jets(sep: str, prefix: str, names: Mapping[str, str], event_branch: str) -> Mapping[str, str]:
    return MappingProxyType({var: prefix + sep + branch for var, branch in names.items()}
                            | {EVENT_NUMBER: event_branch})


_ATLAS = {"pt": "pt", "eta": "eta", "phi": "phi", "m": "m"}
FORMATS: Mapping[str, InputFormat] = MappingProxyType({
    "aetrig": InputFormat("aetrig", "GeV", (Layout("events", MappingProxyType({})),),
                          "this project's ntuples: tree events, jet_<var> (GeV), event_number"),
    "physlite": InputFormat(
        "physlite", "MeV",
        (Layout("CollectionTree", _jets(".", "AnalysisJetsAuxDyn", _ATLAS, "EventInfoAuxDyn.eventNumber")),
         Layout("EventData", _jets(":", "AnalysisJetsAuxDyn", _ATLAS, "EventInfoAuxDyn:eventNumber"), "RNTuple")),
        "ATLAS PHYSLITE: TTree CollectionTree with AnalysisJetsAuxDyn.{pt,eta,phi,m} and EventInfoAuxDyn.eventNumber, "
        "or RNTuple EventData with AnalysisJetsAuxDyn:{pt,eta,phi,m} and EventInfoAuxDyn:eventNumber (MeV)"),
    "nanoaod": InputFormat(
        "nanoaod", "GeV",
        (Layout("Events", _jets("_", "Jet", {"pt": "pt", "eta": "eta", "phi": "phi", "m": "mass"}, "event"),
                "TTree or RNTuple"),),
        "CMS NanoAOD: TTree or RNTuple Events, Jet_{pt,eta,phi,mass} (GeV), event"),
    "delphes": InputFormat(
        "delphes", "GeV",
        (Layout("Delphes", _jets(".", "Jet", {"pt": "PT", "eta": "Eta", "phi": "Phi", "m": "Mass"}, "Event.Number")),),
        "Delphes: tree Delphes, the Jet TClonesArray's Jet.{PT,Eta,Phi,Mass} (GeV), Event.Number"),
})
DEFAULT_FORMAT = "aetrig"


def get_format(name: str) -> InputFormat:
    """The preset called ``name``; ValueError listing the known ones otherwise."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(f"input-format must be one of {tuple(FORMATS)}, got {name!r}") from None


def apply_format(name: str, tree: str | None, unit: str | None,
                 branch_map: Mapping[str, str] | None) -> tuple[str, str, dict[str, str]]:
    """(tree, unit, branch_map) of preset ``name``'s first layout with the explicitly given settings on top
    (None: not given)."""
    preset = get_format(name)
    return tree or preset.tree, unit or preset.unit, {**preset.branch_map, **(branch_map or {})}


def layouts(name: str | None, tree: str, branch_map: Mapping[str, str]) -> tuple[tuple[str, dict[str, str]], ...]:
    """The (tree, branch_map) pairs to try on a file, in order, for resolved settings ``tree``/``branch_map``.

    The first is the resolved settings themselves. When they still name the preset's first layout's tree,
    each further layout of the preset follows, with the branch-map entries the user set (those that differ
    from the first layout's) kept; a tree the user chose is the only one tried.
    """
    if name is None or name not in FORMATS:
        return ((tree, dict(branch_map)),)
    preset = FORMATS[name]
    first = preset.layouts[0]
    found = [(tree, dict(branch_map))]
    if tree != first.tree:
        return tuple(found)
    for layout in preset.layouts[1:]:
        mapped = {var: (layout.branch_map.get(var, branch) if first.branch_map.get(var) == branch else branch)
                  for var, branch in branch_map.items()}
        found.append((layout.tree, {**layout.branch_map, **mapped}))
    return tuple(found)
