"""CurveZMQ encryption and authentication for cross-host links (pyzmq's ``zmq.auth``).

Key directory layout (flat, so that a Kubernetes Secret or ``docker secret`` can hold it as is)::

    DIR/server.key          server public certificate   (clients need it)
    DIR/server.key_secret   server secret certificate   (binding side only)
    DIR/client.key          client public certificate   (the server allows it)
    DIR/client.key_secret   client secret certificate   (connecting side only)
    DIR/client-NAME.key     further allowed client public certificates (optional)

The binding side of a link is the CURVE "server" and the connecting side the "client", whatever
the stage: producer data/ack binds and the sink bind are servers; encoders and the sink's ack
connection are clients. A server accepts only clients whose public key is one of
``DIR/client*.key``; a ZAP authenticator thread (``zmq.auth.thread.ThreadAuthenticator``),
one per context, decides; it stops by itself when the context terminates, and
:func:`stop_authenticators` stops it explicitly. Create the keys with :func:`generate_keys` or
``aetrig keys DIR``.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

ROLES = ("server", "client")
SERVER_NAME = "server"
CLIENT_NAME = "client"

_lock = threading.Lock()
_authenticators: dict[int, ThreadAuthenticator] = {}


class CurveError(RuntimeError):
    """Missing or unreadable CurveZMQ key files, or CURVE unsupported by libzmq."""


def generate_keys(keys_dir: str | Path, clients: tuple[str, ...] = (CLIENT_NAME,), overwrite: bool = False) -> Path:
    """Write a server key pair and one key pair per client name into ``keys_dir``; return it.

    Client names other than ``client`` are written as ``client-NAME``. Existing files are kept
    unless ``overwrite`` (a running deployment keeps its keys).
    """
    directory = Path(keys_dir)
    directory.mkdir(parents=True, exist_ok=True)
    names = [SERVER_NAME] + [c if c == CLIENT_NAME else f"{CLIENT_NAME}-{c}" for c in clients]
    for name in names:
        public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
        if public.exists() and secret.exists() and not overwrite:
            continue
        zmq.auth.create_certificates(directory, name)
        secret.chmod(0o600)
    return directory


def _load(path: Path, want_secret: bool) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise CurveError(f"CurveZMQ key file {path} is missing (create keys with: aetrig keys {path.parent})")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except Exception as exc:  # pyzmq raises ValueError/OSError on malformed files
        raise CurveError(f"cannot read CurveZMQ key file {path}: {exc}") from exc
    if want_secret and not secret:
        raise CurveError(f"{path} holds no secret key")
    return public, secret


def allowed_client_keys(keys_dir: str | Path) -> set[bytes]:
    """Z85 public keys of every ``client*.key`` in ``keys_dir`` (what a server accepts)."""
    directory = Path(keys_dir)
    keys = {_load(p, want_secret=False)[0] for p in sorted(directory.glob(f"{CLIENT_NAME}*.key"))}
    if not keys:
        raise CurveError(f"no client public key (client*.key) in {directory}: a server would refuse everyone")
    return keys


class _AuthThread(threading.Thread):
    """Serve ZAP requests with zmq.auth's logic in a plain poll loop that ends when the context terminates.

    The stock asyncio thread of ``ThreadAuthenticator`` leaves its sockets open on ``Context.term()``,
    which then hangs; this one closes them.
    """

    def __init__(self, owner: ThreadAuthenticator, pipe: zmq.Socket):
        super().__init__(name="aetrig-curve-auth", daemon=True)
        self.owner = owner
        self.pipe = pipe
        self.started = threading.Event()

    def run(self) -> None:
        loop = asyncio.new_event_loop()
        zap = self.owner.zap_socket
        terminated = False
        try:
            poller = zmq.Poller()
            poller.register(self.pipe, zmq.POLLIN)
            poller.register(zap, zmq.POLLIN)
            self.started.set()
            while True:
                events = dict(poller.poll())
                if self.pipe in events and self.pipe.recv_multipart()[0] == b"TERMINATE":
                    break
                if zap in events:
                    loop.run_until_complete(self.owner.handle_zap_message(zap.recv_multipart()))
        except zmq.ZMQError:  # ContextTerminated on term(); ENOTSOCK when destroy() closed our sockets
            terminated = True
        finally:
            loop.close()
            self.pipe.close(linger=0)
            if terminated:  # nobody else will close these, and term() waits for them
                for sock in (zap, self.owner.pipe):
                    if sock is not None and not sock.closed:
                        sock.close(linger=0)


class _Authenticator(ThreadAuthenticator):
    """``ThreadAuthenticator`` with a term-safe thread and a bounded, idempotent stop."""

    def start(self) -> None:
        super(ThreadAuthenticator, self).start()  # the base Authenticator: binds the ZAP socket
        self.pipe = self.context.socket(zmq.PAIR, socket_class=zmq.Socket)
        self.pipe.linger = 1
        self.pipe.bind(self.pipe_endpoint)
        thread_pipe = self.context.socket(zmq.PAIR, socket_class=zmq.Socket)
        thread_pipe.linger = 1
        thread_pipe.connect(self.pipe_endpoint)
        self.thread = _AuthThread(self, thread_pipe)
        self.thread.start()
        if not self.thread.started.wait(timeout=10):
            raise CurveError("CurveZMQ authenticator thread failed to start")

    def stop(self) -> None:
        try:
            if self.pipe is not None and not self.pipe.closed:
                self.pipe.send(b"TERMINATE")
            if self.thread is not None:
                self.thread.join(timeout=5)
            for sock in (self.pipe, self.zap_socket):
                if sock is not None and not sock.closed:
                    sock.close(linger=0)
        except zmq.ZMQError:
            pass  # the context is already gone, and with it every socket
        self.pipe = None
        self.zap_socket = None
        self.thread = None


class _AllowList:
    """ZAP credentials provider: allow a client when its Z85 public key is in the set."""

    def __init__(self, keys: set[bytes]):
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


def _ensure_authenticator(context: zmq.Context, keys: set[bytes]) -> ThreadAuthenticator:
    with _lock:
        auth = _authenticators.get(id(context))
        if auth is None or not auth.is_alive():
            auth = _Authenticator(context)
            auth.configure_curve_callback(domain="*", credentials_provider=_AllowList(set(keys)))
            auth.start()
            _authenticators[id(context)] = auth
        else:
            provider = auth.credentials_providers["*"]
            provider.keys |= keys
        return auth


def secure_socket(sock: zmq.Socket, keys_dir: str | Path, role: str) -> zmq.Socket:
    """Turn on CURVE for ``sock`` before it binds ("server") or connects ("client"); return it.

    A server also gets the context's authenticator, which accepts only the keys of
    :func:`allowed_client_keys`. Raises :class:`CurveError` on missing keys.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if not zmq.has("curve"):
        raise CurveError("this libzmq has no CURVE support")
    directory = Path(keys_dir)
    if not directory.is_dir():
        raise CurveError(f"CurveZMQ keys directory {directory} does not exist (create it: aetrig keys {directory})")
    if role == "server":
        public, secret = _load(directory / f"{SERVER_NAME}.key_secret", want_secret=True)
        _ensure_authenticator(sock.context, allowed_client_keys(directory))
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True
    else:
        public, secret = _load(directory / f"{CLIENT_NAME}.key_secret", want_secret=True)
        server_public, _ = _load(directory / f"{SERVER_NAME}.key", want_secret=False)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_serverkey = server_public
    return sock


def stop_authenticators(context: zmq.Context | None = None) -> None:
    """Stop the authenticator thread of ``context`` (all of them when None); call before ``term()``."""
    with _lock:
        keys = [id(context)] if context is not None else list(_authenticators)
        for key in keys:
            auth = _authenticators.pop(key, None)
            if auth is not None:
                auth.stop()


atexit.register(stop_authenticators)
