"""Hostile local processes against a real `aetrig run` (CurveZMQ by default): nothing connects, nothing is lost.

Each test starts `aetrig run --rate 20000 --duration 6` and, once its stages are up (run.json), attacks it
from this process over real ZeroMQ sockets on loopback, as another local process would:

- without the run's keys: a rogue PULL on the producer's data port (plaintext, and with a CURVE key of
  its own that knows the producer's public key), rogue PUSHes of forged acknowledgements (the real run
  id, seqs 0..N) on the ack port and of well-formed scored messages on the sink's port;
- holding the *encoder's* key (what a stolen Kubernetes Secret of the encoders gives): it may pull
  events, which it does, and acknowledge each stolen batch with its real run id and seq, which the
  producer refuses (only the sink's key may acknowledge), so the producer resends them;
- a control with ``--plaintext``: the same theft plus forged acknowledgements does lose events, so the
  attacks above are real ones.

Asserted: the rogue gets nothing (or, with the encoder key, nothing it can acknowledge), the refusals are
counted (producer report ``auth_refused``, sink log), 90 connections held open by rogues leave the
producer's and the sink's fd count and RSS where they were, no stage's pid changes, produced = recorded
with nothing lost or recorded twice, exit code 0, and (without the keys) the genuine batches committed
from the start of the attack on were acknowledged within 2 s (:class:`AckWatch`). The run is bounded (4 kHz,
messages closed after 50 ms, so 20 messages/s) to leave room on a loaded 2-core machine; the 2 s is the
issue's bound and the producer's resend timeout, not loosened.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from encsink_support import scored_frames
from waiting import wait_until

from emulator.runtime import wire
from emulator.runtime.curvezmq import generate_keys, secure_client
from models.runtime.card import read_card

pytestmark = pytest.mark.slow

AETRIG = str(Path(sys.executable).with_name("aetrig"))
RUN_ID = 0xA77AC4
ATTACK_S = 3.0
ACK_WITHIN_S = 2.0  # genuine batches are acknowledged within 2 s during an attack; a bucket bound of the histogram
ACK_QUANTILE = 0.99
#: bounded, for a loaded 2-core machine: 20 messages/s of 200 events; at load 10-12 one encoder fell behind
#: 10 kHz (the window full, batches waiting 0.6 s p50 for the encoder, 2.3 s at most, flood or not)
RUN_FLAGS = ("--rate", "4000", "--max-delay-ms", "50")


class AckWatch:
    """How long the genuine batches committed from now on waited for their acknowledgement, read from the sink.

    The sink acknowledges a batch right after the commit that makes it durable, and its histogram
    ``aetrig_commit_latency_seconds`` holds, per event, the time from the producer's first send of the batch
    (a resend keeps it) to that commit. A thread scrapes the sink's /metrics every 0.2 s until it is gone; the
    increase from the first scrape to the last is every event committed meanwhile, attack included. Rogue
    messages add nothing: they are refused before the sink, rejected, or hold zero events.
    """

    NAME = "aetrig_commit_latency_seconds"

    def __init__(self, info: dict[str, Any]):
        from emulator.runtime.prom_text import scrape

        self.url = next(s["metrics"] for s in info["stages"] if s["name"] == "sink")
        self._scrape = scrape
        self.first = scrape(self.url)
        self.last = self.first
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while True:
            try:
                self.last = self._scrape(self.url, timeout=2.0)
            except OSError:  # the sink has stopped: its last page is the one kept
                return
            time.sleep(0.2)

    def committed(self) -> list[tuple[float, float]]:
        """Cumulative buckets [(bound, events)] of the events committed since the watch began (once the run ended)."""
        from emulator.runtime.prom_text import bucket_increase

        self._thread.join(30)
        return bucket_increase(self.first, self.last, self.NAME)

    def assert_acknowledged_within(self, seconds: float = ACK_WITHIN_S, quantile: float = ACK_QUANTILE) -> float:
        """At least ``quantile`` of the events committed since the watch began were committed, and so
        acknowledged, within ``seconds`` of their batch's first send; returns that fraction."""
        cumulative = dict(self.committed())
        total, within = cumulative.get(math.inf, 0.0), cumulative.get(seconds, 0.0)
        assert total > 0, "no genuine event was committed during the attack"
        print(f"acknowledged within {seconds:g} s: {within:.0f} of {total:.0f} events committed during the attack")
        assert within >= quantile * total, (f"only {within:.0f} of {total:.0f} genuine events committed within "
                                            f"{seconds:g} s of their first send",
                                            {bound: n for bound, n in cumulative.items() if bound >= 0.1})
        return within / total


def _start_run(tmp: Path, *extra: str) -> tuple[subprocess.Popen, dict[str, Any], Path]:
    out = tmp / "run"
    log = open(tmp / "aetrig-run.log", "wb")  # noqa: SIM115 - the child holds it; closed with the test
    proc = subprocess.Popen([AETRIG, "run", *RUN_FLAGS, "--duration", "6", "--run-id", hex(RUN_ID),
                             "--encoders", "1", "--status-interval", "0", "--out", str(out), *extra],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (out / "run.json").exists() or proc.poll() is not None, 120,
                   what="the run's stages to be up (run.json)")
    except AssertionError:
        proc.kill()
        raise
    assert proc.poll() is None, (tmp / "aetrig-run.log").read_text()[-3000:]
    return proc, json.loads((out / "run.json").read_text()), out


def _finish(proc: subprocess.Popen, out: Path, tmp: Path) -> tuple[int, dict[str, Any], dict[str, Any]]:
    try:
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (out / "summary.json").exists(), (tmp / "aetrig-run.log").read_text()[-3000:]
    refused = [line for line in (tmp / "aetrig-run.log").read_text().splitlines() if "the producer refused" in line]
    assert len(refused) <= 1 and all("handshakes on" in line for line in refused), refused
    return code, json.loads((out / "summary.json").read_text()), json.loads((out / "run.json").read_text())


def _pids(info: dict[str, Any]) -> dict[str, int]:
    return {s["name"]: s["pid"] for s in info["stages"]}


def _socket(ctx: zmq.Context, kind: int, addr: str, keys: Path | None, link: str) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.linger = 0
    if keys is not None:
        secure_client(sock, keys, link)
    sock.connect(addr)
    return sock


def _pull(ctx: zmq.Context, addr: str, keys: Path | None, seconds: float) -> list[list[bytes]]:
    """Everything a rogue PULL on the data port receives within ``seconds``."""
    sock = _socket(ctx, zmq.PULL, addr, keys, "data")
    got, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sock.poll(50):
            got.append(sock.recv_multipart())
    sock.close(0)
    return got


def _push(ctx: zmq.Context, addr: str, keys: Path | None, link: str, messages: list[list[bytes]],
          seconds: float) -> int:
    """Offer ``messages`` round and round for ``seconds``; return how many the socket took (queued or sent)."""
    sock = _socket(ctx, zmq.PUSH, addr, keys, link)
    sent, deadline, i = 0, time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        try:
            sock.send_multipart(messages[i % len(messages)], zmq.NOBLOCK)
            sent += 1
            i += 1
        except zmq.Again:  # no completed handshake: nothing to queue on
            time.sleep(0.02)
    sock.close(0)
    return sent


def _stranger(tmp: Path, run_keys: Path) -> Path:
    """Keys of its own for every role, plus the run's public keys of the servers it aims at."""
    keys = generate_keys(tmp / "stranger")
    for role in ("producer", "sink"):
        shutil.copy(run_keys / f"{role}.key", keys / f"{role}.key")
    return keys


def _encoder_thief(tmp: Path, run_keys: Path) -> Path:
    """The encoder's identity, and nothing else secret: it stands in for the sink too (to try acknowledging)."""
    keys = tmp / "thief"
    keys.mkdir()
    for path in run_keys.glob("*.key"):
        shutil.copy(path, keys / path.name)
    for role in ("encoder", "sink"):
        shutil.copy(run_keys / "encoder.key_secret", keys / f"{role}.key_secret")
    return keys


def _forged_scored(run_id: int) -> list[list[bytes]]:
    """Well-formed scored messages with the run's id and the default anomaly model's card."""
    from emulator.runtime import defaults

    card = read_card(defaults.DEFAULT_ANOMALY_MODEL)
    rng = np.random.default_rng(5)
    return [scored_frames(run_id, seq, np.full(16, 3), rng, card, first_event_id=10_000_000 + 16 * seq)
            for seq in range(8)]


def _steal_and_acknowledge(info: dict[str, Any], keys: Path | None) -> list[tuple[int, int]]:
    """Pull batches from the data port for ATTACK_S and acknowledge each at once with its own run id and seq,
    as the issue's thief did; return the (run id, seq) of the batches it got."""
    ctx = zmq.Context()
    stolen: list[tuple[int, int]] = []
    try:
        pull = _socket(ctx, zmq.PULL, info["addresses"]["data"], keys, "data")
        ack = _socket(ctx, zmq.PUSH, info["addresses"]["acks"], keys, "acks")
        deadline = time.monotonic() + ATTACK_S
        while time.monotonic() < deadline:
            if pull.poll(50):
                header = msgpack.unpackb(pull.recv_multipart()[0])
                stolen.append((int(header["run_id"]), int(header["seq"])))
                with contextlib.suppress(zmq.Again):  # refused handshake: nothing to queue on
                    ack.send(wire.encode_ack(stolen[-1][0], [stolen[-1][1]]), zmq.NOBLOCK)
    finally:
        ctx.destroy(0)
    return stolen


def _flood(ctx: zmq.Context, addresses: list[str], keys: Path | None, per_address: int, seconds: float) -> int:
    """Hold ``per_address`` connections open on each address for ``seconds`` (each handshake refused and retried)."""
    socks = [_socket(ctx, zmq.PUSH, addr, keys, "acks" if keys else "data") for addr in addresses
             for _ in range(per_address)]
    time.sleep(seconds)
    for sock in socks:
        sock.close(0)
    return len(socks)


def _fds(pid: int) -> int:
    """Open descriptors of ``pid`` (0 once it has exited: it holds none)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        return 0


def _rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    except (FileNotFoundError, StopIteration):
        return 0


def _in_threads(*jobs: Any) -> list[Any]:
    results: list[Any] = [None] * len(jobs)

    def run(i: int, fn: Any, args: tuple) -> None:
        results[i] = fn(*args)

    threads = [threading.Thread(target=run, args=(i, fn, args)) for i, (fn, *args) in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def _assert_whole(code: int, summary: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> None:
    ev = summary["events"]
    assert code == 0, (code, ev, after.get("failures"))
    assert ev["produced"] > 0 and ev["recorded"] == ev["produced"], ev
    assert ev["lost"] == 0 and ev["duplicates_recorded"] == 0, ev
    assert _pids(after) == _pids(before) and not any((summary.get("restarts") or {}).values()), summary["restarts"]


def test_a_process_without_the_keys_gets_nothing_and_costs_nothing(tmp_path: Path) -> None:
    proc, info, out = _start_run(tmp_path)
    keys = Path(info["curve_keys"])
    assert keys == out / "keys"
    stranger = _stranger(tmp_path, keys)
    data, acks, scored = (info["addresses"][k] for k in ("data", "acks", "scored"))
    forged_acks = [[wire.encode_ack(RUN_ID, list(range(start, start + 64)))] for start in range(0, 2048, 64)]
    forged_scored = _forged_scored(RUN_ID)
    pids = _pids(info)
    before = {name: (_fds(pid), _rss_bytes(pid)) for name, pid in pids.items() if name in ("producer", "sink")}
    acks_watch = AckWatch(info)
    ctx = zmq.Context()
    try:
        got_plain, got_curve, *_ = _in_threads(
            (_pull, ctx, data, None, ATTACK_S), (_pull, ctx, data, stranger, ATTACK_S),
            (_push, ctx, acks, None, "acks", forged_acks, ATTACK_S),
            (_push, ctx, acks, stranger, "acks", forged_acks, ATTACK_S),
            (_push, ctx, scored, None, "scored", forged_scored, ATTACK_S),
            (_push, ctx, scored, stranger, "scored", forged_scored, ATTACK_S),
            (_flood, ctx, [data, acks, scored], None, 30, ATTACK_S),
            (_flood, ctx, [acks], stranger, 30, ATTACK_S))
    finally:
        ctx.destroy(0)
    assert got_plain == [] and got_curve == []
    for name, (fds, rss) in before.items():  # refused peers leave no descriptors or memory behind
        wait_until(lambda pid=pids[name], fds=fds: _fds(pid) <= fds + 4, 10, what=f"{name}'s fd count to settle")
        assert _rss_bytes(pids[name]) < rss + (64 << 20), name
    code, summary, after = _finish(proc, out, tmp_path)
    _assert_whole(code, summary, info, after)
    acks_watch.assert_acknowledged_within()
    producer = json.loads((out / "reports" / "producer.json").read_text())
    assert producer["curve"] is True
    assert producer["auth_refused"].get("data", 0) >= 1 and producer["auth_refused"].get("acks", 0) >= 1
    assert producer["foreign_acks"] == 0 and producer["unknown_acks"] == 0  # no forged ack ever arrived
    assert "the producer refused" in (tmp_path / "aetrig-run.log").read_text()  # the end-of-run line says so
    sink_log = (out / "logs" / "sink.log").read_text()
    assert "refused a peer on aetrig-scored" in sink_log
    assert not summary["rejected"], summary["rejected"]  # no forged scored message reached the sink


def test_the_encoder_key_may_pull_but_cannot_acknowledge(tmp_path: Path) -> None:
    proc, info, out = _start_run(tmp_path)
    thief = _encoder_thief(tmp_path, Path(info["curve_keys"]))
    stolen = _steal_and_acknowledge(info, thief)
    assert stolen and {run for run, _ in stolen} == {RUN_ID}  # the encoder key does get events
    code, summary, after = _finish(proc, out, tmp_path)
    _assert_whole(code, summary, info, after)
    producer = json.loads((out / "reports" / "producer.json").read_text())
    assert producer["auth_refused"].get("acks", 0) >= 1
    assert producer["batches_resent"] >= len(stolen) > 0  # never acknowledged by the sink: resent, not lost


def test_control_without_authentication_the_same_theft_loses_events(tmp_path: Path) -> None:
    """--plaintext: the rogue steals batches and acknowledges them, and those events are lost (exit 3)."""
    proc, info, out = _start_run(tmp_path, "--plaintext")
    assert info["curve_keys"] is None and not (out / "keys").exists()
    stolen = len(_steal_and_acknowledge(info, None))
    code, summary, _ = _finish(proc, out, tmp_path)
    assert stolen > 0 and code == 3 and summary["events"]["lost"] > 0, (stolen, code, summary["events"])
