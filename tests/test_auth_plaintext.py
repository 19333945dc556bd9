"""A stage authenticates by default: without --curve-keys it refuses to start unless told --plaintext, and plaintext
links stay on the local host (any other bind is refused), each in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emulator.runtime.link_security import check_plaintext_binds, is_local_endpoint
from emulator.runtime.ports import free_port

AETRIG = str(Path(sys.executable).with_name("aetrig"))


@pytest.mark.parametrize("address,local", [
    ("tcp://127.0.0.1:5555", True), ("tcp://127.9.9.9:1", True), ("tcp://localhost:5555", True),
    ("tcp://[::1]:5555", True), ("ipc:///tmp/aetrig.sock", True), ("inproc://x", True),
    ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False), ("tcp://10.0.0.5:5555", False),
    ("tcp://eth0:5555", False), ("tcp://[::]:5555", False), ("tcp://127.0.0.1;10.0.0.5:5555", False),
    ("tcp://myhost.example.org:5555", False), ("pgm://eth0;239.0.0.1:5555", False)])
def test_which_endpoints_are_local(address: str, local: bool) -> None:
    assert is_local_endpoint(address) is local


def test_keys_allow_any_bind_and_plaintext_only_local() -> None:
    check_plaintext_binds("keys/", {"--bind": "tcp://0.0.0.0:5555"})
    check_plaintext_binds(None, {"--bind": "tcp://127.0.0.1:5555", "--ack-bind": None})
    with pytest.raises(ValueError, match=r"refusing a plaintext bind on tcp://0\.0\.0\.0:5556 \(--ack-bind\)"):
        check_plaintext_binds(None, {"--bind": "tcp://127.0.0.1:5555", "--ack-bind": "tcp://0.0.0.0:5556"})


@pytest.mark.parametrize("argv", [
    ["produce", "--bind", "tcp://0.0.0.0:5555", "--rate", "10"],
    ["produce", "--ack-bind", "tcp://*:5556", "--rate", "10"],
    ["sink", "--bind", "tcp://0.0.0.0:5557", "--out", "OUT", "--model", "models/zoo/AE_3D_200_ptetaphie",
     "--manifest", "OUT"]])
def test_stages_refuse_a_plaintext_bind_that_is_not_loopback(argv: list[str], tmp_path: Path) -> None:
    argv = [str(tmp_path / "rec") if a == "OUT" else a for a in argv]
    result = subprocess.run([AETRIG, *argv], capture_output=True, text=True, timeout=60)
    errors = [line for line in result.stderr.splitlines() if "refusing a plaintext bind" in line]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "--curve-keys DIR" in errors[0] and "aetrig keys" in errors[0]
    assert not (tmp_path / "rec").exists()  # refused before anything was made


HAND_STARTED = {
    "produce": ["produce", "--rate", "10", "--bind", "tcp://127.0.0.1:1", "--ack-bind", "tcp://127.0.0.1:2"],
    "encode": ["encode", "--model", "models/zoo/AE_3D_200_ptetaphie", "--connect", "tcp://127.0.0.1:1",
               "--sink", "tcp://127.0.0.1:2"],
    "sink": ["sink", "--bind", "tcp://127.0.0.1:1", "--out", "OUT", "--model", "models/zoo/AE_3D_200_ptetaphie",
             "--manifest", "OUT"]}


@pytest.mark.parametrize("command", sorted(HAND_STARTED))
def test_a_stage_started_by_hand_without_keys_refuses_in_one_line(command: str, tmp_path: Path) -> None:
    argv = [str(tmp_path / "rec") if a == "OUT" else a for a in HAND_STARTED[command]]
    result = subprocess.run([AETRIG, *argv], capture_output=True, text=True, timeout=60)
    errors = [line for line in result.stderr.splitlines() if "no CurveZMQ keys" in line]
    assert result.returncode == 2 and len(errors) == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "--curve-keys DIR" in errors[0] and "aetrig keys --per-role" in errors[0] and "--plaintext" in errors[0]
    assert not (tmp_path / "rec").exists()  # refused before anything was made
    both = subprocess.run([AETRIG, *argv, "--plaintext", "--curve-keys", str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert both.returncode == 2 and "--plaintext and --curve-keys contradict" in both.stderr, both.stderr


def test_a_producer_service_without_keys_binds_nothing() -> None:
    """The services check too (a stage built in-process, not through its command): no keys and no --plaintext, no
    bound socket; with --plaintext it binds."""
    import zmq

    from emulator.runtime.metrics import make_metrics
    from producer.config import ProducerConfig
    from producer.reader import ReaderSpec
    from producer.replay import Replayer

    for plaintext in (False, True):
        cfg = ProducerConfig(bind=f"tcp://127.0.0.1:{free_port()}", ack_bind=f"tcp://127.0.0.1:{free_port()}",
                             plaintext=plaintext)
        replayer = Replayer(cfg, [], ReaderSpec(), [], {"run_id": 1}, make_metrics(), context=zmq.Context())
        try:
            if plaintext:
                replayer.open()
            else:
                with pytest.raises(ValueError, match="no CurveZMQ keys"):
                    replayer.open()
            assert (replayer.push.get(zmq.LAST_ENDPOINT) == cfg.bind.encode()) is plaintext
        finally:
            replayer.close()
            replayer.ctx.term()


def test_run_refuses_plaintext_with_keys(tmp_path: Path) -> None:
    result = subprocess.run([AETRIG, "run", "--plaintext", "--curve-keys", str(tmp_path), "--events", "10",
                             "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--plaintext and --curve-keys contradict" in result.stderr


def _settings(*argv: str):
    import argparse

    from emulator.run import settings as run_settings

    parser = argparse.ArgumentParser()
    run_settings.add_arguments(parser)
    return run_settings.resolve(parser.parse_args(list(argv)))


def test_run_gives_every_stage_the_same_keys(tmp_path: Path) -> None:
    own = _settings()
    assert own.secure_links(tmp_path) == tmp_path / "keys" and not own.given_keys
    given = _settings("--curve-keys", str(tmp_path / "mine"))
    assert given.secure_links(tmp_path) == tmp_path / "mine" and given.given_keys
    for settings, keys in ((own, tmp_path / "keys"), (given, tmp_path / "mine")):
        for stage in ("producer", "encoder", "sink"):
            assert str(settings.stages[stage]["curve_keys"]) == str(keys)
    plain = _settings("--plaintext")
    assert plain.secure_links(tmp_path) is None
    assert all(plain.stages[s].get("curve_keys") is None for s in ("producer", "encoder", "sink"))
    # the run tells each stage it starts that plaintext was chosen, or the stage would refuse to start
    encoder = {"connect": "tcp://127.0.0.1:1", "sink": "tcp://127.0.0.1:2", "model": tmp_path}
    assert "--plaintext" in plain.argv("encoder", **encoder) and "--plaintext" not in own.argv("encoder", **encoder)
