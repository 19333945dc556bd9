"""Chunked reading of jet ntuples with uproot: one or many files, never a whole file in memory.

Each chunk comes out as flat numpy columns ready for the wire: per-event jet counts, entry
numbers and event numbers, and one float32 array per per-jet variable (GeV). Branch names come
from a mapping VAR=BRANCH (default ``jet_<var>``, and ``event_number`` for the event number).
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

#: Variables that carry energy units (energies, momenta, masses); only these are scaled MeV -> GeV.
ENERGY_VARIABLES = frozenset({"pt", "m", "e", "et", "px", "py", "pz"})
MEV_TO_GEV = 1e-3
JET_PREFIX = "jet_"
EVENT_NUMBER = "event_number"


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
        trees = [k.split(";")[0] for k, c in f.classnames().items() if c == "TTree"]
        raise ReaderError(f"{path}: no tree {spec.tree!r} (trees in file: {trees}); use --tree")
    return f[spec.tree]


def resolve_variables(path: Path, spec: ReaderSpec) -> list[str]:
    """The per-jet variables to send, in order, checked against the file's branches.

    Raises ReaderError naming the first missing branch and the file.
    """
    tree = _open_tree(path, spec)
    keys = tree.keys()
    names = set(keys)
    if spec.columns is not None:
        variables = list(spec.columns)
    else:
        mapped = [v for v in spec.branch_map if v != EVENT_NUMBER]
        found = [k[len(JET_PREFIX):] for k in keys if k.startswith(JET_PREFIX)]
        variables = mapped + [v for v in found if v not in mapped and spec.branch(v) in names]
        if spec.derive_e and "e" not in variables:
            variables.append("e")
    if not variables:
        raise ReaderError(f"{path}: tree {spec.tree!r} has no jet_* branches; give --columns and --branch-map")
    derive = needs_derived_e(variables, names, spec)
    required = [EVENT_NUMBER] + [v for v in variables if not (v == "e" and derive)]
    if derive:
        required += [v for v in ("pt", "eta", "m") if v not in required]
    for var in required:
        if spec.branch(var) not in names:
            hint = "" if var == EVENT_NUMBER else " (or --derive-e for e)" if var == "e" else ""
            raise ReaderError(f"{path}: tree {spec.tree!r} has no branch {spec.branch(var)!r} for variable "
                              f"{var!r}; map it with --branch-map {var}=BRANCH{hint}")
    return variables


def needs_derived_e(variables: Sequence[str], branch_names: set[str], spec: ReaderSpec) -> bool:
    """Whether e must be computed: it is requested and either --derive-e is set or its branch is absent."""
    return "e" in variables and (spec.derive_e or spec.branch("e") not in branch_names)


def derive_energy(pt: np.ndarray, eta: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E = sqrt(m^2 + (pt cosh eta)^2), computed in float64, returned as float32."""
    p = pt.astype(np.float64) * np.cosh(eta.astype(np.float64))
    return np.sqrt(np.square(m.astype(np.float64)) + np.square(p)).astype(np.float32)


def _flat(array: ak.Array, branch: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Counts and flat values of a jagged branch."""
    try:
        counts = ak.to_numpy(ak.num(array, axis=1))
        values = ak.to_numpy(ak.flatten(array, axis=1))
    except Exception as exc:
        raise ReaderError(f"{path}: branch {branch!r} is not a jagged per-jet array ({exc})") from exc
    return counts, values


def read_chunks(files: Sequence[Path], spec: ReaderSpec, variables: Sequence[str],
                file_offset: int = 0) -> Iterator[Chunk]:
    """Yield the events of ``files`` in order as chunks of at most ``spec.step_size`` events.

    ``file_index`` counts from ``file_offset`` in the order of ``files``.
    """
    for i, path in enumerate(files):
        tree = _open_tree(path, spec)
        names = set(tree.keys())
        derive = needs_derived_e(variables, names, spec)
        read_vars = [v for v in variables if not (v == "e" and derive)]
        if derive:
            read_vars += [v for v in ("pt", "eta", "m") if v not in read_vars]
        for var in [EVENT_NUMBER, *read_vars]:
            if spec.branch(var) not in names:
                raise ReaderError(f"{path}: tree {spec.tree!r} has no branch {spec.branch(var)!r} for variable "
                                  f"{var!r}; map it with --branch-map {var}=BRANCH")
        branches = {var: spec.branch(var) for var in [EVENT_NUMBER, *read_vars]}
        for arrays, report in tree.iterate(sorted(set(branches.values())), step_size=spec.step_size,
                                           library="ak", report=True):
            yield _to_chunk(arrays, report.tree_entry_start, branches, variables, derive, spec, path,
                            file_offset + i)


def _to_chunk(arrays: ak.Array, start: int, branches: Mapping[str, str], variables: Sequence[str],
              derive: bool, spec: ReaderSpec, path: Path, file_index: int) -> Chunk:
    n = len(arrays)
    event_number = ak.to_numpy(arrays[branches[EVENT_NUMBER]]).astype("<u8")
    counts: np.ndarray | None = None
    read: dict[str, np.ndarray] = {}
    for var, branch in branches.items():
        if var == EVENT_NUMBER:
            continue
        c, values = _flat(arrays[branch], branch, path)
        if counts is None:
            counts = c
        elif not np.array_equal(c, counts):
            raise ReaderError(f"{path}: branch {branch!r} has different jet counts than "
                              f"{branches[next(iter(read))]!r} at entries {start}..{start + n}")
        values = values.astype(np.float32, copy=False)
        if spec.unit == "MeV" and var in ENERGY_VARIABLES:
            values = values * np.float32(MEV_TO_GEV)
        read[var] = values
    if derive:
        read["e"] = derive_energy(read["pt"], read["eta"], read["m"])
    jets = {var: np.ascontiguousarray(read[var], dtype="<f4") for var in variables}
    return Chunk(file_index=file_index, entry=np.arange(start, start + n, dtype="<u8"),
                 event_number=event_number, n_jets=(counts if counts is not None else np.zeros(n)).astype("<u4"),
                 jets=jets)
