"""Shared helpers of the encoder/sink/verify/bad-input tests: a real tiny ONNX model directory,
message builders, stage processes and a fake producer's sockets (127.0.0.1 only). The stages and the sockets
standing in for the others authenticate with the session's per-role CurveZMQ keys (stage_keys), as by default."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq
from stage_keys import as_role, session_keys, stage_flags

from emulator.runtime import wire
from emulator.runtime.curvezmq import stop_authenticators
from emulator.runtime.journaled_file import recover
from emulator.runtime.ports import free_port
from emulator.runtime.recording import RecordingError, lock_recording, pending_journals, unlock_recording
from models.runtime.hashing import sha256_file

ROOT = Path(__file__).resolve().parents[1]
AETRIG = [sys.executable, "-m", "emulator.cli"]
VARIABLES = ("pt", "eta", "phi", "m")
LATENT_DIM = 3
MANIFEST = {"run_id": 0, "files": [{"path": "test.root", "sha256": "0" * 64}], "settings": {"test": True}}


# ---- a real tiny scorer model ----------------------------------------------------------------------------
def tiny_weights(n_vars: int = len(VARIABLES), k: int = LATENT_DIM, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"scale": np.array([1 / 100.0, 1 / 3.0, 1 / 3.0, 1 / 20.0][:n_vars], np.float32),
            "w1": rng.normal(0, 0.5, (n_vars, k)).astype(np.float32), "b1": rng.normal(0, 0.1, k).astype(np.float32),
            "w2": rng.normal(0, 0.5, (k, n_vars)).astype(np.float32),
            "b2": rng.normal(0, 0.1, n_vars).astype(np.float32)}


def tiny_forward(x: np.ndarray, w: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The tiny model in numpy: latent = tanh((x*s) W1 + b1), rec = latent W2 + b2, error = mean((rec - x*s)^2)."""
    xn = x.astype(np.float64) * w["scale"]
    latent = np.tanh(xn @ w["w1"] + w["b1"])
    rec = latent @ w["w2"] + w["b2"]
    return latent, ((rec - xn) ** 2).mean(axis=1)


def make_tiny_model(directory: Path, name: str = "tiny_test", seed: int = 7,
                    thresholds: tuple[float, float] = (7.7, 12.0)) -> Path:
    """Write scorer/encoder/decoder.onnx and a card.json that models.runtime.card.load_model_dir accepts."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    directory.mkdir(parents=True, exist_ok=True)
    w = tiny_weights(seed=seed)
    n, k = len(VARIABLES), LATENT_DIM
    inits = [numpy_helper.from_array(v, name=key) for key, v in w.items()]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])
    latent = helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["N", k])
    rec = helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, ["N", n])
    err = helper.make_tensor_value_info("error", TensorProto.FLOAT, ["N"])
    nodes = [helper.make_node("Mul", ["x", "scale"], ["xn"]), helper.make_node("MatMul", ["xn", "w1"], ["h"]),
             helper.make_node("Add", ["h", "b1"], ["ha"]), helper.make_node("Tanh", ["ha"], ["latent"]),
             helper.make_node("MatMul", ["latent", "w2"], ["r"]), helper.make_node("Add", ["r", "b2"], ["rn"]),
             helper.make_node("Div", ["rn", "scale"], ["reconstruction"]),
             helper.make_node("Sub", ["rn", "xn"], ["d"]), helper.make_node("Mul", ["d", "d"], ["d2"]),
             helper.make_node("ReduceMean", ["d2"], ["error"], axes=[1], keepdims=0)]
    opset = [helper.make_opsetid("", 13)]
    graphs = {
        "scorer.onnx": helper.make_graph(nodes, "scorer", [x], [latent, rec, err], inits),
        "encoder.onnx": helper.make_graph(nodes[:4], "encoder", [x], [latent], inits[:3]),
        "decoder.onnx": helper.make_graph(
            [helper.make_node("MatMul", ["latent", "w2"], ["r"]), helper.make_node("Add", ["r", "b2"], ["rn"]),
             helper.make_node("Div", ["rn", "scale"], ["reconstruction"])],
            "decoder", [helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["N", k])], [rec],
            [numpy_helper.from_array(w["scale"], "scale"), numpy_helper.from_array(w["w2"], "w2"),
             numpy_helper.from_array(w["b2"], "b2")]),
    }
    for filename, graph in graphs.items():
        model = helper.make_model(graph, opset_imports=opset)
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, directory / filename)
    lo, hi = thresholds
    card = {"name": name, "version": 1, "variables": [{"name": v, "unit": "GeV"} for v in VARIABLES],
            "files": {f: sha256_file(directory / f) for f in graphs},
            "normalisation": {"scheme": "scale", "scale": w["scale"].tolist()},
            "architecture": {"kind": "tiny-test", "latent_dim": k}, "training": {}, "metrics": {},
            "thresholds": {"per_event_curve": {"fpr": [1e-5, 1e-1], "threshold": [hi, lo]}}}
    (directory / "card.json").write_text(json.dumps(card, indent=1))
    return directory


# ---- messages ------------------------------------------------------------------------------------------------
def manifest_for(run_id: int) -> dict[str, Any]:
    """The test manifest of a run (what its messages name by sha256 and a sink is told to expect)."""
    return {**MANIFEST, "run_id": int(run_id)}


def card_sha256(card: dict[str, Any]) -> str:
    """The sha256 encoders put in ``card_sha256`` for a card (of ``ModelDir.card_json``'s canonical text)."""
    return wire.sha256_hex(json.dumps(card, sort_keys=True, separators=(",", ":")).encode())


def expectations(directory: Path, card: dict[str, Any], run_ids: Any,
                 anomaly_card: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write what a sink is told to expect under ``directory`` (the card as a model directory's card.json, one
    manifest per run id) and return the SinkConfig fields: model, manifest, anomaly_model."""
    model = directory / "expected_model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "card.json").write_text(json.dumps(card))
    manifests = directory / "expected_manifests"
    manifests.mkdir(exist_ok=True)
    for run_id in run_ids:
        (manifests / f"{int(run_id):016x}.json").write_text(json.dumps(manifest_for(run_id)))
    anomaly = "none"
    if anomaly_card is not None:
        anomaly_dir = directory / "expected_anomaly_model"
        anomaly_dir.mkdir(exist_ok=True)
        (anomaly_dir / "card.json").write_text(json.dumps(anomaly_card))
        anomaly = str(anomaly_dir)
    return {"model": model, "manifest": manifests, "anomaly_model": anomaly}


def segment_texts(card: dict[str, Any], run_id: int, anomaly_card: dict[str, Any] | None = None) -> dict[str, str]:
    """The card, manifest and anomaly card texts a sink writes into a segment of this run (SegmentWriter's
    card_text, manifest_text, anomaly_card_text)."""
    def text(c: dict[str, Any]) -> str:
        return json.dumps(c, sort_keys=True, separators=(",", ":"))

    return {"card_text": text(card), "manifest_text": wire.canonical_json(manifest_for(run_id)).decode(),
            "anomaly_card_text": text(anomaly_card if anomaly_card is not None else card)}


def expect_args(directory: Path, card: dict[str, Any], run_ids: Any,
                anomaly_card: dict[str, Any] | None = None) -> list[str]:
    """:func:`expectations` as `aetrig sink` flags."""
    fields = expectations(directory, card, run_ids, anomaly_card)
    return ["--model", str(fields["model"]), "--manifest", str(fields["manifest"]),
            "--anomaly-model", str(fields["anomaly_model"])]


def events_columns(counts: np.ndarray, rng: np.random.Generator, first_event_id: int = 0,
                   variables: tuple[str, ...] = VARIABLES) -> dict[str, np.ndarray]:
    """Identity columns plus physically plausible ``jet_<var>`` columns for these per-event jet counts (an events
    message's header names the manifest: :func:`manifest_sha256`)."""
    counts = np.asarray(counts, np.uint32)
    n, j = len(counts), int(counts.sum())
    cols: dict[str, np.ndarray] = {
        "n_jets": counts, "event_id": np.arange(first_event_id, first_event_id + n, dtype=np.uint64),
        "file_index": np.zeros(n, np.uint32), "entry": np.arange(first_event_id, first_event_id + n, dtype=np.uint64),
        "event_number": np.arange(n, dtype=np.uint64) + 1000}
    gen = {"pt": lambda: rng.uniform(20, 500, j), "eta": lambda: rng.uniform(-2.5, 2.5, j),
           "phi": lambda: rng.uniform(-3.1, 3.1, j), "m": lambda: rng.uniform(1, 60, j),
           "e": lambda: rng.uniform(30, 900, j)}
    for var in variables:
        cols[f"jet_{var}"] = gen[var]().astype(np.float32)
    return cols


def events_frames(run_id: int, seq: int, counts: np.ndarray, rng: np.random.Generator, first_event_id: int = 0,
                  rate_hz: float = 1000.0, variables: tuple[str, ...] = VARIABLES) -> list[bytes]:
    cols = events_columns(counts, rng, first_event_id, variables)
    return [bytes(f) for f in wire.encode(wire.KIND_EVENTS, run_id, seq, cols, t_send=time.time(), rate_hz=rate_hz,
                                          manifest_sha256=manifest_sha256(run_id))]


def manifest_sha256(run_id: int) -> str:
    """The sha256 an events header names the manifest of ``run_id`` by (:func:`manifest_for`)."""
    return wire.sha256_hex(wire.canonical_json(manifest_for(run_id)))


def scored_frames(run_id: int, seq: int, counts: np.ndarray, rng: np.random.Generator, card: dict[str, Any],
                  first_event_id: int = 0, threshold: float = 7.7) -> list[bytes]:
    """A valid scored message as an encoder would send it (tiny model numerics, computed in numpy)."""
    from emulator.encoder.microbatch import scored_columns, scored_hashes

    batch = wire.decode(events_frames(run_id, seq, counts, rng, first_event_id))
    x = np.stack([batch.columns[f"jet_{v}"] for v in VARIABLES], axis=1) if batch.n_jets else np.zeros((0, 4))
    latent, error = tiny_forward(x, tiny_weights())
    cols = scored_columns(batch, latent.astype(np.float32).reshape(-1, LATENT_DIM), error.astype(np.float32),
                          threshold, "<f4")
    frames = wire.encode(wire.KIND_SCORED, run_id, seq, cols, t_send=time.time(), rate_hz=1000.0,
                         t_encoded=time.time(), threshold=threshold, model=card["name"], encoder="test",
                         **scored_hashes(batch, card_sha256(card), card_sha256(card)))
    return [bytes(f) for f in frames]


def replace_header(frames: list[bytes], **changes: Any) -> list[bytes]:
    header = msgpack.unpackb(frames[0])
    header.update(changes)
    return [msgpack.packb(header), *frames[1:]]


# ---- processes and sockets ---------------------------------------------------------------------------------------
def addr(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


def start(cmd: str, *args: str, log: Path) -> subprocess.Popen:
    """Start ``aetrig cmd args`` as its own process (stderr to ``log``), with its role's session keys unless
    ``args`` give --curve-keys or --plaintext."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    keys = [] if {"--curve-keys", "--plaintext"} & set(args) else stage_flags(cmd)
    return subprocess.Popen([*AETRIG, cmd, *args, *keys], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(log, "ab"))


def stage_socket(ctx: zmq.Context, kind: int, link: str, server: bool) -> zmq.Socket:
    """A socket of ``kind`` standing in for a stage on ``link`` (its server side when ``server``), with that
    role's session keys; bind or connect it. Close ``ctx`` with :func:`close_context`."""
    return as_role(ctx.socket(kind), link, server)


def close_context(ctx: zmq.Context) -> None:
    """Stop the context's CurveZMQ authenticator (if any), then close its sockets without linger."""
    stop_authenticators(ctx)
    ctx.destroy(linger=0)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=timeout)


def scrape(port: int, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text exposition (0.0 never hides absence: KeyError)."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    raise KeyError(want)


class AckCollector:
    """The producer's ack PULL socket: collects (run_id, seqs, full) acks. It is the producer's CurveZMQ ack server
    (session keys), which takes acknowledgements from the sink key only; ``plaintext=True``: from anyone."""

    def __init__(self, ctx: zmq.Context, port: int, plaintext: bool = False):
        self.sock = ctx.socket(zmq.PULL) if plaintext else stage_socket(ctx, zmq.PULL, "acks", server=True)
        self.sock.bind(addr(port))
        self.acked: set[int] = set()
        self.full_acks = 0
        self.ack_order: list[list[int]] = []

    def poll(self, timeout_ms: int = 50) -> None:
        while self.sock.poll(timeout_ms):
            _, seqs, full = wire.decode_ack(self.sock.recv())
            self.acked.update(seqs)
            self.full_acks += int(full)
            if seqs:
                self.ack_order.append(seqs)
            timeout_ms = 0

    def poll_until(self, done: Callable[[], bool], timeout: float, poll_ms: int = 100) -> bool:
        """Collect acks until ``done()`` holds or ``timeout`` seconds have passed; whether ``done()`` holds."""
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            self.poll(poll_ms)
        return bool(done())

    def wait_for(self, seqs: set[int], timeout: float = 20.0) -> bool:
        """Collect acks until every seq of ``seqs`` is acknowledged, at most ``timeout`` seconds; whether it is."""
        return self.poll_until(lambda: seqs <= self.acked, timeout)


class SinkPeers:
    """What a real `aetrig sink` process talks to, on free loopback ports, with the session's role keys: ``push``
    connected to its scored-message address (as an encoder) and ``acks`` collecting on its ack address (as the
    producer); :meth:`sink_flags` are the sink's flags for them. :meth:`close` closes both."""

    def __init__(self, send_timeout_ms: int = -1):
        self.sink_p, self.ack_p = free_port(), free_port()
        self.ctx = zmq.Context()
        self.acks = AckCollector(self.ctx, self.ack_p)
        self.push = stage_socket(self.ctx, zmq.PUSH, "scored", server=False)
        self.push.sndtimeo = send_timeout_ms
        self.push.connect(addr(self.sink_p))

    def sink_flags(self, out: Path) -> list[str]:
        """``--bind``, ``--ack-connect`` and ``--out``: a sink on these peers' addresses recording to ``out``."""
        return ["--bind", addr(self.sink_p), "--ack-connect", addr(self.ack_p), "--out", str(out)]

    def close(self) -> None:
        close_context(self.ctx)


class SinkHarness:
    """What :func:`sink_in_thread` yields: the running ``sink`` and its ``thread``, a ``push`` socket
    connected to it (as an encoder), an ``acks`` collector on its ack address (as the producer), the session's
    flat CurveZMQ ``keys`` directory (None with ``plaintext=True``), and (after exit) its ``report``."""

    def __init__(self, sink: Any, thread: Any, push: zmq.Socket, acks: AckCollector, keys: Path | None):
        self.sink, self.thread, self.push, self.acks, self.keys = sink, thread, push, acks, keys
        self.report: dict[str, Any] = {}


@contextlib.contextmanager
def sink_in_thread(out: Path, card: dict[str, Any], run_ids: Any, anomaly_card: dict[str, Any] | None = None,
                   plaintext: bool = False, **options: Any) -> Iterator[SinkHarness]:
    """A real consumer.sink.service.Sink recording to ``out`` in a thread on free loopback ports, told to expect
    ``card`` (and ``anomaly_card``) and the runs ``run_ids`` (:func:`expectations`; ``options``: more SinkConfig
    fields), its links authenticated by role as `aetrig run` has them (the session's keys, the sink's role
    directory; ``plaintext=True``: none); stopped, joined and its sockets closed on exit, its report kept."""
    import threading

    from consumer.sink.service import Sink, SinkConfig
    from emulator.runtime.shutdown import StopFlag

    sink_p, ack_p = free_port(), free_port()
    keys = None if plaintext else session_keys()
    ctx = zmq.Context()
    acks = AckCollector(ctx, ack_p, plaintext)
    push = ctx.socket(zmq.PUSH) if plaintext else stage_socket(ctx, zmq.PUSH, "scored", server=False)
    push.connect(addr(sink_p))
    flag = StopFlag()
    expected = expectations(out.parent / f"{out.name}.expected", card, run_ids, anomaly_card)
    sink = Sink(SinkConfig(bind=addr(sink_p), ack_connect=addr(ack_p), out=out, plaintext=plaintext,
                           curve_keys=None if keys is None else keys / "sink", **expected, **options), stop=flag)
    harness = SinkHarness(sink, None, push, acks, keys)
    harness.thread = threading.Thread(target=lambda: harness.report.update(sink.run()), daemon=True)
    harness.thread.start()
    try:
        yield harness
    finally:
        flag.set()
        harness.thread.join(20)
        close_context(ctx)


def read_report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def recover_segments(directory: str | Path) -> dict[str, str]:
    """Finish or discard, in place, the interrupted last commit of every segment, as a starting sink does
    (consumer/sink/recovery.py); offline readers never do (they overlay complete journals in memory).

    Returns {segment name: 'replayed' | 'discarded'}; raises RecordingError when a sink holds the lock.
    """
    todo = pending_journals(directory)
    if not todo:
        return {}
    fd = lock_recording(directory)
    if fd is None:
        raise RecordingError(f"{directory}: a running sink is writing this recording ({len(todo)} segment(s) "
                             "mid-commit); read it after the sink stops")
    try:
        return {p.name: recover(p) for p in todo}
    finally:
        unlock_recording(fd)
