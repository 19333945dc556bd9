"""Where an encoder's CPU goes per message, step by step in one thread without sockets.

An in-process :class:`~emulator.encoder.service.EncoderService` (its default anomaly scoring: the shipped
event-level model when the sample has its variables) takes pre-encoded events messages of the sample, every
jet variable of the input included, as a producer sends them. Each micro-batch is timed twice, in CPU time of
this thread (time.thread_time: preemption by other processes does not count; ONNX Runtime with one intra-op
thread runs on the calling thread): whole, through the service's own ``accept`` and ``run_micro_batch`` (the
send replaced), and step by step, through the functions they call in the same order (the two passes take turns
at going first, as the second finds the data in the caches). ``bookkeeping`` is what the service spends besides
those steps (metrics, counts, checks). What the service costs on top in a running
pipeline is its socket work (pyzmq send/recv, CurveZMQ in the ZeroMQ I/O thread): ``aetrig bench --only
decision`` records each stage's CPU per event from /proc.
"""

from __future__ import annotations

import time
from pathlib import Path

from emulator.bench.data import JetSample, event_messages, frames_for
from emulator.encoder.config import EncoderConfig
from emulator.encoder.microbatch import scored_columns, scored_hashes, stack_counts, stack_inputs
from emulator.encoder.service import EncoderService
from emulator.runtime import wire
from emulator.runtime.jet_errors import computes_jet_errors
from emulator.runtime.metrics import make_metrics
from models.runtime.card import Level
from models.runtime.domain import select
from models.runtime.event_features import padded_jets

STEPS = ("parse", "stack_inputs", "compress_onnx", "anomaly_inputs", "padded_jets", "anomaly_onnx",
         "anomaly_score", "scored_columns", "encode", "bookkeeping")
#: the steps that run ONNX Runtime; the rest is the message path's Python and numpy
INFERENCE_STEPS = ("compress_onnx", "anomaly_onnx")


def _service(model_dir: str | Path, anomaly_model: str | None, max_batch_jets: int) -> EncoderService:
    config = EncoderConfig(model=Path(model_dir), connect="tcp://127.0.0.1:1", sink="tcp://127.0.0.1:1",
                           anomaly_model=anomaly_model, max_batch_jets=max_batch_jets)
    svc = EncoderService(config, metrics=make_metrics())
    svc.send = lambda push, frames: True  # type: ignore[method-assign]  # no socket: the message is built, not sent
    return svc


def _steps(svc: EncoderService, group: list[list], spent: dict[str, float]) -> None:
    """The service's message path for one micro-batch, step by step (the calls of accept + run_micro_batch)."""
    clock = time.thread_time
    t = clock()
    batches = [wire.parse_events(frames, svc.config.limits) for frames in group]
    t1 = clock()
    x, offsets = stack_inputs(batches, svc.variables)
    scoring = svc.anomaly.choose(batches[0])
    with_errors = computes_jet_errors(scoring.level, svc.config.jet_errors)
    t2 = clock()
    latent, error = svc.compress(x, with_errors)
    t3 = clock()
    counts = stack_counts(batches)
    values = scoring.inputs(batches, x, svc.variables)
    inside = scoring.inside(batches, values, counts)
    t4 = clock()
    event_score = None
    t5 = t6 = t4
    if scoring.level == Level.EVENT:
        if inside is not None and scoring.select_domain:
            values, counts = values[inside], select(inside, counts)
        padded = padded_jets(values, counts, scoring.jets)
        t5 = clock()
        ev_latent, ev_error = scoring.scorer.score(padded)
        t6 = clock()
        names = scoring.variables
        event_score = scoring.event_score(ev_error, ev_latent, values[:, names.index("pt")],
                                          values[:, names.index("eta")], counts)
    t7 = clock()
    cols = []
    ev_lo = 0
    for i, batch in enumerate(batches):
        lo, hi = offsets[i], offsets[i + 1]
        ev = None if event_score is None else event_score[ev_lo:ev_lo + batch.n_events]
        ev_lo += batch.n_events
        cols.append(scored_columns(batch, latent[lo:hi], None if error is None else error[lo:hi], 1e9,
                                   svc.latent_wire_dtype.str, event_score=ev))
    t8 = clock()
    for batch, c in zip(batches, cols, strict=True):
        wire.encode(wire.KIND_SCORED, batch.run_id, batch.seq, c, t_send=0.0, rate_hz=0.0, t_received=0.0,
                    t_encoded=0.0, threshold=1e9, model=svc.model.name, anomaly_model=scoring.model.name,
                    encoder="bench", **scored_hashes(batch, svc.card_sha256, scoring.sha256))
    t9 = clock()
    for step, dt in zip(STEPS[:-1], (t1 - t, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t8 - t7, t9 - t8),
                        strict=True):
        spent[step] += dt


def breakdown(model_dir: str | Path, sample: JetSample, events_per_message: int, messages_per_batch: int,
              budget_s: float, anomaly_model: str | None = None) -> dict:
    """Per-step CPU of the encoder's message path, ``messages_per_batch`` messages per micro-batch, and the
    service's own cost of the same micro-batches (``service_us_per_message``)."""
    variables = list(sample.columns)
    msgs = event_messages(sample, variables, events_per_message, max(messages_per_batch * 4, 8))
    frames = [frames_for(m, i, 0.0) for i, m in enumerate(msgs)]
    svc = _service(model_dir, anomaly_model, max_batch_jets=1 << 22)
    spent = dict.fromkeys(STEPS, 0.0)
    service_s = 0.0
    n_msgs = n_jets = 0
    t_end = time.perf_counter() + budget_s
    i = 0
    while time.perf_counter() < t_end or n_msgs == 0:
        picked = [(i + k) % len(frames) for k in range(messages_per_batch)]
        steps_first = (i // messages_per_batch) % 2 == 1  # alternate: the second pass finds the data in the caches
        i += messages_per_batch
        if steps_first:
            _steps(svc, [frames[j] for j in picked], spent)
        c = time.thread_time()
        for j in picked:
            svc.accept(frames[j])
        svc.run_micro_batch(None)  # type: ignore[arg-type]  # send() is replaced: no socket
        service_s += time.thread_time() - c
        if not steps_first:
            _steps(svc, [frames[j] for j in picked], spent)
        n_msgs += len(picked)
        n_jets += sum(msgs[j].n_jets for j in picked)
    spent["bookkeeping"] = max(0.0, service_s - sum(spent.values()))
    total = sum(spent.values())
    return {"events_per_message": events_per_message, "messages_per_batch": messages_per_batch,
            "messages": n_msgs, "jets": n_jets, "jets_per_batch": n_jets / (n_msgs / messages_per_batch),
            "anomaly_scoring": svc.anomaly.current.description,
            "service_us_per_message": service_s / n_msgs * 1e6,
            "service_us_per_event": service_s / (n_msgs * events_per_message) * 1e6,
            "us_per_message": {k: v / n_msgs * 1e6 for k, v in spent.items()},
            "us_per_event": {k: v / (n_msgs * events_per_message) * 1e6 for k, v in spent.items()},
            "share": {k: v / total for k, v in spent.items()},
            "non_inference_share": 1 - sum(spent[k] for k in INFERENCE_STEPS) / total}
