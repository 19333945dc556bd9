"""The sink: PULL scored messages, validate, drop duplicates, write ROOT segments in group commits,
acknowledge what each commit made durable.

Reliability (docs/design.md "Reliability model"):

* Every message is ``wire.decode`` + ``wire.validate``d (kind ``scored``), its compression model and
  its anomaly model (the card that scored and flagged its events) checked against the recording's
  (``wrong_model``), its blobs and its header ``threshold`` required. Bad messages are counted by
  reason, quarantined under ``--quarantine`` (default OUT/quarantine) and never stop the sink.
* One recording, one set of per-jet branches: whether it holds ``jet_error`` (optional on the wire for
  events flagged by an event-level model) is set by how the sink is started (its anomaly model and
  ``--jet-errors``, consumer/sink/expectations.py), never by a message; a resumed recording whose segments
  differ refuses to start. A message that differs is rejected (``missing_column`` when the recording holds
  jet_error and the message lacks it, ``bad_column`` the other way round), never mixed in silently.
* Dedup by (run_id, seq): the seen set is rebuilt from the committed segments at start, so a
  resend after a sink restart is discarded too. A duplicate of a committed batch is re-acked (its
  first ack may have been lost) and counted as ``duplicate_seq`` / ``duplicates_discarded``.
* Group commit every ``commit_events`` events or ``commit_ms`` ms: uproot extend, flush, fsync
  (consumer/sink/segment_writer.py), THEN ``wire.encode_ack`` for every seq of the commit.
* ``--max-bytes`` or a full disk (free space below the estimate, or ENOSPC) is backpressure: the
  sink stops committing and acking, keeps what it holds in bounded memory, stops reading when
  that is full (ZeroMQ high-water marks then push back to the encoders and the producer), sends
  ``full`` acks, logs, sets ``aetrig_sink_full`` and reports the episodes. It retries every second.
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

import contextlib
import errno
import logging
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from prometheus_client import Counter, Gauge

from consumer.sink.config import SinkConfig
from consumer.sink.expectations import Expectations, Manifest
from consumer.sink.receiver import Receiver
from consumer.sink.scored_chunk import batch_layout, chunk_from_batches, chunk_nbytes
from consumer.sink.segment_writer import SegmentWriter
from consumer.sink.seq_index import SeqSet
from emulator.runtime import wire
from emulator.runtime.defaults import ZOO
from emulator.runtime.heap import freeze_startup_heap
from emulator.runtime.journaled_file import JournalError, journal_path, recover
from emulator.runtime.latency_stats import DECISION_HOPS, LatencyRecorder, decision_hops, observe_many
from emulator.runtime.metrics import Metrics, start_metrics
from emulator.runtime.quarantine import Quarantine
from emulator.runtime.recording import (
    JET_ERROR,
    LOCK_NAME,
    SEGMENT_DIR,
    Layout,
    RecordingError,
    foreign_segments,
    lock_recording,
    model_identity,
    parse_segment_name,
    read_seen,
    read_segment,
    segment_jets,
    segment_name,
    segment_paths,
    unlock_recording,
    write_entries_mark,
)
from emulator.runtime.rejections import Rejections
from emulator.runtime.shutdown import StopFlag
from emulator.runtime.stage_report import write_report
from emulator.runtime.zmq_frames import recv_frames

log = logging.getLogger("aetrig.sink")

HWM = 200
DRAIN_MESSAGES = 5000
#: segments open at once (two file descriptors each); the least recently committed one is closed first
MAX_OPEN_SEGMENTS = 32
#: a run's open segment is closed after this long without a commit (a new one opens when it sends again)
IDLE_CLOSE_SECONDS = 30.0
#: the longest the main loop takes received messages before it looks at commits and acks again
TAKE_SLICE_SECONDS = 0.05
RETRY_SECONDS = 1.0
#: Bytes a commit may add beyond its raw column bytes (baskets, TTree metadata rewrite, keys).
COMMIT_OVERHEAD_BYTES = 256 << 10
SEGMENT_OVERHEAD_BYTES = 64 << 10


def remove_unborn_segment(path: Path) -> None:
    """Delete a segment whose creation failed (and its journal); it never held a committed entry."""
    for victim in (path, journal_path(path)):
        with contextlib.suppress(FileNotFoundError):
            victim.unlink()


#: read errors that say nothing about a segment (out of descriptors or memory, an I/O hiccup): retried, and
#: if they last the sink does not start (its supervisor restarts it) rather than move the segment aside
TRANSIENT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EIO, errno.EAGAIN, errno.EINTR,
                              errno.ENOBUFS, errno.ETIMEDOUT})
READ_ATTEMPTS = 3


def read_for_index(path: Path) -> tuple[Any, np.ndarray, np.ndarray]:
    """(segment, run_ids, seqs) of a committed segment, read up to READ_ATTEMPTS times. RecordingError when the
    segment itself is unreadable; OSError when the reads kept failing for a reason outside the segment."""
    for attempt in range(READ_ATTEMPTS):
        try:
            seg = read_segment(path)
            runs, seqs = read_seen(seg)
            return seg, runs, seqs
        except RecordingError as exc:
            last = exc
            time.sleep(0.1 * (attempt + 1))
    cause = last.__cause__
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError) and cause.errno in TRANSIENT_ERRNOS:
        raise OSError(cause.errno, f"cannot read {path.name} ({cause}); not moving it aside: retry later")
    raise last


def check_scored_dtypes(batch: wire.Batch) -> None:
    """The sink writes typed branches: floats where floats belong, flags 0 or 1 (WireError bad_column)."""
    for name, col in batch.columns.items():
        is_float_column = name in ("event_score", JET_ERROR, "jet_latent") or name.startswith("raw_jet_")
        if is_float_column and col.dtype.kind != "f":
            raise wire.WireError("bad_column", f"{name} has dtype {col.dtype.str}, expected a float")
    flag = batch.columns["flag"]
    if flag.dtype.str != "|u1" or (flag.size and int(flag.max()) > 1):
        raise wire.WireError("bad_column", f"flag must be |u1 holding 0 or 1 (got {flag.dtype.str})")


class Backpressure(Exception):
    """A commit cannot be made now (max-bytes, low free space, ENOSPC)."""


@dataclass
class _Received:
    batch: wire.Batch
    t_received: float
    frames: list[bytes]
    layout: Layout  # the segment layout it needs, found once at accept
    manifest: Manifest  # the manifest of its run (the sink's expectations)


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
        self.metrics = metrics or start_metrics(config.metrics_port)
        reg = self.metrics.registry
        self.full_gauge = Gauge("aetrig_sink_full", "1 while the sink holds back commits and acks (disk/max-bytes)",
                                registry=reg)
        self.full_episodes = Counter("aetrig_sink_backpressure_episodes", "Times the sink became full",
                                     registry=reg)
        self.bytes_gauge = Gauge("aetrig_sink_recorded_bytes", "Bytes of the recording's segments", registry=reg)
        self.bytes_per_jet_gauge = Gauge("aetrig_sink_bytes_per_jet", "Bytes of the recording's segments on disk "
                                         "per recorded jet (0 before the first jet)", registry=reg)
        self.jets_before = 0  # jets of the segments this sink found at start
        self.rejections = Rejections(self.metrics, Quarantine(
            config.quarantine if config.quarantine is not None else self.out / "quarantine"), log)
        self.max_pending = config.max_pending_events or max(4 * config.commit_events, 10000)
        self.committed: dict[int, SeqSet] = defaultdict(SeqSet)
        self.pending: list[_Received] = []
        self.pending_keys: set[tuple[int, int]] = set()
        self.pending_events = 0
        self.pending_bytes = 0  # bytes of the frames the pending messages hold
        self.first_pending_at = 0.0
        self.writers: dict[int, SegmentWriter] = {}
        self.next_index: dict[int, int] = defaultdict(int)
        self.closed_bytes = 0
        self.files: list[str] = []
        self.expected = Expectations.load(config.model, config.anomaly_model, config.manifest, config.jet_errors)
        self.model: tuple[str, str] | None = self.expected.card.identity
        self.model_name: str | None = self.expected.card.name
        self._entropy: dict[str, str] = {}  # model name -> entropy model JSON (--latent-codec ans)
        self.anomaly: tuple[str, str] | None = self.expected.anomaly.identity  # the card that flags the events
        self.jet_error = self.expected.jet_error  # whether the recording holds jet_error (as the sink was started)
        self.counts = {"recorded_events": 0, "recorded_jets": 0, "flagged_events": 0, "duplicates_discarded": 0,
                       "duplicate_batches": 0, "batches": 0, "commits": 0, "acks_sent": 0, "acks_dropped": 0,
                       "messages": 0, "reacked_batches": 0}
        self.decision = LatencyRecorder()
        self.decision_hops = {hop: LatencyRecorder() for hop in DECISION_HOPS}
        self.hop_histograms = {hop: self.metrics.decision_hops.labels(hop=hop) for hop in DECISION_HOPS}
        self.commit_latency = LatencyRecorder()
        self.commit_duration = LatencyRecorder()
        self.full_reason: str | None = None
        self.episodes: list[dict[str, Any]] = []
        self.next_retry = 0.0
        self.last_full_ack = 0.0
        self.damaged: list[str] = []
        self.unmarked: dict[Path, int] = {}
        self.started = time.time()
        self.existing = self.rebuild_index()

    # ---- start-up -------------------------------------------------------------------------
    def rebuild_index(self) -> dict[str, int]:
        """Finish interrupted commits, read (run_id, seq) of every committed segment, adopt the
        recording's model, count bytes."""
        events = segments = 0
        for path in foreign_segments(self.out):  # symlinks and the like: never opened, their names never reused
            log.error("%s is not a regular file of the recording: ignored (never followed)", path)
            if path.name != SEGMENT_DIR:
                run_id, index = parse_segment_name(path)
                self.next_index[run_id] = max(self.next_index[run_id], index + 1)
        for path in segment_paths(self.out):
            try:
                outcome = recover(path)
            except JournalError as exc:
                outcome = "refused"
                self.set_aside(journal_path(path), f"its journal was refused: {exc}")
            if outcome != "clean":
                log.warning("segment %s: the commit interrupted by the previous sink's end was %s", path.name,
                            outcome)
            run_id, index = parse_segment_name(path)
            self.next_index[run_id] = max(self.next_index[run_id], index + 1)
            try:
                seg, runs, seqs = read_for_index(path)
            except RecordingError as exc:
                self.set_aside(path, f"it is not readable: {exc}")
                continue
            for run in np.unique(runs).tolist():
                for seq in np.unique(seqs[runs == run]).tolist():  # sorted: the SeqSet prefix grows
                    self.committed[run].add(seq)
            for what, card, want in (("model", seg.card, self.model),
                                     ("anomaly model", seg.scoring_card, self.anomaly)):
                if card and model_identity(card) != want:
                    unlock_recording(self.lock_fd)
                    raise ValueError(f"{self.out} holds segments of {what} {card.get('name')!r}; this sink was "
                                     f"started to record {want[0] if want else None!r} (--model, --anomaly-model): "
                                     "record into another --out")
            if seg.manifest is not None:
                self.expected.recorded.setdefault(run_id, wire.sha256_hex(wire.canonical_json(seg.manifest)))
            if seg.layout is not None and seg.has_jet_error != self.jet_error:
                unlock_recording(self.lock_fd)
                raise ValueError(f"{self.out} holds segments {'with' if seg.has_jet_error else 'without'} jet_error; "
                                 f"this sink was started to record {'with' if self.jet_error else 'without'} "
                                 f"({self.expected.layout_text}): start it with the recording's --jet-errors, or "
                                 "record into another --out")
            self.closed_bytes += path.stat().st_size
            self.jets_before += segment_jets(seg)
            self.files.append(str(path))
            events += seg.n_entries
            segments += 1
        batches = sum(len(s) for s in self.committed.values())
        if segments:
            log.info("resuming: %d segments, %d events, %d batches already committed (model %s, anomaly model %s)",
                     segments, events, batches, self.model_name, self.anomaly[0] if self.anomaly else None)
        return {"segments": segments, "events": events, "batches": batches}

    def set_aside(self, path: Path, why: str) -> None:
        """Move a file of the recording to OUT/damaged/ (kept for inspection, out of the recording)."""
        damaged = self.out / "damaged"
        damaged.mkdir(exist_ok=True)
        shutil.move(str(path), damaged / path.name)
        self.damaged.append(str(damaged / path.name))
        log.error("%s was moved to %s: %s", path.name, damaged, why)

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
            log.warning("plaintext links (no --curve-keys): any local process may push scored messages")
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

    # ---- messages ---------------------------------------------------------------------------
    def entropy_model(self, card: dict[str, Any]) -> str:
        """--latent-codec ans (auto: for a rate-trained model): the entropy model JSON of the card's model (its
        card, or models/zoo/<name> for older
        cards; cached); "" for none.
        A model without one is a wrong_model rejection."""
        if self.config.latent_codec == "none":
            return ""
        from models.runtime.latent_coding import is_rate_card

        if self.config.latent_codec == "auto" and not is_rate_card(card):
            return ""  # auto: a model without an entropy model keeps its float latents
        name = str(card.get("name"))
        if name not in self._entropy:
            from models.runtime.latent_coding import LatentCodingError, entropy_model_text

            try:
                self._entropy[name] = entropy_model_text(card, [ZOO])
            except LatentCodingError as exc:
                raise wire.WireError("wrong_model", f"--latent-codec {self.config.latent_codec}: {exc}") from exc
        return self._entropy[name]

    def accept(self, frames: list[bytes], ack: zmq.Socket | None, t_received: float | None = None) -> None:
        """Validate one scored message; queue it for the next commit, or discard/reject it."""
        t_received = time.time() if t_received is None else t_received
        self.counts["messages"] += 1
        try:
            batch = wire.parse_scored(frames, self.config.limits)
            check_scored_dtypes(batch)
            manifest = self.expected.check(batch)
            entropy = self.entropy_model(self.expected.card.card)
            layout = batch_layout(batch, self.config.latent_dtype, "ans" if entropy else "none", entropy,
                                  self.config.score_bits)
        except wire.WireError as exc:
            self.rejections.reject(exc.reason, exc.detail, frames)
            return
        except Exception as exc:
            log.exception("internal error while validating a message")
            self.rejections.reject("internal_error", f"{type(exc).__name__}: {exc}", frames)
            return
        key = (batch.run_id, batch.seq)
        if batch.seq in self.committed.get(batch.run_id, ()) or key in self.pending_keys:
            self.counts["duplicates_discarded"] += batch.n_events
            self.counts["duplicate_batches"] += 1
            self.metrics.duplicates.inc(batch.n_events)
            self.rejections.reject("duplicate_seq", f"run {batch.run_id:016x} seq {batch.seq} already "
                                   f"{'committed' if key not in self.pending_keys else 'pending'}", frames)
            if key not in self.pending_keys:
                self.send_ack(ack, batch.run_id, [batch.seq])
                self.counts["reacked_batches"] += 1
            return
        latency = t_received - float(batch.header["t_send"])
        self.decision.add(latency, batch.n_events)
        observe_many(self.metrics.decision_latency, latency, batch.n_events)
        for hop, seconds in (decision_hops(batch.header, t_received) or {}).items():
            self.decision_hops[hop].add(seconds, batch.n_events)
            observe_many(self.hop_histograms[hop], seconds, batch.n_events)
        if not self.pending:
            self.first_pending_at = time.monotonic()
        self.pending.append(_Received(batch, t_received, frames, layout, manifest))
        self.pending_keys.add(key)
        self.pending_events += batch.n_events
        self.pending_bytes += sum(len(f) for f in frames)

    # ---- commits ----------------------------------------------------------------------------
    @property
    def recorded_bytes(self) -> int:
        return self.closed_bytes + sum(w.size for w in self.writers.values())

    @property
    def holding_all(self) -> bool:
        """Whether the uncommitted messages fill what the sink may hold (events, or bytes): reading stops."""
        return self.pending_events >= self.max_pending or self.pending_bytes >= self.config.max_pending_bytes

    def commit_due(self) -> bool:
        if not self.pending or (self.full_reason and time.monotonic() < self.next_retry):
            return False
        waited_ms = (time.monotonic() - self.first_pending_at) * 1e3
        return (self.pending_events >= self.config.commit_events or waited_ms >= self.config.commit_ms
                or self.holding_all)

    def check_space(self, estimate: int) -> None:
        """Raise Backpressure unless ``estimate`` more bytes fit under --max-bytes and on the disk."""
        if self.config.max_bytes is not None and self.recorded_bytes + estimate > self.config.max_bytes:
            raise Backpressure(f"max-bytes: recording holds {self.recorded_bytes} bytes, the next commit needs up "
                               f"to {estimate} more, limit {self.config.max_bytes}")
        free = shutil.disk_usage(self.out).free
        if free < estimate + self.config.min_free_bytes:
            raise Backpressure(f"disk full: {free} bytes free, commit needs {estimate} + reserve "
                               f"{self.config.min_free_bytes}")

    def writer_for(self, run_id: int, layout: Layout, manifest: Manifest) -> SegmentWriter:
        """The open segment of this run, rotated by events/seconds/layout; a new one when needed."""
        writer = self.writers.get(run_id)
        if writer is not None and (writer.layout != layout or writer.n_events >= self.config.rotate_events
                                   or writer.age >= self.config.rotate_seconds):
            self.close_writer(run_id)
            writer = None
        if writer is None:
            self.make_room_for_a_writer()
            index = self.next_index[run_id]
            self.next_index[run_id] += 1
            path = self.seg_dir / segment_name(run_id, index)
            try:
                writer = SegmentWriter(path, self.expected.card.text, manifest.text, layout, self.config.compression,
                                       anomaly_card_text=self.expected.anomaly.text)
            except FileExistsError:
                raise
            except OSError:
                remove_unborn_segment(path)  # it holds no data: do not leave an unreadable file behind
                raise
            self.writers[run_id] = writer
            self.files.append(str(path))
            log.info("opened segment %s", path.name)
        return writer

    def make_room_for_a_writer(self) -> None:
        """Close the least recently committed segments while MAX_OPEN_SEGMENTS are open (file descriptors
        stay bounded however many run ids send)."""
        while len(self.writers) >= MAX_OPEN_SEGMENTS:
            oldest = min(self.writers, key=lambda r: self.writers[r].last_commit)
            self.close_writer(oldest)

    def close_idle_writers(self) -> None:
        """Close the segments of runs that committed nothing for IDLE_CLOSE_SECONDS (they free their fds)."""
        now = time.monotonic()
        for run_id in [r for r, w in self.writers.items() if now - w.last_commit > IDLE_CLOSE_SECONDS]:
            if any(p.batch.run_id == run_id for p in self.pending):
                continue
            try:
                self.close_writer(run_id)
                log.info("closed the idle segment of run %016x", run_id)
            except OSError as exc:
                log.error("closing the idle segment of run %016x failed: %s", run_id, exc)

    def close_writer(self, run_id: int) -> None:
        writer = self.writers.pop(run_id)
        try:
            writer.close()
        finally:
            self.closed_bytes += writer.path.stat().st_size

    def commit(self, ack: zmq.Socket | None) -> bool:
        """Write every pending batch durably, then ack them. False (and full) on backpressure."""
        if not self.pending:
            return True
        groups: dict[tuple[int, Layout], list[_Received]] = defaultdict(list)
        for item in self.pending:
            groups[(item.batch.run_id, item.layout)].append(item)
        estimate = sum(chunk_nbytes([i.batch for i in items]) + COMMIT_OVERHEAD_BYTES for items in groups.values())
        estimate += SEGMENT_OVERHEAD_BYTES * len(groups)
        t_start = time.perf_counter()
        try:
            self.check_space(estimate)
            if not self.write_entry_marks():
                raise Backpressure("cannot yet mark the valid entries of a segment broken by a failed write")
            for (run_id, layout), items in groups.items():
                writer = self.writer_for(run_id, layout, items[0].manifest)
                try:
                    writer.commit(chunk_from_batches([i.batch for i in items], layout))
                except OSError:
                    # the segment may now end in a half-written extend: never append to it again, and
                    # mark how many of its entries are durable and acknowledged (readers stop there)
                    self.writers.pop(run_id, None)
                    writer.abandon()
                    self.closed_bytes += writer.path.stat().st_size
                    self.unmarked[writer.path] = writer.n_events
                    self.write_entry_marks()
                    raise
                except Exception:  # a bug, or data uproot cannot write: never crash, isolate the culprit
                    log.exception("a commit of %d batches failed; retrying them one by one", len(items))
                    self.drop_writer(run_id)
                    self.commit_one_by_one(run_id, layout, items, ack)
                    continue
                self.finish_group(run_id, items, ack)
        except Backpressure as exc:
            self.enter_full(str(exc), ack)
            return False
        except OSError as exc:
            reason = "disk full (ENOSPC)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else f"write error {exc}"
            self.enter_full(f"{reason} while committing: {exc}", ack)
            return False
        self.pending = []
        self.pending_keys.clear()
        self.pending_events = self.pending_bytes = 0
        self.counts["commits"] += 1
        self.commit_duration.add(time.perf_counter() - t_start)
        self.bytes_gauge.set(self.recorded_bytes)
        jets = self.jets_before + self.counts["recorded_jets"]
        self.bytes_per_jet_gauge.set(self.recorded_bytes / jets if jets else 0.0)
        if self.full_reason:
            self.leave_full()
        return True

    def drop_writer(self, run_id: int) -> None:
        """Forget a writer whose extend raised: nothing of that commit reached the file (it was staged)."""
        writer = self.writers.pop(run_id, None)
        if writer is not None:
            writer.abandon()
            self.closed_bytes += writer.path.stat().st_size

    def commit_one_by_one(self, run_id: int, layout: Layout, items: list[_Received], ack: zmq.Socket | None) -> None:
        """Commit batches singly; one that still cannot be written is rejected (internal_error) and kept."""
        for item in items:
            batch = item.batch
            writer = self.writer_for(run_id, layout, item.manifest)
            try:
                writer.commit(chunk_from_batches([batch], layout))
            except OSError:
                raise
            except Exception as exc:
                self.drop_writer(run_id)
                self.pending = [p for p in self.pending if p is not item]
                self.pending_keys.discard((run_id, batch.seq))
                self.pending_events -= batch.n_events
                self.pending_bytes -= sum(len(f) for f in item.frames)
                self.rejections.reject("internal_error", f"cannot write run {run_id:016x} seq {batch.seq}: "
                                       f"{type(exc).__name__}: {exc}", item.frames)
                continue
            self.finish_group(run_id, [item], ack)

    def write_entry_marks(self) -> bool:
        """Write the ``.entries`` mark of every segment abandoned after a failed write; True when none is left."""
        for path, n_entries in list(self.unmarked.items()):
            try:
                recover(path)
                write_entries_mark(path, n_entries)
            except OSError as exc:
                log.error("cannot write the entries mark of %s yet: %s", path.name, exc)
                return False
            log.warning("segment %s abandoned after a failed write: its first %d entries are valid", path.name,
                        n_entries)
            del self.unmarked[path]
        return True

    def finish_group(self, run_id: int, items: list[_Received], ack: zmq.Socket | None) -> None:
        """Book-keeping after a durable commit of ``items``: counts, latencies, acks."""
        t_commit = time.time()
        seqs = []
        for item in items:
            batch = item.batch
            latency = t_commit - float(batch.header["t_send"])
            self.commit_latency.add(latency, batch.n_events)
            observe_many(self.metrics.commit_latency, latency, batch.n_events)
            self.committed[run_id].add(batch.seq)
            self.pending_keys.discard((run_id, batch.seq))
            seqs.append(batch.seq)
            n_flagged = int(batch.columns["flag"].sum())
            self.counts["recorded_events"] += batch.n_events
            self.counts["recorded_jets"] += batch.n_jets
            self.counts["flagged_events"] += n_flagged
            self.counts["batches"] += 1
            self.metrics.events.labels(stage="sink").inc(batch.n_events)
            self.metrics.jets.labels(stage="sink").inc(batch.n_jets)
        done = {id(i) for i in items}
        self.pending = [p for p in self.pending if id(p) not in done]
        self.pending_events = sum(p.batch.n_events for p in self.pending)
        self.pending_bytes = sum(len(f) for p in self.pending for f in p.frames)
        self.send_ack(ack, run_id, seqs)

    def enter_full(self, reason: str, ack: zmq.Socket | None) -> None:
        if self.full_reason is None:
            self.episodes.append({"start": time.time(), "reason": reason, "end": None})
            self.full_episodes.inc()
            log.error("BACKPRESSURE: %s; holding %d events uncommitted and unacknowledged, retrying every %.0f s",
                      reason, self.pending_events, RETRY_SECONDS)
        self.full_reason = reason
        self.full_gauge.set(1)
        self.next_retry = time.monotonic() + RETRY_SECONDS
        self.send_full_ack(ack)

    def send_full_ack(self, ack: zmq.Socket | None) -> None:
        runs = {p.batch.run_id for p in self.pending} or set(self.committed) or {0}
        for run_id in runs:
            self.send_ack(ack, run_id, [], full=True)
        self.last_full_ack = time.monotonic()

    def leave_full(self) -> None:
        log.warning("backpressure over: committing again (%s)", self.full_reason)
        self.episodes[-1]["end"] = time.time()
        self.full_reason = None
        self.full_gauge.set(0)

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
            if self.pending_events >= self.config.commit_events:
                self.commit(ack)
        return taken

    def take_received(self, receiver: Receiver, ack: zmq.Socket | None, wait_s: float) -> None:
        """Accept what the receiving thread holds, waiting up to ``wait_s`` for the first message."""
        item = receiver.get(wait_s)
        deadline = time.monotonic() + TAKE_SLICE_SECONDS  # a flood of empty or invalid messages cannot starve commits
        while item is not None:
            self.accept(item[0], ack, t_received=item[1])
            if self.pending_events >= self.config.commit_events or self.holding_all or time.monotonic() >= deadline:
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
                if self.pending and not self.full_reason:
                    waited_ms = (time.monotonic() - self.first_pending_at) * 1e3
                    wait_ms = min(100.0, max(0.0, self.config.commit_ms - waited_ms))  # 100 ms: notice signals
                else:
                    wait_ms = 100.0
                if not self.holding_all:
                    self.take_received(receiver, ack, wait_ms / 1e3)
                else:
                    time.sleep(0.05)  # holding all we may: the receiver's queue fills, then ZeroMQ pushes back
                if self.commit_due():
                    self.commit(ack)
                if self.full_reason and time.monotonic() - self.last_full_ack >= RETRY_SECONDS:
                    self.send_full_ack(ack)
                self.close_idle_writers()
            log.info("stopping (%s): committing what is queued locally", self.stop.signal_name or "stop")
            for frames, t_received in receiver.halt():
                if self.holding_all:
                    break  # not acknowledged: the producer still holds these batches
                self.accept(frames, ack, t_received=t_received)
                if self.pending_events >= self.config.commit_events:
                    self.commit(ack)
            self.receive_available(pull, ack, limit=DRAIN_MESSAGES)
            self.commit(ack)
        finally:
            if receiver.is_alive():
                receiver.halt()
            for run_id in list(self.writers):
                try:
                    self.close_writer(run_id)
                except OSError as exc:
                    log.error("closing segment of run %016x failed: %s", run_id, exc)
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
        existing = self.existing
        return {
            "stage": "sink", "out": str(self.out), **self.counts,
            "resumed_from": existing,
            **self.rejections.report(),
            "latency_seconds": {"decision": self.decision.percentiles(), "commit": self.commit_latency.percentiles(),
                                "decision_hops": {hop: r.percentiles() for hop, r in self.decision_hops.items()}},
            "commit_duration_seconds": {**{k: v for k, v in self.commit_duration.percentiles().items()
                                           if k != "events"},
                                        "commits": self.commit_duration.total, "total": self.commit_duration.sum},
            "files": sorted(set(self.files)), "bytes": self.recorded_bytes_safe(),
            "damaged_segments": self.damaged,
            "backpressure": {"episodes": len(self.episodes), "full_at_exit": self.full_reason is not None,
                             "last_reason": self.episodes[-1]["reason"] if self.episodes else None,
                             "episode_list": self.episodes[-20:], "max_bytes": self.config.max_bytes,
                             "uncommitted_events_at_exit": self.pending_events,
                             "uncommitted_batches_at_exit": len(self.pending)},
            "elapsed_seconds": time.time() - self.started, "stopped_by": self.stop.signal_name,
            "model": self.model_name, "anomaly_model": self.anomaly[0] if self.anomaly else None,
            "jet_error_recorded": self.jet_error,
        }

    def recorded_bytes_safe(self) -> int:
        return sum(os.path.getsize(p) for p in segment_paths(self.out))
