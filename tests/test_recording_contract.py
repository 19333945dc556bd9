"""docs/design.md's "Recorded stream" table names every file key, TTree branch and layout key a segment holds.

Segments are written the way the sink writes them (``Sink.accept`` then ``Sink.commit`` on real ROOT files) in
every optional layout - jet_error on and off, float32 / float16 / ANS-coded latents, the per-commit event block
or not, flagged events' raw copies - in the current format and in format 3 (the sink's segment writer at the old
setting), and the older formats through ``SegmentWriter`` as their tests write them.
The test fails when a writer emits a name the table does not list for that format, and when the table lists a
name no writer emits. The names, formats and the current format version come from the doc's table, so a new
format or branch means a new table row, not a new test.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import uproot
from encsink_support import (
    LATENT_DIM,
    VARIABLES,
    card_sha256,
    events_frames,
    expectations,
    scored_frames,
    segment_texts,
    tiny_forward,
    tiny_weights,
)

from consumer.sink import open_segments
from consumer.sink.scored_chunk import batch_layout, chunk_from_batches
from consumer.sink.segment_writer import SegmentWriter
from consumer.sink.service import Sink, SinkConfig
from emulator.encoder.microbatch import scored_columns, scored_hashes
from emulator.runtime import recording, wire
from emulator.runtime.metrics import make_metrics
from models.runtime import latent_coding as lc

DESIGN = Path(__file__).resolve().parents[1] / "docs" / "design.md"
TABLE_START = "<!-- recording-contract -->"
TABLE_END = "<!-- /recording-contract -->"
RUN = 0xC0DE
EVENT_CARD = {"name": "evt_contract", "level": "event", "version": 1, "files": {"scorer.onnx": "0" * 64}}


@dataclass(frozen=True)
class Row:
    """One name of the contract: where it lives (key, branch, layout), a pattern, the formats that write it."""

    where: str
    pattern: re.Pattern[str]
    formats: frozenset[str]
    text: str


def contract_rows(text: str) -> list[Row]:
    """The table between the recording-contract markers of design.md: columns Where | Name | Formats | ...; a
    ``<...>`` part of a name stands for any text (``jet_latent_<i>``)."""
    start, end = text.index(TABLE_START), text.index(TABLE_END)
    rows = []
    for line in text[start:end].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("Where", "") or set(cells[0]) <= set("-: "):
            continue
        for name in re.findall(r"`([^`]+)`", cells[1]):
            pattern = re.compile("^" + "[A-Za-z0-9_]+".join(re.escape(p) for p in re.split(r"<[^>]*>", name)) + "$")
            formats = frozenset(f"aetrig-recording-{n}" for n in re.findall(r"\d+", cells[2]))
            rows.append(Row(cells[0], pattern, formats, name))
    return rows


def written_names(path: Path) -> tuple[str, dict[str, set[str]]]:
    """(format version, {"key": file keys, "branch": TTree branches, "layout": layout JSON keys}) of a segment."""
    with uproot.open(path) as f:
        keys = {k.split(";")[0] for k in f.keys(recursive=False)}
        version = str(f["format_version"])
        branches = set(f["events"].keys(recursive=False)) if "events" in keys else set()
        layout = json.loads(str(f["layout"]))
    return version, {"key": keys, "branch": branches, "layout": set(layout)}


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    found = contract_rows(DESIGN.read_text(encoding="utf-8"))
    assert {r.where for r in found} == {"key", "branch", "layout"}, "the table names keys, branches, layout keys"
    return found


def rate_card(card: dict) -> dict:
    """The tiny model's card with an entropy model fitted on its latents (a rate-trained model's card)."""
    rng = np.random.default_rng(5)
    x = np.stack([rng.uniform(20, 500, 4000), rng.uniform(-2.5, 2.5, 4000), rng.uniform(-3.1, 3.1, 4000),
                  rng.uniform(1, 60, 4000)], axis=1).astype(np.float32)
    latent, _ = tiny_forward(x, tiny_weights())
    deltas = np.full(LATENT_DIM, 0.05)
    model = lc.fit_tables(np.rint(latent.reshape(-1, LATENT_DIM) / deltas).astype(np.int64), deltas)
    return lc.embed_in_card({**copy.deepcopy(card), "name": "tiny_rate"}, model)


def event_level_frames(seq: int, counts: np.ndarray, rng: np.random.Generator, card: dict, first_event_id: int,
                       with_error: bool) -> list[bytes]:
    """A scored message flagged by an event-level model, with jet_error or not (encoders' --jet-errors)."""
    batch = wire.decode(events_frames(RUN, seq, counts, rng, first_event_id))
    x = np.stack([batch.columns[f"jet_{v}"] for v in VARIABLES], axis=1)
    latent, error = tiny_forward(x, tiny_weights())
    cols = scored_columns(batch, latent.astype(np.float32).reshape(-1, LATENT_DIM),
                          error.astype(np.float32) if with_error else None, 0.5, "<f4",
                          event_score=rng.uniform(0, 1, batch.n_events).astype(np.float32))
    return [bytes(f) for f in wire.encode(wire.KIND_SCORED, RUN, seq, cols, t_send=time.time(), rate_hz=1000.0,
                                          t_encoded=time.time(), threshold=0.5, model=card["name"],
                                          anomaly_model=EVENT_CARD["name"], encoder="test",
                                          **scored_hashes(batch, card_sha256(card), card_sha256(EVENT_CARD)))]


def sink_segments(out: Path, card: dict, event_level: bool, format_version: str = recording.FORMAT_VERSION,
                  **options: object) -> None:
    """The sink records four messages into ``out`` (some events flagged, so raw copies are written), in
    ``format_version`` (format 3: the sink's writer at the old setting)."""
    with pytest.MonkeyPatch.context() as patch:
        if format_version != recording.FORMAT_VERSION:
            patch.setattr(open_segments, "SegmentWriter", functools.partial(SegmentWriter,
                                                                            format_version=format_version))
        _record(out, card, event_level, **options)


def _record(out: Path, card: dict, event_level: bool, **options: object) -> None:
    rng = np.random.default_rng(11)
    anomaly = EVENT_CARD if event_level else None
    config = SinkConfig(bind="tcp://127.0.0.1:1", out=out, **expectations(out.parent / f"{out.name}-exp", card,
                                                                          [RUN], anomaly), **options)
    sink = Sink(config, metrics=make_metrics())
    try:
        for seq in range(4):
            counts = rng.integers(0, 6, 25)
            frames = (event_level_frames(seq, counts, rng, card, 25 * seq, options.get("jet_errors") == "always")
                      if event_level
                      else scored_frames(RUN, seq, counts, rng, card, first_event_id=25 * seq, threshold=2.0))
            sink.accept(frames, None)
        assert sink.commit(None) and sink.counts["batches"] == 4, sink.rejections.report()
        assert sink.counts["flagged_events"] > 0
    finally:
        sink.segments.close_all()
        recording.unlock_recording(sink.lock_fd)


@dataclass(frozen=True)
class OldLayout:
    """A layout an older format was written in: rate-trained card (ANS latents), jet_error, storage, score bits."""

    name: str
    rate: bool
    jet_error: bool
    storage: str
    score_bits: int


#: the layouts older formats are written in (format 1: the first only; it predates optional jet_error and ANS)
OLD_LAYOUTS = [OldLayout("float32 latents, jet_error", False, True, "float32", 23),
               OldLayout("float16 latents, no jet_error", False, False, "float16", 3),
               OldLayout("ANS latents, jet_error", True, True, "float32", 23),
               OldLayout("ANS latents, no jet_error", True, False, "float32", 3),
               OldLayout("ANS latents, no jet_error, 23-bit scores", True, False, "float32", 23)]


def old_format_segment(path: Path, card: dict, version: str, old: OldLayout) -> Path:
    """A segment of an older readable format, written as its writer did (SegmentWriter's ``format_version``;
    formats 1 and 2 store every column as it is, later ones compact)."""
    rng = np.random.default_rng(3)
    batches = [wire.validate(wire.decode(scored_frames(RUN, s, rng.integers(0, 5, 20), rng, card,
                                                       first_event_id=20 * s, threshold=2.0))) for s in range(2)]
    if not old.jet_error:
        for batch in batches:
            del batch.columns["jet_error"]
    entropy = lc.entropy_model_text(card, []) if old.rate else ""
    compact = version not in (recording.FORMAT_VERSION_1, recording.FORMAT_VERSION_2)
    layout = batch_layout(batches[0], old.storage, "ans" if old.rate else "none", entropy, old.score_bits,
                          compact=compact)
    writer = SegmentWriter(path, **segment_texts(card, RUN), layout=layout, format_version=version)
    chunk = chunk_from_batches(batches, layout)
    if version == recording.FORMAT_VERSION_1:
        del chunk[recording.THRESHOLD_BRANCH]
    writer.commit(chunk)
    writer.close()
    return path


#: every optional layout the sink writes: (name, event-level anomaly model, rate-trained card, sink options)
SINK_LAYOUTS = [
    ("per-jet scoring: jet_error, float32 latents", False, False, {}),
    ("per-jet scoring: float16 latents", False, False, {"latent_storage_dtype": "float16"}),
    ("event-level model: no jet_error, float latents", True, False, {}),
    ("event-level model, --jet-errors always", True, False, {"jet_errors": "always"}),
    ("ANS latents with jet_error", False, True, {}),
    ("ANS latents, no jet_error: event block", True, True, {}),
    ("ANS latents, no jet_error, float32 scores: njet alone", True, True, {"score_bits": 23}),
    ("--latent-codec none on a rate-trained model", True, True, {"latent_codec": "none"}),
]


@pytest.fixture(scope="module")
def sink_recordings(tmp_path_factory: pytest.TempPathFactory, card: dict) -> dict[str, Path]:
    """Layout name -> the recording the sink wrote in it."""
    rated = rate_card(card)
    out = {}
    for version in (recording.FORMAT_VERSION, recording.FORMAT_VERSION_3):
        for i, (name, event_level, rate, options) in enumerate(SINK_LAYOUTS):
            rec = tmp_path_factory.mktemp(f"rec{i}") / "rec"
            sink_segments(rec, rated if rate else card, event_level, version, **options)
            out[name if version == recording.FORMAT_VERSION else f"{name} ({version})"] = rec
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, card: dict,
            sink_recordings: dict[str, Path]) -> dict[str, list[tuple[str, dict[str, set[str]]]]]:
    """Layout name -> [(format version, names)] of every segment written, the sink's and the old formats'."""
    out = {name: [written_names(p) for p in recording.segment_paths(rec)] for name, rec in sink_recordings.items()}
    rated = rate_card(card)
    for version in recording.READABLE_VERSIONS:
        if version == recording.FORMAT_VERSION:
            continue  # the sink's, above
        for old in OLD_LAYOUTS[:1] if version == recording.FORMAT_VERSION_1 else OLD_LAYOUTS:
            path = tmp_path_factory.mktemp("old") / "segments" / recording.segment_name(RUN, 0)
            out[f"{version}, {old.name}"] = [written_names(old_format_segment(path, rated if old.rate else card,
                                                                              version, old))]
    return out


def test_the_table_names_the_format_the_sink_writes(rows: list[Row]) -> None:
    version = recording.FORMAT_VERSION
    assert any(version in r.formats for r in rows), f"no row of {version} in design.md's table"
    assert f"`{version}`" in DESIGN.read_text(encoding="utf-8").split("### Recorded stream")[1][:400]


def test_every_written_name_is_in_the_contract(rows: list[Row], written: dict) -> None:
    unnamed = []
    for layout, segments in written.items():
        assert segments, f"{layout}: no segment written"
        for version, names in segments:
            for where, found in names.items():
                for name in sorted(found):
                    if not any(r.where == where and version in r.formats and r.pattern.match(name) for r in rows):
                        unnamed.append(f"{layout} ({version}): {where} {name!r}")
    assert not unnamed, "written but not in docs/design.md's recording table:\n" + "\n".join(unnamed)


def test_every_name_of_the_contract_is_written(rows: list[Row], written: dict) -> None:
    seen = {(version, where, name) for segments in written.values() for version, names in segments
            for where, found in names.items() for name in found}
    phantom = [f"{r.where} {r.text} ({version})" for r in rows
               for version in r.formats
               if not any(v == version and w == r.where and r.pattern.match(n) for v, w, n in seen)]
    assert not phantom, "design.md's recording table names what no writer writes:\n" + "\n".join(phantom)


def test_every_layout_reads_back(sink_recordings: dict[str, Path]) -> None:
    """Each layout is a real recording: open_recording gives back every event, a latent per jet, and stored scores
    that still flag exactly the flagged events."""
    for name, rec_dir in sink_recordings.items():
        rec = recording.open_recording(rec_dir)
        events = rec.events()
        assert len(rec) == 100 and len(rec.latent()) == int(events["n_jets"].sum()), name
        assert np.array_equal(events["flag"].astype(bool), events["event_score"] > events["event_threshold"]), name
