"""A recording's events as a dask-awkward collection: partitions along segments, or along commits inside them,
read by ``uproot.dask`` and decoded on the workers with the same code as the in-process API
(``consumer.offline.decode.segment_branches``).

By default each segment is one partition; with ``step`` each segment is cut, as :meth:`Run.iterate` cuts it,
into commit-aligned parts of about ``step`` events (``consumer.analysis.chunks.plan``). Each partition reads its
stored branches with ``uproot.dask`` (explicit entry ranges, never past a segment's entries mark) and maps
:class:`DecodeSegment` over them: the compact columns are expanded (``compact_columns.expand``, from the identity
values on the event before the part, found once on the client by reading the identity columns alone), the ANS
blocks decoded and the latents run through the decoder, which each worker process loads once and checks
against the recorded sha256 (a worker that sees another file than the client refuses it). The workers need the
recording and the model at the same paths as the client (a shared file system).

Example::

    from dask.distributed import Client
    client = Client(n_workers=2)              # or Client("tcp://scheduler:8786"), or a dask-jobqueue cluster
    lazy = open_run("runs/demo").dask(step=500_000)
    pt = dak.flatten(lazy.jet.pt[lazy.flag == 1]).compute()
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from consumer.analysis.chunks import Part, identities_before, plan, read_parts
from consumer.offline.decode import DECODER, Decoder, check_decoder
from emulator.runtime import compact_columns as cc
from emulator.runtime.recording import TREE, Segment

#: decoders loaded in this process, by model directory (a worker loads each once)
_DECODERS: dict[tuple[str, str, bool], Any] = {}


def worker_decoder(model_path: str | None, recorded_sha256: str, force: bool) -> Any:
    """The decoder of ``model_path`` for this process, checked once against the recorded sha256 (latents only
    when ``model_path`` is None).

    Example: ``worker_decoder("models/zoo/RD_AE_g23", run.card["files"]["decoder.onnx"], False)``."""
    from consumer.analysis.run import LatentsOnly

    if model_path is None:
        return LatentsOnly()
    key = (model_path, recorded_sha256, force)
    if key not in _DECODERS:
        check_decoder(Path(model_path), {"files": {DECODER: recorded_sha256}}, force)
        _DECODERS[key] = Decoder(Path(model_path) / DECODER)
    return _DECODERS[key]


@dataclass(frozen=True)
class DecodeSegment:
    """Maps the stored branches of one segment's partitions (``uproot.dask``), with the identity values on the
    event before each (a one-record partition of :func:`identity_partitions`), to their decoded events.

    Example: ``dak.map_partitions(DecodeSegment(seg, ...), uproot.dask(...), identity_partitions([{}]))``."""

    segment: Segment
    model_path: str | None
    recorded_sha256: str
    force: bool
    variables: tuple[str, ...]
    raw_vars: tuple[str, ...]
    with_error: bool
    form: str  # JSON of the decoded events' awkward form (for the typetracer pass of dask-awkward)

    def empty(self) -> ak.Array:
        """A typetracer of the decoded events' type (what dask-awkward asks for when it plans the graph).

        Example: ``mapper.empty().fields`` -> ``['run_id', ..., 'jet', 'raw_jet']``."""
        form = ak.forms.from_json(self.form)
        return ak.Array(form.length_zero_array().to_typetracer(forget_length=True))

    def __call__(self, stored: ak.Array, before: ak.Array) -> ak.Array:
        from consumer.analysis.run import events_array
        from consumer.offline.decode import segment_branches

        if ak.backend(stored) == "typetracer":
            ak.typetracer.touch_data(stored)  # every stored branch is read: decoding needs them all
            ak.typetracer.touch_data(before)
            return self.empty()
        previous = {name: int(before[name][0]) for name in before.fields}
        arrays = cc.expand(stored, self.segment.layout, None, previous)
        decoder = worker_decoder(self.model_path, self.recorded_sha256, self.force)
        return events_array(segment_branches(self.segment, arrays, decoder, list(self.variables),
                                             list(self.raw_vars), self.with_error))


class IdentityRecord:
    """One partition of :func:`identity_partitions`: the identity values before a part as a one-record Array.

    Example: ``IdentityRecord()({"seq": 9}).seq`` -> ``[9]``."""

    def __call__(self, before: dict[str, int]) -> ak.Array:
        return ak.zip({name: np.array([before.get(name, 0)], np.uint64) for name in cc.DELTA_COLUMNS},
                      depth_limit=1)


def identity_partitions(before: list[dict[str, int]]) -> Any:  # -> dask_awkward.Array
    """A dask-awkward Array with one one-record partition per part: the identity values before it.

    Example: ``identity_partitions([{}, {"seq": 9}]).npartitions`` -> ``2``."""
    import dask_awkward as dak

    return dak.from_map(IdentityRecord(), before, label="identity-before")


def dask_events(run, step: int | None = None) -> Any:  # -> dask_awkward.Array
    """The events of a :class:`~consumer.analysis.run.Run` as a dask-awkward Array, equal to ``run.events()``
    once computed: one partition per non-empty segment, or with ``step`` one per commit-aligned part of about
    ``step`` events (as :meth:`Run.iterate` reads them).

    Example: ``dask_events(open_run("runs/demo")).npartitions`` -> the number of segments."""
    import dask_awkward as dak
    import uproot

    from consumer.analysis.run import AnalysisError

    rec = run.recording
    if rec.unfinished:
        raise AnalysisError(f"{run.directory}: segments with an unfinished commit ({', '.join(rec.unfinished)}): "
                            "uproot.dask reads the files as they are on disk; read it with run.events() or after "
                            "the sink has stopped and recovered them")
    segments = [s for s in rec.segments if s.n_entries]
    if not segments:
        raise AnalysisError(f"{run.directory}: no events to partition")
    parts = [Part(s, 0, s.n_entries) for s in segments] if step is None else plan(segments, step)
    before = [{} for _ in parts] if step is None else identities_before(parts)
    first = next(read_parts(plan(segments[:1], 1)))
    form = run.decode_part(first[0].segment, first[1]).layout.form.to_json()
    recorded = str(run.card.get("files", {}).get(DECODER, ""))
    model = None if run.model_path is None else str(run.model_path)
    by_segment: dict[int, list[int]] = {}  # parts in order, grouped by segment once
    for i, p in enumerate(parts):
        by_segment.setdefault(id(p.segment), []).append(i)
    collections = []
    for seg in segments:
        mine = by_segment[id(seg)]
        steps = [[parts[i].start, parts[i].stop] for i in mine]
        stored = uproot.dask({str(seg.path): {"object_path": TREE, "steps": steps}}, library="ak")
        mapper = DecodeSegment(seg, model, recorded, run.force, tuple(run.variables), tuple(run.recording.raw_vars),
                               run.with_error, form)
        collections.append(dak.map_partitions(mapper, stored, identity_partitions([before[i] for i in mine]),
                                              meta=mapper.empty(), label=f"decode-{seg.path.name}"))
    return collections[0] if len(collections) == 1 else dak.concatenate(collections)
