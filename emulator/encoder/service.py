"""The encoder service: PULL events messages, run ONNX Runtime in micro-batches, PUSH scored messages.

Flow per message: ``wire.decode`` + ``wire.validate`` (kind ``events``), the model's variables
picked by name (``jet_<var>``; a stream lacking one is rejected as ``missing_variable``), the
anomaly scoring chosen (emulator/encoder/anomaly.py: an event-level model, by default the shipped
one when the stream has its variables, or per-jet max error) and its threshold resolved, then the
message waits in a micro-batch. A micro-batch runs when it holds ``max_batch_jets`` jets, or when
no further message is queued and it holds at least ``min_batch_jets`` (waiting longer would only
add latency: inference cost per jet is flat from a few hundred jets on), or when its first message
has waited ``max_wait_ms``. ONNX Runtime runs the compression model on it in near-equal calls of at
most ``inference_chunk_jets`` (per-jet cost rises above ~2048 jets, when the activations leave the
cache): its ``scorer.onnx`` (latent and per-jet error) when per-jet scoring flags with the error or
``--jet-errors always``, else (an event-level model flags, ``--jet-errors auto``) its ``encoder.onnx``
alone (latent only: no decoder, no ``jet_error`` column). An event-level anomaly model then scores
the micro-batch's events in one call too (every session the scoring may need is loaded and warmed up
at start). Its results are split back per message and each
becomes one scored message (emulator/encoder/microbatch.py). While messages are queued they are
taken without a poll() per message. Bad messages are counted by reason and quarantined; the
service keeps running. SIGTERM/SIGINT: stop reading, score what is already queued locally, send
it, write the report, exit 0.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from emulator.encoder.anomaly import AnomalyChoice, Scoring
from emulator.encoder.config import EncoderConfig
from emulator.encoder.microbatch import (
    event_offsets,
    require_variables,
    rows_finite,
    scored_columns,
    scored_hashes,
    stack_counts,
    stack_inputs,
)
from emulator.runtime import threshold_check, wire
from emulator.runtime.heap import freeze_startup_heap
from emulator.runtime.jet_errors import computes_jet_errors
from emulator.runtime.link_security import require_keys
from emulator.runtime.metrics import Metrics, start_metrics
from emulator.runtime.onnx_scorer import LATENT_ONLY, OnnxScorer
from emulator.runtime.quarantine import Quarantine
from emulator.runtime.rejections import Rejections
from emulator.runtime.shutdown import StopFlag
from emulator.runtime.stage_report import write_report
from emulator.runtime.zmq_frames import recv_frames, send_frames
from models.runtime.card import Level, load_model_dir

log = logging.getLogger("aetrig.encode")

HWM = 200
DRAIN_MESSAGES = 2000


def possible_levels(choice: AnomalyChoice) -> set[str]:
    """The scoring levels this encoder may use: the active one, or (default, before the first message) the
    default event model's and the per-jet fallback's."""
    if choice.active is not None:
        return {choice.active.level}
    return {s.level for s in (*choice.candidates, choice.per_jet) if s is not None}


@dataclass
class _Pending:
    batch: wire.Batch
    threshold: float
    frames: list[bytes]
    scoring: Scoring
    t_received: float  # time.time() when the message was taken off the socket (decision-latency split)


class EncoderService:
    """One encoder process: sockets, ONNX session, micro-batching, metrics and the final report."""

    def __init__(self, config: EncoderConfig, stop: StopFlag | None = None, metrics: Metrics | None = None):

        self.config = config
        self.stop = stop if stop is not None else StopFlag()
        self.model = load_model_dir(config.model, verify=True)
        self.variables = list(self.model.variables)
        self.card_sha256 = wire.sha256_hex(self.model.card_json.encode())
        self.anomaly = AnomalyChoice(config, self.model)  # loads and warms up the event model's session too
        with_errors = [computes_jet_errors(level, config.jet_errors) for level in possible_levels(self.anomaly)]
        session = {"threads": config.threads, "max_rows": config.inference_chunk_jets}
        # scorer.onnx: latent + per-jet error; encoder.onnx: latent only (loaded only if some scoring needs it)
        self.scorer = OnnxScorer(self.model.scorer_path, self.model.latent_dim, **session) if any(with_errors) else None
        self.latent_encoder = (OnnxScorer(self.model.encoder_path, self.model.latent_dim, outputs=LATENT_ONLY,
                                          **session) if not all(with_errors) else None)
        self.latent_wire_dtype = np.dtype(config.latent_wire_dtype).newbyteorder("<")
        self.metrics = metrics or start_metrics(config.metrics_port)
        self.events_counter = self.metrics.events.labels(stage="encoder")
        self.jets_counter = self.metrics.jets.labels(stage="encoder")
        self.rejections = Rejections(self.metrics, Quarantine(config.quarantine), log)
        self.counts = {"messages": 0, "events": 0, "jets": 0, "flagged": 0, "micro_batches": 0, "unsent_messages": 0,
                       "out_of_domain_jets": 0}
        self.expected_flagged = 0.0  # events the threshold was set to flag (threshold_check's baseline)
        self.threshold_warned: str | None = None  # the mismatch last logged
        self.inference_seconds = 0.0
        self.inference_cpu_seconds = 0.0  # CPU time of the calling thread in ONNX Runtime (it runs there)
        self.inference_jets = 0
        self.anomaly_seconds = 0.0  # of inference_seconds: the event-level anomaly model's share
        self.anomaly_events = 0
        self.pending: list[_Pending] = []
        self.pending_jets = 0
        self.first_pending_at = 0.0
        self.started = time.time()
        self.cpu_at_start = time.process_time()  # reset when serving starts: start-up CPU is not serving cost
        self._drain_deadline: float | None = None

    @property
    def policy(self) -> Any:
        """The threshold policy of the anomaly scoring in use (emulator/encoder/threshold_policy.py)."""
        return self.anomaly.current.policy

    # ---- sockets -------------------------------------------------------------------------
    def _sockets(self) -> tuple[zmq.Context, zmq.Socket, zmq.Socket]:
        ctx = zmq.Context()
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        pull.rcvhwm, push.sndhwm = HWM, HWM
        pull.setsockopt(zmq.MAXMSGSIZE, self.config.limits.max_bytes)  # a larger frame drops its sender
        if self.config.curve_keys:  # the encoder identity, talking only to the run's producer and sink
            from emulator.runtime.curvezmq import secure_client

            secure_client(pull, self.config.curve_keys, "data")
            secure_client(push, self.config.curve_keys, "scored")
        else:
            require_keys(self.config.curve_keys, self.config.plaintext)
            log.warning("plaintext links (--plaintext): unauthenticated and unencrypted")
        pull.connect(self.config.connect)
        push.connect(self.config.sink)
        return ctx, pull, push

    @property
    def jet_errors_computed(self) -> bool | None:
        """Whether the active scoring computes ``jet_error`` (None before the default choice is made)."""
        active = self.anomaly.active
        return None if active is None else computes_jet_errors(active.level, self.config.jet_errors)

    def compress(self, x: np.ndarray, with_errors: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Latent [J, k] and per-jet error [J] (scorer.onnx), or latent and None (encoder.onnx alone)."""
        if with_errors:
            assert self.scorer is not None
            return self.scorer.score(x)
        assert self.latent_encoder is not None
        return self.latent_encoder.latents(x), None

    # ---- message handling ----------------------------------------------------------------
    def accept(self, frames: list[bytes]) -> None:
        """Decode and validate one message and queue it for the next micro-batch (or reject it)."""
        t_received = time.time()  # just taken off the socket: the encoder's receive stamp
        try:
            batch = wire.parse_events(frames, self.config.limits)
            require_variables(batch, self.variables, f"model {self.model.name!r}")
            scoring = self.anomaly.choose(batch)
            threshold = scoring.policy.for_rate(float(batch.header["rate_hz"]))
        except wire.WireError as exc:
            self.rejections.reject(exc.reason, exc.detail, frames)
            return
        except Exception as exc:  # a bug must not stop the service: count and keep the message
            log.exception("internal error while decoding a message")
            self.rejections.reject("internal_error", f"{type(exc).__name__}: {exc}", frames)
            return
        if not self.pending:
            self.first_pending_at = time.monotonic()
        self.pending.append(_Pending(batch, threshold, frames, scoring, t_received))
        self.pending_jets += batch.n_jets

    def due(self, queue_empty: bool = False) -> bool:
        """Whether the pending micro-batch should run now (``queue_empty``: no further message is waiting)."""
        if not self.pending:
            return False
        if self.pending_jets >= self.config.max_batch_jets:
            return True
        if queue_empty and self.pending_jets >= min(self.config.min_batch_jets, self.config.max_batch_jets):
            return True
        return (time.monotonic() - self.first_pending_at) * 1e3 >= self.config.max_wait_ms

    def poll_timeout_ms(self) -> int:
        """How long to wait for the next message: the rest of the pending batch's wait, else 100 ms (to notice
        signals). Rounded up: ZeroMQ takes whole milliseconds and truncating to 0 would spin."""
        if not self.pending:
            return 100
        waited_ms = (time.monotonic() - self.first_pending_at) * 1e3
        return min(100, math.ceil(max(0.0, self.config.max_wait_ms - waited_ms)))

    def run_micro_batch(self, push: zmq.Socket) -> None:
        """Score every pending message in one inference call per model and send one scored message each."""
        pending, self.pending, self.pending_jets = self.pending, [], 0
        batches = [p.batch for p in pending]
        x, offsets = stack_inputs(batches, self.variables)
        scoring = self.anomaly.active  # chosen on the first accepted message, the same for every message after
        by_event = scoring is not None and scoring.level == Level.EVENT
        with_errors = computes_jet_errors(scoring.level if scoring is not None else Level.JET, self.config.jet_errors)
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            latent, error = self.compress(x, with_errors)
            t1 = time.perf_counter()
            counts = stack_counts(batches)
            values = scoring.inputs(batches, x, self.variables) if scoring is not None else None
            inside = scoring.inside(batches, values, counts) if scoring is not None else None
            event_score = scoring.score_events(values, counts, inside) if by_event else None
        except Exception as exc:  # ONNX Runtime refused the input: find the message, keep the service up
            if len(pending) == 1:
                self.rejections.reject("internal_error", f"inference failed: {type(exc).__name__}: {exc}",
                                       pending[0].frames)
                return
            log.exception("inference on a micro-batch of %d messages failed; retrying them one by one", len(pending))
            for item in pending:
                self.pending, self.pending_jets = [item], item.batch.n_jets
                self.run_micro_batch(push)
            return
        dt = time.perf_counter() - t0
        self.inference_cpu_seconds += time.thread_time() - c0
        self.metrics.inference_seconds.observe(dt)
        self.metrics.batch_jets.observe(len(x))
        self.inference_seconds += dt
        self.inference_jets += len(x)
        if event_score is not None:
            self.anomaly_seconds += time.perf_counter() - t1
            self.anomaly_events += len(event_score)
        self.counts["micro_batches"] += 1
        outputs = {"latent": latent, "error": error, **({"event_score": event_score} if by_event else {})}
        all_finite = rows_finite(outputs)
        ev_offsets = event_offsets(batches) if by_event else None
        for i, item in enumerate(pending):
            lo, hi = offsets[i], offsets[i + 1]
            lat, err = latent[lo:hi], (error[lo:hi] if error is not None else None)
            ev = event_score[ev_offsets[i]:ev_offsets[i + 1]] if ev_offsets is not None else None
            if not all_finite and not rows_finite({"latent": lat, "error": err,
                                                   **({"event_score": ev} if ev is not None else {})}):
                self.rejections.reject("non_finite", "model output holds NaN or inf (input outside the model's "
                                       "domain)", item.frames)
                continue
            scored_jets = inside[lo:hi] if inside is not None else None
            try:
                columns = scored_columns(item.batch, lat, err, item.threshold, self.latent_wire_dtype.str,
                                         event_score=ev,
                                         scored_jets=scored_jets if item.scoring.select_domain else None)
                header = item.batch.header
                frames = wire.encode(wire.KIND_SCORED, header["run_id"], header["seq"], columns,
                                     t_send=header["t_send"], rate_hz=header["rate_hz"],
                                     t_received=item.t_received, t_encoded=time.time(),
                                     threshold=item.threshold, model=self.model.name,
                                     anomaly_model=item.scoring.model.name, encoder=self.config.id,
                                     **scored_hashes(item.batch, self.card_sha256, item.scoring.sha256))
            except Exception as exc:
                log.exception("internal error while building a scored message")
                self.rejections.reject("internal_error", f"{type(exc).__name__}: {exc}", item.frames)
                continue
            if not self.send(push, frames):
                self.counts["unsent_messages"] += 1
                continue
            n_flagged = int(columns["flag"].sum())
            self.counts["messages"] += 1
            self.counts["events"] += item.batch.n_events
            self.counts["jets"] += item.batch.n_jets
            self.counts["flagged"] += n_flagged
            self.events_counter.inc(item.batch.n_events)
            self.jets_counter.inc(item.batch.n_jets)
            self.metrics.anomalies.inc(n_flagged)
            self.count_scored(item, n_flagged, scored_jets)
        self.check_threshold()

    def count_scored(self, item: _Pending, n_flagged: int, scored_jets: np.ndarray | None) -> None:
        """Count the message's jets outside the anomaly model's domain and the events its threshold was set to
        flag (emulator/runtime/threshold_check.py)."""
        n_out = int(item.batch.n_jets - scored_jets.sum()) if scored_jets is not None else 0
        self.counts["out_of_domain_jets"] += n_out
        self.metrics.out_of_domain_jets.inc(n_out)
        fraction = item.scoring.policy.fraction(float(item.batch.header["rate_hz"]))
        if fraction is not None:
            self.expected_flagged += fraction * item.batch.n_events
            self.metrics.expected_anomalies.inc(fraction * item.batch.n_events)

    def threshold_check(self) -> dict[str, Any]:
        """The report's ``threshold_check`` block (the flagged fraction against the threshold's)."""
        scoring = self.anomaly.current
        return threshold_check.report(self.counts["events"], self.counts["flagged"], self.expected_flagged,
                                      self.counts["out_of_domain_jets"], self.counts["jets"], str(scoring.model.path))

    def check_threshold(self) -> None:
        """Log the threshold warning when the mismatch starts or changes (information only)."""
        side = threshold_check.mismatch(self.counts["events"], self.counts["flagged"], self.expected_flagged)
        if side != self.threshold_warned:
            self.threshold_warned = side
            if side is not None:
                log.warning("%s", self.threshold_check()["warning"])

    def jet_errors_text(self) -> str:
        """The start-up log line's part on per-jet errors (``--jet-errors``)."""
        setting = f"--jet-errors {self.config.jet_errors}"
        if self.scorer is None:
            return f"latents from encoder.onnx, no jet_error ({setting}: an event-level model flags)"
        if self.latent_encoder is None:
            return f"latents and jet_error from scorer.onnx ({setting})"
        return (f"latents from encoder.onnx without jet_error if the event-level model flags, else latents and "
                f"jet_error from scorer.onnx ({setting})")

    def send(self, push: zmq.Socket, frames: list[Any]) -> bool:
        """Send, waiting while the sink is slow (backpressure); after a stop, give up at the drain deadline."""
        while True:
            try:
                send_frames(push, frames, zmq.NOBLOCK)
                return True
            except zmq.Again:
                if self.stop:
                    if self._drain_deadline is None:
                        self._drain_deadline = time.monotonic() + self.config.drain_timeout_s
                    if time.monotonic() > self._drain_deadline:
                        log.error("sink does not take messages: giving up on one scored message at shutdown")
                        return False
                push.poll(100, zmq.POLLOUT)

    # ---- main loop -----------------------------------------------------------------------
    def receive_available(self, pull: zmq.Socket, limit: int) -> tuple[int, bool]:
        """Take queued messages without waiting, up to the micro-batch size or ``limit`` messages.

        Returns (messages taken, whether the socket was found empty)."""
        taken = 0
        while taken < limit and self.pending_jets < self.config.max_batch_jets:
            try:
                frames = recv_frames(pull, zmq.NOBLOCK)
            except zmq.Again:
                return taken, True
            taken += 1
            self.accept(frames)
        return taken, False

    def run(self) -> dict[str, Any]:
        """Serve until stopped; return (and write) the report."""
        ctx, pull, push = self._sockets()
        freeze_startup_heap()
        self.cpu_at_start = time.process_time()
        log.info("encoder %s: model %s (%s), %s, %s, %d thread(s), connected to %s -> %s",
                 self.config.id, self.model.name, self.variables, self.anomaly.start_up_text(),
                 self.jet_errors_text(), self.config.threads, self.config.connect, self.config.sink)
        try:
            queue_empty = True
            while not self.stop:
                # poll only when the socket was found empty; while messages are queued, take them directly
                if not queue_empty or pull.poll(self.poll_timeout_ms(), zmq.POLLIN):
                    _, queue_empty = self.receive_available(pull, limit=HWM)
                if self.due(queue_empty):
                    self.run_micro_batch(push)
            log.info("stopping (%s): scoring what is queued locally", self.stop.signal_name or "stop")
            drained = 0
            while drained < DRAIN_MESSAGES:
                got, _ = self.receive_available(pull, limit=DRAIN_MESSAGES - drained)
                if self.pending:
                    self.run_micro_batch(push)
                if not got:
                    break
                drained += got
        finally:
            pull.close(linger=0)
            push.close(linger=int(self.config.drain_timeout_s * 1000))
            ctx.term()
        report = self.report()
        write_report(self.config.report, report)
        return report

    def report(self) -> dict[str, Any]:
        """The stage report (``--report``). ``messages``/``events``/``jets``/``flagged`` count scored
        messages handed to the sink socket; delivery is confirmed only by the sink's acks to the producer."""
        elapsed = time.time() - self.started
        serving_cpu = time.process_time() - self.cpu_at_start
        return {
            "stage": "encoder", "id": self.config.id, "model": self.model.name, "model_version": self.model.version,
            "variables": self.variables, **self.policy.report(), "anomaly": self.anomaly.report(),
            "anomaly_inference_seconds": self.anomaly_seconds, "anomaly_events": self.anomaly_events,
            **self.counts, **self.rejections.report(), "threshold_check": self.threshold_check(),
            "inference_seconds": self.inference_seconds, "inference_jets": self.inference_jets,
            "inference_jets_per_s": self.inference_jets / self.inference_seconds if self.inference_seconds else None,
            "inference_cpu_seconds": self.inference_cpu_seconds, "serving_cpu_seconds": serving_cpu,
            "non_inference_cpu_us_per_message": ((serving_cpu - self.inference_cpu_seconds) / self.counts["messages"]
                                                 * 1e6 if self.counts["messages"] else None),
            "elapsed_seconds": elapsed, "threads": self.config.threads,
            "latent_wire_dtype": self.config.latent_wire_dtype,
            "jet_errors": self.config.jet_errors, "jet_error_computed": self.jet_errors_computed,
            "compression_graph": {True: "scorer.onnx", False: "encoder.onnx", None: None}[self.jet_errors_computed],
            "max_batch_jets": self.config.max_batch_jets, "max_wait_ms": self.config.max_wait_ms,
            "min_batch_jets": self.config.min_batch_jets, "inference_chunk_jets": self.config.inference_chunk_jets,
            "stopped_by": self.stop.signal_name,
        }
