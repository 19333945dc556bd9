"""The sink's single-job modules on their own: deduplication, the pending messages, backpressure."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from encsink_support import make_tiny_model, scored_frames
from prometheus_client import generate_latest

from consumer.sink.backpressure import (
    COMMIT_OVERHEAD_BYTES,
    SEGMENT_OVERHEAD_BYTES,
    Backpressure,
    FullState,
    check_space,
    commit_estimate,
)
from consumer.sink.dedup import CommittedIndex, duplicate_of
from consumer.sink.expectations import Manifest
from consumer.sink.pending import PendingBatches, Received
from consumer.sink.scored_chunk import batch_layout
from emulator.runtime import wire
from emulator.runtime.metrics import make_metrics, make_sink_metrics
from models.runtime.card import load_model_dir


def test_committed_index_and_duplicates() -> None:
    committed = CommittedIndex()
    for seq in (0, 1, 2, 5):
        committed.add(7, seq)
    committed.add(8, 0)
    assert len(committed) == 5 and committed.run_ids() == {7, 8}
    assert (7, 5) in committed and (7, 3) not in committed and (9, 0) not in committed and "x" not in committed
    pending = {(7, 3)}
    assert duplicate_of((7, 2), committed, pending) == "committed"
    assert duplicate_of((7, 3), committed, pending) == "pending"
    assert duplicate_of((7, 4), committed, pending) is None


def test_pending_batches_count_what_they_hold(tmp_path: Path) -> None:
    card = load_model_dir(make_tiny_model(tmp_path / "model")).card
    rng = np.random.default_rng(2)
    pending = PendingBatches()
    items = []
    for run, seq in ((1, 0), (2, 0), (1, 1)):
        frames = scored_frames(run, seq, rng.integers(0, 4, 10), rng, card)
        batch = wire.validate(wire.decode(frames))
        items.append(Received(batch, 0.0, frames, batch_layout(batch, "float32"), Manifest(run, "{}")))
        pending.add(items[-1])
    assert len(pending) == 3 and (2, 0) in pending and pending.run_ids() == {1, 2}
    assert pending.events == 30 and pending.nbytes == sum(len(f) for i in items for f in i.frames)
    assert [[i.batch.seq for i in g] for g in pending.groups().values()] == [[0, 1], [0]]
    pending.remove([items[0]])
    assert (1, 0) not in pending and pending.events == 20 and pending.nbytes == items[1].nbytes + items[2].nbytes
    pending.clear()
    assert not pending and pending.events == pending.nbytes == 0 and not pending.keys


def test_space_check_against_max_bytes_and_the_real_disk(tmp_path: Path) -> None:
    assert commit_estimate([100, 200]) == 300 + 2 * (COMMIT_OVERHEAD_BYTES + SEGMENT_OVERHEAD_BYTES)
    check_space(tmp_path, 1000, 500, max_bytes=1500, min_free_bytes=0)
    with pytest.raises(Backpressure, match="max-bytes"):
        check_space(tmp_path, 1000, 501, max_bytes=1500, min_free_bytes=0)
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(Backpressure, match="disk full"):
        check_space(tmp_path, 0, 1, max_bytes=None, min_free_bytes=free + (1 << 30))


def test_full_state_counts_one_episode_per_stretch_and_sets_the_gauge() -> None:
    metrics = make_metrics()
    full = FullState(make_sink_metrics(metrics.registry))

    def exposed(name: str) -> float:
        for line in generate_latest(metrics.registry).decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(name)

    assert not full.waiting() and not full.full_ack_due()
    full.enter("disk full", 10)
    full.enter("disk full again", 20)  # the same episode
    assert full.waiting() and full.full_ack_due() and full.reason == "disk full again"
    assert exposed("aetrig_sink_full") == 1 and exposed("aetrig_sink_backpressure_episodes_total") == 1
    full.full_acks_sent()
    assert not full.full_ack_due()
    full.leave()
    report = full.report()
    assert exposed("aetrig_sink_full") == 0 and report["episodes"] == 1 and not report["full_at_exit"]
    assert report["last_reason"] == "disk full" and report["episode_list"][0]["end"] is not None
