"""Micro-batch policy and inference chunking of the encoder, and the multipart helpers it sends with.

* when a micro-batch runs (full; enough jets and nothing queued; waited long enough), and the poll
  timeout (rounded up to whole milliseconds, never 0 while a batch waits: 0 would spin);
* ``chunk_bounds`` against the plain definition, and chunked scoring equal to one ONNX Runtime call;
* ``send_frames``/``recv_frames`` over a real socket pair equal to pyzmq's own multipart calls.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from encsink_support import events_frames, make_tiny_model
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.encoder.service import EncoderConfig, EncoderService
from emulator.runtime.onnx_scorer import OnnxScorer, chunk_bounds
from emulator.runtime.zmq_frames import recv_frames, send_frames


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model"))


def service(model_dir: Path, **kw: object) -> EncoderService:
    return EncoderService(EncoderConfig(model=model_dir, connect="tcp://127.0.0.1:1", sink="tcp://127.0.0.1:1",
                                        threshold=8.0, **kw))


def queue(svc: EncoderService, jets_per_message: list[int]) -> None:
    rng = np.random.default_rng(4)
    for seq, n in enumerate(jets_per_message):
        svc.accept(events_frames(1, seq, np.array([n], np.uint32), rng, seq))


def test_micro_batch_due_rules(model_dir: Path) -> None:
    svc = service(model_dir, max_batch_jets=100, min_batch_jets=40, max_wait_ms=50.0)
    assert not svc.due(queue_empty=True) and svc.poll_timeout_ms() == 100  # nothing pending
    queue(svc, [30])
    assert not svc.due(queue_empty=True)  # 30 < min 40: wait for more
    assert not svc.due(queue_empty=False)
    assert 1 <= svc.poll_timeout_ms() <= 50
    queue(svc, [15])
    assert svc.pending_jets == 45
    assert svc.due(queue_empty=True)  # >= min and nothing more queued: run now
    assert not svc.due(queue_empty=False)  # more is queued: take it first
    queue(svc, [60])
    assert svc.due(queue_empty=False)  # full
    svc.first_pending_at = time.monotonic() - 1.0
    assert svc.poll_timeout_ms() == 0


def test_min_batch_above_max_batch_means_max(model_dir: Path) -> None:
    svc = service(model_dir, max_batch_jets=16, min_batch_jets=512, max_wait_ms=50.0)
    queue(svc, [10])
    assert not svc.due(queue_empty=True)
    queue(svc, [6])
    assert svc.due(queue_empty=True)


def test_poll_timeout_rounds_up_and_waits_out_the_batch(model_dir: Path) -> None:
    svc = service(model_dir, max_batch_jets=1000, max_wait_ms=2.0)
    queue(svc, [5])
    svc.first_pending_at = time.monotonic() - 0.0015  # 0.5 ms left: must poll 1 ms, not 0
    assert svc.poll_timeout_ms() == 1
    svc.first_pending_at = time.monotonic() - 0.0025
    assert svc.poll_timeout_ms() == 0 and svc.due(queue_empty=False)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 100_000), st.integers(1, 5000))
def test_chunk_bounds_fewest_near_equal_chunks(n_rows: int, max_rows: int) -> None:
    bounds = chunk_bounds(n_rows, max_rows)
    sizes = np.diff(bounds)
    assert bounds[0] == 0 and bounds[-1] == n_rows and (sizes >= 0).all()
    assert len(sizes) == max(1, -(-n_rows // max_rows))  # ceil(n / max), at least one call
    assert sizes.max() <= max_rows
    assert sizes.max() - sizes.min() <= 1


def test_chunked_scoring_equals_one_call(model_dir: Path) -> None:
    from models.runtime.card import load_model_dir

    model = load_model_dir(model_dir)
    x = np.random.default_rng(5).uniform(1, 50, (1001, len(model.variables))).astype(np.float32)
    whole = OnnxScorer(model.scorer_path, model.latent_dim, max_rows=1 << 20).score(x)
    chunked = OnnxScorer(model.scorer_path, model.latent_dim, max_rows=97).score(x)
    for a, b in zip(whole, chunked, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_send_and_recv_frames_match_pyzmq_multipart() -> None:
    ctx = zmq.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    try:
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push.connect(f"tcp://127.0.0.1:{port}")
        arrays = [np.arange(7, dtype="<f4"), np.zeros((3, 2), "<u8"), np.empty(0, "<f4")]
        frames = [b"header", *[memoryview(a).cast("B") if a.size else b"" for a in arrays]]
        expected = [b"header", *[a.tobytes() for a in arrays]]
        send_frames(push, frames)  # ours -> pyzmq's receive
        assert pull.poll(5000)
        assert pull.recv_multipart() == expected
        push.send_multipart(expected)  # pyzmq's send -> ours
        assert pull.poll(5000)
        assert recv_frames(pull, zmq.NOBLOCK) == expected
        send_frames(push, [b"single"])
        assert pull.poll(5000) and recv_frames(pull) == [b"single"]
        with pytest.raises(zmq.Again):
            recv_frames(pull, zmq.NOBLOCK)
    finally:
        push.close(0)
        pull.close(0)
        ctx.term()
