"""A holder of the run's keys sends hostile but well-formed messages to a real `aetrig run` (CurveZMQ, keys read
from the run directory, as a stolen Secret would give them):

- to the sink, as an encoder: NaN and ±inf time stamps and thresholds, UTF-16 and byte-order-mark blobs, a
  ``jet_latent`` of shape (0, 10^6), 2 000 distinct run ids, then a 10 s flood of zero-event messages (of
  the run, with seqs far above the producer's, and of strangers' runs);
- to the producer, as the sink: malformed acknowledgements (no run id, a string run id, seqs that are not
  integers, garbage, several frames).

Asserted: every hostile message is a counted rejection (the flood's messages of the run too: they carry a
per-jet jet_error column, which a recording flagged by the default event-level model holds none of, so they are
``bad_column``), no stage's pid changes, produced = recorded with nothing lost or
twice, the genuine batches committed from the first hostile message to the end of the run (the flood included)
were acknowledged within 2 s of their first send, 99 % of their events at least (test_auth_hostile.AckWatch: the
sink's per-event commit latency histogram, read from its /metrics; bounded run: 4 kHz, 50 ms messages), the
sink's and the producer's fd count and RSS stay bounded (sampled every 0.25 s through the flood).
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from encsink_support import card_sha256, scored_frames
from test_auth_hostile import AckWatch, _fds, _finish, _pids, _rss_bytes, _socket, _start_run
from wire_support import join, split

from emulator.runtime import defaults, wire
from models.runtime.card import read_card

pytestmark = pytest.mark.slow

RUN_ID = 0xA77AC4  # test_auth_hostile._start_run's
FLOOD_S = 10.0


def _header(frames: list[bytes], **changes: Any) -> list[bytes]:
    header = msgpack.unpackb(frames[0])
    header.update(changes)
    return [msgpack.packb(header), *frames[1:]]


def _with_blob(frames: list[bytes], name: str, raw: bytes) -> list[bytes]:
    header, parts = split(frames)
    header["cols"].append([name, "|u1", [len(raw)]])
    return join(header, [*parts, raw])


def _huge_latent(frames: list[bytes]) -> list[bytes]:
    """The message's events emptied, and a jet_latent of shape (0, 10^6)."""
    header = msgpack.unpackb(frames[0])
    header["n_events"] = header["n_jets"] = 0
    for col in header["cols"]:
        col[2] = [0, 10**6] if col[0] == "jet_latent" else [0] * len(col[2])
    return [msgpack.packb(header), b""]


def _hostile(manifest: dict[str, Any], card: dict[str, Any], anomaly: dict[str, Any]) -> tuple[list, list]:
    """(hostile messages, their expected reasons) and the flood's messages, all with the run's hashes."""
    rng = np.random.default_rng(11)
    hashes = {"card_sha256": card_sha256(card), "anomaly_card_sha256": card_sha256(anomaly),
              "manifest_sha256": wire.sha256_hex(wire.canonical_json(manifest)), "model": card["name"],
              "anomaly_model": anomaly["name"]}

    def good(seq: int, counts: np.ndarray) -> list[bytes]:
        frames = scored_frames(RUN_ID, seq, counts, rng, card, first_event_id=1 << 40)
        return _header(frames, **hashes)

    base = 1 << 62  # far above any seq the producer sends: these never collide with a genuine batch
    g = good(base, np.array([2, 0, 1]))
    nan, inf = math.nan, math.inf
    blob = json.dumps(manifest).encode()
    messages = [
        (_header(g, t_send=nan), "non_finite"), (_header(g, t_send=inf), "non_finite"),
        (_header(g, t_send=-inf), "non_finite"), (_header(g, threshold=nan), "non_finite"),
        (_header(g, t_encoded=inf), "non_finite"),
        (_with_blob(g, "manifest_json", blob.decode().encode("utf-16")), "bad_column"),
        (_with_blob(g, "card_json", b"\xef\xbb\xbf" + blob), "bad_column"),
        (_huge_latent(g), "limit_exceeded"),
    ]
    strangers = [(_header(g, run_id=RUN_ID + 1 + i), "wrong_run") for i in range(2000)]
    empty = [good(base + 1 + i, np.zeros(0, np.uint32)) for i in range(64)]  # the run's own, zero events
    foreign = [_header(e, run_id=RUN_ID + 7) for e in empty[:8]]  # zero events of a stranger's run
    return messages + strangers, empty + foreign


def _send_all(sock: zmq.Socket, messages: list[list[bytes]]) -> int:
    sent = 0
    for frames in messages:
        sock.send_multipart(frames)  # blocks at the high-water mark: the sink pushes back
        sent += 1
    return sent


def _flood(sock: zmq.Socket, messages: list[list[bytes]], seconds: float, counts: dict[str, int]) -> None:
    deadline, i = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        try:
            sock.send_multipart(messages[i % len(messages)], zmq.NOBLOCK)
            counts["flood"] += 1
            i += 1
        except zmq.Again:
            time.sleep(0.001)


def _bad_acks() -> list[list[bytes]]:
    v = wire.SCHEMA_VERSION
    return [[msgpack.packb({"v": v, "kind": "ack", "seqs": []})],  # the ack that killed the producer
            [msgpack.packb({"v": v, "kind": "ack", "run_id": str(RUN_ID), "seqs": []})],
            [msgpack.packb({"v": v, "kind": "ack", "run_id": RUN_ID, "seqs": ["0", None]})],
            [msgpack.packb({"v": v, "kind": "ack", "run_id": RUN_ID, "seqs": [0], "full": "yes"})],
            [b"\xc1garbage"], [wire.encode_ack(RUN_ID, []), b"a second frame"]]


def test_hostile_messages_from_holders_of_the_keys_cost_nothing(tmp_path: Path) -> None:
    proc, info, out = _start_run(tmp_path, "--duration", "16")
    keys = Path(info["curve_keys"])
    manifest = json.loads((out / "manifest.json").read_text())
    card = read_card(defaults.default_model(announce=False))
    anomaly = read_card(defaults.DEFAULT_ANOMALY_MODEL)
    hostile, flood = _hostile(manifest, card, anomaly)
    pids = _pids(info)
    before = {name: (_fds(pid), _rss_bytes(pid)) for name, pid in pids.items() if name in ("producer", "sink")}
    peak = dict.fromkeys(before, (0, 0))
    acks_watch = AckWatch(info)
    ctx = zmq.Context()
    counts = {"flood": 0}
    try:
        scored = _socket(ctx, zmq.PUSH, info["addresses"]["scored"], keys, "scored")  # the encoder's identity
        acks = _socket(ctx, zmq.PUSH, info["addresses"]["acks"], keys, "acks")  # the sink's identity
        bad_acks = _bad_acks()
        for _ in range(20):
            for frames in bad_acks:
                acks.send_multipart(frames)
        assert _send_all(scored, [m for m, _ in hostile]) == len(hostile)
        flooder = threading.Thread(target=_flood, args=(scored, flood, FLOOD_S, counts))
        flooder.start()
        while flooder.is_alive():
            for name in before:
                peak[name] = tuple(max(a, b) for a, b in zip(peak[name], (_fds(pids[name]),
                                                                           _rss_bytes(pids[name])), strict=True))
            time.sleep(0.25)
        flooder.join()
    finally:
        ctx.destroy(0)
    code, summary, after = _finish(proc, out, tmp_path)
    ev = summary["events"]
    assert code == 0, (code, ev, after.get("failures"))
    assert ev["produced"] > 0 and ev["recorded"] == ev["produced"] and ev["lost"] == 0, ev
    assert ev["duplicates_recorded"] == 0, ev
    assert _pids(after) == pids and not any((summary.get("restarts") or {}).values()), summary["restarts"]
    for name, (fds, rss) in before.items():  # bounded: a few descriptors and 128 MiB over the start
        assert peak[name][0] <= fds + 8 and peak[name][1] < rss + (128 << 20), (name, before[name], peak[name])
    sink = json.loads((out / "reports" / "sink.json").read_text())
    want = {}
    for _, reason in hostile:
        want[reason] = want.get(reason, 0) + 1
    for reason, n in want.items():
        assert sink["rejected"].get(reason, 0) >= n, (reason, sink["rejected"])
    assert counts["flood"] > 1000 and sink["rejected"]["wrong_run"] > 2000  # the flood's strangers too
    assert len(sink["files"]) <= 3  # no segment per stranger's run id
    print("flood", counts, "sink commit latency", sink["latency_seconds"]["commit"])
    acks_watch.assert_acknowledged_within()  # genuine batches acknowledged within 2 s, through the flood
    producer = json.loads((out / "reports" / "producer.json").read_text())
    assert sum(producer["rejected"].values()) >= 20 * len(bad_acks), producer["rejected"]
