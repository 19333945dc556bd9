"""Input-format presets: the tree, branch names, unit and event-number branch of common analysis formats.

``--input-format NAME`` (config key ``input_format``) fills in ``--tree``, ``--unit`` and the
``--branch-map`` entries of a preset; an explicit ``--tree``, ``--unit`` or ``--branch-map VAR=...``
wins over the preset's entry for that setting or variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

EVENT_NUMBER = "event_number"


@dataclass(frozen=True)
class InputFormat:
    """One preset: where the jets and the event number live, and their energy unit."""

    name: str
    tree: str
    unit: str
    branch_map: Mapping[str, str] = field(default_factory=dict)  # variable (or event_number) -> branch
    description: str = ""


def _jets(prefix: str, names: Mapping[str, str], event_branch: str) -> Mapping[str, str]:
    return MappingProxyType({var: prefix + branch for var, branch in names.items()} | {EVENT_NUMBER: event_branch})


FORMATS: Mapping[str, InputFormat] = MappingProxyType({
    "aetrig": InputFormat("aetrig", "events", "GeV", MappingProxyType({}),
                          "this project's ntuples: tree events, jet_<var> (GeV), event_number"),
    "physlite": InputFormat("physlite", "CollectionTree", "MeV",
                            _jets("AnalysisJetsAuxDyn.", {"pt": "pt", "eta": "eta", "phi": "phi", "m": "m"},
                                  "EventInfoAuxDyn.eventNumber"),
                            "ATLAS PHYSLITE: tree CollectionTree, AnalysisJetsAuxDyn.{pt,eta,phi,m} (MeV), "
                            "EventInfoAuxDyn.eventNumber"),
    "nanoaod": InputFormat("nanoaod", "Events", "GeV",
                           _jets("Jet_", {"pt": "pt", "eta": "eta", "phi": "phi", "m": "mass"}, "event"),
                           "CMS NanoAOD: tree Events, Jet_{pt,eta,phi,mass} (GeV), event"),
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
    """(tree, unit, branch_map) of preset ``name`` with the explicitly given settings on top (None: not given)."""
    preset = get_format(name)
    return tree or preset.tree, unit or preset.unit, {**preset.branch_map, **(branch_map or {})}
