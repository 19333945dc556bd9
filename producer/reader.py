"""Chunked reading of jet ntuples with uproot: one or many files, never a whole file in memory.

Each chunk comes out as flat numpy columns ready for the wire: per-event jet counts, entry
numbers and event numbers, and one float32 array per per-jet variable (GeV). Branch names come
from a mapping VAR=BRANCH (default ``jet_<var>``, and ``event_number`` for the event number;
:mod:`producer.formats` has presets). Jet branches are read as jagged arrays and counted with
``ak.num``, so ``std::vector<float>`` branches and uproot's counted ``float[n]`` branches both
work and no counter branch is needed. e is derived from (pt, eta, m), and pt, eta, phi, m from
Cartesian (px, py, pz, e), when requested and absent (:mod:`producer.kinematics`).
"""

from __future__ import annotations

import difflib
import glob
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from producer import kinematics
from producer.formats import EVENT_NUMBER
from producer.kinematics import CARTESIAN, CYLINDRICAL

#: Variables that carry energy units (energies, momenta, masses); only these are scaled MeV -> GeV.
ENERGY_VARIABLES = frozenset({"pt", "m", "e", "et", "px", "py", "pz"})
MEV_TO_GEV = 1e-3
JET_PREFIX = "jet_"
#: The four-vector the default variable list is completed to when the input holds one.
FOUR_VECTOR = ("pt", "eta", "phi", "m", "e")

log = logging.getLogger(__name__)


class ReaderError(ValueError):
    """An input that cannot be read as asked: missing file, tree or branch, inconsistent jets."""


@dataclass(frozen=True)
class ReaderSpec:
    """What to read: tree, variables, their branches, unit, chunk size."""

    tree: str = "events"
    branch_map: Mapping[str, str] = field(default_factory=dict)
    unit: str = "GeV"
    columns: Sequence[str] | None = None  # None: every jet_* branch (plus mapped ones)
    derive_e: bool = False
    step_size: int = 20000
    input_format: str | None = None  # only named in error messages

    def branch(self, var: str) -> str:
        """The branch that holds variable ``var`` (``jet_<var>`` unless mapped)."""
        default = EVENT_NUMBER if var == EVENT_NUMBER else JET_PREFIX + var
        return self.branch_map.get(var, default)


@dataclass
class Chunk:
    """Consecutive events of one file, as flat numpy columns."""

    file_index: int
    entry: np.ndarray  # <u8, entry number in the file
    event_number: np.ndarray  # <u8
    n_jets: np.ndarray  # <u4
    jets: dict[str, np.ndarray]  # var -> flat <f4 of length n_jets.sum(), GeV
    dropped_jets: int = 0  # Cartesian jets with pt = 0 left out (already not in n_jets)

    def __len__(self) -> int:
        return len(self.n_jets)


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


def _open_tree(path: Path, spec: ReaderSpec) -> uproot.TTree:
    try:
        f = uproot.open(path)
    except Exception as exc:
        raise ReaderError(f"{path}: cannot open as a ROOT file ({exc})") from exc
    if spec.tree not in f:
        trees = [k.split(";")[0] for k, c in f.classnames().items() if c in ("TTree", "ROOT::RNTuple")]
        raise ReaderError(f"{path}: no tree {spec.tree!r} (trees in file: {trees}); use --tree")
    return f[spec.tree]


def branch_names(tree: uproot.TTree) -> set[str]:
    """Every branch name of ``tree``, full paths and (for split objects) the short names."""
    return set(tree.keys()) | set(tree.keys(full_paths=False))


def close_branches(branch: str, names: Sequence[str] | set[str], n: int = 8) -> list[str]:
    """Branches present that look like ``branch``: difflib's closest that share its suffix (``.pt``, ``_pt``)
    first, then difflib's other close ones, then the rest with that suffix."""
    names = sorted(set(names) - {branch})
    similar = difflib.get_close_matches(branch, names, n=n, cutoff=0.6)
    cut = max(branch.rfind("."), branch.rfind("_"))
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


def needs_derived_e(variables: Sequence[str], branch_names: set[str], spec: ReaderSpec) -> bool:
    """Whether e must be computed: it is requested and either --derive-e is set or its branch is absent."""
    return plan_read(variables, branch_names, spec).derive_e


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
    found = [k[len(JET_PREFIX):] for k in keys if k.startswith(JET_PREFIX)]
    variables = mapped + [v for v in found if v not in mapped and spec.branch(v) in names]
    if any(all(spec.branch(v) in names for v in four) for four in (CYLINDRICAL, CARTESIAN)):
        variables += [v for v in FOUR_VECTOR if v not in variables]
    if spec.derive_e and "e" not in variables:
        variables.append("e")
    return variables


def resolve_variables(path: Path, spec: ReaderSpec) -> list[str]:
    """The per-jet variables to send, in order, checked against the file's branches.

    Raises ReaderError naming the file, the tree, the first missing branch and the close ones present.
    """
    tree = _open_tree(path, spec)
    names = branch_names(tree)
    variables = list(spec.columns) if spec.columns is not None else default_variables(tree.keys(), names, spec)
    if not variables:
        raise ReaderError(f"{path}: tree {spec.tree!r} has no jet_* branches; give --columns and --branch-map")
    _check_branches(path, spec, names, variables, plan_read(variables, names, spec))
    return variables


def derive_energy(pt: np.ndarray, eta: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E = sqrt(m^2 + (pt cosh eta)^2), computed in float64, returned as float32."""
    p = pt.astype(np.float64) * np.cosh(eta.astype(np.float64))
    return np.sqrt(np.square(m.astype(np.float64)) + np.square(p)).astype(np.float32)


def _flat(array: ak.Array, branch: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Counts and flat values of a jagged branch (std::vector<T> or counted T[n] alike)."""
    try:
        counts = ak.to_numpy(ak.num(array, axis=1))
        values = ak.to_numpy(ak.flatten(array, axis=1))
    except Exception as exc:
        raise ReaderError(f"{path}: branch {branch!r} is not a jagged per-jet array ({exc})") from exc
    return counts, values


def read_chunks(files: Sequence[Path], spec: ReaderSpec, variables: Sequence[str],
                file_offset: int = 0) -> Iterator[Chunk]:
    """Yield the events of ``files`` in order as chunks of at most ``spec.step_size`` events.

    ``file_index`` counts from ``file_offset`` in the order of ``files``. Jets dropped for pt = 0
    (Cartesian input) are counted in :attr:`Chunk.dropped_jets` and warned about once per file.
    """
    for i, path in enumerate(files):
        tree = _open_tree(path, spec)
        names = branch_names(tree)
        plan = plan_read(variables, names, spec)
        _check_branches(path, spec, names, variables, plan)
        if plan.entry_as_event_number:
            log.warning("%s: no event-number branch %r: the entry number is used as the event number "
                        "(map one with --branch-map event_number=BRANCH)", path, spec.branch(EVENT_NUMBER))
        branches = {var: spec.branch(var) for var in plan.read}
        if not plan.entry_as_event_number:
            branches = {EVENT_NUMBER: spec.branch(EVENT_NUMBER), **branches}
        dropped = 0
        for arrays, report in tree.iterate(sorted(set(branches.values())), step_size=spec.step_size,
                                           library="ak", report=True):
            chunk = _to_chunk(arrays, report.tree_entry_start, branches, variables, plan, spec, path,
                              file_offset + i)
            dropped += chunk.dropped_jets
            yield chunk
        if dropped:
            log.warning("%s: dropped %d jet(s) with pt = 0 (no finite eta) while deriving %s from px, py, pz, e",
                        path, dropped, ", ".join(plan.from_cartesian))


def _to_chunk(arrays: ak.Array, start: int, branches: Mapping[str, str], variables: Sequence[str],
              plan: ReadPlan, spec: ReaderSpec, path: Path, file_index: int) -> Chunk:
    n = len(arrays)
    entry = np.arange(start, start + n, dtype="<u8")
    event_number = entry.copy() if plan.entry_as_event_number else \
        ak.to_numpy(arrays[branches[EVENT_NUMBER]]).astype("<u8")
    counts: np.ndarray | None = None
    first = ""
    read: dict[str, np.ndarray] = {}
    for var, branch in branches.items():
        if var == EVENT_NUMBER:
            continue
        c, values = _flat(arrays[branch], branch, path)
        if counts is None:
            counts, first = c, branch
        elif not np.array_equal(c, counts):
            bad = int(np.flatnonzero(c != counts)[0])
            raise ReaderError(f"{path}: tree {spec.tree!r}: branches {first!r} and {branch!r} have different jet "
                              f"counts at entry {start + bad} ({counts[bad]} vs {c[bad]}); the variables of one "
                              "jet collection must have one value per jet")
        values = values.astype(np.float32, copy=False)
        if spec.unit == "MeV" and var in ENERGY_VARIABLES:
            values = values * np.float32(MEV_TO_GEV)
        read[var] = values
    counts = counts if counts is not None else np.zeros(n, dtype=np.int64)
    dropped = 0
    if plan.from_cartesian:
        counts, read, dropped = _drop_zero_pt(counts, read)
        derived = kinematics.from_cartesian(*(read[v] for v in CARTESIAN))
        for var in plan.from_cartesian:
            read[var] = derived[var].astype(np.float32)
    if plan.derive_e:
        read["e"] = derive_energy(read["pt"], read["eta"], read["m"])
    jets = {var: np.ascontiguousarray(read[var], dtype="<f4") for var in variables}
    return Chunk(file_index=file_index, entry=entry, event_number=event_number, n_jets=counts.astype("<u4"),
                 jets=jets, dropped_jets=dropped)


def _drop_zero_pt(counts: np.ndarray, read: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """Leave out the jets with pt = 0 from every column and from the per-event counts."""
    keep = kinematics.transverse_momentum(read["px"], read["py"]) > 0
    if keep.all():
        return counts, read, 0
    event_of_jet = np.repeat(np.arange(len(counts)), counts)
    counts = counts - np.bincount(event_of_jet[~keep], minlength=len(counts))
    return counts, {var: values[keep] for var, values in read.items()}, int((~keep).sum())
