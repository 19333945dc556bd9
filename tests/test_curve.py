"""CurveZMQ on real sockets over 127.0.0.1: known clients get through, everyone else is refused."""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from emulator.runtime.curvezmq import CurveError, allowed_client_keys, generate_keys, secure_socket, stop_authenticators

REFUSAL_WAIT_MS = 1500


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    stop_authenticators(context)
    context.destroy(linger=0)


def _server(ctx: zmq.Context, keys: Path) -> tuple[zmq.Socket, str]:
    sock = secure_socket(ctx.socket(zmq.PULL), keys, "server")
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    return sock, f"tcp://127.0.0.1:{port}"


def _send_from(ctx: zmq.Context, addr: str, keys: Path | None, payload: bytes) -> zmq.Socket:
    """Connect, queue ``payload`` and return the socket: keep it referenced, or it closes unsent."""
    sock = ctx.socket(zmq.PUSH)
    sock.linger = 0
    if keys is not None:
        secure_socket(sock, keys, "client")
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


def test_known_client_gets_through(ctx: zmq.Context, tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys")
    server, addr = _server(ctx, keys)
    _keep = _send_from(ctx, addr, keys, b"hello")
    assert _received(server, 5000) == [b"hello"]


def test_unknown_client_key_is_refused(ctx: zmq.Context, tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys")
    server, addr = _server(ctx, keys)
    # An intruder who knows the server's public key but holds a client key pair of its own.
    intruder = generate_keys(tmp_path / "intruder")
    shutil.copy(keys / "server.key", intruder / "server.key")
    keep = [_send_from(ctx, addr, intruder, b"intruder"), _send_from(ctx, addr, None, b"plaintext")]
    assert _received(server, REFUSAL_WAIT_MS) == []
    # The same server still serves a known client afterwards.
    keep.append(_send_from(ctx, addr, keys, b"friend"))
    assert _received(server, 5000) == [b"friend"]


def test_client_with_wrong_server_key_is_refused(ctx: zmq.Context, tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys")
    server, addr = _server(ctx, keys)
    confused = tmp_path / "confused"
    shutil.copytree(keys, confused)
    generate_keys(tmp_path / "other")
    shutil.copy(tmp_path / "other" / "server.key", confused / "server.key")
    _keep = _send_from(ctx, addr, confused, b"lost")
    assert _received(server, REFUSAL_WAIT_MS) == []


def test_extra_named_clients_are_allowed(ctx: zmq.Context, tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys", clients=("client", "encoder7"))
    assert len(allowed_client_keys(keys)) == 2
    server, addr = _server(ctx, keys)
    second = tmp_path / "second"
    second.mkdir()
    shutil.copy(keys / "server.key", second / "server.key")
    shutil.copy(keys / "client-encoder7.key", second / "client.key")
    shutil.copy(keys / "client-encoder7.key_secret", second / "client.key_secret")
    _keep = _send_from(ctx, addr, second, b"seven")
    assert _received(server, 5000) == [b"seven"]


def test_missing_keys_are_a_clear_error(ctx: zmq.Context, tmp_path: Path) -> None:
    with pytest.raises(CurveError, match="does not exist"):
        secure_socket(ctx.socket(zmq.PULL), tmp_path / "nope", "server")
    keys = generate_keys(tmp_path / "keys")
    (keys / "client.key_secret").unlink()
    with pytest.raises(CurveError, match=r"client\.key_secret is missing"):
        secure_socket(ctx.socket(zmq.PUSH), keys, "client")
    with pytest.raises(ValueError, match="role"):
        secure_socket(ctx.socket(zmq.PUSH), keys, "peer")


def test_generate_keys_keeps_existing_keys(tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys")
    before = (keys / "server.key").read_text()
    generate_keys(keys)
    assert (keys / "server.key").read_text() == before
    assert oct((keys / "server.key_secret").stat().st_mode & 0o777) == "0o600"


def test_context_term_does_not_hang_on_the_authenticator(tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys")
    context = zmq.Context()
    server = secure_socket(context.socket(zmq.PULL), keys, "server")
    server.bind_to_random_port("tcp://127.0.0.1")
    server.close(linger=0)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (context.term(), done.set()), daemon=True)
    worker.start()
    assert done.wait(10), "Context.term() hung on the CurveZMQ authenticator"
    stop_authenticators(context)  # idempotent after the context is gone


def test_keys_command_writes_a_usable_directory(tmp_path: Path, ctx: zmq.Context) -> None:
    from emulator import cli

    assert cli.main(["keys", str(tmp_path / "k"), "--client", "far"]) == 0
    names = sorted(p.name for p in (tmp_path / "k").iterdir())
    assert names == ["client-far.key", "client-far.key_secret", "client.key", "client.key_secret",
                     "server.key", "server.key_secret"]
    server, addr = _server(ctx, tmp_path / "k")
    _keep = _send_from(ctx, addr, tmp_path / "k", b"via cli keys")
    assert _received(server, 5000) == [b"via cli keys"]
