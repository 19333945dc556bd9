"""The sink: PULL scored messages, validate, drop duplicates, write ROOT segments in group commits,
acknowledge what each commit made durable. This module runs the loop (receive, accept, commit, ack, report);
each job is a module of its own (docs/design.md "Reliability model"):

* recovery.py: at start, finish interrupted commits, set unreadable segments aside, rebuild the dedup index,
  refuse a recording of another model or jet_error layout;
* validation.py: ``wire.parse_scored``, typed columns, the cards and manifest the sink was started with
  (expectations.py: ``wrong_model``, ``wrong_run``, ``missing_column``/``bad_column`` for jet_error); a bad
  message is counted by reason and quarantined (``--quarantine``, default OUT/quarantine), never fatal;
* dedup.py: (run_id, seq) already committed (re-acked: its first ack may have been lost) or pending, counted
  as ``duplicate_seq`` / ``duplicates_discarded``;
* pending.py and open_segments.py: group commit every ``commit_events`` events or ``commit_ms`` ms into the
  run's open segment (segment_writer.py: uproot extend, journal, fsync), THEN ``wire.encode_ack`` for every
  seq of the commit;
* failed_commit.py: a commit that fails is retried batch by batch, the culprit rejected (``internal_error``);
  a segment a failed write may have torn is never appended to again and gets an ``.entries`` mark;
* backpressure.py: ``--max-bytes`` or a full disk holds commits and acks back (``full`` acks, the
  ``aetrig_sink_full`` gauge, episodes in the report), retried every second;
* SIGTERM/SIGINT: stop reading, take what is queued locally, commit, ack, close, report, exit 0.

Report keys (``--report``): stage, recorded_events, recorded_jets, flagged_events,
duplicates_discarded (events), duplicate_batches, batches (unique committed), commits, acks_sent,
jet_error_recorded (true or false, as started),
acks_dropped, rejected {reason: n}, rejected_messages, quarantine {...}, latency_seconds {decision,
commit: {p50, p90, p99, p999, mean, max, events}}, commit_duration_seconds (per commit: extend, journal,
fsync, ack), files [...], bytes, backpressure {episodes,
full_at_exit, last_reason, max_bytes, uncommitted_events_at_exit, ...}, out, elapsed_seconds.
"""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path
from typing import Any

import zmq

from consumer.sink.backpressure import Backpressure, FullState, check_space, commit_estimate
from consumer.sink.config import SinkConfig
from consumer.sink.dedup import duplicate_of
from consumer.sink.expectations import Expectations
from consumer.sink.failed_commit import EntryMarks, commit_one_by_one
from consumer.sink.open_segments import OpenSegments
from consumer.sink.pending import PendingBatches, Received
from consumer.sink.receiver import Receiver
from consumer.sink.recovery import recover_recording
from consumer.sink.scored_chunk import chunk_nbytes
from consumer.sink.validation import Validator
from emulator.runtime import wire
from emulator.runtime.heap import freeze_startup_heap
from emulator.runtime.latency_stats import DECISION_HOPS, LatencyRecorder, decision_hops
from emulator.runtime.link_security import require_keys
from emulator.runtime.metrics import Metrics, make_sink_metrics, start_metrics
from emulator.runtime.quarantine import Quarantine
from emulator.runtime.recording import LOCK_NAME, SEGMENT_DIR, Layout, lock_recording, segment_paths, unlock_recording
from emulator.runtime.rejections import Rejections
from emulator.runtime.shutdown import StopFlag
from emulator.runtime.stage_report import write_report
from emulator.runtime.zmq_frames import recv_frames

log = logging.getLogger("aetrig.sink")

HWM = 200
DRAIN_MESSAGES = 5000
#: the longest the main loop takes received messages before it looks at commits and acks again
TAKE_SLICE_SECONDS = 0.05


class Sink:
    """One sink process."""

    def __init__(self, config: SinkConfig, stop: StopFlag | None = None, metrics: Metrics | None = None):
        self.config = config
        self.stop = stop if stop is not None else StopFlag()
        self.out = Path(config.out)
        self.seg_dir = self.out / SEGMENT_DIR
        self.seg_dir.mkdir(parents=True, exist_ok=True)
        self.lock_fd = lock_recording(self.out)
        if self.lock_fd is None:
            raise OSError(f"{self.out} is being written by another running sink ({LOCK_NAME} is locked)")
        try:
            self.metrics = metrics or start_metrics(config.metrics_port)
            self.sink_metrics = make_sink_metrics(self.metrics.registry)
            self.rejections = Rejections(self.metrics, Quarantine(
                config.quarantine if config.quarantine is not None else self.out / "quarantine"), log)
            self.expected = Expectations.load(config.model, config.anomaly_model, config.manifest, config.jet_errors)
            recovered = recover_recording(self.out, self.expected)
        except BaseException:
            unlock_recording(self.lock_fd)
            raise
        self.validator = Validator(config, self.expected)
        self.max_pending = config.max_pending_events or max(4 * config.commit_events, 10000)
        self.committed = recovered.committed
        self.pending = PendingBatches()
        self.segments = OpenSegments(self.seg_dir, config, self.expected, recovered)
        self.marks = EntryMarks()
        self.full = FullState(self.sink_metrics)
        self.recovered = recovered  # what the segments found at start hold (jets, damaged, summary)
        self.counts = {"recorded_events": 0, "recorded_jets": 0, "flagged_events": 0, "duplicates_discarded": 0,
                       "duplicate_batches": 0, "batches": 0, "commits": 0, "acks_sent": 0, "acks_dropped": 0,
                       "messages": 0, "reacked_batches": 0}
        self.commit_duration = LatencyRecorder()
        self.started = time.time()

    # ---- sockets ----------------------------------------------------------------------------
    def _sockets(self) -> tuple[zmq.Context, zmq.Socket, zmq.Socket | None]:
        ctx = zmq.Context()
        pull = ctx.socket(zmq.PULL)
        pull.rcvhwm = HWM
        pull.setsockopt(zmq.MAXMSGSIZE, self.config.limits.max_bytes)  # a larger frame drops its sender
        if self.config.curve_keys:  # only encoders may push scored messages
            from emulator.runtime.curvezmq import secure_server

            secure_server(pull, self.config.curve_keys, "scored")
        else:
            require_keys(self.config.curve_keys, self.config.plaintext)
            log.warning("plaintext links (--plaintext): any local process may push scored messages")
        pull.bind(self.config.bind)
        ack = None
        if self.config.ack_connect:
            ack = ctx.socket(zmq.PUSH)
            ack.sndhwm = 10000
            if self.config.curve_keys:  # the sink identity: the only one the producer takes acks from
                from emulator.runtime.curvezmq import secure_client

                secure_client(ack, self.config.curve_keys, "acks")
            ack.connect(self.config.ack_connect)
        return ctx, pull, ack

    def send_ack(self, ack: zmq.Socket | None, run_id: int, seqs: list[int], full: bool = False) -> None:
        if ack is None:
            return
        try:
            ack.send(wire.encode_ack(run_id, seqs, full), zmq.NOBLOCK)
            self.counts["acks_sent"] += 1
        except zmq.Again:  # producer gone or slow: it resends, and the duplicate is re-acked
            self.counts["acks_dropped"] += 1

    def send_full_ack(self, ack: zmq.Socket | None) -> None:
        for run_id in self.pending.run_ids() or self.committed.run_ids() or {0}:
            self.send_ack(ack, run_id, [], full=True)
        self.full.full_acks_sent()

    # ---- messages ---------------------------------------------------------------------------
    def accept(self, frames: list[bytes], ack: zmq.Socket | None, t_received: float | None = None) -> None:
        """Validate one scored message; queue it for the next commit, or discard/reject it."""
        t_received = time.time() if t_received is None else t_received
        self.counts["messages"] += 1
        try:
            batch, layout, manifest = self.validator.validate(frames)
        except wire.WireError as exc:
            self.rejections.reject(exc.reason, exc.detail, frames)
            return
        except Exception as exc:
            log.exception("internal error while validating a message")
            self.rejections.reject("internal_error", f"{type(exc).__name__}: {exc}", frames)
            return
        duplicate = duplicate_of((batch.run_id, batch.seq), self.committed, self.pending)
        if duplicate is not None:
            self.counts["duplicates_discarded"] += batch.n_events
            self.counts["duplicate_batches"] += 1
            self.metrics.duplicates.inc(batch.n_events)
            self.rejections.reject("duplicate_seq", f"run {batch.run_id:016x} seq {batch.seq} already {duplicate}",
                                   frames)
            if duplicate == "committed":
                self.send_ack(ack, batch.run_id, [batch.seq])
                self.counts["reacked_batches"] += 1
            return
        latency = t_received - float(batch.header["t_send"])
        self.metrics.decision_latency.observe(latency, batch.n_events)
        for hop, seconds in (decision_hops(batch.header, t_received) or {}).items():
            self.metrics.decision_hops.labels(hop=hop).observe(seconds, batch.n_events)
        self.pending.add(Received(batch, t_received, frames, layout, manifest))

    # ---- commits ----------------------------------------------------------------------------
    @property
    def holding_all(self) -> bool:
        """Whether the uncommitted messages fill what the sink may hold (events, or bytes): reading stops."""
        return self.pending.events >= self.max_pending or self.pending.nbytes >= self.config.max_pending_bytes

    def commit_due(self) -> bool:
        if not self.pending or self.full.waiting():
            return False
        return (self.pending.events >= self.config.commit_events or self.pending.waited_ms() >= self.config.commit_ms
                or self.holding_all)

    def commit(self, ack: zmq.Socket | None) -> bool:
        """Write every pending batch durably, then ack them. False (and full) on backpressure."""
        if not self.pending:
            return True
        groups = self.pending.groups()
        estimate = commit_estimate([chunk_nbytes([i.batch for i in items]) for items in groups.values()])
        t_start = time.perf_counter()
        try:
            check_space(self.out, self.segments.recorded_bytes, estimate, self.config.max_bytes,
                        self.config.min_free_bytes)
            if not self.marks.write():
                raise Backpressure("cannot yet mark the valid entries of a segment broken by a failed write")
            for (run_id, layout), items in groups.items():
                self.commit_group(run_id, layout, items, ack)
        except Backpressure as exc:
            self.enter_full(str(exc), ack)
            return False
        except OSError as exc:
            reason = "disk full (ENOSPC)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else f"write error {exc}"
            self.enter_full(f"{reason} while committing: {exc}", ack)
            return False
        self.pending.clear()
        self.counts["commits"] += 1
        self.commit_duration.add(time.perf_counter() - t_start)
        recorded = self.segments.recorded_bytes
        self.sink_metrics.recorded_bytes.set(recorded)
        jets = self.recovered.jets + self.counts["recorded_jets"]
        self.sink_metrics.bytes_per_jet.set(recorded / jets if jets else 0.0)
        self.full.leave()
        return True

    def commit_group(self, run_id: int, layout: Layout, items: list[Received], ack: zmq.Socket | None) -> None:
        """Commit the pending batches of one run and layout to its segment, then ack them; a failure is isolated
        (consumer/sink/failed_commit.py). OSError propagates (backpressure)."""
        try:
            self.segments.commit(run_id, layout, items[0].manifest, [i.batch for i in items])
        except OSError:
            writer = self.segments.drop(run_id)  # never appended to again: it may end in a half-written extend
            if writer is not None:
                self.marks.add(writer.path, writer.n_events)
                self.marks.write()
            raise
        except Exception:  # a bug, or data uproot cannot write: never crash, isolate the culprit
            log.exception("a commit of %d batches failed; retrying them one by one", len(items))
            self.segments.drop(run_id)
            commit_one_by_one(self.segments, run_id, layout, items,
                              lambda done: self.finish_group(run_id, done, ack), self.reject_unwritable)
            return
        self.finish_group(run_id, items, ack)

    def reject_unwritable(self, item: Received, exc: Exception) -> None:
        """A batch that cannot be written even alone: rejected (internal_error), never acknowledged."""
        batch = item.batch
        self.pending.remove([item])
        self.rejections.reject("internal_error", f"cannot write run {batch.run_id:016x} seq {batch.seq}: "
                               f"{type(exc).__name__}: {exc}", item.frames)

    def finish_group(self, run_id: int, items: list[Received], ack: zmq.Socket | None) -> None:
        """Book-keeping after a durable commit of ``items``: counts, latencies, acks."""
        t_commit = time.time()
        for item in items:
            batch = item.batch
            self.metrics.commit_latency.observe(t_commit - float(batch.header["t_send"]), batch.n_events)
            self.committed.add(run_id, batch.seq)
            self.counts["recorded_events"] += batch.n_events
            self.counts["recorded_jets"] += batch.n_jets
            self.counts["flagged_events"] += int(batch.columns["flag"].sum())
            self.counts["batches"] += 1
            self.metrics.events.labels(stage="sink").inc(batch.n_events)
            self.metrics.jets.labels(stage="sink").inc(batch.n_jets)
        self.pending.remove(items)
        self.send_ack(ack, run_id, [i.batch.seq for i in items])

    def enter_full(self, reason: str, ack: zmq.Socket | None) -> None:
        self.full.enter(reason, self.pending.events)
        self.send_full_ack(ack)

    # ---- main loop ---------------------------------------------------------------------------
    def receive_available(self, pull: zmq.Socket, ack: zmq.Socket | None, limit: int) -> int:
        """Take queued messages from the socket without waiting (used after the receiver stopped)."""
        taken = 0
        while taken < limit and not self.holding_all:
            try:
                frames = recv_frames(pull, zmq.NOBLOCK)
            except zmq.Again:
                break
            taken += 1
            self.accept(frames, ack)
            if self.pending.events >= self.config.commit_events:
                self.commit(ack)
        return taken

    def take_received(self, receiver: Receiver, ack: zmq.Socket | None, wait_s: float) -> None:
        """Accept what the receiving thread holds, waiting up to ``wait_s`` for the first message."""
        item = receiver.get(wait_s)
        deadline = time.monotonic() + TAKE_SLICE_SECONDS  # a flood of empty or invalid messages cannot starve commits
        while item is not None:
            self.accept(item[0], ack, t_received=item[1])
            if self.pending.events >= self.config.commit_events or self.holding_all or time.monotonic() >= deadline:
                return
            item = receiver.get(0)

    def run(self) -> dict[str, Any]:
        """Serve until stopped; return (and write) the report."""
        ctx, pull, ack = self._sockets()
        log.info("sink: bound %s, acks to %s, recording to %s (commit %d events / %g ms)", self.config.bind,
                 self.config.ack_connect, self.out, self.config.commit_events, self.config.commit_ms)
        freeze_startup_heap()
        receiver = Receiver(pull, maxsize=HWM, max_bytes=self.config.max_pending_bytes)
        receiver.start()
        try:
            while not self.stop:
                if self.pending and not self.full.reason:
                    wait_ms = min(100.0, max(0.0, self.config.commit_ms - self.pending.waited_ms()))  # 100 ms: signals
                else:
                    wait_ms = 100.0
                if not self.holding_all:
                    self.take_received(receiver, ack, wait_ms / 1e3)
                else:
                    time.sleep(0.05)  # holding all we may: the receiver's queue fills, then ZeroMQ pushes back
                if self.commit_due():
                    self.commit(ack)
                if self.full.full_ack_due():
                    self.send_full_ack(ack)
                self.segments.close_idle(busy=self.pending.run_ids())
            log.info("stopping (%s): committing what is queued locally", self.stop.signal_name or "stop")
            for frames, t_received in receiver.halt():
                if self.holding_all:
                    break  # not acknowledged: the producer still holds these batches
                self.accept(frames, ack, t_received=t_received)
                if self.pending.events >= self.config.commit_events:
                    self.commit(ack)
            self.receive_available(pull, ack, limit=DRAIN_MESSAGES)
            self.commit(ack)
        finally:
            if receiver.is_alive():
                receiver.halt()
            self.segments.close_all()
            pull.close(linger=0)
            if ack is not None:
                ack.close(linger=1000)
            ctx.term()
            unlock_recording(self.lock_fd)
        report = self.report()
        write_report(self.config.report, report)
        return report

    def report(self) -> dict[str, Any]:
        """The stage report (``--report``)."""
        anomaly = self.expected.anomaly.identity
        return {
            "stage": "sink", "out": str(self.out), **self.counts,
            "resumed_from": self.recovered.summary,
            **self.rejections.report(),
            "latency_seconds": {"decision": self.metrics.decision_latency.percentiles(),
                                "commit": self.metrics.commit_latency.percentiles(),
                                "decision_hops": {hop: self.metrics.decision_hops.labels(hop=hop).percentiles()
                                                  for hop in DECISION_HOPS}},
            "commit_duration_seconds": {**{k: v for k, v in self.commit_duration.percentiles().items()
                                           if k != "events"},
                                        "commits": self.commit_duration.total, "total": self.commit_duration.sum},
            "files": sorted(set(self.segments.files)), "bytes": sum(p.stat().st_size for p in segment_paths(self.out)),
            "damaged_segments": self.recovered.damaged,
            "backpressure": {**self.full.report(), "max_bytes": self.config.max_bytes,
                             "uncommitted_events_at_exit": self.pending.events,
                             "uncommitted_batches_at_exit": len(self.pending)},
            "elapsed_seconds": time.time() - self.started, "stopped_by": self.stop.signal_name,
            "model": self.expected.card.name, "anomaly_model": anomaly[0] if anomaly else None,
            "jet_error_recorded": self.expected.jet_error,
        }
