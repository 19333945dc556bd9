"""The recorded layout through the real segment writer and read API: k jagged latent branches,
float16 storage as uint16 bits, raw jets for flagged events only, a new segment on a layout change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot
from encsink_support import LATENT_DIM, scored_frames

from consumer.sink.scored_chunk import batch_layout, chunk_from_batches
from consumer.sink.segment_writer import SegmentWriter
from emulator.runtime import wire
from emulator.runtime.recording import FORMAT_VERSION, open_recording, segment_name


@pytest.mark.parametrize("storage", ["float32", "float16"])
def test_latent_raw_and_identity_round_trip(tmp_path: Path, card: dict, storage: str) -> None:
    rng = np.random.default_rng(5)
    batches = [wire.validate(wire.decode(scored_frames(3, s, rng.integers(0, 6, 40), rng, card, 40 * s)))
               for s in range(3)]
    layout = batch_layout(batches[0], storage)
    writer = SegmentWriter(tmp_path / "segments" / segment_name(3, 0), "{\"name\": \"x\"}", "{}", layout)
    writer.commit(chunk_from_batches(batches[:2], layout))
    writer.commit(chunk_from_batches(batches[2:], layout))
    writer.close()
    with uproot.open(tmp_path / "segments" / segment_name(3, 0)) as f:
        keys = set(f["events"].keys())
        # format 3: identity as deltas, the raw copies packed in one jagged branch (emulator/runtime/compact_columns)
        assert {f"jet_latent_{i}" for i in range(LATENT_DIM)} | {"jet_error", "njet", "nraw", "raw_values",
                                                                 "event_id_delta", "entry_delta"} <= keys
        assert not {"event_id", "entry", "raw_jet_pt"} & keys
        assert f["events"]["jet_latent_0"].interpretation.content.from_dtype.kind == ("u" if storage == "float16"
                                                                                      else "f")
    rec = open_recording(tmp_path)
    latent = np.concatenate([b.columns["jet_latent"] for b in batches])
    want = latent.astype(np.float16).astype(np.float32) if storage == "float16" else latent
    assert np.array_equal(rec.latent(), want)
    assert np.array_equal(rec.jet_error(), np.concatenate([b.columns["jet_error"] for b in batches]))
    ev = rec.events()
    for name in ("event_id", "entry", "event_number", "event_score", "flag"):
        assert np.array_equal(ev[name], np.concatenate([b.columns[name] for b in batches]))
    assert np.array_equal(ev["seq"], np.repeat([0, 1, 2], 40))
    assert np.array_equal(ev["n_raw"], ev["n_jets"] * ev["flag"])
    flagged_pt = np.concatenate([b.columns["raw_jet_pt"] for b in batches])
    assert ev["flag"].sum() > 0 and np.array_equal(rec.raw_jets()["pt"], flagged_pt)


def test_layout_change_starts_a_new_segment(tmp_path: Path, card: dict, sink_in_thread) -> None:
    rng = np.random.default_rng(6)
    with sink_in_thread(tmp_path / "rec", card=card, run_ids=[4], commit_ms=10) as sink:
        sink.push.send_multipart(scored_frames(4, 0, np.array([3, 2]), rng, card, 0))
        assert sink.acks.wait_for({0}, 10)
        frames = scored_frames(4, 1, np.array([1, 2]), rng, card, 2)
        batch = wire.decode(frames)  # the same message without its raw_jet_m column: another layout
        cols = {k: v for k, v in batch.columns.items() if k != "raw_jet_m"}
        sink.push.send_multipart(wire.encode(wire.KIND_SCORED, 4, 1, cols, t_send=batch.header["t_send"], rate_hz=1.0,
                                        model=card["name"], threshold=batch.header["threshold"],
                                        **{k: batch.header[k] for k in wire.HASH_FIELDS}))
        assert sink.acks.wait_for({1}, 10)
    rec = open_recording(tmp_path / "rec")
    assert [s.layout["raw_vars"] for s in rec.segments] == [["pt", "eta", "phi", "m"], ["pt", "eta", "phi"]]
    assert len(rec) == 4
    # every segment says which model flagged (TObjString anomaly_card) and the threshold of each event
    assert all(s.format_version == FORMAT_VERSION and s.anomaly_card == card for s in rec.segments)
    assert (rec.events()["event_threshold"] == np.float32(7.7)).all()


def test_rotation_by_seconds(tmp_path: Path, card: dict, sink_in_thread) -> None:
    import time

    from consumer.offline.verify import verify_recording

    rng = np.random.default_rng(9)
    with sink_in_thread(tmp_path / "rec", card=card, run_ids=[6], commit_ms=20, rotate_seconds=0.4) as sink:
        for seq in range(12):
            sink.push.send_multipart(scored_frames(6, seq, np.array([1, 2]), rng, card, 2 * seq))
            time.sleep(0.1)
        assert sink.acks.wait_for(set(range(12)), 10)
    rec = open_recording(tmp_path / "rec")
    assert len(rec.segments) >= 2 and len(rec) == 24
    assert verify_recording(tmp_path / "rec").ok
