"""Join recorded events to the input ntuple entries they came from, by (file_index, entry).

The run manifest lists the producer's input files in order; ``file_index`` indexes that list and
``entry`` is the TTree entry in that file. ``event_number`` is never used as a key: it repeats
across files, loops and generator jobs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from models.runtime.hashing import sha256_file


class JoinError(RuntimeError):
    """An input file named in the manifest is missing, changed, or lacks an entry."""


@dataclass(frozen=True)
class InputFile:
    """One input file of a run: where it was and its sha256 when the producer read it."""

    path: str
    sha256: str | None
    layout: Mapping[str, object] | None = None  # the tree and branch_map the producer read it with, when recorded


def manifest_inputs(manifest: Mapping[str, object]) -> list[InputFile]:
    """Input files of a run manifest, in file_index order.

    Accepts ``files`` (or ``inputs``) as a list of paths or of dicts with ``path`` (or ``name``)
    and optional ``sha256`` and ``layout`` (producer.manifest.file_layout).
    """
    items = manifest.get("files", manifest.get("inputs"))
    if not isinstance(items, list):
        raise JoinError("the run manifest has no 'files' list: cannot join to the inputs")
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(InputFile(item, None))
        elif isinstance(item, Mapping):
            path = item.get("path") or item.get("name") or item.get("file")
            if not isinstance(path, str):
                raise JoinError(f"manifest file entry without a path: {item!r}")
            sha, layout = item.get("sha256"), item.get("layout")
            out.append(InputFile(path, sha if isinstance(sha, str) else None,
                                 layout if isinstance(layout, Mapping) else None))
        else:
            raise JoinError(f"manifest file entry of unexpected type: {item!r}")
    return out


def manifest_read_options(manifest: Mapping[str, object]) -> dict[str, object]:
    """tree / branch_map / unit the producer used, when the manifest records them (else defaults)."""
    settings = manifest.get("settings") if isinstance(manifest.get("settings"), Mapping) else manifest
    assert isinstance(settings, Mapping)
    branch_map = settings.get("branch_map") or {}
    if isinstance(branch_map, list):  # ["pt=AntiKt4.pt", ...]
        branch_map = dict(item.split("=", 1) for item in branch_map)
    options = {"tree": settings.get("tree") or "events", "branch_map": dict(branch_map),
               "unit": settings.get("unit") or "GeV", "derive_e": bool(settings.get("derive_e", False)),
               "input_format": settings.get("input_format")}
    if settings.get("max_jets_per_event"):
        options["max_jets"] = int(settings["max_jets_per_event"])  # type: ignore[call-overload]
    return options


def manifest_reader_spec(manifest: Mapping[str, object]):  # -> producer.reader.ReaderSpec
    """The producer's reading spec of a run (input format, tree, branch map, unit, derive_e, jet cap) from the
    settings its manifest records (producer.inputs.settings_reader_spec); JoinError when they are not valid."""
    from producer.inputs import settings_reader_spec

    settings = manifest.get("settings")
    try:
        return settings_reader_spec(settings if isinstance(settings, Mapping) else {})
    except ValueError as exc:
        raise JoinError(f"run {manifest.get('run_id_hex', '?')}: the manifest's input settings are not valid "
                        f"({exc})") from exc


def resolve_path(path: str, search_dirs: Sequence[str] = ()) -> str:
    """The path as recorded if it exists, else the same relative path or file name under ``search_dirs``."""
    if os.path.exists(path):
        return path
    for d in search_dirs:
        for candidate in (os.path.join(d, path), os.path.join(d, os.path.basename(path))):
            if os.path.exists(candidate):
                return candidate
    raise JoinError(f"input file {path!r} named in the run manifest was not found (searched {list(search_dirs)})")


def read_entries(path: str, entries: np.ndarray, variables: Sequence[str], tree: str = "events",
                 branch_map: Mapping[str, str] | None = None, unit: str = "GeV", derive_e: bool = False,
                 input_format: str | None = None, max_jets: int | None = None) -> ak.Array:
    """Per-jet ``variables`` (GeV) of the given entries of one file, in the order of ``entries``.

    Reads with the producer's reader (same tree or the input format's other layouts, branch-map, unit,
    E derivation and input screen), chunk by chunk, keeping only the wanted entries.
    """
    from producer.formats import layouts
    from producer.reader import DEFAULT_MAX_JETS, ReaderError, ReaderSpec, read_chunks

    entries = np.asarray(entries, dtype=np.int64)
    branch_map = dict(branch_map or {})
    spec = ReaderSpec(tree=tree, branch_map=branch_map, unit=unit, columns=list(variables), derive_e=derive_e,
                      input_format=input_format, layouts=layouts(input_format, tree, branch_map),
                      max_jets=max_jets or DEFAULT_MAX_JETS)
    wanted = np.unique(entries)
    counts_parts, entry_parts = [], []
    values_parts: dict[str, list[np.ndarray]] = {v: [] for v in variables}
    try:
        for chunk in read_chunks([Path(path)], spec, list(variables)):
            chunk_entries = chunk.entry.astype(np.int64)
            if len(chunk) == 0:
                continue
            lo, hi = int(chunk_entries[0]), int(chunk_entries[-1])
            sel = wanted[(wanted >= lo) & (wanted <= hi)]
            if sel.size == 0:
                continue
            rows = sel - lo
            offsets = np.concatenate([[0], np.cumsum(chunk.n_jets.astype(np.int64))])
            jet_idx = np.concatenate([np.arange(offsets[r], offsets[r + 1]) for r in rows])
            counts_parts.append(chunk.n_jets[rows].astype(np.int64))
            entry_parts.append(sel)
            for v in variables:
                values_parts[v].append(chunk.jets[v][jet_idx])
    except ReaderError as exc:
        raise JoinError(str(exc)) from exc
    found = np.concatenate(entry_parts) if entry_parts else np.zeros(0, np.int64)
    if found.size != wanted.size:
        missing = np.setdiff1d(wanted, found)[:5]
        raise JoinError(f"{path}: entries {missing.tolist()} not in tree {tree!r}")
    counts = np.concatenate(counts_parts) if counts_parts else np.zeros(0, np.int64)
    table = ak.Array({v: ak.unflatten(np.concatenate(values_parts[v]) if values_parts[v]
                                      else np.zeros(0, np.float32), counts) for v in variables})
    return table[np.searchsorted(found, entries)]


def join_inputs(file_index: np.ndarray, entry: np.ndarray, manifest: Mapping[str, object],
                variables: Sequence[str], search_dirs: Sequence[str] = (), verify_sha256: bool = True) -> ak.Array:
    """Input jets for each recorded event, aligned with (file_index, entry), as an awkward record array.

    Raises JoinError when a file is missing, its sha256 differs from the manifest (``verify_sha256``),
    or a branch/entry is absent.
    """
    file_index = np.asarray(file_index, dtype=np.int64)
    entry = np.asarray(entry, dtype=np.int64)
    if file_index.shape != entry.shape:
        raise ValueError("file_index and entry must have the same length")
    files = manifest_inputs(manifest)
    options = manifest_read_options(manifest)
    pieces: list[ak.Array] = []
    positions: list[np.ndarray] = []
    for idx in np.unique(file_index):
        if idx < 0 or idx >= len(files):
            raise JoinError(f"file_index {idx} outside the manifest's {len(files)} files")
        info = files[idx]
        path = resolve_path(info.path, search_dirs)
        if verify_sha256 and info.sha256 and sha256_file(path) != info.sha256:
            raise JoinError(f"{path}: sha256 differs from the run manifest (file changed since recording)")
        where = np.nonzero(file_index == idx)[0]
        pieces.append(read_entries(path, entry[where], variables, **options))  # type: ignore[arg-type]
        positions.append(where)
    if not pieces:
        return ak.Array({v: ak.Array([[]])[:0] for v in variables})
    joined = ak.concatenate(pieces)
    order = np.argsort(np.concatenate(positions), kind="stable")
    return joined[order]
