"""CurveZMQ on real sockets over 127.0.0.1: each link admits only its client role, everyone else is refused."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from emulator.runtime.curvezmq import (
    LINKS,
    CurveError,
    allowed_keys,
    generate_keys,
    refusals,
    role_keys,
    secure_client,
    secure_server,
    stop_authenticators,
)

REFUSAL_WAIT_MS = 1500


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    stop_authenticators(context)
    context.destroy(linger=0)


def _server(ctx: zmq.Context, keys: Path, link: str) -> tuple[zmq.Socket, str]:
    sock = secure_server(ctx.socket(zmq.PULL), keys, link)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    return sock, f"tcp://127.0.0.1:{port}"


def _send_from(ctx: zmq.Context, addr: str, keys: Path | None, link: str, payload: bytes) -> zmq.Socket:
    """Connect as the link's client role of ``keys`` (plaintext when None), queue ``payload``, return the
    socket: keep it referenced, or it closes unsent."""
    sock = ctx.socket(zmq.PUSH)
    sock.linger = 0
    if keys is not None:
        secure_client(sock, keys, link)
    sock.sndtimeo = 2000  # a refused handshake can leave no pipe to queue on: then send times out
    sock.connect(addr)
    with contextlib.suppress(zmq.Again):
        sock.send(payload, copy=True)  # queued until the handshake succeeds (never when refused)
    return sock


def _received(sock: zmq.Socket, timeout_ms: int) -> list[bytes]:
    got = []
    while sock.poll(timeout_ms):
        got.append(sock.recv())
        timeout_ms = 200
    return got


def _as_role(keys: Path, role: str, into: Path) -> Path:
    """A directory in which ``role``'s identity stands in every role's place (what a thief of that key has)."""
    into.mkdir()
    for path in keys.iterdir():
        if path.name.endswith(".key"):
            shutil.copy(path, into / path.name)
    for other in ("producer", "encoder", "sink"):
        shutil.copy(keys / f"{role}.key_secret", into / f"{other}.key_secret")
    return into


@pytest.mark.parametrize("link", sorted(LINKS))
def test_each_link_admits_its_client_role_only(ctx: zmq.Context, tmp_path: Path, link: str) -> None:
    keys = generate_keys(tmp_path / "keys")
    server, addr = _server(ctx, keys, link)
    allowed = LINKS[link].client
    keep = [_send_from(ctx, addr, _as_role(keys, role, tmp_path / role), link, role.encode())
            for role in ("producer", "encoder", "sink") if role != allowed]
    keep.append(_send_from(ctx, addr, None, link, b"plaintext"))
    assert _received(server, REFUSAL_WAIT_MS) == []
    assert refusals(ctx)[link] >= 2  # the two wrong roles (a plaintext peer fails before ZAP: mechanism mismatch)
    keep.append(_send_from(ctx, addr, keys, link, b"friend"))
    assert _received(server, 5000) == [b"friend"]


def test_sockets_of_one_context_keep_their_own_roles(ctx: zmq.Context, tmp_path: Path) -> None:
    """The producer's data and ack sockets share a context (and one ZAP handler): the ZAP domain tells them apart."""
    keys = generate_keys(tmp_path / "keys")
    data, data_addr = _server(ctx, keys, "data")
    acks, acks_addr = _server(ctx, keys, "acks")
    encoder_only = _as_role(keys, "encoder", tmp_path / "thief")
    keep = [_send_from(ctx, acks_addr, encoder_only, "acks", b"forged ack")]
    assert _received(acks, REFUSAL_WAIT_MS) == []
    keep += [_send_from(ctx, data_addr, keys, "data", b"events"), _send_from(ctx, acks_addr, keys, "acks", b"ack")]
    assert _received(data, 5000) == [b"events"] and _received(acks, 5000) == [b"ack"]


def test_unknown_key_and_wrong_server_key_are_refused(ctx: zmq.Context, tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys")
    server, addr = _server(ctx, keys, "scored")
    intruder = generate_keys(tmp_path / "intruder")  # its own encoder key, the real sink's public key
    shutil.copy(keys / "sink.key", intruder / "sink.key")
    confused = tmp_path / "confused"  # the real encoder key, but another server key: the client refuses
    shutil.copytree(keys, confused)
    shutil.copy(intruder / "producer.key", confused / "sink.key")
    keep = [_send_from(ctx, addr, intruder, "scored", b"intruder"), _send_from(ctx, addr, confused, "scored", b"lost")]
    assert _received(server, REFUSAL_WAIT_MS) == []
    del keep


def test_extra_encoder_identities_are_encoders(ctx: zmq.Context, tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys", extra={"encoder": ("host7",)})
    assert len(allowed_keys(keys, "encoder")) == 2 and len(allowed_keys(keys, "sink")) == 1
    assert sorted(role_keys(keys).values()) == ["encoder", "encoder", "producer", "sink"]
    server, addr = _server(ctx, keys, "data")
    second = tmp_path / "second"
    second.mkdir()
    shutil.copy(keys / "producer.key", second / "producer.key")
    shutil.copy(keys / "encoder-host7.key_secret", second / "encoder.key_secret")
    _keep = _send_from(ctx, addr, second, "data", b"seven")
    assert _received(server, 5000) == [b"seven"]


def test_one_key_cannot_hold_two_roles(tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys")
    shutil.copy(keys / "encoder.key", keys / "sink-alias.key")
    with pytest.raises(CurveError, match="one key, one role"):
        role_keys(keys)


def test_missing_keys_are_a_clear_error(ctx: zmq.Context, tmp_path: Path) -> None:
    with pytest.raises(CurveError, match="does not exist"):
        secure_server(ctx.socket(zmq.PULL), tmp_path / "nope", "data")
    keys = generate_keys(tmp_path / "keys")
    (keys / "encoder.key_secret").unlink()
    with pytest.raises(CurveError, match=r"encoder\.key_secret is missing"):
        secure_client(ctx.socket(zmq.PUSH), keys, "scored")
    (keys / "encoder.key").unlink()
    with pytest.raises(CurveError, match="no encoder public key"):
        secure_server(ctx.socket(zmq.PULL), keys, "data")
    with pytest.raises(ValueError, match="link"):
        secure_client(ctx.socket(zmq.PUSH), keys, "peer")
    old = tmp_path / "old"
    old.mkdir()
    (old / "server.key").write_text("")
    with pytest.raises(CurveError, match="old server/client layout"):
        secure_server(ctx.socket(zmq.PULL), old, "data")


def test_secret_files_are_private_from_the_first_byte(tmp_path: Path) -> None:
    """The secret is created 0600 (os.open's mode), never chmod-ed afterwards: even a umask of 0 keeps it private."""
    previous = os.umask(0)
    try:
        keys = generate_keys(tmp_path / "keys")
    finally:
        os.umask(previous)
    for role in ("producer", "encoder", "sink"):
        assert stat.S_IMODE((keys / f"{role}.key_secret").stat().st_mode) == 0o600
        assert stat.S_IMODE((keys / f"{role}.key").stat().st_mode) == 0o644
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    before = (keys / "producer.key").read_text()
    generate_keys(keys)
    assert (keys / "producer.key").read_text() == before  # kept
    generate_keys(keys, overwrite=True)
    assert (keys / "producer.key").read_text() != before


def test_context_term_does_not_hang_on_the_zap_handler(tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys")
    context = zmq.Context()
    server = secure_server(context.socket(zmq.PULL), keys, "data")
    server.bind_to_random_port("tcp://127.0.0.1")
    server.close(linger=0)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (context.term(), done.set()), daemon=True)
    worker.start()
    assert done.wait(10), "Context.term() hung on the CurveZMQ ZAP handler"
    stop_authenticators(context)  # idempotent after the context is gone


def test_keys_command_writes_a_usable_directory(tmp_path: Path, ctx: zmq.Context) -> None:
    from emulator import cli

    assert cli.main(["keys", str(tmp_path / "k"), "--encoder", "far"]) == 0
    names = sorted(p.name for p in (tmp_path / "k").iterdir())
    assert names == ["encoder-far.key", "encoder-far.key_secret", "encoder.key", "encoder.key_secret",
                     "producer.key", "producer.key_secret", "sink.key", "sink.key_secret"]
    server, addr = _server(ctx, tmp_path / "k", "acks")
    _keep = _send_from(ctx, addr, tmp_path / "k", "acks", b"via cli keys")
    assert _received(server, 5000) == [b"via cli keys"]


def test_per_role_directories_hold_one_secret_each(tmp_path: Path, ctx: zmq.Context) -> None:
    from emulator import cli

    assert cli.main(["keys", str(tmp_path / "k"), "--per-role"]) == 0
    for role in ("producer", "encoder", "sink"):
        names = sorted(p.name for p in (tmp_path / "k" / role).iterdir())
        assert names == sorted(["encoder.key", "producer.key", "sink.key", f"{role}.key_secret"])
        assert stat.S_IMODE((tmp_path / "k" / role / f"{role}.key_secret").stat().st_mode) == 0o600
    server, addr = _server(ctx, tmp_path / "k" / "producer", "data")
    _keep = _send_from(ctx, addr, tmp_path / "k" / "encoder", "data", b"from the encoder's own directory")
    assert _received(server, 5000) == [b"from the encoder's own directory"]
    with pytest.raises(CurveError, match=r"sink\.key_secret is missing"):
        secure_client(ctx.socket(zmq.PUSH), tmp_path / "k" / "encoder", "acks")  # an encoder cannot be the sink
