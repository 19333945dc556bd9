"""A recording opened for analysis: its events as awkward Arrays, decoded with the recorded model's decoder.

Built on the recording reader (``emulator.runtime.recording``) and on `aetrig decode`'s pieces
(``consumer.offline.decode``: the decoder found by the card's name in the zoo or in a given directory, refused
when its sha256 is not the recorded one, and the per-segment columns of decoded.root), so an event here holds
exactly what decoded.root holds for it:

* per event ``run_id seq event_id file_index entry event_number event_score flag event_threshold``;
* ``jet``: per jet the decoded variables of the model card (GeV), ``error`` when every segment recorded it,
  and the latents ``latent_0..latent_{k-1}``;
* ``raw_jet``: the raw input columns of flagged events, bit for bit (empty for the others).

Example::

    run = open_run("runs/demo")
    events = run.events()
    print(events.jet.pt[events.flag == 1])
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from consumer.analysis.chunks import plan, read_parts
from consumer.offline.decode import DecodeError, Decoder, jet_error_written, open_decoder, segment_branches
from emulator.runtime.recording import Recording, RecordingError, open_recording

#: events per part of :meth:`Run.iterate` unless told (a few tens of MB at four jets per event)
DEFAULT_STEP = 200_000
SUMMARY = "summary.json"


class AnalysisError(RuntimeError):
    """A recording that cannot be analysed as asked (not a recording, no card, decoder mismatch...).

    Example::

        try:
            run = open_run("runs/demo", model="my_models/retrained")
        except AnalysisError as exc:
            print(exc)  # e.g. the decoder's sha256 differs from the recorded one"""


class LatentsOnly:
    """Stands in for the decoder when a run is opened with ``decode=False``: no decoded variables.

    Example: ``LatentsOnly()(np.zeros((5, 3), np.float32)).shape`` -> ``(5, 0)``."""

    n_outputs = 0

    def __call__(self, latent: np.ndarray) -> np.ndarray:
        return np.zeros((len(latent), 0), np.float32)


def events_array(branches: Mapping[str, Any]) -> ak.Array:
    """The decoded.root branches of ``consumer.offline.decode.segment_branches`` as one awkward Array of events.

    Example: ``events_array(segment_branches(seg, arrays, decoder, ["pt"], [], False)).fields``."""
    return ak.zip(dict(branches), depth_limit=1)


class Run:
    """One recording (the ``--out`` of `aetrig run` or `aetrig sink`), opened by :func:`open_run`.

    Example: ``len(open_run("runs/demo"))`` -> the number of recorded events."""

    def __init__(self, directory: str | Path, model: str | Path | None = None, force: bool = False,
                 decode: bool = True, threads: int = 1):
        try:
            self.recording: Recording = open_recording(directory)
        except RecordingError as exc:
            raise AnalysisError(str(exc)) from exc
        if not self.recording.card:
            raise AnalysisError(f"{directory}: the recording carries no model card")
        self.directory = self.recording.directory
        self.decoded = decode
        self.force = force
        self.model_path: Path | None = None
        self.decoder: Decoder | LatentsOnly = LatentsOnly()
        if decode:
            try:
                self.model_path, _, _, self.decoder = open_decoder(self.card, self.recording.latent_dim, model,
                                                                   force, threads)
            except DecodeError as exc:
                raise AnalysisError(str(exc)) from exc
        self.with_error = jet_error_written(self.recording)

    def __len__(self) -> int:
        return len(self.recording)

    def __repr__(self) -> str:
        return (f"Run({str(self.directory)!r}: {len(self)} events in {len(self.recording.segments)} segment(s), "
                f"model {self.card.get('name')!r}, scored by {(self.anomaly_card or {}).get('name')!r})")

    @property
    def card(self) -> dict[str, Any]:
        """The card of the compression model whose latents the recording holds.

        Example: ``open_run("runs/demo").card["name"]`` -> ``'RD_AE_g23'``."""
        return self.recording.card or {}

    @property
    def anomaly_card(self) -> dict[str, Any] | None:
        """The card of the model that scored and flagged the events.

        Example: ``open_run("runs/demo").anomaly_card["name"]`` -> ``'EVT_AE_ht'``."""
        return self.recording.anomaly_card

    @property
    def variables(self) -> list[str]:
        """The decoded per-jet variables (empty with ``decode=False``).

        Example: ``open_run("runs/demo").variables`` -> ``['pt', 'eta', 'phi', 'e']``."""
        return [str(v["name"]) for v in self.card.get("variables", [])] if self.decoded else []

    @property
    def manifests(self) -> dict[int, dict[str, Any]]:
        """{run id: run manifest} as recorded in the segments (input files with sha256, producer settings).

        Example: ``[f["name"] for f in open_run("runs/demo").manifests[run_id]["files"]]``."""
        return self.recording.manifests

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest of the recording's first run (see :attr:`manifests` for all).

        Example: ``open_run("runs/demo").manifest["settings"]["rate"]`` -> ``50000.0``."""
        return next(iter(self.manifests.values()), {})

    @cached_property
    def summary(self) -> dict[str, Any] | None:
        """``summary.json`` of `aetrig run` (events, latency, anomaly, recording bytes...); None for a recording
        made by `aetrig sink` alone.

        Example: ``open_run("runs/demo").summary["events"]["flagged"]``."""
        path = self.directory / SUMMARY
        return json.loads(path.read_text()) if path.is_file() else None

    def iterate(self, step: int = DEFAULT_STEP) -> Iterator[ak.Array]:
        """The events in parts of about ``step`` events each, in recording order, with bounded memory: one part
        is read and decoded at a time. Parts hold whole sink commits (ANS-coded latents are stored per commit),
        so a part may be longer than ``step`` by up to one commit, and never spans two segments.

        Example::

            for events in run.iterate(step=50_000):
                n_flagged += int(ak.sum(events.flag))"""
        for part, arrays in read_parts(plan(self.recording.segments, step)):
            yield self.decode_part(part.segment, arrays)

    def decode_part(self, segment: Any, arrays: ak.Array) -> ak.Array:
        """Events of a segment (or of whole commits of it) as the reader gives them, decoded.

        Example: ``run.decode_part(seg, read_segment_arrays(seg))``."""
        return events_array(segment_branches(segment, arrays, self.decoder, self.variables,
                                             self.recording.raw_vars, self.with_error))

    def events(self, step: int = DEFAULT_STEP) -> ak.Array:
        """Every event of the recording in one awkward Array (read part by part with :meth:`iterate`).

        Example: ``ak.flatten(open_run("runs/demo").events().jet.pt)``."""
        parts = list(self.iterate(step))
        return ak.concatenate(parts) if parts else ak.Array([])

    def dask(self, step: int | None = None):  # -> dask_awkward.Array
        """The events as a lazy dask-awkward collection read by ``uproot.dask`` and decoded partition by
        partition on the workers: one partition per segment, or with ``step`` one per commit-aligned part of about
        ``step`` events, as :meth:`iterate` reads them (see :mod:`consumer.analysis.dask_events`).

        Example::

            from dask.distributed import Client
            client = Client("tcp://scheduler:8786")
            n_flagged = dask_awkward.sum(run.dask(step=500_000).flag).compute()"""
        from consumer.analysis.dask_events import dask_events

        return dask_events(self, step)

    def evaluate(self, signals: Mapping[str, str | Sequence[str]], **options: Any) -> dict[str, Any]:
        """The recorded scores against HT and leading-jet-pT triggers at equal rate, as `aetrig evaluate
        --recording` does; the input jets are read from the files the run manifests name (see
        :func:`consumer.analysis.equal_rate.evaluate_run` for ``signals`` and ``options``).

        Example::

            results = run.evaluate({"zprime": "zprime.root"})
            print(consumer.offline.evaluate.render(results))"""
        from consumer.analysis.equal_rate import evaluate_run

        return evaluate_run(self, signals, **options)

    def recording_bytes(self, lossless_events: int = 0) -> dict[str, Any]:
        """The recording's bytes on disk per event and per jet by category (latents, identity, scores and
        flags, raw copies, cards, ROOT overhead), and with ``lossless_events`` > 0 the ratio to the best
        lossless codec on the same jets (``consumer.offline.recording_bytes.byte_report``).

        Example: ``open_run("runs/demo").recording_bytes()["per_jet"]["total"]`` -> ``3.3``."""
        from consumer.offline.recording_bytes import byte_report

        return byte_report(self.directory, max_events=lossless_events or None, with_reference=lossless_events > 0)


def open_run(directory: str | Path, model: str | Path | None = None, force: bool = False, decode: bool = True,
             threads: int = 1) -> Run:
    """Open a recording for analysis: the ``--out`` directory of `aetrig run` or `aetrig sink`.

    The decoder is the recorded card's model under ``models/zoo`` or ``model`` (a model directory), refused
    when its sha256 differs from the recorded one unless ``force``; ``decode=False`` gives latents only (no
    decoder needed). Raises :class:`AnalysisError` with the reason.

    Example::

        from consumer.analysis import open_run
        run = open_run("runs/demo")
        events = run.events()
        events.fields  # ['run_id', 'seq', ..., 'event_score', 'flag', 'event_threshold', 'jet', 'raw_jet']"""
    return Run(directory, model=model, force=force, decode=decode, threads=threads)
