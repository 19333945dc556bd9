"""Encoder numerics against independent computations.

* event scores and flags (pure functions) against a plain per-event Python loop;
* a real `aetrig encode` process: its latents and errors equal an in-process ONNX Runtime session
  run here on the same jets, event scores equal max per event computed here, flags follow the
  threshold, raw jets of flagged events are the input jets, identity columns pass through.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import zmq
from encsink_support import (
    ROOT,
    addr,
    close_context,
    events_frames,
    make_tiny_model,
    read_report,
    stage_socket,
    start,
    stop,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.encoder.microbatch import event_scores, flag_events, stack_inputs
from emulator.runtime import wire
from models.runtime.card import load_model_dir
from models.runtime.domain import Domain


def loop_scores(error: np.ndarray, counts: np.ndarray) -> np.ndarray:
    out, pos = [], 0
    for c in counts:
        out.append(max(error[pos:pos + c]) if c else 0.0)
        pos += c
    return np.array(out, np.float32)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 7), max_size=60), st.integers(0, 2**32 - 1))
def test_event_scores_equal_per_event_max(counts: list[int], seed: int) -> None:
    counts_a = np.array(counts, np.uint32)
    error = np.random.default_rng(seed).exponential(1.0, int(counts_a.sum())).astype(np.float32)
    scores = event_scores(error, counts_a)
    assert np.array_equal(scores, loop_scores(error, counts_a))
    flags = flag_events(scores, counts_a, -1.0)  # even a negative threshold never flags a zero-jet event
    assert np.array_equal(flags.astype(bool), counts_a > 0)


def test_stack_inputs_orders_columns_by_model_variables() -> None:
    rng = np.random.default_rng(3)
    batches = [wire.decode(events_frames(1, s, np.array(c), rng)) for s, c in enumerate([[2, 0], [0], [3, 1]])]
    x, offsets = stack_inputs(batches, ["m", "pt"])
    assert offsets.tolist() == [0, 2, 2, 6]
    assert np.array_equal(x[2:6, 1], batches[2].columns["jet_pt"])
    assert np.array_equal(x[:2, 0], batches[0].columns["jet_m"])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("model_name,latent_dtype,mode", [("tiny", "float32", "threshold"),
                                                          ("TLA_4D_leading", "float16", "accept-rate")])
def test_encoder_process_matches_in_process_onnxruntime(tmp_path: Path, model_name: str, latent_dtype: str,
                                                         mode: str, free_port) -> None:
    model_dir = make_tiny_model(tmp_path / "tiny") if model_name == "tiny" else ROOT / "models/zoo" / model_name
    model = load_model_dir(model_dir)
    rng = np.random.default_rng(11)
    rate_hz = 20000.0
    if mode == "threshold":
        threshold_args, threshold = ["--threshold", "8.0"], 8.0
    else:
        threshold_args = ["--accept-rate", "20"]
        threshold = model.threshold(accept_rate=20, input_rate=rate_hz)
    data_p, sink_p = free_port(), free_port()
    ctx = zmq.Context()
    data = stage_socket(ctx, zmq.PUSH, "data", server=True)
    sink = stage_socket(ctx, zmq.PULL, "scored", server=True)
    data.bind(addr(data_p))
    sink.bind(addr(sink_p))
    data.sndtimeo = 20000
    enc = start("encode", "--model", str(model_dir), "--connect", addr(data_p), "--sink", addr(sink_p),
                *threshold_args, "--max-batch-jets", "64", "--max-wait-ms", "5", "--latent-wire-dtype", latent_dtype,
                "--anomaly-model", "none",  # the per-jet max error: this test checks its numerics
                "--report", str(tmp_path / "enc.json"), "--id", "num", log=tmp_path / "enc.log")
    sent: dict[int, wire.Batch] = {}
    received: dict[int, wire.Batch] = {}
    try:
        plan = [rng.integers(0, 8, int(rng.integers(1, 30))) for _ in range(30)]
        plan[4] = np.array([0, 0])          # only zero-jet events
        plan[9] = np.array([60, 1, 0])       # a 60-jet event
        plan[15] = np.full(40, 5)            # 200 jets: more than one micro-batch of 64
        first = 0
        for seq, counts in enumerate(plan):
            frames = events_frames(7, seq, counts, rng, first, rate_hz=rate_hz,
                                   variables=("pt", "eta", "phi", "m", "e"))
            sent[seq] = wire.decode(frames)
            data.send_multipart(frames)
            first += len(counts)
            if seq % 7 == 0:
                time.sleep(0.003)
        deadline = time.monotonic() + 30
        while len(received) < len(plan) and time.monotonic() < deadline:
            if sink.poll(200):
                batch = wire.validate(wire.decode(sink.recv_multipart()))
                received[batch.seq] = batch
    finally:
        rc = stop(enc)
        close_context(ctx)
    assert rc == 0
    assert sorted(received) == list(range(len(plan)))

    session = ort.InferenceSession(str(model.scorer_path), providers=["CPUExecutionProvider"])
    for seq, out in received.items():
        src = sent[seq]
        assert out.kind == wire.KIND_SCORED and out.run_id == 7
        assert out.header["t_send"] == src.header["t_send"] and out.header["model"] == model.name
        assert out.header["threshold"] == float(np.float32(threshold))  # the float32 value the flags used
        for name in ("n_jets", "event_id", "file_index", "entry", "event_number"):
            assert np.array_equal(out.columns[name], src.columns[name])
        x = np.stack([src.columns[f"jet_{v}"] for v in model.variables], axis=1).astype(np.float32)
        counts = src.columns["n_jets"].astype(np.int64)
        if len(x):
            latent, _, error = session.run(["latent", "reconstruction", "error"], {"x": x})
        else:
            latent, error = np.zeros((0, model.latent_dim), np.float32), np.zeros(0, np.float32)
        got_latent = out.columns["jet_latent"]
        assert got_latent.dtype == np.dtype(latent_dtype) and got_latent.shape == (len(x), model.latent_dim)
        tol = 2e-3 if latent_dtype == "float16" else 1e-5
        np.testing.assert_allclose(got_latent.astype(np.float32), latent, rtol=tol, atol=tol)
        np.testing.assert_allclose(out.columns["jet_error"], error.reshape(-1), rtol=1e-5, atol=1e-7)
        # per-jet scoring takes the max over the jets inside the model's training domain (models/runtime/domain.py,
        # checked against a per-jet loop in tests/test_model_domain.py): TLA_4D_leading's is the leading jet
        domain = Domain.from_card(model.card)
        inside = (domain.mask(src.columns["jet_pt"], src.columns["jet_eta"], counts) if domain is not None
                  else np.ones(len(x), bool))
        want_scores = loop_scores(np.where(inside, error.reshape(-1), 0.0), counts)
        np.testing.assert_allclose(out.columns["event_score"], want_scores, rtol=1e-5, atol=1e-7)
        got_flag = out.columns["flag"].astype(bool)
        want_flag = (want_scores > threshold) & (counts > 0)
        # scores agree to ~1e-5 only (other batch composition): judge flags where the score is clear of the threshold
        clear = np.abs(want_scores - threshold) > 1e-4 * abs(threshold)
        assert np.array_equal(got_flag[clear], want_flag[clear])
        assert not got_flag[counts == 0].any()
        jet_of_flagged = np.repeat(got_flag, counts)  # raw jets follow the encoder's own flags, bit for bit
        for var in ("pt", "eta", "phi", "m", "e"):
            assert np.array_equal(out.columns[f"raw_jet_{var}"], src.columns[f"jet_{var}"][jet_of_flagged])
        assert out.header["card_sha256"] == wire.sha256_hex(model.card_json.encode())
        # the stream lacks the default event model's variables: per-jet scoring, its card is the model's own
        assert out.header["anomaly_card_sha256"] == out.header["card_sha256"]
        assert out.header["anomaly_model"] == model.name
        assert out.header["manifest_sha256"] == src.header["manifest_sha256"]
    report = read_report(tmp_path / "enc.json")
    n_events = sum(len(p) for p in plan)
    assert report["events"] == n_events and report["messages"] == len(plan)
    assert report["flagged"] == sum(int(b.columns["flag"].sum()) for b in received.values())
    assert report["micro_batches"] < len(plan)  # messages were combined into shared inference calls
    assert 0 < report["flagged"] < n_events  # the flag comparison above saw both outcomes
    assert report["inference_jets"] == sum(int(p.sum()) for p in plan)
    assert report["anomaly"]["level"] == "jet" and report["anomaly"]["setting"] == "none"


def test_flagged_jet_index_equals_the_boolean_mask() -> None:
    from emulator.encoder.microbatch import flagged_jet_index

    rng = np.random.default_rng(5)
    for _ in range(200):
        counts = rng.integers(0, 6, rng.integers(0, 40)).astype(np.uint32)
        flag = (rng.random(len(counts)) < 0.3).astype(np.uint8)
        mask = np.repeat(flag.astype(bool), counts.astype(np.int64))
        np.testing.assert_array_equal(flagged_jet_index(flag, counts), np.flatnonzero(mask))
