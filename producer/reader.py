"""Chunked reading of jet ntuples with uproot: one or many files, TTrees or RNTuples, never a whole file in memory.

Each chunk comes out as an EventBlock (producer/framing.py) of flat numpy columns ready for the wire:
per-event jet counts, entry numbers and event numbers, and one float32 array per per-jet variable (GeV),
plus what the input screen dropped. Branch names come
from a mapping VAR=BRANCH (default ``jet_<var>``, and ``event_number`` for the event number;
:mod:`producer.formats` has presets, some with several layouts: the first whose tree or RNTuple a
file holds is read). Jet branches are read as jagged arrays and counted with ``ak.num``, so
``std::vector<float>`` branches, uproot's counted ``float[n]`` branches, RNTuple collections and the
fields of an RNTuple record collection (``jet.pt`` under ``jet``) all work and no counter is needed.
An event number stored as a one-element collection per event (Delphes' ``Event.Number``) is read as
that element. e is derived from (pt, eta, m), and pt, eta, phi, m from Cartesian (px, py, pz, e),
when requested and absent (:mod:`producer.kinematics`). Every chunk passes the input screen
(:mod:`producer.jet_screen`): non-finite and sentinel jets dropped, jets beyond the cap cut, all counted.

:func:`inspect_file` is the one start-up check and read plan of a file: it finds the tree, the
branches, what to derive and how to reach each field, and reads the first entry through the same
code as the chunks, so a layout the check accepts is one the reader reads.
"""

from __future__ import annotations

import difflib
import glob
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from emulator.runtime.wire import Limits, jet_column, jet_column_variable
from producer import jet_screen, kinematics
from producer.formats import EVENT_NUMBER
from producer.framing import EventBlock
from producer.jet_screen import InputCounts
from producer.kinematics import CARTESIAN, CYLINDRICAL

#: Variables that carry energy units (energies, momenta, masses); only these are scaled MeV -> GeV.
ENERGY_VARIABLES = frozenset({"pt", "m", "e", "et", "px", "py", "pz"})
MEV_TO_GEV = 1e-3
#: The four-vector the default variable list is completed to when the input holds one.
FOUR_VECTOR = ("pt", "eta", "phi", "m", "e")
#: uproot class names of what the reader can read, and what error messages call them.
TREE_KINDS = {"TTree": "TTree", "TNtuple": "TTree", "TNtupleD": "TTree", "ROOT::RNTuple": "RNTuple"}
#: Jets per event beyond which an event keeps its leading jets: the wire's limit, so none is rejected downstream.
DEFAULT_MAX_JETS = Limits().max_jets_per_event

log = logging.getLogger(__name__)


class ReaderError(ValueError):
    """An input that cannot be read as asked: missing file, tree or branch, inconsistent jets."""


@dataclass(frozen=True)
class ReaderSpec:
    """What to read: tree, variables, their branches, unit, chunk size, other layouts to try, jet cap."""

    tree: str = "events"
    branch_map: Mapping[str, str] = field(default_factory=dict)
    unit: str = "GeV"
    columns: Sequence[str] | None = None  # None: every jet_* branch (plus mapped ones)
    derive_e: bool = False
    step_size: int = 20000
    input_format: str | None = None  # named in error messages
    #: (tree, branch_map) tried in order when a file lacks ``tree`` (producer.formats.layouts; empty: only tree)
    layouts: tuple[tuple[str, Mapping[str, str]], ...] = ()
    max_jets: int = DEFAULT_MAX_JETS

    def branch(self, var: str) -> str:
        """The branch that holds variable ``var`` (``jet_<var>`` unless mapped)."""
        default = EVENT_NUMBER if var == EVENT_NUMBER else jet_column(var)
        return self.branch_map.get(var, default)



def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Expand paths and globs in order (each glob sorted); a pattern that matches nothing is an error."""
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise ReaderError(f"input {pattern!r} matches no file")
        for match in matches:
            path = Path(match)
            if not path.is_file():
                raise ReaderError(f"input file {path} does not exist")
            files.append(path)
    if not files:
        raise ReaderError("no input files given")
    return files


def trees_in(f: Any) -> dict[str, str]:
    """Each TTree and RNTuple of an open file once (no cycle numbers, subdirectories as ``dir/name``) -> kind."""
    found: dict[str, str] = {}
    for key, cls in f.classnames().items():
        if cls in TREE_KINDS:
            found.setdefault(key.rsplit(";", 1)[0], TREE_KINDS[cls])
    return found


def missing_tree_message(path: Path, spec: ReaderSpec, wanted: Sequence[str], found: Mapping[str, str]) -> str:
    """The error for a file without any of ``wanted``: each TTree and RNTuple once, by kind, and the closest."""
    fmt = f" (input format {spec.input_format})" if spec.input_format else ""
    asked = " or ".join(repr(w) for w in wanted)
    kinds = [f"{kind}s: " + (", ".join(sorted(n for n, k in found.items() if k == kind)) or "none")
             for kind in ("TTree", "RNTuple")]
    closest = difflib.get_close_matches(wanted[0], list(found), n=1, cutoff=0.0)
    hint = f"; closest: {closest[0]!r} ({found[closest[0]]}), read it with --tree {closest[0]}" if closest else ""
    return f"{path}: no TTree or RNTuple {asked}{fmt}; the file holds {'; '.join(kinds)}{hint}"


def _open_file(path: Path) -> Any:
    try:
        return uproot.open(path)
    except Exception as exc:
        raise ReaderError(f"{path}: cannot open as a ROOT file ({exc})") from exc


def _choose_layout(path: Path, f: Any, spec: ReaderSpec) -> ReaderSpec:
    """``spec`` with the tree and branch map of the first layout whose tree the file holds."""
    candidates = spec.layouts or ((spec.tree, spec.branch_map),)
    found = trees_in(f)
    for tree, branch_map in candidates:
        if tree in found:
            return replace(spec, tree=tree, branch_map=dict(branch_map), layouts=())
    raise ReaderError(missing_tree_message(path, spec, [t for t, _ in candidates], found))


def branch_names(tree: Any) -> set[str]:
    """Every branch (field) name a spec may use: for a TTree full paths and (for split objects) the short names
    (uproot finds both); for an RNTuple the full field paths (``jet.pt``)."""
    if is_rntuple(tree):
        return set(tree.keys())
    return set(tree.keys()) | set(tree.keys(full_paths=False))


def is_rntuple(tree: Any) -> bool:
    """Whether an object uproot opened is an RNTuple (else a TTree)."""
    return isinstance(tree, uproot.behaviors.RNTuple.RNTuple)


def field_path(name: str, names: set[str], rntuple: bool) -> tuple[str, ...]:
    """Where uproot puts field ``name`` in the arrays it returns: RNTuple subfields (``jet.pt`` of a record
    collection ``jet``) come back nested (``["jet"]["pt"]``); TTree branches under their own name."""
    if not rntuple:
        return (name,)
    parts, begin = [], 0
    for i, c in enumerate(name):
        if c == "." and i > begin and name[:i] in names:
            parts.append(name[begin:i])
            begin = i + 1
    return (*parts, name[begin:])


def close_branches(branch: str, names: Sequence[str] | set[str], n: int = 8) -> list[str]:
    """Branches present that look like ``branch``: difflib's closest that share its suffix (``.pt``, ``_pt``)
    first, then difflib's other close ones, then the rest with that suffix."""
    names = sorted(set(names) - {branch})
    similar = difflib.get_close_matches(branch, names, n=n, cutoff=0.6)
    cut = max(branch.rfind("."), branch.rfind("_"), branch.rfind(":"))
    suffixed = [b for b in names if b.endswith(branch[cut:])] if cut > 0 else []
    ordered = [b for b in similar if b in suffixed] + [b for b in similar if b not in suffixed]
    return (ordered + [b for b in suffixed if b not in similar])[:n]


@dataclass(frozen=True)
class ReadPlan:
    """How one file's branches give the requested variables."""

    read: tuple[str, ...]  # jet variables read from their branches
    from_cartesian: tuple[str, ...] = ()  # computed from px, py, pz, e (pt = 0 jets are dropped)
    derive_e: bool = False  # e computed from pt, eta, m
    entry_as_event_number: bool = False  # no event-number branch and none mapped: the entry number is used


def plan_read(variables: Sequence[str], names: set[str], spec: ReaderSpec) -> ReadPlan:
    """Which branches to read for ``variables`` and what to derive (nothing is checked here)."""
    def has(var: str) -> bool:
        return spec.branch(var) in names

    derive_e = "e" in variables and (spec.derive_e or not has("e"))
    needed = [v for v in variables if not (v == "e" and derive_e)]
    if derive_e:
        needed += [v for v in ("pt", "eta", "m") if v not in needed]
    cartesian = all(has(v) for v in CARTESIAN)
    derived = tuple(v for v in CYLINDRICAL if v in needed and cartesian and not has(v))
    read = [v for v in needed if v not in derived]
    if derived:
        read += [v for v in CARTESIAN if v not in read]
    no_event = not has(EVENT_NUMBER) and EVENT_NUMBER not in spec.branch_map
    return ReadPlan(tuple(read), derived, derive_e, no_event)


def _check_branches(path: Path, spec: ReaderSpec, names: set[str], variables: Sequence[str],
                    plan: ReadPlan) -> None:
    """ReaderError naming the file, tree, first missing branch and the close branches present."""
    required = ([] if plan.entry_as_event_number else [EVENT_NUMBER]) + list(plan.read)
    for var in required:
        branch = spec.branch(var)
        if branch in names:
            continue
        fmt = f" (input format {spec.input_format})" if spec.input_format else ""
        why = "" if var in variables or var == EVENT_NUMBER else ", needed to derive e"
        hint = ""
        if var in CYLINDRICAL:
            absent = [spec.branch(v) for v in CARTESIAN if spec.branch(v) not in names]
            mapped = any(v in spec.branch_map for v in CARTESIAN)
            hint = " (or map px, py, pz and e to derive it" + (
                f"; Cartesian branches missing: {', '.join(map(repr, absent))})" if mapped else ")")
        close = close_branches(branch, names)
        look = f"; branches that look close: {', '.join(close)}" if close else ""
        raise ReaderError(f"{path}: tree {spec.tree!r}{fmt} has no branch {branch!r} for variable {var!r}{why}"
                          f"{look}; map it with --branch-map {var}=BRANCH{hint}")


def default_variables(keys: Sequence[str], names: set[str], spec: ReaderSpec) -> list[str]:
    """The variables sent without --columns: mapped ones, then jet_* branches, completed to pt, eta, phi, m, e
    when the file holds a whole four-vector, either (pt, eta, phi, m) or (px, py, pz, e)."""
    mapped = [v for v in spec.branch_map if v != EVENT_NUMBER]
    found = [v for k in keys if (v := jet_column_variable(k))]
    variables = mapped + [v for v in found if v not in mapped and spec.branch(v) in names]
    if any(all(spec.branch(v) in names for v in four) for four in (CYLINDRICAL, CARTESIAN)):
        variables += [v for v in FOUR_VECTOR if v not in variables]
    if spec.derive_e and "e" not in variables:
        variables.append("e")
    return variables


@dataclass(frozen=True)
class FilePlan:
    """One input file checked and planned: the layout found, the variables, and how each is read."""

    path: Path
    spec: ReaderSpec  # with the tree and branch map of the layout the file holds
    kind: str  # "TTree" or "RNTuple"
    variables: tuple[str, ...]
    plan: ReadPlan
    fields: Mapping[str, tuple[str, ...]]  # var (and event_number) -> path into uproot's arrays

    @property
    def expressions(self) -> list[str]:
        """The branch (field) names handed to uproot."""
        return sorted({self.spec.branch(var) for var in self.fields})


def inspect_file(path: Path, spec: ReaderSpec, variables: Sequence[str] | None = None) -> FilePlan:
    """Check ``path`` against ``spec`` and plan its reading: the one start-up check of a file.

    ``variables``: those to send (None: ``spec.columns``, else the file's default ones). The first entry is
    read through the chunk code, so a field the check accepts but uproot cannot read fails here.
    Raises ReaderError naming the file, the tree, the first missing branch and the close ones present.
    """
    with _open_file(path) as f:
        spec = _choose_layout(path, f, spec)
        tree = f[spec.tree]
        rntuple = is_rntuple(tree)
        names = branch_names(tree)
        if variables is None:
            variables = list(spec.columns) if spec.columns is not None else default_variables(tree.keys(), names,
                                                                                                spec)
        if not variables:
            raise ReaderError(f"{path}: tree {spec.tree!r} has no jet_* branches; give --columns and --branch-map")
        plan = plan_read(variables, names, spec)
        _check_branches(path, spec, names, variables, plan)
        read = plan.read if plan.entry_as_event_number else (EVENT_NUMBER, *plan.read)
        fields = {var: field_path(spec.branch(var), names, rntuple) for var in read}
        fp = FilePlan(path, spec, "RNTuple" if rntuple else "TTree", tuple(variables), plan, fields)
        if tree.num_entries:
            try:
                arrays = tree.arrays(fp.expressions, entry_stop=1, library="ak")
            except Exception as exc:  # uproot's own error for a field it cannot read
                raise ReaderError(f"{path}: {fp.kind} {spec.tree!r}: uproot cannot read {fp.expressions} "
                                  f"({type(exc).__name__}: {exc})") from exc
            _to_block(arrays, 0, fp, 0)
    return fp


def resolve_variables(path: Path, spec: ReaderSpec) -> list[str]:
    """The per-jet variables to send, in order, checked against the file's branches (:func:`inspect_file`)."""
    return list(inspect_file(path, spec).variables)


def derive_energy(pt: np.ndarray, eta: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E = sqrt(m^2 + (pt cosh eta)^2), computed in float64, returned as float32."""
    with np.errstate(over="ignore"):
        p = pt.astype(np.float64) * np.cosh(eta.astype(np.float64))
        return np.sqrt(np.square(m.astype(np.float64)) + np.square(p)).astype(np.float32)


def _get(arrays: ak.Array, path: tuple[str, ...], fp: FilePlan) -> ak.Array:
    out = arrays
    try:
        for name in path:
            out = out[name]
    except Exception as exc:
        raise ReaderError(f"{fp.path}: {fp.kind} {fp.spec.tree!r}: field {'.'.join(path)!r} not in what uproot "
                          f"returned ({exc})") from exc
    return out


def _flat(array: ak.Array, branch: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Counts and flat values of a jagged branch (std::vector<T>, counted T[n] or an RNTuple collection alike)."""
    try:
        counts = ak.to_numpy(ak.num(array, axis=1))
        values = ak.to_numpy(ak.flatten(array, axis=1))
    except Exception as exc:
        raise ReaderError(f"{path}: branch {branch!r} is not a jagged per-jet array ({exc})") from exc
    return counts, values


def _event_numbers(array: ak.Array, fp: FilePlan, start: int) -> np.ndarray:
    """The event numbers of a chunk: a scalar branch, or a one-element collection per event (Delphes)."""
    branch = fp.spec.branch(EVENT_NUMBER)
    if array.ndim > 1:
        counts, values = _flat(array, branch, fp.path)
        if not np.all(counts == 1):
            bad = int(np.flatnonzero(counts != 1)[0])
            raise ReaderError(f"{fp.path}: event-number branch {branch!r} holds {counts[bad]} values at entry "
                              f"{start + bad}; it must hold one per event")
        array = values
    try:
        return ak.to_numpy(array).astype("<u8")
    except Exception as exc:
        raise ReaderError(f"{fp.path}: event-number branch {branch!r} is not an integer per event ({exc})") from exc


def read_chunks(files: Sequence[Path], spec: ReaderSpec, variables: Sequence[str], file_offset: int = 0,
                plans: Sequence[FilePlan] | None = None) -> Iterator[EventBlock]:
    """Yield the events of ``files`` in order as chunks of at most ``spec.step_size`` events.

    ``file_index`` counts from ``file_offset`` in the order of ``files``. ``plans`` (from
    :func:`inspect_file`, one per file) skip the start-up check already made; without them each file is
    inspected here. What the input screen drops is in :attr:`EventBlock.checks`, and warned about once per file.
    """
    for i, path in enumerate(files):
        fp = plans[i] if plans is not None else inspect_file(path, spec, variables)
        if tuple(variables) != fp.variables:
            fp = inspect_file(path, spec, variables)
        if fp.plan.entry_as_event_number:
            log.warning("%s: no event-number branch %r: the entry number is used as the event number "
                        "(map one with --branch-map event_number=BRANCH)", path, fp.spec.branch(EVENT_NUMBER))
        found = InputCounts()
        with _open_file(path) as f:
            for arrays, report in f[fp.spec.tree].iterate(fp.expressions, step_size=spec.step_size, library="ak",
                                                          report=True):
                chunk = _to_block(arrays, report.tree_entry_start, fp, file_offset + i)
                found.add(chunk.checks)
                yield chunk
        if found.zero_pt_jets_dropped:
            log.warning("%s: dropped %d jet(s) with pt = 0 (no finite eta) while deriving %s from px, py, pz, e",
                        path, found.zero_pt_jets_dropped, ", ".join(fp.plan.from_cartesian))
        screened = {k: v for k, v in found.as_dict().items() if v and k != "zero_pt_jets_dropped"}
        if screened:
            log.warning("%s: input screen (docs/design.md, jets left out of kept events): %s", path,
                        ", ".join(f"{k} {v}" for k, v in screened.items()))


def _to_block(arrays: ak.Array, start: int, fp: FilePlan, file_index: int) -> EventBlock:
    spec, plan, path = fp.spec, fp.plan, fp.path
    n = len(arrays)
    entry = np.arange(start, start + n, dtype="<u8")
    event_number = entry.copy() if plan.entry_as_event_number else \
        _event_numbers(_get(arrays, fp.fields[EVENT_NUMBER], fp), fp, start)
    counts: np.ndarray | None = None
    first = ""
    read: dict[str, np.ndarray] = {}
    for var in plan.read:
        branch = spec.branch(var)
        c, values = _flat(_get(arrays, fp.fields[var], fp), branch, path)
        if counts is None:
            counts, first = c, branch
        elif not np.array_equal(c, counts):
            bad = int(np.flatnonzero(c != counts)[0])
            raise ReaderError(f"{path}: tree {spec.tree!r}: branches {first!r} and {branch!r} have different jet "
                              f"counts at entry {start + bad} ({counts[bad]} vs {c[bad]}); the variables of one "
                              "jet collection must have one value per jet")
        with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf and is screened below
            read[var] = values.astype(np.float32, copy=False)
    counts = counts.astype(np.int64) if counts is not None else np.zeros(n, dtype=np.int64)
    checks = InputCounts()
    counts, read = jet_screen.bad_values(counts, read, True, checks)  # in the file's unit: -999 MeV is a sentinel
    if spec.unit == "MeV":
        read = {var: values * np.float32(MEV_TO_GEV) if var in ENERGY_VARIABLES else values
                for var, values in read.items()}
    if plan.from_cartesian:
        keep = kinematics.transverse_momentum(read["px"], read["py"]) > 0
        checks.zero_pt_jets_dropped += int((~keep).sum())
        counts, read = jet_screen.keep_jets(counts, read, keep)
        derived = kinematics.from_cartesian(*(read[v] for v in CARTESIAN))
        for var in plan.from_cartesian:
            read[var] = derived[var].astype(np.float32)
    if plan.derive_e:
        read["e"] = derive_energy(read["pt"], read["eta"], read["m"])
    jets = {var: read[var] for var in fp.variables}
    if "pt" in read and "pt" not in jets:
        jets["pt"] = read["pt"]  # ranks the jets for the cap
    counts, jets = jet_screen.bad_values(counts, jets, False, checks)  # derived values that overflowed
    counts, jets = jet_screen.cap_jets(counts, jets, spec.max_jets, checks)
    jets = {var: np.ascontiguousarray(jets[var], dtype="<f4") for var in fp.variables}
    return EventBlock(np.full(len(counts), file_index, "<u4"), entry, event_number, counts.astype("<u4"),
                      np.zeros(len(counts)), jets, checks)
