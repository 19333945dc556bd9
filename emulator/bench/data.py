"""The jets every benchmark stage uses: read once from a real ROOT sample, then cut into batches and messages.

In-process runs, PyTorch, the service feeder and the pipeline all see the same events, so their
ratios compare like with like.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np

from emulator.runtime import wire
from models.runtime.data import load_file


@dataclass
class JetSample:
    """Events of a sample: per-event jet counts and one flat float32 array per jet variable."""

    path: Path
    counts: np.ndarray
    columns: dict[str, np.ndarray]
    event_number: np.ndarray

    @property
    def n_events(self) -> int:
        return int(self.counts.size)

    @property
    def n_jets(self) -> int:
        return int(self.counts.sum())

    @property
    def jets_per_event(self) -> float:
        return self.n_jets / max(1, self.n_events)

    def matrix(self, variables: list[str]) -> np.ndarray:
        """[n_jets, n_vars] float32 in the model's variable order."""
        return np.ascontiguousarray(np.stack([self.columns[v] for v in variables], axis=1), dtype=np.float32)


def load_sample(path: str | Path, variables: list[str], max_events: int | None = None,
                tree: str = "events") -> JetSample:
    """Read ``jet_<var>`` for ``variables`` (and the jet counts) from a ROOT file of the input contract."""
    import uproot


    values, counts = load_file(path, variables, tree, max_events)
    with uproot.open(path) as f:
        event_number = f[tree]["event_number"].array(entry_stop=max_events, library="np").astype(np.uint64)
    columns = {v: np.ascontiguousarray(values[:, i]) for i, v in enumerate(variables)}
    return JetSample(Path(path), counts.astype(np.uint32), columns, event_number)


def jet_variables(path: str | Path, tree: str = "events") -> list[str]:
    """The per-jet variables of an input file of the input contract (its ``jet_<var>`` branches), in file order:
    what a producer sends by default."""
    import uproot

    with uproot.open(path) as f:
        return [name[len("jet_"):] for name in f[tree].keys(filter_name="jet_*")]


def batches(x: np.ndarray, size: int, count: int) -> list[np.ndarray]:
    """``count`` consecutive batches of ``size`` rows from ``x``, wrapping around (tiled if x is short)."""
    if x.shape[0] < size:
        x = np.concatenate([x] * (size // x.shape[0] + 1))
    out, start = [], 0
    for _ in range(count):
        if start + size > x.shape[0]:
            start = 0
        out.append(x[start:start + size])
        start += size
    return out


@dataclass
class Message:
    """One pre-encoded events message: its header dict (re-packed per send) and its data frames."""

    header: dict
    frames: list
    n_events: int
    n_jets: int


def event_messages(sample: JetSample, variables: list[str], events_per_message: int, max_messages: int,
                   run_id: int = 0xBE4C) -> list[Message]:
    """Cut the sample into events messages of the wire format (identity columns, jet variables; the header names a
    bench manifest)."""
    manifest_sha256 = wire.sha256_hex(wire.canonical_json({"bench": True, "input": str(sample.path),
                                                           "columns": variables}))
    offsets = np.concatenate([[0], np.cumsum(sample.counts, dtype=np.int64)])
    out: list[Message] = []
    first = 0
    while len(out) < max_messages:
        if first + events_per_message > sample.n_events:
            if first == 0:
                raise ValueError("sample has fewer events than one message")
            first = 0
        ev = slice(first, first + events_per_message)
        j0, j1 = offsets[first], offsets[first + events_per_message]
        cols = {
            "n_jets": sample.counts[ev],
            "event_id": np.arange(first, first + events_per_message, dtype=np.uint64),
            "file_index": np.zeros(events_per_message, np.uint32),
            "entry": np.arange(first, first + events_per_message, dtype=np.uint64),
            "event_number": sample.event_number[ev],
            **{wire.jet_column(v): sample.columns[v][j0:j1] for v in variables},
        }
        frames = wire.encode(wire.KIND_EVENTS, run_id, 0, cols, t_send=0.0, rate_hz=0.0,
                             manifest_sha256=manifest_sha256)
        header = msgpack.unpackb(frames[0])
        out.append(Message(header, [bytes(f) for f in frames[1:]], events_per_message, int(j1 - j0)))
        first += events_per_message
    return out


def frames_for(message: Message, seq: int, t_send: float | None = None) -> list:
    """The frames of ``message`` with a fresh seq and send time."""
    header = dict(message.header, seq=seq, t_send=time.time() if t_send is None else t_send)
    return [msgpack.packb(header), *message.frames]
