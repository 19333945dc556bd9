"""The tests' CurveZMQ keys: made once per test session, one directory per role, as `aetrig keys --per-role` makes
them, so that every stage a test starts by hand authenticates by default as `aetrig run`'s stages do.

``role_dir(role)`` holds that role's secret and every public key (what one stage is given with --curve-keys);
:func:`stage_flags` is the flag for a stage command; :func:`as_role` makes a test's own socket stand in for a
stage on one link (the producer's data PUSH, the sink's ack PUSH, an encoder's scored PUSH, ...). A test about
plaintext links passes ``--plaintext`` itself.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import zmq

from emulator.runtime.curvezmq import LINKS, generate_keys, secure_client, secure_server, split_by_role

#: the role each stage command runs as
ROLE_OF = {"produce": "producer", "encode": "encoder", "sink": "sink"}


@functools.cache
def session_keys() -> Path:
    """The session's flat key directory (every role's pair), with its ``ROLE/`` directories; removed at exit."""
    home = Path(tempfile.mkdtemp(prefix="aetrig-test-keys-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    keys = generate_keys(home / "keys")
    split_by_role(keys)
    return keys


def role_dir(role: str) -> Path:
    """The key directory of one role: its secret and the public keys of all."""
    return session_keys() / role


def stage_flags(command: str) -> list[str]:
    """``--curve-keys ROLE_DIR`` for the stage command ``produce``, ``encode`` or ``sink``."""
    return ["--curve-keys", str(role_dir(ROLE_OF[command]))]


def as_role(sock: zmq.Socket, link: str, server: bool) -> zmq.Socket:
    """Make a test socket the CURVE server (``server``) or client of ``link`` with that side's role keys; before
    it binds or connects. Stop the context's authenticator (curvezmq.stop_authenticators) before ``term()``."""
    spec = LINKS[link]
    if server:
        return secure_server(sock, role_dir(spec.server), link)
    return secure_client(sock, role_dir(spec.client), link)
