"""`aetrig verify` on recordings written with the real segment writer: a good one passes; a missing
seq, a batch recorded twice, a duplicate event id, a wrong score, a flag that disagrees with the
recorded threshold and an unreadable file each fail with a clear message and exit code 1. Format-1
segments (the old layout: no anomaly_card, no event_threshold) are still read and checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from encsink_support import ROOT, card_sha256, events_frames, scored_frames, segment_texts

from consumer.offline import verify_command
from consumer.offline.verify import verify_recording
from consumer.sink.scored_chunk import batch_layout, chunk_from_batches
from consumer.sink.segment_writer import SegmentWriter
from emulator.cli import build_parser
from emulator.runtime import wire
from emulator.runtime.recording import (
    FORMAT_VERSION,
    FORMAT_VERSION_1,
    FORMAT_VERSION_2,
    THRESHOLD_BRANCH,
    open_recording,
    segment_name,
)

RUN = 0x77


def write_recording(out: Path, card: dict, segments: list[list[int]], event_ids: dict[int, int] | None = None,
                    tamper: str | None = None, version: str = FORMAT_VERSION) -> None:
    """Write segments holding the given seqs (10 events each, event ids 10*seq.. unless overridden)."""
    rng = np.random.default_rng(1)
    for index, seqs in enumerate(segments):
        batches = [wire.validate(wire.decode(scored_frames(
            RUN, s, rng.integers(0, 5, 10), rng, card, first_event_id=(event_ids or {}).get(s, 10 * s))))
            for s in seqs]
        layout = batch_layout(batches[0], "float32", compact=version == FORMAT_VERSION)
        texts = segment_texts(card, RUN)
        writer = SegmentWriter(out / "segments" / segment_name(RUN, index), "{}" if tamper == "card" else
                               texts["card_text"], texts["manifest_text"], layout,
                               anomaly_card_text=texts["anomaly_card_text"], format_version=version)
        chunk = chunk_from_batches(batches, layout)
        if version == FORMAT_VERSION_1:
            del chunk[THRESHOLD_BRANCH]  # the old layout had no threshold branch
        if tamper == "score":
            chunk["event_score"] = chunk["event_score"] + np.float32(1.0)
        if tamper == "flag":
            chunk["flag"] = chunk["flag"].copy()
            chunk["flag"][np.flatnonzero(chunk["flag"] == 0)[:2]] = 1
        writer.commit(chunk)
        writer.close()


def run_cli(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    parser, module = build_parser("verify")
    code = module.main(parser.parse_args([str(path), *extra]))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_good_recording_passes(tmp_path: Path, card: dict, capsys: pytest.CaptureFixture[str]) -> None:
    write_recording(tmp_path / "rec", card, [[0, 1, 2], [3, 4], [5]])
    result = verify_recording(tmp_path / "rec", expect_events=60, expect_batches=6)
    assert result.ok, result.problems
    assert result.stats["events"] == 60 and result.stats["segments"] == 3
    code, text = run_cli(tmp_path / "rec", capsys)
    assert code == 0 and "OK: 60 events" in text
    code, text = run_cli(tmp_path, capsys)  # a directory above the recording is not one: named, not guessed
    assert code == 2 and "recordings inside it" in text


def test_format_1_recording_is_still_read_and_checked(tmp_path: Path, card: dict) -> None:
    write_recording(tmp_path / "rec", card, [[0, 1], [2]], version=FORMAT_VERSION_1)
    result = verify_recording(tmp_path / "rec", expect_events=30)
    assert result.ok, result.problems
    assert result.stats["format_versions"] == [FORMAT_VERSION_1] and not result.stats["flags_checked_against_threshold"]
    rec = open_recording(tmp_path / "rec")
    assert rec.anomaly_card == rec.card and rec.card["name"] == "tiny_test"  # per-jet max error of its model
    assert np.isnan(rec.events()[THRESHOLD_BRANCH]).all()
    write_recording(tmp_path / "bad", card, [[0, 1]], tamper="score", version=FORMAT_VERSION_1)
    assert any("event_score is not the max(jet_error)" in p for p in verify_recording(tmp_path / "bad").problems)


def test_format_2_recording_is_still_read_and_checked(tmp_path: Path, card: dict) -> None:
    write_recording(tmp_path / "rec", card, [[0, 1], [2]], version=FORMAT_VERSION_2)
    result = verify_recording(tmp_path / "rec", expect_events=30)
    assert result.ok, result.problems
    assert result.stats["format_versions"] == [FORMAT_VERSION_2] and result.stats["flags_checked_against_threshold"]
    rec = open_recording(tmp_path / "rec")
    assert "event_id" in rec.segments[0].branches and "raw_jet_pt" in rec.segments[0].branches
    write_recording(tmp_path / "new", card, [[0, 1], [2]])  # the same batches in format 3
    new = open_recording(tmp_path / "new")
    assert "event_id_delta" in new.segments[0].branches and "raw_values" in new.segments[0].branches
    for name, values in rec.events().items():
        assert np.array_equal(values, new.events()[name]), name  # per-jet scoring: the score is kept whole
    assert np.array_equal(rec.latent(), new.latent())
    for var, values in rec.raw_jets().items():
        assert np.array_equal(values, new.raw_jets()[var]), var


def test_flags_are_checked_against_the_recorded_threshold(tmp_path: Path, card: dict,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    write_recording(tmp_path / "rec", card, [[0, 1, 2]])
    rec = open_recording(tmp_path / "rec")
    ev = rec.events()
    assert np.array_equal(ev["flag"].astype(bool), (ev["event_score"] > ev[THRESHOLD_BRANCH]) & (ev["n_jets"] > 0))
    assert (ev[THRESHOLD_BRANCH] == np.float32(7.7)).all() and rec.anomaly_card["name"] == "tiny_test"
    write_recording(tmp_path / "bad", card, [[0, 1]], tamper="flag")
    code, text = run_cli(tmp_path / "bad", capsys)
    assert code == 1 and "flags disagree with event_score > event_threshold of anomaly model 'tiny_test'" in text


def test_event_level_flags_include_zero_jet_events(tmp_path: Path, card: dict) -> None:
    """An event-level anomaly card: no max-jet-error rule, zero-jet events flagged when above the threshold."""
    from emulator.encoder.microbatch import scored_columns, scored_hashes
    from models.runtime.card import load_model_dir as load

    event_card = load(ROOT / "models/zoo/EVT_AE_k1", level="event")
    rng = np.random.default_rng(2)
    counts = np.array([0, 3, 0, 2, 1, 0])
    batch = wire.decode(events_frames(RUN, 0, counts, rng))
    score = np.array([9.0, 1.0, 0.5, 7.0, 2.0, 6.5], np.float32)
    cols = scored_columns(batch, np.zeros((int(counts.sum()), 3), np.float32), np.ones(int(counts.sum()), np.float32),
                          6.0, "<f4", event_score=score)
    assert cols["flag"].tolist() == [1, 0, 0, 1, 0, 1]
    scored = wire.validate(wire.decode([bytes(f) for f in wire.encode(
        wire.KIND_SCORED, RUN, 0, cols, t_send=0.0, rate_hz=1.0, threshold=6.0,
        **scored_hashes(batch, card_sha256(card), card_sha256(event_card.card)))]))
    layout = batch_layout(scored, "float32")
    for name, tamper in (("rec", False), ("bad", True)):
        writer = SegmentWriter(tmp_path / name / "segments" / segment_name(RUN, 0), json.dumps(card),
                               segment_texts(card, RUN)["manifest_text"], layout,
                               anomaly_card_text=event_card.card_json)
        chunk = chunk_from_batches([scored], layout)
        if tamper:
            chunk["flag"] = np.zeros_like(chunk["flag"])
        writer.commit(chunk)
        writer.close()
    result = verify_recording(tmp_path / "rec")
    assert result.ok, result.problems
    assert result.stats["anomaly_models"] == ["EVT_AE_k1"]
    bad = verify_recording(tmp_path / "bad")
    assert any("3 flags disagree" in p and "'EVT_AE_k1'" in p for p in bad.problems), bad.problems


def test_missing_seq_fails_clearly(tmp_path: Path, card: dict, capsys: pytest.CaptureFixture[str]) -> None:
    write_recording(tmp_path / "rec", card, [[0, 1, 2], [5, 6]])
    code, text = run_cli(tmp_path / "rec", capsys)
    assert code == 1
    assert "2 missing seqs out of 0..6: 3-4" in text


def test_batch_recorded_twice_fails_clearly(tmp_path: Path, card: dict, capsys: pytest.CaptureFixture[str]) -> None:
    write_recording(tmp_path / "rec", card, [[0, 1, 2], [2, 3]])
    code, text = run_cli(tmp_path / "rec", capsys)
    assert code == 1
    assert "1 batches recorded more than once: seq 2" in text
    assert "event_ids recorded more than once" in text


def test_duplicate_event_id_fails(tmp_path: Path, card: dict) -> None:
    write_recording(tmp_path / "rec", card, [[0, 1]], event_ids={1: 5})
    result = verify_recording(tmp_path / "rec")
    assert not result.ok and any("event_ids recorded more than once: 5-9" in p for p in result.problems)


def test_expected_event_count_and_bad_scores(tmp_path: Path, card: dict) -> None:
    write_recording(tmp_path / "rec", card, [[0, 1]], tamper="score")
    result = verify_recording(tmp_path / "rec", expect_events=30)
    assert any("20 events recorded, 30 expected" in p for p in result.problems)
    assert any("event_score is not the max(jet_error)" in p for p in result.problems)


def test_unreadable_segment_fails(tmp_path: Path, card: dict, capsys: pytest.CaptureFixture[str]) -> None:
    write_recording(tmp_path / "rec", card, [[0, 1], [2]])
    victim = tmp_path / "rec" / "segments" / segment_name(RUN, 1)
    victim.write_bytes(victim.read_bytes()[:300])
    code, text = run_cli(tmp_path / "rec", capsys)
    assert code == 1 and f"{victim.name}: unreadable" in text


def test_empty_directory_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run_cli(tmp_path, capsys)  # no segments/: not a recording at all
    assert code == 2 and "not a recording" in text
    (tmp_path / "segments").mkdir()  # a recording with nothing committed yet
    code, text = run_cli(tmp_path, capsys)
    assert code == 1 and "no segment files" in text


def test_verify_module_has_cli_contract() -> None:
    assert verify_command.EXAMPLES.strip().startswith("aetrig verify")


def test_interrupted_commit_is_reported_never_applied(tmp_path: Path, card: dict) -> None:
    """verify is a reader: a torn journal is ignored and reported, with or without a running sink; nothing is
    written (the journal stays for the sink to handle at its next start)."""
    from emulator.runtime.journaled_file import journal_path
    from emulator.runtime.recording import lock_recording, unlock_recording

    write_recording(tmp_path / "rec", card, [[0, 1]])
    segment = tmp_path / "rec" / "segments" / segment_name(RUN, 0)
    journal_path(segment).write_bytes(b"AETRIGJ1 torn journal of a killed sink")
    before = {p: p.read_bytes() for p in (segment, journal_path(segment))}
    fd = lock_recording(tmp_path / "rec")
    try:
        result = verify_recording(tmp_path / "rec")
        assert result.ok and result.stats["recovered_commits"] == {segment.name: "torn journal ignored"}
    finally:
        unlock_recording(fd)
    result = verify_recording(tmp_path / "rec")
    assert result.ok and result.stats["recovered_commits"] == {segment.name: "torn journal ignored"}
    assert {p: p.read_bytes() for p in before} == before


def test_counts_are_checked_against_a_run_summary(tmp_path: Path, card: dict,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import json

    write_recording(tmp_path / "rec", card, [[0, 1, 2]])
    (tmp_path / "summary.json").write_text(json.dumps({"events": {"produced": 30}, "batches": {"sent": 3}}))
    code, text = run_cli(tmp_path / "rec", capsys)
    assert code == 0 and "counts match" in text and "summary.json" in text
    (tmp_path / "summary.json").write_text(json.dumps({"events": {"produced": 40}, "batches": {"sent": 4}}))
    code, text = run_cli(tmp_path / "rec", capsys)
    assert code == 1 and "30 events recorded, 40 expected" in text and "3 batches recorded, 4 expected" in text
    code, _ = run_cli(tmp_path / "rec", capsys, "--no-summary")
    assert code == 0
