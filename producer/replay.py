"""The producer's main loop: read chunks, pace them to the schedule, frame, send, track acks.

Data goes out on a PUSH socket that binds ``bind``; acknowledgements come back on a PULL socket
that binds ``ack_bind``. The bounded window of unacknowledged batches is the flow control: when
it is full the loop waits (or, with ``drop_on_overload``, drops and counts the batch). On stop
(end of input, --max-events, --duration or SIGINT/SIGTERM) it stops reading, waits up to
``drain_timeout`` for the window to drain, resending as needed, and returns its report.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from emulator.runtime import wire
from emulator.runtime.heap import freeze_startup_heap
from emulator.runtime.link_security import require_keys
from emulator.runtime.metrics import Metrics
from emulator.runtime.zmq_frames import send_frames
from producer.config import ProducerConfig
from producer.framing import EventBlock, batch_bounds, message_columns
from producer.jet_screen import InputCounts
from producer.rate import Schedule
from producer.reader import FilePlan, ReaderSpec
from producer.resume import Resume
from producer.source import event_source, prefetch
from producer.window import Window

STATUS_EVERY_S = 5.0
BLOCKED_NOTICE_S = 1.0
SINK_FULL_FRESH_S = 3.0  # a "full" ack counts this long (the sink repeats it every second while full)
SINK_FULL_GRACE_S = 3.0  # how long a drain waits on a sink that reports it is out of space
WAITING_NOTE_S = 10.0  # how often "waiting for a first encoder" is logged
LATE_S = 0.005
ACK_MAX_BYTES = 1 << 20  # a batch sent this much behind its scheduled time counts as late


log = logging.getLogger("aetrig.produce")


class Replayer:
    """One producer run. Call :meth:`run` once; :meth:`request_stop` may be called from a signal handler."""

    def __init__(self, cfg: ProducerConfig, files: Sequence[Path], spec: ReaderSpec, variables: Sequence[str],
                 manifest: dict[str, Any], metrics: Metrics, context: zmq.Context | None = None,
                 plans: Sequence[FilePlan] | None = None, resume: Resume | None = None):
        self.cfg, self.files, self.spec, self.variables = cfg, list(files), spec, list(variables)
        self.plans = plans
        self.manifest, self.metrics = manifest, metrics
        self.events_counter = metrics.events.labels(stage="producer")  # looked up once: counted per batch
        self.jets_counter = metrics.jets.labels(stage="producer")
        self.run_id = int(manifest["run_id"])
        self.manifest_sha256 = wire.sha256_hex(wire.canonical_json(manifest))  # named in every events header
        self.ctx = context or zmq.Context.instance()
        self.window = Window(cfg.window, cfg.resend_timeout)
        self.schedule = Schedule(cfg.pattern, cfg.rate, cfg.seed, cfg.train_ms / 1e3, cfg.gap_ms / 1e3)
        self.stop_reason: str | None = None
        self.seq = 0
        self.next_event_id = 0
        self.produced = self.jets = self.dropped = self.dropped_batches = 0
        self.skipped_recorded = 0  # events a restarted producer found recorded already (counted as produced)
        self.resume = resume  # what the recording holds of this run (a restarted producer), or None
        if resume is not None:
            self.seq = resume.first_seq
        self.input_counts = InputCounts()  # what the input screen dropped (producer.jet_screen; reader thread)
        self.rejected = dict.fromkeys(wire.REJECT_REASONS, 0)
        self.foreign_acks = 0
        self.sink_full = False
        self.sink_full_at = 0.0  # monotonic time of the last "full" acknowledgement
        self.sink_full_reports = 0
        self.resends_held = 0
        self.blocked_seconds = 0.0
        self.t0 = self.t_last_send = 0.0
        self.lag_max = self.lag_sum = 0.0  # send time behind schedule, per batch
        self.late_batches = 0
        self._last_status = 0.0
        self._status_events = 0
        self.push: zmq.Socket | None = None
        self.acks: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None

    # ---- sockets -------------------------------------------------------------------------
    def open(self) -> None:
        self.push = self.ctx.socket(zmq.PUSH)
        self.acks = self.ctx.socket(zmq.PULL)
        self.acks.setsockopt(zmq.MAXMSGSIZE, ACK_MAX_BYTES)  # an ack is a few kB: a larger one drops its sender
        self.acks.rcvhwm = 10000
        for sock in (self.push, self.acks):
            sock.setsockopt(zmq.LINGER, 0)
        if self.cfg.curve_keys:  # only encoders may pull events, only the sink may acknowledge
            from emulator.runtime.curvezmq import secure_server

            secure_server(self.push, self.cfg.curve_keys, "data")
            secure_server(self.acks, self.cfg.curve_keys, "acks")
        else:
            require_keys(self.cfg.curve_keys, self.cfg.plaintext)
            log.warning("plaintext links (--plaintext): any local process may pull events or acknowledge")
        # watch connections from before the bind on, so an encoder that connects at once is not missed
        self._monitor = self.push.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.push.bind(self.cfg.bind)
        self.acks.bind(self.cfg.ack_bind)

    def close(self) -> None:
        if self._monitor is not None and not self._monitor.closed:
            self.push.disable_monitor()
            self._monitor.close(0)
        for sock in (self.push, self.acks):
            if sock is not None:
                sock.close(0)
        if self.cfg.curve_keys:
            from emulator.runtime.curvezmq import stop_authenticators

            stop_authenticators(self.ctx)

    def request_stop(self, reason: str = "signal") -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    # ---- acks and resends ----------------------------------------------------------------
    def _handle_ack(self, frame: bytes) -> None:
        try:
            run_id, seqs, full = wire.decode_ack(frame)
        except wire.WireError as err:
            self._reject_ack(err.reason)
            return
        if run_id != self.run_id:
            self.foreign_acks += 1
            return
        self.window.ack(seqs, time.monotonic())
        if full and not self.sink_full:
            self.sink_full_reports += 1
            log.info("BACKPRESSURE: the sink reports it is out of space (disk full or --max-bytes); it stops "
                     "acknowledging and the producer holds its window (%d/%d batches)", len(self.window),
                     self.cfg.window)
        elif not full and self.sink_full:
            log.info("backpressure released: the sink acknowledges again")
        self.sink_full = full
        if full:
            self.sink_full_at = time.monotonic()

    @property
    def batches_sent(self) -> int:
        return self.seq - (self.resume.first_seq if self.resume is not None else 0)

    def _reject_ack(self, reason: str) -> None:
        self.rejected[reason] += 1
        self.metrics.rejected.labels(reason=reason).inc()

    @property
    def sink_full_now(self) -> bool:
        """The sink said it is out of space, and recently (a restarted sink says nothing until data comes)."""
        return self.sink_full and time.monotonic() - self.sink_full_at < SINK_FULL_FRESH_S

    def _resend_due(self) -> None:
        now = time.monotonic()
        due = self.window.due(now)
        if due and self.sink_full_now:
            # the sink holds what it has and says it is full: copies would only pile up; it is counted
            self.resends_held += len(due)
            for item in due:
                self.window.hold(item, now)
            return
        for item in due:
            try:
                send_frames(self.push, item.frames, zmq.NOBLOCK)
            except zmq.Again:
                return  # no peer can take it now; retried on the next service
            self.window.mark_resent(item, now)

    def poll_acks_and_resend(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for acks, handle all that arrived, resend what is due."""
        if self.acks.poll(max(0, int(timeout_s * 1000))):
            while True:
                try:
                    frames = self.acks.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(frames) != 1:
                    self._reject_ack("frame_count")
                    continue
                try:
                    self._handle_ack(frames[0])
                except Exception:  # a bug must not stop the producer: count it, keep running
                    log.exception("internal error while handling an acknowledgement")
                    self._reject_ack("internal_error")
        self._resend_due()
        self.metrics.inflight_batches.set(len(self.window))
        self._maybe_status()

    def _wait_until(self, target: float) -> None:
        """Sleep to the absolute monotonic time ``target`` while servicing acks; never accumulates drift."""
        while self.stop_reason is None:
            left = target - time.monotonic()
            if left <= 0:
                return
            if left > 0.002:
                self.poll_acks_and_resend(min(left - 0.001, 0.05))
            else:
                time.sleep(left)

    # ---- sending -------------------------------------------------------------------------
    def _send_new(self, frames: list[Any]) -> bool:
        """Send a new batch, waiting while no peer can take it; False if stopped meanwhile."""
        while True:
            try:
                send_frames(self.push, frames, zmq.NOBLOCK)
                return True
            except zmq.Again:
                if self.stop_reason is not None:
                    return False
                self.poll_acks_and_resend(0.01)

    def send_batch(self, block: EventBlock, send_at: float) -> None:
        """Pace, apply flow control, and send one batch (or drop it in deadtime mode). Events the recording
        already holds (``resume``: a restarted producer) are counted as produced and not sent again."""
        n = len(block)
        pieces = [(0, n)] if self.resume is None else self.resume.unrecorded(self.next_event_id, n)
        if not pieces:  # every event already recorded: no wait, no send
            self._count_sent(block, n, sent=False)
            return
        self._wait_until(self.t0 + send_at)
        if self.stop_reason is not None:
            return
        lag = time.monotonic() - (self.t0 + send_at)
        self.lag_max = max(self.lag_max, lag)
        self.lag_sum += lag
        self.late_batches += lag > LATE_S
        done = 0
        offsets = block.jet_offsets() if pieces != [(0, n)] else None
        for a, b in pieces:
            if a > done:  # recorded before the restart: skipped
                self._count_sent(block.slice(done, a, offsets), a - done, sent=False)
            part = block if (a, b) == (0, n) else block.slice(a, b, offsets)
            if not self._send_part(part):
                return
            done = b
        if done < n:
            self._count_sent(block.slice(done, n, offsets), n - done, sent=False)

    def _send_part(self, block: EventBlock) -> bool:
        """Wait for a window slot (or drop in deadtime mode) and send ``block`` as one batch; False if stopped."""
        n = len(block)
        if self.window.full:
            if self.cfg.drop_on_overload:
                self.dropped += n
                self.dropped_batches += 1
                self.next_event_id += n
                self.metrics.dropped.labels(stage="producer").inc(n)
                return True
            start = time.monotonic()
            noticed = False
            while self.window.full and self.stop_reason is None:
                self.poll_acks_and_resend(0.02)
                if self.cfg.duration and time.monotonic() - self.t0 > self.cfg.duration:
                    self.request_stop("duration")
                if not noticed and time.monotonic() - start > BLOCKED_NOTICE_S:
                    noticed = True
                    log.info("backpressure: window full (%d batches unacknowledged) for %g s, waiting for the sink",
                             self.cfg.window, BLOCKED_NOTICE_S)
            self.blocked_seconds += time.monotonic() - start
            if self.stop_reason is not None:
                return False
        cols = message_columns(block, self.next_event_id)
        frames = wire.encode(wire.KIND_EVENTS, self.run_id, self.seq, cols, t_send=time.time(),
                             rate_hz=self.cfg.rate, manifest_sha256=self.manifest_sha256)
        if not self._send_new(frames):
            return False
        now = time.monotonic()
        self.window.add(self.seq, frames, n, now)
        self.t_last_send = now
        self.seq += 1
        self._count_sent(block, n, sent=True)
        self.metrics.inflight_batches.set(len(self.window))
        return True

    def _count_sent(self, block: EventBlock, n: int, sent: bool) -> None:
        """``n`` events produced: sent now, or (not ``sent``) already recorded before a restart."""
        n_jets = int(block.n_jets.sum(dtype=np.uint64))
        self.next_event_id += n
        self.produced += n
        self.jets += n_jets
        if not sent:
            self.skipped_recorded += n
        self.events_counter.inc(n)
        self.jets_counter.inc(n_jets)

    def _maybe_status(self) -> None:
        now = time.monotonic()
        if now - self._last_status < STATUS_EVERY_S:
            return
        dt = now - self._last_status
        rate = (self.produced - self._status_events) / dt if dt > 0 else 0.0
        self._last_status, self._status_events = now, self.produced
        log.info("%d events, %.0f events/s (declared %g), in flight %d/%d, resent %d, dropped %d", self.produced, rate,
                 self.cfg.rate, len(self.window), self.cfg.window, self.window.resent_batches, self.dropped)

    def wait_for_consumer(self) -> None:
        """Start the clock only once a first encoder has connected (no initial catch-up burst)."""
        monitor = self._monitor
        try:
            start = last_note = time.monotonic()
            while self.stop_reason is None:
                if monitor.poll(100):
                    monitor.recv_multipart()
                    if time.monotonic() - start > 1.0:
                        log.info("first consumer connected after %.1f s; starting the clock", time.monotonic() - start)
                    return
                if time.monotonic() - last_note > WAITING_NOTE_S:
                    last_note = time.monotonic()
                    log.info("waiting for a first encoder to connect to %s", self.cfg.bind)
        finally:
            self.push.disable_monitor()
            monitor.close(0)

    # ---- the run -------------------------------------------------------------------------
    def _send_block(self, block: EventBlock, final: bool) -> EventBlock:
        """Send the batches of ``block`` that are complete; return the leftover events."""
        bounds, used = batch_bounds(block.times, self.cfg.events_per_message, self.cfg.max_delay_ms / 1e3, final)
        offsets = block.jet_offsets()
        for start, stop, send_at in bounds:
            if self.cfg.duration and (send_at > self.cfg.duration
                                      or time.monotonic() - self.t0 > self.cfg.duration):
                self.request_stop("duration")
            if self.stop_reason is not None:
                break
            self.send_batch(block.slice(start, stop, offsets), send_at)
        return block.slice(used, len(block), offsets)

    def _count_input(self, found: InputCounts) -> None:
        self.input_counts.add(found)
        for reason, n in found.jets_dropped().items():
            if n:
                self.metrics.input_jets_dropped.labels(reason=reason).inc(n)
        if found.events_with_dropped_jets:
            self.metrics.input_events_altered.labels(reason="bad_values").inc(found.events_with_dropped_jets)
        if found.events_over_jet_cap:
            self.metrics.input_events_altered.labels(reason="over_cap").inc(found.events_over_jet_cap)

    def run(self) -> dict[str, Any]:
        """Replay until a stop condition, drain, and return the report."""
        if self.push is None:
            self.open()
        source = prefetch(event_source(self.files, self.spec, self.variables, self.cfg.loops, self.cfg.max_events,
                                       on_input_counts=self._count_input, plans=self.plans))
        first = next(source, None)  # read the first chunk before the clock starts
        self.wait_for_consumer()
        freeze_startup_heap()
        self.t0 = self._last_status = time.monotonic()
        wall0 = time.time()
        pending: EventBlock | None = None
        for block in itertools.chain([first] if first is not None else [], source):
            if self.stop_reason is not None:
                break
            block.times = self.schedule.next(len(block))
            if pending is not None and len(pending):
                block = EventBlock.concat([pending, block])
            pending = self._send_block(block, final=False)
        else:
            if pending is not None and len(pending) and self.stop_reason is None:
                self._send_block(pending, final=True)
            if self.stop_reason is None:
                self.stop_reason = "max_events" if self.cfg.max_events and self.produced >= self.cfg.max_events \
                    else "input_exhausted"
        source.close()  # stops the reader thread
        t_stop = time.monotonic()
        drained = self.drain()
        report = self.report(t_stop, time.monotonic(), wall0, drained)
        log.info("stopped (%s): %d events in %d batches, achieved %.1f Hz, resent %d, dropped %d, unacknowledged %d",
                 self.stop_reason, self.produced, self.batches_sent, report["achieved_rate_hz"],
                 report["batches_resent"], self.dropped, report["unacked_events"])
        return report

    def drain(self) -> bool:
        """Wait up to drain_timeout for every in-flight batch to be acknowledged (resending as needed)."""
        deadline = time.monotonic() + self.cfg.drain_timeout
        if len(self.window):
            log.info("draining %d in-flight batches (up to %g s)", len(self.window), self.cfg.drain_timeout)
        full_since: float | None = None
        while len(self.window) and time.monotonic() < deadline:
            self.poll_acks_and_resend(0.02)
            if self.sink_full_now:  # out of space: waiting the whole drain timeout would not help
                full_since = full_since or time.monotonic()
                if time.monotonic() - full_since > SINK_FULL_GRACE_S:
                    log.info("the sink is out of space: giving up the drain after %g s", SINK_FULL_GRACE_S)
                    break
            else:
                full_since = None
        self.metrics.inflight_batches.set(len(self.window))
        if len(self.window):
            log.warning("%d batches (%d events) still unacknowledged after %g s", len(self.window),
                        self.window.events_in_flight, self.cfg.drain_timeout)
        return not len(self.window)

    def _auth_refused(self) -> dict[str, int]:
        if not self.cfg.curve_keys:
            return {}
        from emulator.runtime.curvezmq import refusals

        return refusals(self.ctx)

    def report(self, t_stop: float, t_end: float, wall0: float, drained: bool) -> dict[str, Any]:
        send_span = self.t_last_send - self.t0 if self.batches_sent else 0.0
        achieved = self.produced / send_span if send_span > 0 else 0.0
        return {
            "stage": "producer",
            "run_id": self.run_id,
            "run_id_hex": f"{self.run_id:016x}",
            "produced": self.produced,
            "skipped_recorded": self.skipped_recorded,
            "first_seq": self.resume.first_seq if self.resume is not None else 0,
            "jets": self.jets,
            "zero_pt_jets_dropped": self.input_counts.zero_pt_jets_dropped,
            "input_checks": self.input_counts.as_dict(),
            "batches_sent": self.batches_sent,
            "batches_resent": self.window.resent_batches,
            "resend_timeout_s": {"configured": self.cfg.resend_timeout, "final": self.window.base_timeout,
                                 "ack_rtt_smoothed": self.window.srtt},
            "batches_acked": self.window.acked_batches,
            "events_acked": self.window.acked_events,
            "dropped": self.dropped,
            "dropped_batches": self.dropped_batches,
            "unacked_batches": len(self.window),
            "unacked_events": self.window.events_in_flight,
            "drained": drained,
            "declared_rate_hz": self.cfg.rate,
            "pattern": self.cfg.pattern,
            "achieved_rate_hz": achieved,
            "send_duration_s": send_span,
            "schedule_lag_s": {"mean": self.lag_sum / self.batches_sent if self.batches_sent else 0.0,
                               "max": self.lag_max,
                               "late_batches": self.late_batches, "late_threshold": LATE_S},
            "duration_s": t_stop - self.t0,
            "drain_seconds": t_end - t_stop,
            "start_time": wall0,
            "stop_reason": self.stop_reason,
            "backpressure": {"sink_full_reports": self.sink_full_reports, "sink_full_at_end": self.sink_full,
                             "blocked_seconds": round(self.blocked_seconds, 3),
                             "resends_held_while_full": self.resends_held},
            "foreign_acks": self.foreign_acks,
            "curve": bool(self.cfg.curve_keys),
            "auth_refused": self._auth_refused(),  # CurveZMQ handshakes refused, by link (data, acks)
            "unknown_acks": self.window.unknown_acks,
            "rejected": self.rejected,
            "variables": self.variables,
            "files": [str(p) for p in self.files],
        }
