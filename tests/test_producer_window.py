"""The in-flight window (flow control, acks, resends), the manifest and the config precedence."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pytest

from producer import config
from producer.manifest import build_manifest, sha256_file
from producer.window import Window


def test_window_bounds_and_acks() -> None:
    w = Window(capacity=3, resend_timeout=1.0)
    for seq in range(3):
        w.add(seq, [b"x"], n_events=10, now=0.0)
    assert w.full and len(w) == 3 and w.events_in_flight == 30
    with pytest.raises(RuntimeError):
        w.add(3, [b"x"], 10, 0.0)
    assert w.ack([1, 1, 99]) == 1  # duplicate and unknown acks are counted, not errors
    assert w.unknown_acks == 2 and w.acked_events == 10 and not w.full
    with pytest.raises(ValueError):
        w.add(0, [b"x"], 10, 0.0)


def test_resend_after_timeout_with_backoff() -> None:
    w = Window(capacity=4, resend_timeout=1.0, max_backoff=4.0)
    w.add(0, [b"a"], 1, now=0.0)
    w.add(1, [b"b"], 1, now=0.5)
    assert w.due(0.99) == []
    assert [it.seq for it in w.due(1.0)] == [0]
    item = w.due(1.6)[0]
    assert [it.seq for it in w.due(1.6)] == [0, 1]
    w.mark_resent(item, 1.6)
    assert item.first_send == 0.0  # first-send time is kept: latency includes the resend delay
    assert [it.seq for it in w.due(3.5)] == [1]  # seq 0 now waits 2 s (doubled)
    assert [it.seq for it in w.due(3.6)] == [0, 1]
    for _ in range(5):
        w.mark_resent(item, 10.0)
    assert w.timeout_of(item) == 4.0  # capped
    assert w.resent_batches == 6
    assert w.next_deadline() == pytest.approx(1.5)
    w.ack([0, 1])
    assert w.next_deadline() is None and w.due(100.0) == []


def test_manifest_has_file_hashes_and_settings(tmp_path: Path) -> None:
    a, b = tmp_path / "a.root", tmp_path / "b.root"
    a.write_bytes(b"first file" * 1000)
    b.write_bytes(b"")
    m = build_manifest(0xDEADBEEF, [a, b], {"rate": 5.0}, seed=7, variables=["pt"], start_time=0.0)
    assert [f["sha256"] for f in m["files"]] == [hashlib.sha256(a.read_bytes()).hexdigest(),
                                                  hashlib.sha256(b"").hexdigest()]
    assert [f["index"] for f in m["files"]] == [0, 1]
    assert m["run_id"] == 0xDEADBEEF and m["run_id_hex"] == "00000000deadbeef"
    assert m["seed"] == 7 and m["settings"] == {"rate": 5.0} and m["start_time_utc"] == "1970-01-01T00:00:00Z"
    assert m["version"]
    json.dumps(m)
    assert sha256_file(a, chunk=7) == m["files"][0]["sha256"]


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_config_file_then_flags_override(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"p{suffix}"
    if suffix == ".toml":
        path.write_text('rate = 123.0\nevents-per-message = 7\nbranch_map = ["pt=Jets.pt"]\ncolumns = "pt,eta"\n'
                        'run-id = "0xff"\n')
    else:
        path.write_text(json.dumps({"rate": 123.0, "events_per_message": 7, "branch-map": {"pt": "Jets.pt"},
                                    "columns": ["pt", "eta"], "run_id": 255}))
    cfg = config.resolve(_args(["--config", str(path), "--rate", "50"]))
    assert cfg.rate == 50.0 and cfg.events_per_message == 7
    assert cfg.branch_map == {"pt": "Jets.pt"} and cfg.columns == ["pt", "eta"]
    assert cfg.window == config.DEFAULTS.window and cfg.run_id == 255


def test_config_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("rat = 3\n")
    with pytest.raises(ValueError, match="unknown producer setting 'rat'"):
        config.resolve(_args(["--config", str(bad)]))
    with pytest.raises(SystemExit) as exited:
        _args(["--branch-map", "pt"])
    assert exited.value.code == 2 and "expects VAR=BRANCH, got 'pt'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="rate"):
        config.resolve(_args(["--rate", "-1"]))


def test_timeout_adapts_to_slow_acknowledgements() -> None:
    w = Window(capacity=100, resend_timeout=1.0, max_backoff=8.0, max_timeout=30.0)
    assert w.base_timeout == 1.0
    for seq in range(20):  # a pipeline whose acks take 3 s: resending after 1 s would only add load
        w.add(seq, [b"x"], 1, now=float(seq))
        w.ack([seq], now=seq + 3.0)
    assert w.srtt == pytest.approx(3.0) and w.base_timeout == pytest.approx(3.0, rel=0.05)
    w.add(100, [b"x"], 1, now=100.0)
    assert w.due(102.0) == [] and [it.seq for it in w.due(103.2)] == [100]
    # a resent batch's round trip is ambiguous (Karn): it does not update the estimate
    item = w.due(103.2)[0]
    w.mark_resent(item, 103.2)
    w.ack([100], now=200.0)
    assert w.srtt == pytest.approx(3.0)
    # variable round trips widen the timeout; it never drops below the configured one or above the cap
    for seq, rtt in enumerate([0.1, 5.0] * 10, start=200):
        w.add(seq, [b"x"], 1, now=0.0)
        w.ack([seq], now=rtt)
    assert 3.0 < w.base_timeout <= 30.0
    fast = Window(capacity=10, resend_timeout=1.0)
    fast.add(0, [b"x"], 1, 0.0)
    fast.ack([0], now=0.01)
    assert fast.base_timeout == 1.0


def test_hold_restarts_the_timer_without_counting_a_resend() -> None:
    w = Window(capacity=2, resend_timeout=1.0)
    w.add(0, [b"x"], 1, now=0.0)
    item = w.due(1.5)[0]
    w.hold(item, 1.5)
    assert w.due(2.0) == [] and w.resent_batches == 0 and item.resends == 0
    assert [it.seq for it in w.due(2.5)] == [0]
