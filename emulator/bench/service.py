"""The encoder service fed over real ZeroMQ: the bench binds a PUSH feeder and a PULL receiver, starts
`aetrig encode` between them, and measures jets/s at the receiver and the encoder's CPU per jet.

Per configuration (max micro-batch jets, events per message) a fresh encoder process runs; after a
warm-up, a timed window counts the scored jets that arrive, the encoder's CPU seconds (from /proc)
and its own metrics (inference seconds, mean batch size). The feeder then stops, everything sent
must come back (zero loss), and the encoder is stopped with SIGTERM.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import zmq

from emulator.bench import procs, stats
from emulator.bench.cycles import CpuWindow
from emulator.bench.data import JetSample, Message, event_messages, frames_for
from emulator.runtime import prom_text
from emulator.runtime.ports import free_port


@dataclass
class ServiceConfig:
    model_dir: Path
    max_batch_jets: int
    events_per_message: int
    duration_s: float
    warmup_s: float
    log_dir: Path
    max_wait_ms: float = 2.0
    threshold_args: list[str] = field(default_factory=lambda: ["--fpr", "1e-3"])
    use_perf: bool = False
    clock_hz: float | None = None
    profile: bool = False


class Feeder(threading.Thread):
    """Sends pre-encoded events messages as fast as the socket takes them, each with a fresh seq."""

    def __init__(self, socket: zmq.Socket, messages: list[Message], rate_events_hz: float = 0.0):
        super().__init__(daemon=True)
        self.socket, self.messages, self.rate = socket, messages, rate_events_hz
        self.stop_event = threading.Event()
        self.sent_events = self.sent_jets = self.sent_messages = 0

    def run(self) -> None:
        seq, t0 = 0, time.perf_counter()
        while not self.stop_event.is_set():
            msg = self.messages[seq % len(self.messages)]
            if self.rate > 0:
                due = t0 + self.sent_events / self.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            if not self.socket.poll(100, zmq.POLLOUT):
                continue
            self.socket.send_multipart(frames_for(msg, seq), copy=False)
            seq += 1
            self.sent_messages += 1
            self.sent_events += msg.n_events
            self.sent_jets += msg.n_jets


def _header(frames: list) -> dict:
    return msgpack.unpackb(frames[0].bytes if hasattr(frames[0], "bytes") else frames[0])


def bench_service(cfg: ServiceConfig, sample: JetSample, variables: list[str]) -> dict:
    """One encoder process, one (batch, events-per-message) configuration; returns its measurements."""
    n_msgs = max(1, min(sample.n_events // cfg.events_per_message, 2048))
    messages = event_messages(sample, variables, cfg.events_per_message, n_msgs)
    ctx = zmq.Context()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    push.setsockopt(zmq.SNDHWM, 64)
    push.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.LINGER, 0)
    data_port = push.bind_to_random_port("tcp://127.0.0.1")
    sink_port = pull.bind_to_random_port("tcp://127.0.0.1")
    metrics_port = free_port()
    tag = f"b{cfg.max_batch_jets}-e{cfg.events_per_message}"
    report_path = cfg.log_dir / f"encoder-{tag}.json"
    args = ["encode", "--model", str(cfg.model_dir), "--connect", f"tcp://127.0.0.1:{data_port}",
            "--sink", f"tcp://127.0.0.1:{sink_port}", "--max-batch-jets", str(cfg.max_batch_jets),
            "--max-wait-ms", str(cfg.max_wait_ms), "--threads", "1", "--metrics-port", str(metrics_port),
            "--report", str(report_path), "--id", f"bench-{tag}", "--anomaly-model", "none", *cfg.threshold_args,
            "--plaintext"]  # the model and batching alone, on loopback; what CurveZMQ costs is the links step's
    proc = procs.aetrig(args, cfg.log_dir / f"encoder-{tag}.log")
    feeder = Feeder(push, messages)
    result: dict = {"max_batch_jets": cfg.max_batch_jets, "events_per_message": cfg.events_per_message,
                    "command": "aetrig " + " ".join(args)}
    try:
        procs.wait_for_metrics(metrics_port, proc)
        feeder.start()
        window = _measure(cfg, proc, pull, metrics_port)
        feeder.stop_event.set()
        feeder.join(5)
        drained = _drain(pull, window, feeder.sent_events, timeout_s=20.0)
        result.update(_summarise(cfg, window, feeder, drained))
    finally:
        feeder.stop_event.set()
        rc = procs.stop(proc, timeout=5.0)
        push.close()
        pull.close()
        ctx.term()
    result["encoder_exit_code"] = rc
    if report_path.exists():
        result["encoder_report"] = json.loads(report_path.read_text())
    return result


def _receive(pull: zmq.Socket, tally: dict, timeout_ms: int = 200) -> bool:
    """Receive one scored message into ``tally`` (events, jets, latency samples); False on timeout."""
    if not pull.poll(timeout_ms):
        return False
    frames = pull.recv_multipart(copy=False)
    t_recv = time.time()
    h = _header(frames)
    tally["events"] += h["n_events"]
    tally["jets"] += h["n_jets"]
    tally["latency"].append(t_recv - h["t_send"])
    tally["weights"].append(h["n_events"])
    return True


def _measure(cfg: ServiceConfig, proc, pull: zmq.Socket, metrics_port: int) -> dict:
    """Warm up, then count what arrives during ``cfg.duration_s`` with the encoder's CPU and metrics."""
    tally = {"events": 0, "jets": 0, "latency": [], "weights": []}
    t_start = time.perf_counter()
    while time.perf_counter() - t_start < cfg.warmup_s:
        _check_alive(proc, cfg)
        _receive(pull, tally)
    cpu = CpuWindow(proc.pid, cfg.use_perf)
    m0 = prom_text.scrape(metrics_port)
    profiler = None
    if cfg.profile:
        from emulator.bench.profile import Profiler

        tag = f"b{cfg.max_batch_jets}-e{cfg.events_per_message}"
        profiler = Profiler(proc.pid, cfg.duration_s, cfg.log_dir / f"profile-encoder-{tag}.txt")
    cpu.start()
    start = {k: (len(v) if isinstance(v, list) else v) for k, v in tally.items()}
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < cfg.duration_s:
        _check_alive(proc, cfg)
        _receive(pull, tally)
    wall = time.perf_counter() - t0
    cpu_res = cpu.stop()
    m1 = prom_text.scrape(metrics_port)
    profile = profiler.finish() if profiler else None
    return {"profile": profile, "tally": tally, "start": start, "wall_s": wall, "cpu": cpu_res, "m0": m0, "m1": m1,
            "events_window": tally["events"] - start["events"], "jets_window": tally["jets"] - start["jets"]}


def _check_alive(proc, cfg: ServiceConfig) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"encoder exited with {proc.returncode}; see the logs in {cfg.log_dir}")


def _drain(pull: zmq.Socket, window: dict, sent_events: int, timeout_s: float) -> int:
    """Receive until everything sent came back (or time runs out); returns the events received in all."""
    tally = window["tally"]
    deadline = time.monotonic() + timeout_s
    while tally["events"] < sent_events and time.monotonic() < deadline:
        _receive(pull, tally)
    return tally["events"]


def _summarise(cfg: ServiceConfig, window: dict, feeder: Feeder, received_events: int) -> dict:
    jets, events, wall = window["jets_window"], window["events_window"], window["wall_s"]
    cpu = window["cpu"]
    tp = stats.throughput(jets, wall, cpu["cpu_seconds"])
    m0, m1 = window["m0"], window["m1"]
    d = {k: prom_text.value(m1, k) - prom_text.value(m0, k) for k in
         ("aetrig_inference_seconds_sum", "aetrig_inference_seconds_count", "aetrig_batch_jets_sum",
          "aetrig_batch_jets_count")}
    rejected = prom_text.value(m1, "aetrig_rejected_messages_total")
    lat_from = window["start"]["latency"]
    lat = window["tally"]["latency"][lat_from:]
    w = window["tally"]["weights"][lat_from:]
    out = {
        "wall_s": wall, "events": events, "jets": jets,
        "jets_per_s": tp["per_s"], "events_per_s": stats.rate(events, wall),
        "encoder_cpu_s": cpu["cpu_seconds"], "jets_per_encoder_cpu_s": tp["per_cpu_s"],
        "cpu_s_per_jet": tp["cpu_s_per_unit"],
        "cycles_per_jet": stats.cycles_per_unit(cpu["cycles"], jets) if jets else None,
        "cycle_method": cpu["cycle_method"],
        "inference_wall_s_per_jet": stats.ratio(d["aetrig_inference_seconds_sum"], jets),
        "inference_wall_over_encoder_cpu": stats.ratio(d["aetrig_inference_seconds_sum"], cpu["cpu_seconds"]),
        "mean_batch_jets": stats.ratio(d["aetrig_batch_jets_sum"], d["aetrig_batch_jets_count"]),
        "latency_seconds_saturated": stats.latency_summary(lat, w) if lat else None,
        "sent_events": feeder.sent_events, "received_events": received_events,
        "lost_events": feeder.sent_events - received_events, "rejected_messages": rejected,
    }
    if window.get("profile"):
        out["profile_encoder"] = window["profile"]
    return out
