"""`aetrig produce` as a real process against real ZeroMQ sockets held by the test, which stand in for the encoder
and the sink with their role keys (the producer authenticates by default)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from producer_testdata import make_ntuple
from stage_keys import as_role, stage_flags

from emulator.runtime import wire
from emulator.runtime.ports import free_port

TIMEOUT_S = 30.0


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str, str]:
    data, acks = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "emulator.cli", "produce", "--bind", data, "--ack-bind", acks,
           "--report", str(tmp_path / "report.json"), "--manifest-out", str(tmp_path / "manifest.json"), *extra]
    if "--curve-keys" not in extra:
        cmd += stage_flags("produce")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, data, acks


def _sockets(data: str, acks: str) -> tuple[zmq.Context, zmq.Socket, zmq.Socket]:
    ctx = zmq.Context()
    pull = as_role(ctx.socket(zmq.PULL), "data", server=False)  # as the encoder
    push = as_role(ctx.socket(zmq.PUSH), "acks", server=False)  # as the sink
    for s in (pull, push):
        s.setsockopt(zmq.LINGER, 0)
    pull.connect(data)
    push.connect(acks)
    return ctx, pull, push


def _collect(proc: subprocess.Popen, pull: zmq.Socket, push: zmq.Socket, ack_when=lambda b, k: True,
             timeout: float = TIMEOUT_S) -> list[wire.Batch]:
    """Receive every message until the producer exits, acking those ``ack_when(batch, times_seen)`` allows."""
    batches, seen = [], {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pull.poll(50):
            frames = pull.recv_multipart()
            batch = wire.validate(wire.decode(frames, kinds=[wire.KIND_EVENTS]))
            seen[batch.seq] = seen.get(batch.seq, 0) + 1
            batches.append(batch)
            if ack_when(batch, seen[batch.seq]):
                push.send(wire.encode_ack(batch.run_id, [batch.seq]))
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    return batches


def _receive_all(proc: subprocess.Popen, data: str, acks: str, ack_when=lambda b, k: True) -> list[wire.Batch]:
    """:func:`_collect` on fresh encoder and sink sockets (:func:`_sockets`), closed when the producer is done."""
    ctx, pull, push = _sockets(data, acks)
    try:
        return _collect(proc, pull, push, ack_when)
    finally:
        ctx.destroy(0)


def test_every_event_sent_once_with_identity(tmp_path: Path) -> None:
    truths = [make_ntuple(tmp_path / f"in{i}.root", 700 + 100 * i, seed=120 + i) for i in range(2)]
    proc, data, acks = _start(tmp_path, "--input", str(tmp_path / "in*.root"), "--rate", "0",
                              "--events-per-message", "128", "--run-id", "0x1234abcd", "--step-size", "300")
    batches = _receive_all(proc, data, acks)
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    n_total = 700 + 800
    assert report["produced"] == n_total and report["batches_resent"] == 0 and report["unacked_batches"] == 0
    assert report["batches_sent"] == len(batches) == len({b.seq for b in batches})
    assert sorted(b.seq for b in batches) == list(range(len(batches)))
    assert all(b.run_id == 0x1234ABCD and b.n_events <= 128 for b in batches)
    assert manifest["run_id"] == 0x1234ABCD
    assert {b.header["manifest_sha256"] for b in batches} == {wire.sha256_hex(wire.canonical_json(manifest))}
    assert [f["name"] for f in manifest["files"]] == ["in0.root", "in1.root"]
    cols = {k: np.concatenate([b.columns[k] for b in sorted(batches, key=lambda b: b.seq)])
            for k in ("event_id", "file_index", "entry", "event_number", "n_jets", "jet_pt", "jet_e")}
    np.testing.assert_array_equal(cols["event_id"], np.arange(n_total))  # unique, increasing
    np.testing.assert_array_equal(cols["file_index"], np.repeat([0, 1], [700, 800]))
    np.testing.assert_array_equal(cols["entry"], np.concatenate([np.arange(700), np.arange(800)]))
    for var, key in (("event_number", "event_number"), ("n_jets", "n_jets"), ("pt", "jet_pt"), ("e", "jet_e")):
        np.testing.assert_array_equal(cols[key], np.concatenate([t[var] for t in truths]))


def test_unacked_batches_are_resent_with_same_seq_and_send_time(tmp_path: Path) -> None:
    make_ntuple(tmp_path / "in.root", 300)
    proc, data, acks = _start(tmp_path, "--input", str(tmp_path / "in.root"), "--rate", "0",
                              "--events-per-message", "100", "--resend-timeout", "0.3")
    # seq 1 is only acknowledged on its second arrival
    batches = _receive_all(proc, data, acks, ack_when=lambda b, k: b.seq != 1 or k >= 2)
    assert proc.returncode == 0, proc.stderr.read()
    report = json.loads((tmp_path / "report.json").read_text())
    copies = [b for b in batches if b.seq == 1]
    assert len(copies) == 2 and copies[0].header["t_send"] == copies[1].header["t_send"]
    np.testing.assert_array_equal(copies[0].columns["event_id"], copies[1].columns["event_id"])
    assert report["produced"] == 300 and report["batches_sent"] == 3 and report["batches_resent"] == 1


def test_drop_on_overload_counts_every_dropped_event(tmp_path: Path) -> None:
    make_ntuple(tmp_path / "in.root", 1000)
    proc, data, acks = _start(tmp_path, "--input", str(tmp_path / "in.root"), "--rate", "0", "--window", "2",
                              "--events-per-message", "100", "--drop-on-overload", "--drain-timeout", "0.5",
                              "--resend-timeout", "10")
    batches = _receive_all(proc, data, acks, ack_when=lambda b, k: False)
    assert proc.returncode == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["produced"] == 200 == sum(b.n_events for b in batches)
    assert report["dropped"] == 800 and report["dropped_batches"] == 8
    assert report["unacked_events"] == 200 and report["drained"] is False


@pytest.mark.slow
def test_sigterm_stops_reading_drains_and_reports(tmp_path: Path) -> None:
    make_ntuple(tmp_path / "in.root", 2000)
    proc, data, acks = _start(tmp_path, "--input", str(tmp_path / "in.root"), "--rate", "2000", "--loops", "0")
    ctx, pull, push = _sockets(data, acks)
    try:
        batches, stopped = [], False
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if not stopped and sum(b.n_events for b in batches) >= 3000:  # about 1.5 s of sending
                proc.send_signal(signal.SIGTERM)
                stopped = True
            if pull.poll(20):
                b = wire.decode(pull.recv_multipart())
                batches.append(b)
                push.send(wire.encode_ack(b.run_id, [b.seq]))
        proc.wait(timeout=10)
    finally:
        ctx.destroy(0)
    assert proc.returncode == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["stop_reason"] == "SIGTERM" and report["drained"] is True
    assert report["produced"] == sum(b.n_events for b in batches) >= 3000
    assert 1500 < report["achieved_rate_hz"] < 2500


def test_missing_branch_exits_2_naming_it(tmp_path: Path) -> None:
    make_ntuple(tmp_path / "in.root", 10, variables=("pt", "eta", "m"))
    proc, *_ = _start(tmp_path, "--input", str(tmp_path / "in.root"), "--columns", "pt,phi")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "'jet_phi'" in err and "in.root" in err


def test_curve_keys_encrypt_and_authenticate_both_producer_sockets(tmp_path: Path) -> None:
    from emulator.runtime.curvezmq import generate_keys, secure_client

    keys = generate_keys(tmp_path / "keys")
    make_ntuple(tmp_path / "in.root", 500)
    proc, data, acks = _start(tmp_path, "--input", str(tmp_path / "in.root"), "--rate", "0",
                              "--events-per-message", "100", "--curve-keys", str(keys), "--drain-timeout", "5")
    ctx = zmq.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    for s in (pull, push):
        s.setsockopt(zmq.LINGER, 0)
    secure_client(pull, keys, "data")  # as the encoder
    secure_client(push, keys, "acks")  # as the sink
    pull.connect(data)
    push.connect(acks)
    try:
        batches = _collect(proc, pull, push)
    finally:
        ctx.destroy(0)
    assert proc.returncode == 0, proc.stderr.read()
    report = json.loads((tmp_path / "report.json").read_text())
    assert sum(b.n_events for b in batches) == 500 and report["drained"] and report["batches_resent"] == 0


@pytest.mark.slow
def test_achieved_rate_holds_the_declared_rate(tmp_path: Path) -> None:
    make_ntuple(tmp_path / "in.root", 20000, seed=125)
    proc, data, acks = _start(tmp_path, "--input", str(tmp_path / "in.root"), "--rate", "20000", "--loops", "0",
                              "--max-events", "60000")
    batches = _receive_all(proc, data, acks)
    assert proc.returncode == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["produced"] == 60000 == sum(b.n_events for b in batches)
    # 3 s of sending: the schedule is absolute, so only the last batch's lateness can bias the rate
    assert abs(report["achieved_rate_hz"] / 20000 - 1) < 0.02, report["achieved_rate_hz"]
    ids = np.concatenate([b.columns["event_id"] for b in batches])
    np.testing.assert_array_equal(np.sort(ids), np.arange(60000))
    # looping over a 20000-event file: entries repeat, event ids do not
    entries = np.concatenate([b.columns["entry"] for b in sorted(batches, key=lambda b: b.seq)])
    np.testing.assert_array_equal(entries, np.tile(np.arange(20000), 3))


@pytest.mark.slow
def test_ratecheck_tool_measures_the_producer_alone(tmp_path: Path) -> None:
    from producer.ratecheck import check_rate

    make_ntuple(tmp_path / "in.root", 3000, seed=126)
    result = check_rate(5000.0, "poisson", 1.5, [str(tmp_path / "in.root")])
    assert result["received"] == result["produced"] > 5000
    assert abs(result["relative_error"]) < 0.1  # ~7500 Poisson arrivals over 1.5 s


@pytest.mark.slow
def test_clock_starts_when_the_first_consumer_connects(tmp_path: Path) -> None:
    make_ntuple(tmp_path / "in.root", 1000)
    proc, data, acks = _start(tmp_path, "--input", str(tmp_path / "in.root"), "--rate", "1000")
    time.sleep(2.0)  # nobody listens yet: the producer must not fall behind its schedule meanwhile
    batches = _receive_all(proc, data, acks)
    assert proc.returncode == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert sum(b.n_events for b in batches) == report["produced"] == 1000
    assert report["schedule_lag_s"]["max"] < 0.5  # no catch-up burst after the wait
    assert abs(report["achieved_rate_hz"] / 1000 - 1) < 0.05
