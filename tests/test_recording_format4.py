"""Recording format 4: the sink's writer codes RD_AE_g23's latents with the context model of its card, readers
decode them exactly (the offline encoder's symbols times the step); a format-3 segment, written by the same writer
at the old setting (factorised tables), still reads to the same latents; a context layout cannot be written as
format 3; and the context-coded latents take fewer bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot

from consumer.offline.recording_bytes import recording_bytes
from consumer.offline.studies.rate_distortion_sink import scored_batches
from consumer.sink.scored_chunk import batch_layout, chunk_from_batches
from consumer.sink.segment_writer import SegmentWriter
from emulator.runtime.recording import (
    FORMAT_VERSION,
    FORMAT_VERSION_3,
    SAME_AS_CARD,
    open_recording,
    segment_name,
)
from models.runtime import latent_coding as lc
from models.runtime import latent_context as lx
from models.runtime.card import read_card
from models.runtime.data import load_jets

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "zoo" / "RD_AE_g23"
SAMPLE = REPO / "producer" / "samples" / "qcd.root"
RUN = 0x21
EVENTS = 3000


@pytest.fixture(scope="module")
def jets() -> dict:
    sample = load_jets([SAMPLE], ["pt", "eta", "phi", "e"], max_events=EVENTS)
    latent = lc.encoder_session(MODEL).run(["latent"], {"x": sample.values.astype(np.float32)})[0]
    counts = np.asarray(sample.counts, np.int64)
    batches = scored_batches(sample.values, counts, sample.variables, latent, np.zeros(len(counts), np.float32),
                             1.0, "float32", 1000)
    return {"batches": batches, "latent": latent, "counts": counts}


def _write(out: Path, jets: dict, context: bool, version: str) -> Path:
    card = read_card(MODEL)
    card_text = json.dumps(card)
    layout = batch_layout(jets["batches"][0], "float32", "ans", lx.recording_model_text(card, [], context))
    writer = SegmentWriter(out / "segments" / segment_name(RUN, 0), card_text, json.dumps({"run_id": RUN}), layout,
                           anomaly_card_text=card_text, format_version=version)
    for start in (0, 2):  # two commits: two coded blocks
        writer.commit(chunk_from_batches(jets["batches"][start:start + 2], layout))
    writer.close()
    return out


def test_format_4_context_coded_and_format_3_read_to_the_offline_latents(tmp_path: Path, jets: dict) -> None:
    card = read_card(MODEL)
    base = lc.load_entropy_model(MODEL)
    want = lc.dequantise(lc.quantise(jets["latent"], base), base)
    new = open_recording(_write(tmp_path / "new", jets, True, FORMAT_VERSION))
    old = open_recording(_write(tmp_path / "old", jets, False, FORMAT_VERSION_3))
    assert [s.format_version for s in new.segments] == ["aetrig-recording-4"]
    assert [s.format_version for s in old.segments] == ["aetrig-recording-3"]
    # format 4 names the card's context model by sha256 in the layout instead of copying it
    reference = new.segments[0].layout["entropy_model"]
    assert lx.is_card_reference(reference) and reference["sha256"] == card["entropy_coding"]["context_model_sha256"]
    assert isinstance(new.segments[0].latent_coder(), lx.ContextModel)
    assert old.segments[0].layout["entropy_model"] == json.loads(lc.entropy_model_text(card, []))
    for rec in (new, old):
        assert rec.anomaly_card == card  # format 4 stores it as {"same_as": "card"}, format 3 twice
        np.testing.assert_array_equal(rec.latent(), want)
        np.testing.assert_array_equal(rec.events()["n_jets"], jets["counts"])
    with uproot.open(new.segments[0].path) as f:
        assert json.loads(str(f["anomaly_card"])) == SAME_AS_CARD
    smaller = recording_bytes(tmp_path / "new")["by_category"]["latents"]
    larger = recording_bytes(tmp_path / "old")["by_category"]["latents"]
    assert smaller < 0.97 * larger, (smaller, larger)


def test_a_context_layout_is_not_written_as_format_3(tmp_path: Path, jets: dict) -> None:
    with pytest.raises(ValueError, match="context-coded latents are format aetrig-recording-4"):
        _write(tmp_path / "bad", jets, True, FORMAT_VERSION_3)


def test_a_card_without_the_named_context_model_is_a_clear_error(tmp_path: Path, jets: dict) -> None:
    from emulator.runtime.recording import RecordingError

    card = read_card(MODEL)
    layout = batch_layout(jets["batches"][0], "float32", "ans", lx.recording_model_text(card, []))
    other = json.loads(json.dumps(card))
    del other["entropy_coding"]["context_model"]  # a card that lost the tables the layout names
    writer = SegmentWriter(tmp_path / "rec" / "segments" / segment_name(RUN, 0), json.dumps(other),
                           json.dumps({"run_id": RUN}), layout)
    writer.commit(chunk_from_batches(jets["batches"][:1], layout))
    writer.close()
    with pytest.raises(RecordingError, match="does not hold"):
        open_recording(tmp_path / "rec").latent()
