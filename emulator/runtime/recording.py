"""Read API for a recording written by `aetrig sink` (used by verify, decode and report).

A recording directory holds ``segments/<run_id as 16 hex digits>-<NNNNNN>.root``. What a segment holds in
each format (1, 2 and 3: every key, branch and layout key, the optional ``jet_error``, ANS-coded latents, the
compact columns of emulator/runtime/compact_columns.py) is docs/design.md "Recorded stream", in one table;
:func:`read_segment_arrays` gives every format back as the same logical columns. A segment without
``jet_error`` (an event-level model flagged its events) makes ``Recording.jet_error()`` raise a RecordingError
that says so; format 1 segments read ``event_threshold`` as NaN and their ``Segment.scoring_card`` is ``card``.

Typical use::

    rec = open_recording("runs/demo")     # the --out of aetrig run or aetrig sink
    ev = rec.events()            # dict of numpy per-event arrays (run_id, seq, ..., n_jets, n_raw)
    latent = rec.latent()        # [total jets, k] float32, jets in event order
    error = rec.jet_error()      # [total jets] float32 (RecordingError when not recorded: rec.has_jet_error)
    raw = rec.raw_jets()         # {var: flat float32 array over flagged events' jets}
    rec.card, rec.manifests      # model card, {run_id: manifest}
    rec.anomaly_card             # card of the model that scored and flagged the events
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from emulator.runtime import compact_columns as cc
from emulator.runtime.atomic import write_text_atomic
from emulator.runtime.journaled_file import JournalError, journal_path, journal_state, open_replayed
from emulator.runtime.wire import raw_column
from models.runtime import latent_coding as lc
from models.runtime import latent_context as lx

#: The segment layout (written by consumer/sink/segment_writer.py, read here).
FORMAT_VERSION = "aetrig-recording-4"
FORMAT_VERSION_3 = "aetrig-recording-3"
FORMAT_VERSION_2 = "aetrig-recording-2"
FORMAT_VERSION_1 = "aetrig-recording-1"
#: every format readers accept (format 1: no event_threshold branch, no anomaly_card; format 2: every per-event
#: column stored as it is; format 3: the compact columns of emulator/runtime/compact_columns.py; format 4: the same
#: branches, and the layout's entropy model may be a context model, models/runtime/latent_context.py)
READABLE_VERSIONS = (FORMAT_VERSION_1, FORMAT_VERSION_2, FORMAT_VERSION_3, FORMAT_VERSION)
TREE = "events"
#: per-event branches of every format
EVENT_BRANCHES = {"run_id": "<u8", "seq": "<u8", "event_id": "<u8", "file_index": "<u4", "entry": "<u8",
                  "event_number": "<u8", "event_score": "<f4", "flag": "|u1"}
#: per-event threshold the flag was computed with (flag = event_score > event_threshold, float32); format 2
THRESHOLD_BRANCH = "event_threshold"
LATENT_STORAGE = {"float32": "float32", "float16": "float16-as-uint16"}


#: latent codecs of a segment (layout ``latent_codec``; absent means none): ``ans`` stores each commit's
#: symbols rint(latent / delta), ANS-coded with the model's entropy model (models/runtime/latent_coding.py),
#: as the bytes of jagged uint8 ``latent_ans_bytes`` on the commit's first event (empty on the others)
LATENT_CODECS = ("none", "ans")
LATENT_ANS_BRANCH = "latent_ans_bytes"
#: format 4: what ``anomaly_card`` holds when the events were scored by the compression model itself (its card is
#: ``card``; stored once, not twice)
SAME_AS_CARD = {"same_as": "card"}
#: the optional per-jet reconstruction error branch, and the layout key that says whether a segment has it
JET_ERROR = "jet_error"


def layout_has_jet_error(layout: Mapping[str, Any] | None) -> bool:
    """Whether a segment of this layout holds ``jet_error``: its ``jet_error`` key; true when the key is absent
    (layouts written before jet_error was optional)."""
    return bool((layout or {}).get(JET_ERROR, True))


def model_identity(card: dict[str, Any] | None) -> tuple[str, str] | None:
    """What makes two cards the same model in a recording: its name and the sha256 of its files (None: no card)."""
    if not card:
        return None
    return str(card.get("name")), json.dumps(card.get("files", {}), sort_keys=True)


@dataclass(frozen=True)
class Layout:
    """What the per-jet branches of a segment look like; a change of layout starts a new segment."""

    latent_dim: int
    latent_storage: str
    raw_vars: tuple[str, ...]
    latent_codec: str = "none"
    entropy_model: str = ""  # JSON text of the entropy model (latent_codec ans)
    jet_error: bool = True  # whether the segment has the per-jet ``jet_error`` branch
    #: format 3: identity deltas, scores at ``score_bits``, packed raw copies, the event block (compact_columns)
    compact: bool = False
    score_bits: int = cc.FLOAT32_MANTISSA_BITS

    @property
    def event_block(self) -> bool:
        """Whether njet and the score codes are ANS-coded per commit (compact, ANS latents, no per-jet branch)."""
        return (self.compact and self.latent_codec == "ans" and not self.jet_error
                and self.score_bits < cc.FLOAT32_MANTISSA_BITS)

    @property
    def context_coded(self) -> bool:
        """Whether the latents are coded with a context model (format 4)."""
        return self.latent_codec == "ans" and lx.is_context_json(json.loads(self.entropy_model))

    def to_json(self) -> str:
        data: dict[str, Any] = {"latent_dim": self.latent_dim, "latent_storage": self.latent_storage,
                                "raw_vars": list(self.raw_vars), "latent_branches": "jet_latent_<i>",
                                "counters": {"jet": "njet", "raw_jet": "nraw_jet"}, JET_ERROR: self.jet_error}
        if self.compact:
            data.update(score_bits=self.score_bits, identity="deltas (<name>_delta)",
                        raw_copies=f"{cc.RAW_PACKED_BRANCH} (jet-major)",
                        event_block=cc.EVENT_ANS_BRANCH if self.event_block else "none")
        if self.latent_codec != "none":  # a context model is in the segment's card: named, not copied
            model = lx.card_reference(self.entropy_model) if self.context_coded else json.loads(self.entropy_model)
            data.update(latent_codec=self.latent_codec, entropy_model=model, latent_branches=LATENT_ANS_BRANCH,
                        latent_storage="ans")
        return json.dumps(data, sort_keys=True)


def jagged_record(counts: np.ndarray, fields: Mapping[str, np.ndarray]) -> ak.Array:
    """An awkward ``var * {field: dtype}`` array from per-event counts and flat per-jet arrays."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    contents = [ak.contents.NumpyArray(np.ascontiguousarray(v)) for v in fields.values()]
    record = ak.contents.RecordArray(contents, list(fields), length=int(offsets[-1]))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


SEGMENT_DIR = "segments"
#: the index has at least six digits (seven past 999 999): readers sort by the parsed (run, index), not by name
SEGMENT_RE = re.compile(r"^(?P<run>[0-9a-f]{16})-(?P<index>\d{6,})\.root$")


class RecordingError(Exception):
    """A recording directory or segment that cannot be read as one."""


#: how every command's help names a recording argument
RECORDING_HELP = "the recording: the --out directory of aetrig run or aetrig sink (holds segments/)"


def recording_dir(path: str | Path) -> Path:
    """The recording a user names: the directory given as ``--out`` to ``aetrig run`` or ``aetrig sink``,
    which holds ``segments/`` (the ``segments/`` directory itself is accepted too).

    Every reader (verify, decode, evaluate --recording, ``open_recording``) resolves its argument here and
    nowhere else; a path that is not a recording raises RecordingError naming any recordings inside it."""
    p = Path(path)
    if (p / SEGMENT_DIR).is_dir():
        return p
    if p.name == SEGMENT_DIR and p.is_dir():
        return p.parent
    if not p.exists():
        raise RecordingError(f"{p}: no such directory ({RECORDING_HELP})")
    inside = sorted(str(s.parent) for s in p.glob(f"*/{SEGMENT_DIR}") if s.is_dir())
    hint = f"; recordings inside it: {', '.join(inside)}" if inside else ""
    raise RecordingError(f"{p}: not a recording: no {SEGMENT_DIR}/ in it ({RECORDING_HELP}){hint}")


def segment_name(run_id: int, index: int) -> str:
    return f"{run_id:016x}-{index:06d}.root"


def _segment_entries(directory: str | Path) -> list[Path]:
    seg_dir = Path(directory) / SEGMENT_DIR
    if seg_dir.is_symlink() or not seg_dir.is_dir():
        return []
    return [p for p in seg_dir.iterdir() if SEGMENT_RE.match(p.name)]


def _order(path: Path) -> tuple[int, int]:
    match = SEGMENT_RE.match(path.name)
    return int(match["run"], 16), int(match["index"])


def segment_paths(directory: str | Path) -> list[Path]:
    """Segment files of a recording, sorted by run and index (numerically: past index 999 999 too).

    Other files, symlinks and anything but regular files are left out (:func:`foreign_segments` names them):
    no reader follows a link out of the recording, and a ``segments/`` that is itself a link holds nothing."""
    return sorted((p for p in _segment_entries(directory) if p.is_file() and not p.is_symlink()), key=_order)


def foreign_segments(directory: str | Path) -> list[Path]:
    """Entries named like segments that are not regular files of the recording (symlinks, directories...);
    readers skip and report them."""
    seg_dir = Path(directory) / SEGMENT_DIR
    if seg_dir.is_symlink():
        return [seg_dir]
    return sorted((p for p in _segment_entries(directory) if p.is_symlink() or not p.is_file()), key=_order)


def parse_segment_name(path: Path) -> tuple[int, int]:
    match = SEGMENT_RE.match(path.name)
    if not match:
        raise RecordingError(f"{path.name} is not a segment name (<16 hex>-<6 digits>.root)")
    return int(match["run"], 16), int(match["index"])


LOCK_NAME = ".sink.lock"


def lock_recording(directory: str | Path, blocking: bool = False) -> int | None:
    """Take the recording's writer lock (flock on DIR/.sink.lock); the fd to keep, or None if held.

    A running sink holds it for its lifetime, so that no second sink writes the same directory and
    readers never repair a segment that is being written.
    """
    import fcntl

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def unlock_recording(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def pending_journals(directory: str | Path) -> list[Path]:
    """Segments whose last commit journal is still there (a writer running, or killed mid-commit)."""
    return [p for p in segment_paths(directory) if journal_path(p).exists() and journal_path(p).stat().st_size]


def unfinished_commits(directory: str | Path) -> dict[str, str]:
    """What readers report, without writing: {segment name: 'replayed in memory' (a complete journal, overlaid
    on reading) | 'torn journal ignored' | 'refused journal: ...'} for every segment with a journal."""
    states = {}
    for path in pending_journals(directory):
        try:
            state = journal_state(path)
            if state == "complete":
                with open_replayed(path) as replayed:  # checks the journal's offsets
                    if replayed.refused:
                        raise JournalError(replayed.refused)
        except OSError as exc:
            states[path.name] = f"refused journal (ignored): {exc}"
            continue
        states[path.name] = {"complete": "replayed in memory", "torn": "torn journal ignored"}.get(state, state)
    return states


ENTRIES_MARK_SUFFIX = ".entries"


def entries_mark_path(path: Path) -> Path:
    """``<segment>.root.entries``: written only when a write into the segment failed (e.g. ENOSPC);
    it holds the number of leading entries that were durable and acknowledged. Readers stop there."""
    return path.with_name(path.name + ENTRIES_MARK_SUFFIX)


def write_entries_mark(path: Path, n_entries: int) -> None:
    """Durably write the entries mark of a segment (atomically: temporary file, fsync, rename, fsync dir)."""
    write_text_atomic(entries_mark_path(path), f"{int(n_entries)}\n")


def _text(file: Any, key: str) -> str | None:
    if key not in file:
        return None
    value = file[key]
    return str(value)


def _json_or_none(text: str | None) -> Any:
    """A segment's JSON string (card, manifest, layout), tolerating a leading byte-order mark (segments written
    before the wire refused such blobs must stay readable)."""
    return json.loads(text.removeprefix("\ufeff")) if text is not None else None


def _read_entries_mark(path: Path) -> int | None:
    mark = entries_mark_path(path)
    if mark.is_symlink():
        raise RecordingError(f"{mark} is a symlink")
    if not mark.exists():
        return None
    fd = os.open(mark, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as f:
        return int(f.read().strip())


@dataclass
class Segment:
    """Metadata of one segment file."""

    path: Path
    run_id: int
    index: int
    n_entries: int
    format_version: str | None
    card: dict[str, Any] | None
    manifest: dict[str, Any] | None
    layout: dict[str, Any] | None
    branches: list[str] = field(default_factory=list)
    anomaly_card: dict[str, Any] | None = None

    @property
    def latent_dim(self) -> int:
        return int(self.layout["latent_dim"]) if self.layout else 0

    @property
    def scoring_card(self) -> dict[str, Any] | None:
        """The card of the model that scored and flagged the events (format 1: the compression model's)."""
        return self.anomaly_card if self.anomaly_card is not None else self.card

    @property
    def has_jet_error(self) -> bool:
        """Whether the segment holds the per-jet ``jet_error`` branch (by its layout)."""
        return layout_has_jet_error(self.layout)

    def latent_coder(self) -> lx.Coder | None:
        """The coder of the segment's ANS-coded latents (None: stored floats): the layout's entropy model, or
        (format 4) the context model of the segment's card that the layout names by sha256."""
        layout = self.layout or {}
        if layout.get("latent_codec", "none") == "none":
            return None
        try:
            if lx.is_card_reference(layout.get("entropy_model")):
                return lx.resolve_reference(layout["entropy_model"], self.card)
            return lx.coder_from_json(layout["entropy_model"])
        except (lc.LatentCodingError, KeyError, TypeError, ValueError) as exc:
            raise RecordingError(f"{self.path}: {exc}") from exc


def read_segment(path: str | Path) -> Segment:
    """Open a segment and read its metadata; raises RecordingError when it is not readable."""
    path = Path(path)
    run_id, index = parse_segment_name(path)
    try:
        with open_replayed(path) as raw, uproot.open(raw) as file:
            version = _text(file, "format_version")
            card, manifest, layout, anomaly = (_text(file, k) for k in ("card", "manifest", "layout",
                                                                         "anomaly_card"))
            n_entries, branches = 0, []
            if TREE in file:
                tree = file[TREE]
                n_entries, branches = int(tree.num_entries), list(tree.keys())
        mark = _read_entries_mark(path)
        if mark is not None:
            n_entries = min(n_entries, mark)
    except Exception as exc:
        raise RecordingError(f"{path}: not readable: {type(exc).__name__}: {exc}") from exc
    try:
        parsed = [_json_or_none(t) for t in (card, manifest, layout, anomaly)]
    except json.JSONDecodeError as exc:
        raise RecordingError(f"{path}: card/manifest/layout/anomaly_card is not JSON: {exc}") from exc
    if parsed[3] == SAME_AS_CARD and version == FORMAT_VERSION:
        parsed[3] = parsed[0]
    return Segment(path, run_id, index, n_entries, version, *parsed[:3], branches=branches, anomaly_card=parsed[3])


def read_segment_arrays(segment: Segment, branches: Sequence[str] | None = None, entry_start: int = 0,
                        entry_stop: int | None = None, previous: Mapping[str, int] | None = None) -> ak.Array:
    """The ``events`` tree of a segment as an awkward array (all branches, or the ones named).

    A part of it (``entry_start``, ``entry_stop``) must hold whole commits when the segment has ANS blocks,
    and, when it starts past the first event of a format-3 segment, ``previous`` gives the identity columns'
    values on the event before it (see ``compact_columns.expand``)."""
    stop = segment.n_entries if entry_stop is None else min(entry_stop, segment.n_entries)
    if stop <= entry_start:
        return ak.Array([])
    try:
        with open_replayed(segment.path) as raw, uproot.open(raw) as file:
            tree = file[TREE]
            names = None if branches is None else cc.stored_names(list(branches), list(tree.keys()))
            arrays = tree.arrays(names, library="ak", entry_start=entry_start, entry_stop=stop)
        return cc.expand(arrays, segment.layout, None if branches is None else list(branches), previous)
    except Exception as exc:
        raise RecordingError(f"{segment.path}: cannot read arrays: {type(exc).__name__}: {exc}") from exc


def read_seen(segment: Segment) -> tuple[np.ndarray, np.ndarray]:
    """(run_id, seq) per event of a segment: the sink's dedup index source."""
    if segment.n_entries == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    arrays = read_segment_arrays(segment, ["run_id", "seq"])
    return np.asarray(arrays["run_id"]), np.asarray(arrays["seq"])


def segment_jets(segment: Segment) -> int:
    """The number of jets a segment holds (the sum of its ``njet`` counter)."""
    if segment.n_entries == 0:
        return 0
    return int(np.asarray(read_segment_arrays(segment, ["njet"])["njet"]).sum())


def latent_from_arrays(arrays: ak.Array, latent_dim: int, storage: str) -> np.ndarray:
    """[jets, k] float32 latent matrix from the k jagged ``jet_latent_<i>`` branches."""
    columns = [np.asarray(ak.flatten(arrays[f"jet_latent_{i}"], axis=None)) for i in range(latent_dim)]
    if not columns:
        return np.zeros((0, 0), np.float32)
    latent = np.stack(columns, axis=1)
    if storage == "float16-as-uint16":
        latent = latent.view(np.float16)
    return latent.astype(np.float32)


def segment_latent(segment: Segment, arrays: ak.Array) -> np.ndarray:
    """[jets, k] float32 latent of a segment's events: the stored branches, or (latent_codec ans) the decoded
    symbols times the quantisation step, commit block by commit block (format 4: the coder may be a context model,
    which decodes a block given its events' jet counts; :meth:`Segment.latent_coder`)."""
    layout = segment.layout or {}
    coder = segment.latent_coder()
    if coder is None:
        return latent_from_arrays(arrays, segment.latent_dim, layout.get("latent_storage", "float32"))
    model = coder.base
    coded = arrays[LATENT_ANS_BRANCH]
    n_bytes = np.asarray(ak.num(coded, axis=1))
    flat = np.asarray(ak.flatten(coded, axis=None)).astype(np.uint8)
    njet = np.asarray(arrays["njet"]).astype(np.int64)
    starts = np.flatnonzero(n_bytes)
    if njet[:starts[0] if len(starts) else len(njet)].sum():
        raise RecordingError(f"{segment.path}: jets before the first coded latent block")
    bounds, byte_ends = [*starts.tolist(), len(njet)], np.cumsum(n_bytes)
    parts = [np.zeros((0, model.k), np.float32)]
    for a, b in itertools.pairwise(bounds):
        data = flat[byte_ends[a] - n_bytes[a]:byte_ends[a]].tobytes()
        parts.append(lc.dequantise(lx.decode_block(data, njet[a:b], coder), model))
    return np.concatenate(parts)


class Recording:
    """All segments of a recording directory, read lazily and concatenated in (run, index) order."""

    def __init__(self, directory: str | Path):
        self.directory = recording_dir(directory)
        self.unfinished = unfinished_commits(self.directory)  # reported, never applied in place
        self.skipped = [p.name for p in foreign_segments(self.directory)]  # symlinks: never followed
        paths = segment_paths(self.directory)
        if not paths:
            raise RecordingError(f"{self.directory}: no segments under {SEGMENT_DIR}/")
        self.segments = [read_segment(p) for p in paths]
        for seg in self.segments:
            if seg.format_version not in READABLE_VERSIONS:
                raise RecordingError(f"{seg.path}: format_version {seg.format_version!r}, expected one of "
                                     f"{READABLE_VERSIONS}")
        self.card: dict[str, Any] | None = next((s.card for s in self.segments if s.card), None)
        self.anomaly_card: dict[str, Any] | None = next((s.scoring_card for s in self.segments if s.scoring_card),
                                                        None)
        self.manifests: dict[int, dict[str, Any]] = {}
        for seg in self.segments:
            if seg.manifest is not None:
                self.manifests.setdefault(seg.run_id, seg.manifest)

    def __len__(self) -> int:
        return sum(s.n_entries for s in self.segments)

    @property
    def latent_dim(self) -> int:
        return max((s.latent_dim for s in self.segments), default=0)

    @property
    def raw_vars(self) -> list[str]:
        names: list[str] = []
        for seg in self.segments:
            for var in (seg.layout or {}).get("raw_vars", []):
                if var not in names:
                    names.append(var)
        return names

    def iter_arrays(self, branches: Sequence[str] | None = None) -> Iterator[tuple[Segment, ak.Array]]:
        """(segment, its events as awkward array) for each non-empty segment."""
        for seg in self.segments:
            if seg.n_entries:
                yield seg, read_segment_arrays(seg, branches)

    @cached_property
    def _all(self) -> list[tuple[Segment, ak.Array]]:
        return list(self.iter_arrays())

    def events(self) -> dict[str, np.ndarray]:
        """Per-event numpy columns over all segments, plus ``n_jets`` and ``n_raw`` counts and
        ``event_threshold`` (NaN for format-1 segments)."""
        out: dict[str, list[np.ndarray]] = {name: [] for name in [*EVENT_BRANCHES, THRESHOLD_BRANCH, "n_jets",
                                                                  "n_raw"]}
        for _, arrays in self._all:
            for name in EVENT_BRANCHES:
                out[name].append(np.asarray(arrays[name]))
            out[THRESHOLD_BRANCH].append(np.asarray(arrays[THRESHOLD_BRANCH]) if THRESHOLD_BRANCH in arrays.fields
                                         else np.full(len(arrays), np.nan, np.float32))
            out["n_jets"].append(np.asarray(arrays["njet"]).astype(np.int64))
            n_raw = arrays["nraw_jet"] if "nraw_jet" in arrays.fields else np.zeros(len(arrays), np.int64)
            out["n_raw"].append(np.asarray(n_raw).astype(np.int64))
        dtypes = {**EVENT_BRANCHES, THRESHOLD_BRANCH: "<f4"}
        return {name: (np.concatenate(parts) if parts else np.zeros(0, np.dtype(dtypes.get(name, "<i8"))))
                for name, parts in out.items()}

    def latent(self) -> np.ndarray:
        """[total jets, k] float32 latent, jets in event order."""
        parts = [segment_latent(s, a) for s, a in self._all]
        return np.concatenate(parts) if parts else np.zeros((0, self.latent_dim), np.float32)

    @property
    def has_jet_error(self) -> bool:
        """Whether every segment holds ``jet_error`` (false when any was recorded without it)."""
        return all(s.has_jet_error for s in self.segments)

    def jet_error(self) -> np.ndarray:
        """[total jets] float32 per-jet reconstruction error; RecordingError when (some of) it was not recorded."""
        lacking = [s.path.name for s in self.segments if not s.has_jet_error]
        if lacking:
            raise RecordingError(f"{self.directory}: {len(lacking)} of {len(self.segments)} segment(s) (first "
                                 f"{lacking[0]}) hold no jet_error: their events were flagged by an event-level "
                                 "model and the encoders ran --jet-errors auto (use --jet-errors always to record it)")
        parts = [np.asarray(ak.flatten(a[JET_ERROR], axis=None)) for _, a in self._all]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def raw_jets(self) -> dict[str, np.ndarray]:
        """Raw per-jet columns of the flagged events: {var: flat float32 array}."""
        out: dict[str, list[np.ndarray]] = {var: [] for var in self.raw_vars}
        for _, arrays in self._all:
            for var in out:
                name = raw_column(var)
                if name in arrays.fields:
                    out[var].append(np.asarray(ak.flatten(arrays[name], axis=None)))
        return {var: (np.concatenate(p) if p else np.zeros(0, np.float32)) for var, p in out.items()}


def open_recording(directory: str | Path) -> Recording:
    """Open a recording directory (raises RecordingError with a clear message)."""
    return Recording(directory)
