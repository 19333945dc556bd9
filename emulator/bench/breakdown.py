"""Where an encoder's time goes per message, timed step by step in one thread without sockets.

The same functions the encoder service runs (wire.decode, wire.validate, microbatch.stack_inputs,
the ONNX Runtime scorer, microbatch.scored_columns, wire.encode) on the same pre-encoded events
messages, each step timed in CPU time of this thread (time.thread_time: preemption by other
processes does not count; ONNX Runtime with one intra-op thread runs on the calling thread):
microseconds per message and per jet, and each step's share. What remains between this and the
service's measured cost per jet is the socket work (pyzmq send/recv) and the main loop.
"""

from __future__ import annotations

import time
from pathlib import Path

from emulator.bench.data import JetSample, event_messages, frames_for
from emulator.encoder.microbatch import scored_columns, scored_hashes, stack_inputs
from emulator.runtime import wire
from models.runtime.card import load_model_dir

STEPS = ("decode", "validate", "stack_inputs", "onnx_score", "scored_columns", "encode")


def breakdown(model_dir: str | Path, sample: JetSample, events_per_message: int, messages_per_batch: int,
              budget_s: float) -> dict:
    """Per-step time of the encoder's message path on ``messages_per_batch`` messages per inference call."""
    from emulator.runtime.onnx_scorer import OnnxScorer

    model = load_model_dir(model_dir)
    scorer = OnnxScorer(model.scorer_path, model.latent_dim, threads=1, max_rows=1 << 20)
    card_sha256 = wire.sha256_hex(model.card_json.encode())
    msgs = event_messages(sample, model.variables, events_per_message, max(messages_per_batch * 4, 8))
    frames = [frames_for(m, i, 0.0) for i, m in enumerate(msgs)]
    spent = dict.fromkeys(STEPS, 0.0)
    n_msgs = n_jets = 0
    clock = time.thread_time
    t_end = time.perf_counter() + budget_s
    i = 0
    while time.perf_counter() < t_end or n_msgs == 0:
        group = [frames[(i + k) % len(frames)] for k in range(messages_per_batch)]
        i += messages_per_batch
        t = clock()
        decoded = [wire.decode(f, kinds=(wire.KIND_EVENTS,)) for f in group]
        t1 = clock()
        batches = [wire.validate(b) for b in decoded]
        t2 = clock()
        x, offsets = stack_inputs(batches, model.variables)
        t3 = clock()
        latent, error = scorer.score(x)
        t4 = clock()
        cols = [scored_columns(b, latent[offsets[k]:offsets[k + 1]], error[offsets[k]:offsets[k + 1]], 1e9, "<f4")
                for k, b in enumerate(batches)]
        t5 = clock()
        for b, c in zip(batches, cols, strict=True):
            wire.encode(wire.KIND_SCORED, b.run_id, b.seq, c, t_send=0.0, rate_hz=0.0, t_encoded=0.0,
                        threshold=1e9, model=model.name, encoder="bench",
                        **scored_hashes(b, card_sha256, card_sha256))
        t6 = clock()
        for step, dt in zip(STEPS, (t1 - t, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True):
            spent[step] += dt
        n_msgs += len(group)
        n_jets += len(x)
    total = sum(spent.values())
    return {"events_per_message": events_per_message, "messages_per_batch": messages_per_batch,
            "messages": n_msgs, "jets": n_jets, "jets_per_batch": n_jets / (n_msgs / messages_per_batch),
            "us_per_message": {k: v / n_msgs * 1e6 for k, v in spent.items()},
            "us_per_jet": {k: v / n_jets * 1e6 for k, v in spent.items()},
            "share": {k: v / total for k, v in spent.items()},
            "non_inference_share": 1 - spent["onnx_score"] / total}
