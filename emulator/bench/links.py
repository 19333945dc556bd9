"""What CurveZMQ costs on one link: CPU per megabyte and one-way latency, plaintext against CurveZMQ.

A PUSH socket in this process sends messages of a pipeline message's size to a PULL socket in a child
process over tcp loopback, as the stages do, once in plaintext and once with the run's CurveZMQ roles
(``emulator/runtime/curvezmq.py``), alternating ``repeats`` times. Throughput blocks send as fast as
possible and measure the CPU seconds of both processes (ZeroMQ I/O threads included) per megabyte;
latency blocks send one message every few milliseconds, stamped with ``time.time()``, and take the
receiver's one-way latency (one host, one clock). The difference is what authentication and encryption
add per byte; multiplied by a pipeline's bytes per event it gives the cost per event.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import struct
import tempfile
import time
from typing import Any

import numpy as np
import zmq

from emulator.runtime.curvezmq import generate_keys, secure_client, secure_server, stop_authenticators


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _receiver(keys: str | None, n: int, port_q: Any, out_q: Any) -> None:  # pragma: no cover - child process
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    if keys:
        secure_server(pull, keys, "data")
    port_q.put(pull.bind_to_random_port("tcp://127.0.0.1"))
    pull.recv()  # the first message: the link is up
    cpu0, stamps = _cpu_s(resource.RUSAGE_SELF), []
    for _ in range(n):
        msg = pull.recv(copy=False)
        stamps.append(time.time() - struct.unpack("d", msg.buffer[:8])[0])
    out_q.put((_cpu_s(resource.RUSAGE_SELF) - cpu0, stamps))
    pull.close(0)
    stop_authenticators(ctx)
    ctx.term()


def _block(keys: str | None, size: int, n: int, gap_s: float) -> tuple[float, float, np.ndarray]:
    """(wall s, CPU s of both ends, one-way latencies) of ``n`` messages of ``size`` bytes, ``gap_s`` apart."""
    spawn = mp.get_context("spawn")
    port_q, out_q = spawn.Queue(), spawn.Queue()
    child = spawn.Process(target=_receiver, args=(keys, n, port_q, out_q), daemon=True)
    child.start()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    try:
        if keys:
            secure_client(push, keys, "data")
        push.connect(f"tcp://127.0.0.1:{port_q.get(timeout=60)}")
        pad = b"\0" * (size - 8)
        push.send(b"\0" * size)
        cpu0, t0 = _cpu_s(resource.RUSAGE_SELF), time.perf_counter()
        next_at = time.monotonic()
        for _ in range(n):
            if gap_s:
                next_at += gap_s
                time.sleep(max(0.0, next_at - time.monotonic()))
            push.send(struct.pack("d", time.time()) + pad)
        child_cpu, stamps = out_q.get(timeout=120)
        wall = time.perf_counter() - t0
        cpu = _cpu_s(resource.RUSAGE_SELF) - cpu0 + child_cpu
    finally:
        push.close(0)
        ctx.term()
        child.join(10)
    return wall, cpu, np.asarray(stamps)


def link_cost(repeats: int = 3, size: int = 200_000, messages: int = 800, latency_size: int = 65_000,
              latency_messages: int = 300, gap_s: float = 0.003) -> dict[str, Any]:
    """Plaintext against CurveZMQ on loopback, alternated ``repeats`` times; lists hold one value per repeat."""
    keys = str(generate_keys(tempfile.mkdtemp(prefix="aetrig-bench-keys-")))
    out: dict[str, Any] = {"message_bytes": size, "messages": messages, "latency_message_bytes": latency_size,
                           "latency_gap_s": gap_s, "repeats": repeats}
    for mode in ("plaintext", "curve"):
        out[mode] = {"cpu_ms_per_mb": [], "mb_per_s": [], "latency_p50_ms": [], "latency_p99_ms": []}
    for _ in range(repeats):
        for mode, k in (("plaintext", None), ("curve", keys)):
            wall, cpu, _ = _block(k, size, messages, 0.0)
            mb = size * messages / 1e6
            out[mode]["cpu_ms_per_mb"].append(1e3 * cpu / mb)
            out[mode]["mb_per_s"].append(mb / wall)
            _, _, lat = _block(k, latency_size, latency_messages, gap_s)
            out[mode]["latency_p50_ms"].append(1e3 * float(np.percentile(lat, 50)))
            out[mode]["latency_p99_ms"].append(1e3 * float(np.percentile(lat, 99)))
    plain, curve = (float(np.median(out[m]["cpu_ms_per_mb"])) for m in ("plaintext", "curve"))
    out["curve_extra_cpu_ms_per_mb_median"] = curve - plain
    out["curve_extra_latency_p50_ms_median"] = (float(np.median(out["curve"]["latency_p50_ms"]))
                                                - float(np.median(out["plaintext"]["latency_p50_ms"])))
    return out
