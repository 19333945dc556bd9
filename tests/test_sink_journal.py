"""The redo journal under the sink's segments: staged writes read back correctly, a torn journal is
discarded, a complete one replayed, and a segment interrupted mid-commit reads as a whole commit."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emulator.runtime.journaled_file as jf
from consumer.sink.scored_chunk import batch_layout, chunk_from_batches
from consumer.sink.segment_writer import SegmentWriter
from emulator.runtime import wire
from emulator.runtime.recording import read_seen, read_segment, segment_name

WRITES = st.lists(st.tuples(st.integers(0, 300), st.binary(min_size=1, max_size=40)), min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(first=WRITES, second=WRITES)
def test_reads_see_staged_and_committed_writes(tmp_path_factory: pytest.TempPathFactory, first: list, second: list
                                               ) -> None:
    path = tmp_path_factory.mktemp("j") / "f.bin"
    model = bytearray()
    f = jf.JournaledFile(path)
    for batch in (first, second):
        for pos, data in batch:
            f.seek(pos)
            f.write(data)
            if len(model) < pos + len(data):
                model.extend(b"\0" * (pos + len(data) - len(model)))
            model[pos:pos + len(data)] = data
        f.seek(0)
        assert f.read() == bytes(model)  # staged writes overlay the file
        f.commit()
        assert path.read_bytes() == bytes(model)  # and reach it on commit
    f.close()
    assert not jf.journal_path(path).exists()


def test_torn_journal_is_discarded_and_complete_one_replayed(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"A" * 64)
    writes = [(8, b"BBBB"), (70, b"CC")]
    blob = jf._serialise(writes)
    jf.journal_path(path).write_bytes(blob[:-3])  # killed while writing the journal
    assert jf.recover(path) == "discarded"
    assert path.read_bytes() == b"A" * 64 and not jf.journal_path(path).exists()
    jf.journal_path(path).write_bytes(blob)  # killed after the journal, before or while applying it
    fd = os.open(path, os.O_RDWR)
    os.pwrite(fd, b"BB", 8)  # half applied
    os.close(fd)
    assert jf.recover(path) == "replayed"
    assert path.read_bytes() == b"A" * 8 + b"BBBB" + b"A" * 52 + b"\0" * 6 + b"CC"
    assert jf.recover(path) == "clean"


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.7, 1.0])
def test_segment_killed_mid_commit_recovers_to_a_whole_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              fraction: float) -> None:
    from encsink_support import make_tiny_model, scored_frames

    from models.runtime.card import load_model_dir

    card = load_model_dir(make_tiny_model(tmp_path / "model")).card
    rng = np.random.default_rng(3)
    batches = [wire.validate(wire.decode(scored_frames(9, s, rng.integers(0, 6, 30), rng, card, 30 * s)))
               for s in range(4)]
    layout = batch_layout(batches[0], "float32")
    path = tmp_path / "segments" / segment_name(9, 0)
    writer = SegmentWriter(path, "{}", "{}", layout)
    writer.commit(chunk_from_batches(batches[:2], layout))

    class Killed(Exception):
        pass

    def dying_apply(fd: int, writes: list) -> None:  # the process dies part-way through applying
        cut = int(len(writes) * fraction)
        for pos, data in writes[:cut]:
            os.pwrite(fd, data, pos)
        raise Killed

    monkeypatch.setattr(jf, "_apply", dying_apply)
    with pytest.raises(Killed):
        writer.commit(chunk_from_batches(batches[2:], layout))
    monkeypatch.undo()
    assert jf.recover(path) == "replayed"
    seqs = read_seen(read_segment(path))[1]
    assert sorted(set(seqs.tolist())) == [0, 1, 2, 3] and len(seqs) == 120  # the journal completed the commit
