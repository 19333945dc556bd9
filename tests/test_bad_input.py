"""Bad messages sent straight to a real encoder process and a real sink process over 127.0.0.1.

Every class is rejected and counted by its reason (stage report AND Prometheus /metrics), its bytes
are quarantined, both services keep running, and valid traffic mixed in (zero-jet events and a
60-jet event included) is recorded completely.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from encsink_support import (
    AckCollector,
    addr,
    card_sha256,
    close_context,
    events_frames,
    expect_args,
    make_tiny_model,
    metric_value,
    read_report,
    replace_header,
    scored_frames,
    scrape,
    stage_socket,
    start,
    stop,
)
from wire_support import join, split

from consumer.offline.verify import verify_recording
from emulator.runtime import wire
from emulator.runtime.recording import open_recording

MAX_JETS_PER_EVENT = 100
MAX_MESSAGE_BYTES = 1_000_000
RUN, SINK_RUN = 0x1111, 0x2222


def _with_column(frames: list[bytes], name: str, array: np.ndarray, desc_name: str | None = None) -> list[bytes]:
    header, parts = split(frames)
    header["cols"].append([desc_name or name, array.dtype.str, list(array.shape)])
    return join(header, [*parts, array.tobytes()])


def _edit_column(frames: list[bytes], name: str, array: np.ndarray) -> list[bytes]:
    header, parts = split(frames)
    i = [c[0] for c in header["cols"]].index(name)
    header["cols"][i] = [name, array.dtype.str, list(array.shape)]
    parts[i] = array.tobytes()
    return join(header, parts)


def _drop_column(frames: list[bytes], name: str) -> list[bytes]:
    header, parts = split(frames)
    i = [c[0] for c in header["cols"]].index(name)
    del header["cols"][i], parts[i]
    return join(header, parts)


def _without_header(frames: list[bytes], key: str) -> list[bytes]:
    header = msgpack.unpackb(frames[0])
    del header[key]
    return [msgpack.packb(header), *frames[1:]]


def _column(frames: list[bytes], name: str) -> np.ndarray:
    return wire.decode(frames).columns[name].copy()


def encoder_bad_messages(rng: np.random.Generator) -> list[tuple[str, str, list[bytes]]]:
    """(class, expected reason, frames) for the encoder; each built from a valid events message."""
    def good(seq: int = 900, counts: tuple[int, ...] = (2, 0, 3)) -> list[bytes]:
        return events_frames(RUN, seq, np.array(counts), rng, first_event_id=10_000 + seq * 10)

    g = good()
    header = msgpack.unpackb(g[0])
    pt = _column(g, "jet_pt")
    nan_pt, inf_pt = pt.copy(), pt.copy()
    nan_pt[1], inf_pt[0] = np.nan, np.inf
    bad_shape = dict(header)
    bad_shape["cols"] = [list(c) for c in header["cols"]]
    bad_shape["cols"][5][2] = [bad_shape["cols"][5][2][0] + 2]  # 8 bytes more: beyond any padding
    bad_rank = [list(c) for c in header["cols"]]
    bad_rank[5][2] = [1, 1, bad_rank[5][2][0]]
    big_event = good(counts=(MAX_JETS_PER_EVENT + 1,))
    unknown_dtype = [list(c) for c in header["cols"]]
    unknown_dtype[5][1] = "<c8"
    return [
        ("random bytes", "frame_count", [rng.bytes(64)]),
        ("random multipart", "bad_header", [rng.bytes(7), rng.bytes(300)]),
        ("empty frame", "frame_count", [b""]),
        ("empty header and body", "bad_header", [b"", b""]),
        ("non-map header", "bad_header", [msgpack.packb([1, 2, 3]), *g[1:]]),
        ("header field of wrong type", "bad_header", replace_header(g, seq="seven")),
        ("negative seq", "bad_header", replace_header(g, seq=-1)),
        ("wrong schema version", "schema_version", replace_header(g, v=1)),
        ("NaN send time", "non_finite", replace_header(g, t_send=float("nan"))),
        ("unknown kind", "unknown_kind", replace_header(g, kind="telemetry")),
        ("scored kind at the encoder", "unknown_kind", replace_header(g, kind="scored")),
        ("ack kind at the encoder", "unknown_kind", replace_header(g, kind="ack")),
        ("wrong frame count", "frame_count", g[:-1]),
        ("one frame per column (schema 2)", "frame_count", [g[0], *split(g)[1]]),
        ("truncated body", "size_mismatch", [g[0], g[1][:-3]]),
        ("sizes disagree with header", "size_mismatch", [msgpack.packb(bad_shape), *g[1:]]),
        ("unknown dtype", "unknown_dtype", replace_header(g, cols=unknown_dtype)),
        ("duplicate column", "bad_column", _with_column(g, "jet_pt", pt)),
        ("bad shape rank", "bad_column", replace_header(g, cols=bad_rank)),
        ("unknown column", "bad_column", _with_column(g, "colour", pt)),
        ("count mismatch", "count_mismatch", replace_header(g, n_jets=header["n_jets"] + 1)),
        ("jet column of wrong length", "count_mismatch", _edit_column(g, "jet_eta", pt[:-1].copy())),
        ("missing identity column", "missing_column", _drop_column(g, "event_id")),
        ("missing manifest hash", "bad_header", _without_header(g, "manifest_sha256")),
        ("manifest blob (schema 2)", "bad_column", _with_column(g, "manifest_json", np.frombuffer(
            json.dumps({"run_id": RUN}).encode(), "|u1"))),
        ("stream lacking a model variable", "missing_variable", _drop_column(g, "jet_m")),
        ("NaN feature", "non_finite", _edit_column(g, "jet_pt", nan_pt)),
        ("inf feature", "non_finite", _edit_column(g, "jet_pt", inf_pt)),
        ("absurd jet count", "limit_exceeded", big_event),
    ]


def sink_bad_messages(rng: np.random.Generator, card: dict, other_card: dict) -> list[tuple[str, str, list[bytes]]]:
    def good(seq: int = 500) -> list[bytes]:
        return scored_frames(SINK_RUN, seq, np.array([1, 4, 0]), rng, card, first_event_id=50_000 + 10 * seq)

    g = good()
    err = _column(g, "jet_error")
    err[0] = np.nan
    lat = _column(g, "jet_latent")
    no_threshold = msgpack.unpackb(g[0])
    del no_threshold["threshold"]
    other_anomaly = card_sha256({**card, "name": "another_flagger"})
    # both events with jets flagged (threshold below any error): a flag of 2 keeps the raw copies' jets
    flags_all = scored_frames(SINK_RUN, 503, np.array([1, 4, 0]), rng, card, first_event_id=70_000, threshold=-1.0)
    return [
        ("random bytes", "frame_count", [rng.bytes(100)]),
        ("events message to the sink", "unknown_kind", events_frames(SINK_RUN, 501, np.array([1]), rng)),
        ("scored by another model", "wrong_model",
         scored_frames(SINK_RUN, 502, np.array([2]), rng, other_card, first_event_id=60_000)),
        ("NaN error", "non_finite", _edit_column(g, "jet_error", err)),
        ("latent of wrong shape", "count_mismatch", _edit_column(g, "jet_latent", lat[:-1].copy())),
        ("card named by a malformed hash", "bad_header", replace_header(g, card_sha256="ABC")),
        ("a card blob on a scored message", "bad_column", _with_column(g, "card_json", np.frombuffer(
            json.dumps(card).encode(), "|u1"))),
        ("truncated body", "size_mismatch", [g[0], g[1][:-1]]),
        ("missing score column", "missing_column", _drop_column(g, "event_score")),
        ("flag that is not 0/1", "bad_column", _edit_column(flags_all, "flag", np.array([2, 1, 0], np.uint8))),
        ("integer scores", "bad_column", _edit_column(g, "event_score", np.array([1, 2, 0], np.uint32))),
        ("flagged by another anomaly model", "wrong_model", replace_header(g, anomaly_card_sha256=other_anomaly)),
        ("header anomaly model disagrees with its card", "wrong_model", replace_header(g, anomaly_model="x")),
        ("missing anomaly card hash", "bad_header", _without_header(g, "anomaly_card_sha256")),
        ("a manifest the sink was not told of", "wrong_run", replace_header(g, manifest_sha256="0" * 64)),
        ("a run id other than its manifest's", "wrong_run", replace_header(g, run_id=RUN)),
        ("infinite send time", "non_finite", replace_header(g, t_send=float("-inf"))),
        ("no threshold in the header", "bad_header", [msgpack.packb(no_threshold), *g[1:]]),
    ]


@pytest.mark.timeout(120)
def test_bad_input_is_rejected_counted_quarantined_and_valid_traffic_recorded(tmp_path: Path, free_port) -> None:
    rng = np.random.default_rng(2024)
    model = make_tiny_model(tmp_path / "model")
    card = json.loads((model / "card.json").read_text())
    from models.runtime.card import load_model_dir

    card = load_model_dir(model).card
    other_card = {**card, "name": "someone_else"}
    data_p, sink_p, ack_p, enc_m, sink_m = (free_port() for _ in range(5))
    limits = ["--max-jets-per-event", str(MAX_JETS_PER_EVENT), "--max-message-bytes", str(MAX_MESSAGE_BYTES)]
    sink = start("sink", "--bind", addr(sink_p), "--ack-connect", addr(ack_p), "--out", str(tmp_path / "rec"),
                 *expect_args(tmp_path, card, [RUN, SINK_RUN]),
                 "--commit-ms", "50", "--metrics-port", str(sink_m), "--report", str(tmp_path / "sink.json"),
                 "--quarantine", str(tmp_path / "q_sink"), *limits, log=tmp_path / "sink.log")
    encoder = start("encode", "--model", str(model), "--connect", addr(data_p), "--sink", addr(sink_p),
                    "--threshold", "7.7", "--anomaly-model", "none",  # per-jet: the sink expects no event model
                    "--metrics-port", str(enc_m), "--report", str(tmp_path / "enc.json"),
                    "--quarantine", str(tmp_path / "q_enc"), "--id", "enc-bad", *limits, log=tmp_path / "enc.log")
    ctx = zmq.Context()
    try:
        data = stage_socket(ctx, zmq.PUSH, "data", server=True)
        data.sndtimeo = 15000
        data.bind(addr(data_p))
        acks = AckCollector(ctx, ack_p)
        direct = stage_socket(ctx, zmq.PUSH, "scored", server=False)
        direct.sndtimeo = 15000
        direct.connect(addr(sink_p))

        # valid traffic: zero-jet events, a 60-jet event, ordinary events; interleaved with the bad classes
        valid: dict[int, np.ndarray] = {}
        for seq in range(12):
            counts = rng.integers(0, 6, size=int(rng.integers(1, 40)))
            if seq == 3:
                counts = np.array([0, 0, 0])
            if seq == 7:
                counts = np.array([60, 0, 2])
            valid[seq] = counts
        enc_bad = encoder_bad_messages(rng)
        sink_bad = sink_bad_messages(rng, card, other_card)
        starts = np.concatenate([[0], np.cumsum([len(valid[s]) for s in sorted(valid)])])
        first_event = {seq: int(starts[seq]) for seq in valid}

        # the first valid message goes through the whole pipeline before any bad input
        data.send_multipart(events_frames(RUN, 0, valid[0], rng, first_event[0]))
        assert acks.wait_for({0}, timeout=30), "first valid batch not acknowledged"
        bad_iter = iter(enc_bad)
        for seq in range(1, 12):
            for _ in range(3):
                item = next(bad_iter, None)
                if item is not None:
                    data.send_multipart(item[2])
            data.send_multipart(events_frames(RUN, seq, valid[seq], rng, first_event[seq]))
        for item in bad_iter:
            data.send_multipart(item[2])
        # a duplicated seq through the encoder: scored again, discarded by the sink as a duplicate
        data.send_multipart(events_frames(RUN, 5, valid[5], rng, first_event[5]))
        assert acks.wait_for(set(range(12)), timeout=30), f"valid batches not all acked: {sorted(acks.acked)}"
        # a message beyond --max-message-bytes: its body frame is refused by ZeroMQ before it is received whole
        # (the connection drops; the encoder connects again), so it is neither counted nor kept
        data.send_multipart(events_frames(RUN, 99, np.full(1400, 50), rng, 80_000))
        # sink-side classes, then valid direct traffic of a second run
        for _, _, frames in sink_bad:
            direct.send_multipart(frames)
        direct_valid = {seq: np.array([0, 3, 1]) for seq in range(3)}
        for seq, counts in direct_valid.items():
            direct.send_multipart(scored_frames(SINK_RUN, seq, counts, rng, card, first_event_id=90_000 + 10 * seq))
        direct.send_multipart(scored_frames(SINK_RUN, 1, direct_valid[1], rng, card, first_event_id=90_010))
        deadline = time.monotonic() + 30
        expected_sink = Counter(reason for _, reason, _ in sink_bad) + Counter({"duplicate_seq": 2})
        while time.monotonic() < deadline:
            acks.poll(100)
            text = scrape(sink_m)
            if all(metric_value(text, "aetrig_rejected_messages_total", reason=r) >= n
                   for r, n in expected_sink.items()):
                break
        time.sleep(0.3)
        assert encoder.poll() is None and sink.poll() is None, "a service died on bad input"

        # counts by reason, on /metrics ...
        expected_enc = Counter(reason for _, reason, _ in enc_bad)
        enc_text, sink_text = scrape(enc_m), scrape(sink_m)
        for reason in wire.REJECT_REASONS:
            on_encoder = metric_value(enc_text, "aetrig_rejected_messages_total", reason=reason)
            on_sink = metric_value(sink_text, "aetrig_rejected_messages_total", reason=reason)
            assert (on_encoder, on_sink) == (expected_enc[reason], expected_sink[reason]), reason
        n_valid_events = sum(len(c) for c in valid.values())
        assert metric_value(enc_text, "aetrig_events_total", stage="encoder") == n_valid_events + len(valid[5])
    finally:
        rc_enc = stop(encoder)
        rc_sink = stop(sink)
        close_context(ctx)
    assert rc_enc == 0 and rc_sink == 0

    # ... and in the stage reports
    enc_report, sink_report = read_report(tmp_path / "enc.json"), read_report(tmp_path / "sink.json")
    assert enc_report["rejected"] == dict(expected_enc)
    assert sink_report["rejected"] == dict(expected_sink)
    assert len(set(expected_enc) | set(expected_sink)) >= 15 and len(enc_bad) + len(sink_bad) + 1 >= 20
    # the bytes of every rejected message, counted on /metrics by both stages
    assert metric_value(enc_text, "aetrig_quarantined_bytes_total") == enc_report["quarantine"]["bytes"] > 0
    assert metric_value(sink_text, "aetrig_quarantined_bytes_total") == sink_report["quarantine"]["bytes"] > 0
    # bytes quarantined, one file per rejected message, in a directory per reason
    for qdir, expected, report in ((tmp_path / "q_enc", expected_enc, enc_report),
                                   (tmp_path / "q_sink", expected_sink, sink_report)):
        for reason, n in expected.items():
            files = sorted((qdir / reason).glob("*.msgpack"))
            assert len(files) == n, (qdir, reason)
            kept = msgpack.unpackb(files[0].read_bytes())
            assert kept["reason"] == reason and kept["frames"]
        assert report["quarantine"]["bytes"] > 0 and report["quarantine"]["files"] == sum(expected.values())
    # random bytes are kept byte for byte
    kept = [msgpack.unpackb(p.read_bytes()) for p in (tmp_path / "q_enc" / "frame_count").glob("*.msgpack")]
    assert enc_bad[0][2] in [k["frames"] for k in kept]

    # valid traffic recorded completely: every event once, zero-jet and 60-jet events included
    rec = open_recording(tmp_path / "rec")
    ev = rec.events()
    n_direct = sum(len(c) for c in direct_valid.values())
    assert len(ev["event_id"]) == n_valid_events + n_direct == sink_report["recorded_events"]
    main = ev["run_id"] == RUN
    order = np.argsort(ev["event_id"][main])
    want_counts = np.concatenate([valid[s] for s in sorted(valid)])
    assert np.array_equal(ev["n_jets"][main][order], want_counts)
    assert 60 in ev["n_jets"] and (ev["n_jets"] == 0).sum() >= 3
    assert not ev["flag"][ev["n_jets"] == 0].any()
    assert sink_report["duplicates_discarded"] == len(valid[5]) + len(direct_valid[1])
    result = verify_recording(tmp_path / "rec")
    assert result.ok, result.problems
