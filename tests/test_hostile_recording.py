"""A crafted recording against the real readers (`aetrig verify`, `aetrig decode`, ``open_recording``) and a
real `aetrig sink` starting on it: a symlinked segment with a journal aimed at a file outside the recording,
a journal that writes at offset 2^40, segments with a seven-digit index, and a card that starts with a
byte-order mark. Readers write nothing (every file of the recording keeps its bytes), no file outside the
recording changes, and the sink keeps every acknowledged segment and acknowledges genuine batches at once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from encsink_support import (
    AETRIG,
    ROOT,
    SinkPeers,
    expect_args,
    make_tiny_model,
    scored_frames,
    segment_texts,
    start,
    stop,
)

from consumer.sink.scored_chunk import batch_layout, chunk_from_batches
from consumer.sink.segment_writer import SegmentWriter
from emulator.runtime import wire
from emulator.runtime.journaled_file import _serialise, journal_path
from emulator.runtime.recording import open_recording, segment_name, segment_paths
from models.runtime.card import load_model_dir

RUN = 0x5EED
BOM = "\ufeff"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    directory = make_tiny_model(tmp_path_factory.mktemp("model"))
    return directory, load_model_dir(directory).card


def write_segment(path: Path, card: dict, seqs: list[int], card_prefix: str = "") -> int:
    """A real segment holding 10 events per seq; returns its event count."""
    rng = np.random.default_rng(seqs[0])
    batches = [wire.parse_scored(scored_frames(RUN, s, rng.integers(0, 4, 10), rng, card, first_event_id=10 * s))
               for s in seqs]
    layout = batch_layout(batches[0], "float32")
    texts = segment_texts(card, RUN)
    writer = SegmentWriter(path, card_prefix + texts["card_text"], texts["manifest_text"], layout,
                           anomaly_card_text=texts["anomaly_card_text"])
    writer.commit(chunk_from_batches(batches, layout))
    writer.close()
    return 10 * len(seqs)


def snapshot(*roots: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes digest and mtime of every regular file under ``roots`` (symlinks themselves, not their targets)."""
    out = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                out[str(path)] = (os.readlink(path).encode(), 0)
            elif path.is_file():
                out[str(path)] = (hashlib.sha256(path.read_bytes()).digest(), path.stat().st_mtime_ns)
    return out


@pytest.fixture
def crafted(tmp_path: Path, model: tuple[Path, dict]) -> dict:
    """The crafted recording: segment indexes 999 999 (card with a BOM, a journal at 2^40) and 1 000 000
    (genuine), and a symlink named like segment 1 000 001 with a complete journal aimed outside."""
    _, card = model
    rec, outside = tmp_path / "rec", tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_bytes(b"precious data the user owns\n" * 100)
    seg_dir = rec / "segments"
    events = write_segment(seg_dir / segment_name(RUN, 999_999), card, [0, 1], card_prefix=BOM)
    events += write_segment(seg_dir / segment_name(RUN, 1_000_000), card, [2, 3, 4])
    far = seg_dir / segment_name(RUN, 999_999)
    journal_path(far).write_bytes(_serialise([(1 << 40, b"X" * 16)]))
    link = seg_dir / segment_name(RUN, 1_000_001)
    link.symlink_to(victim)
    journal_path(link).write_bytes(_serialise([(0, b"OVERWRITTEN BY A CRAFTED JOURNAL")]))
    return {"rec": rec, "outside": outside, "victim": victim, "events": events, "far": far, "link": link}


def test_offline_readers_write_nothing_and_follow_no_symlink(crafted: dict, tmp_path: Path) -> None:
    rec, outside = crafted["rec"], crafted["outside"]
    before = snapshot(rec, outside)
    names = [p.name for p in segment_paths(rec)]
    assert names == [segment_name(RUN, 999_999), segment_name(RUN, 1_000_000)]  # numeric order, link left out

    recording = open_recording(rec)
    assert recording.skipped == [crafted["link"].name]
    assert "refused journal" in recording.unfinished[crafted["far"].name]
    assert recording.card is not None and recording.card["name"] == "tiny_test"  # the BOM card reads back

    verify = subprocess.run([*AETRIG, "verify", str(rec)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 1  # the refused journal and the symlink are reported as problems
    assert "refused journal" in verify.stdout + verify.stderr and crafted["link"].name in verify.stdout + verify.stderr
    decoded = tmp_path / "decoded.root"
    dec = subprocess.run([*AETRIG, "decode", str(rec), "--out", str(decoded), "--model", str(Path(ROOT))],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    del dec  # decode may refuse (no such model here); what matters is what it wrote
    assert snapshot(rec, outside) == before


@pytest.mark.timeout(120)
def test_the_sink_keeps_acknowledged_segments_and_touches_nothing_outside(crafted: dict, tmp_path: Path,
                                                                          model: tuple[Path, dict]) -> None:
    _, card = model
    rec, outside, victim = crafted["rec"], crafted["outside"], crafted["victim"]
    outside_before = snapshot(outside)
    victim_bytes = victim.read_bytes()
    peers = SinkPeers()
    acks, push = peers.acks, peers.push
    proc = start("sink", *peers.sink_flags(rec), *expect_args(tmp_path, card, [RUN]),
                 "--report", str(tmp_path / "sink.json"), "--commit-ms", "20", log=tmp_path / "sink.log")
    try:
        rng = np.random.default_rng(9)
        frames = scored_frames(RUN, 5, rng.integers(0, 4, 10), rng, card, first_event_id=50)
        t0 = time.monotonic()
        deadline = t0 + 60
        while 5 not in acks.acked and time.monotonic() < deadline and proc.poll() is None:
            push.send_multipart(frames)  # until the sink is up; duplicates are re-acked
            acks.poll(200)
        assert 5 in acks.acked, (tmp_path / "sink.log").read_text()[-3000:]
        assert proc.poll() is None
        # genuine batches after start-up are acknowledged within 2 s each
        for seq in (6, 7):
            sent = time.monotonic()
            push.send_multipart(scored_frames(RUN, seq, rng.integers(0, 4, 10), rng, card, first_event_id=10 * seq))
            assert acks.wait_for({seq}, timeout=2.0), f"seq {seq} not acknowledged within 2 s"
            assert time.monotonic() - sent < 2.0
    finally:
        assert stop(proc) == 0
        peers.close()
    assert victim.read_bytes() == victim_bytes and snapshot(outside) == outside_before
    assert crafted["link"].is_symlink()  # left alone, never opened
    kept = segment_paths(rec)
    assert crafted["far"] in kept and segment_name(RUN, 1_000_000) in {p.name for p in kept}  # not moved aside
    recording = open_recording(rec)
    ids = np.sort(recording.events()["event_id"])
    np.testing.assert_array_equal(ids, np.arange(80))  # seqs 0..7, 10 events each, nothing lost, nothing twice
    new = [p.name for p in kept if p.name not in {crafted["far"].name, segment_name(RUN, 1_000_000)}]
    assert new == [segment_name(RUN, 1_000_002)]  # past the names taken, the symlink's included


def test_a_transient_read_error_at_start_up_never_moves_a_segment_aside(tmp_path: Path, model: tuple[Path, dict],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of descriptors while the sink reads its segments: it retries, then refuses to start; the acknowledged
    segment stays where it is (a real structural defect still goes to damaged/)."""
    import errno

    from encsink_support import expectations

    from consumer.sink import recovery
    from consumer.sink.service import Sink, SinkConfig
    from emulator.runtime.metrics import make_metrics
    from emulator.runtime.recording import RecordingError

    _, card = model
    rec = tmp_path / "rec"
    path = rec / "segments" / segment_name(RUN, 0)
    write_segment(path, card, [0, 1])
    before = path.read_bytes()
    calls = []

    def no_descriptors(p: Path) -> None:
        calls.append(p)
        try:
            raise OSError(errno.EMFILE, "Too many open files")
        except OSError as exc:
            raise RecordingError(f"{p}: not readable: {exc}") from exc

    monkeypatch.setattr(recovery, "read_segment", no_descriptors)
    config = SinkConfig(bind="tcp://127.0.0.1:1", out=rec, **expectations(tmp_path, card, [RUN]))
    with pytest.raises(OSError, match="not moving it aside"):
        Sink(config, metrics=make_metrics())
    assert len(calls) == recovery.READ_ATTEMPTS and path.read_bytes() == before
    assert not (rec / "damaged").exists()
