"""CurveZMQ: every link encrypted, and every peer authenticated by its role (producer, encoder, sink).

Key directory layout (flat, so that a Kubernetes Secret or a volume can hold it as is)::

    DIR/producer.key          producer public certificate  (encoders and the sink need it)
    DIR/producer.key_secret   producer secret certificate  (the producer only)
    DIR/encoder.key           encoder public certificate   (the producer and the sink allow it)
    DIR/encoder.key_secret    encoder secret certificate   (every encoder: one identity for all of them)
    DIR/sink.key              sink public certificate      (the producer allows it on its ack socket)
    DIR/sink.key_secret       sink secret certificate      (the sink only)
    DIR/encoder-NAME.key      further identities of a role, accepted as that role (optional)

A stage needs its own ``ROLE.key_secret`` and the public ``*.key`` of the others. Secret files are
written with permissions 0600 from their first byte (``os.open`` with that mode, then an atomic rename).

Three links (:data:`LINKS`), each bound by one role (the CURVE server) and connected by one other:
``data`` (producer binds, encoders pull events), ``acks`` (producer binds, the sink pushes
acknowledgements) and ``scored`` (the sink binds, encoders push scored messages). A connecting peer
checks the server's public key (CURVE does); a binding peer checks the client's public key against the
role the link allows, with a ZAP handler (:class:`_Guard`, one thread per ZeroMQ context) that tells
the sockets of one context apart by their ZAP domain (``aetrig-<link>``). So a process holding no key
of the run cannot connect anywhere, and one holding the encoder's key can pull events and push scored
messages but cannot acknowledge. Create the keys with :func:`generate_keys` or ``aetrig keys DIR``.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

from emulator.runtime.atomic import fsync_directory, write_text_atomic

log = logging.getLogger("aetrig.curve")

ROLES = ("producer", "encoder", "sink")
ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # RFC 27: where libzmq asks
ZAP_DOMAIN_PREFIX = "aetrig-"
_LOGGED_REFUSALS = 5  # refusals logged one by one per link; after that every 1000th


@dataclass(frozen=True)
class Link:
    """One ZeroMQ link: the role that binds it (CURVE server) and the only role allowed to connect."""

    name: str
    server: str
    client: str

    @property
    def zap_domain(self) -> str:
        return ZAP_DOMAIN_PREFIX + self.name


LINKS = {link.name: link for link in (Link("data", "producer", "encoder"), Link("acks", "producer", "sink"),
                                      Link("scored", "sink", "encoder"))}


class CurveError(RuntimeError):
    """Missing or unreadable CurveZMQ key files, or CURVE unsupported by libzmq."""


_BANNER = ("#   ****  aetrig CurveZMQ {kind} certificate, role {role}, made {when}  ****\n"
           "{warning}\n")


def _certificate(role: str, public: bytes, secret: bytes | None) -> str:
    """The text of a ZeroMQ certificate file (the format ``zmq.auth.load_certificate`` reads)."""
    kind = "secret" if secret else "public"
    warning = ("#   Keep this file private (mode 0600): whoever holds it is this role." if secret
               else "#   Public: give it to every peer of this role.")
    text = _BANNER.format(kind=kind, role=role, when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          warning=warning)
    text += f'metadata\n    role = "{role}"\ncurve\n    public-key = "{public.decode()}"\n'
    if secret:
        text += f'    secret-key = "{secret.decode()}"\n'
    return text


def identity_names(extra: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """File stems of the identities :func:`generate_keys` writes: every role, plus ``ROLE-NAME`` extras."""
    names = list(ROLES)
    for role, more in (extra or {}).items():
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        names += [f"{role}-{name}" for name in more]
    return names


def generate_keys(keys_dir: str | Path, extra: dict[str, tuple[str, ...]] | None = None,
                  overwrite: bool = False) -> Path:
    """Write one key pair per role (and per ``extra`` identity, ``{role: (name, ...)}``) into ``keys_dir``.

    Secret files get mode 0600 from their first byte, public files 0644; a new directory gets 0700.
    Existing pairs are kept unless ``overwrite`` (a running deployment keeps its keys). Returns the directory.
    """
    if not zmq.has("curve"):
        raise CurveError("this libzmq has no CURVE support")
    directory = Path(keys_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in identity_names(extra):
        role = name.split("-", 1)[0]
        public_path, secret_path = directory / f"{name}.key", directory / f"{name}.key_secret"
        if public_path.exists() and secret_path.exists() and not overwrite:
            continue
        public, secret = zmq.curve_keypair()
        write_text_atomic(secret_path, _certificate(role, public, secret), mode=0o600)
        write_text_atomic(public_path, _certificate(role, public, None), mode=0o644)
    fsync_directory(directory)
    return directory


def split_by_role(keys_dir: str | Path) -> dict[str, Path]:
    """Write ``keys_dir/ROLE/`` for every role: that role's secret file and every public file, nothing else.

    One such directory is what a stage (a container, a Kubernetes Secret) needs, so that no stage holds
    another role's secret. Rewritten from the flat files of :func:`generate_keys` each time; returns them.
    """
    directory = Path(keys_dir)
    public = sorted(directory.glob("*.key"))
    made = {}
    for role in ROLES:
        secret = directory / f"{role}.key_secret"
        if not secret.is_file():
            raise CurveError(f"{secret} is missing (create the keys first: aetrig keys {directory})")
        target = directory / role
        target.mkdir(mode=0o700, exist_ok=True)
        write_text_atomic(target / secret.name, secret.read_text(), mode=0o600)
        for path in public:
            write_text_atomic(target / path.name, path.read_text(), mode=0o644)
        made[role] = target
    return made


def _load(path: Path, want_secret: bool) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        hint = f"aetrig keys {path.parent}"
        if (path.parent / "server.key").exists() or (path.parent / "client.key").exists():
            hint += " (this directory holds the old server/client layout: stages now need one key per role)"
        raise CurveError(f"CurveZMQ key file {path} is missing (create the keys with: {hint})")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except Exception as exc:  # pyzmq raises ValueError/OSError on malformed files
        raise CurveError(f"cannot read CurveZMQ key file {path}: {exc}") from exc
    if want_secret and not secret:
        raise CurveError(f"{path} holds no secret key")
    return public, secret


def role_keys(keys_dir: str | Path) -> dict[bytes, str]:
    """Z85 public key -> role, for every ``ROLE.key`` and ``ROLE-NAME.key`` in ``keys_dir``."""
    directory = Path(keys_dir)
    roles: dict[bytes, str] = {}
    for role in ROLES:
        for path in sorted([*directory.glob(f"{role}.key"), *directory.glob(f"{role}-*.key")]):
            key = _load(path, want_secret=False)[0]
            if roles.get(key, role) != role:
                raise CurveError(f"{path}: the same public key is also a {roles[key]} key; one key, one role")
            roles[key] = role
    return roles


def allowed_keys(keys_dir: str | Path, role: str) -> set[bytes]:
    """Z85 public keys of ``role`` in ``keys_dir``: what a server accepts on a link that role connects to."""
    keys = {key for key, r in role_keys(keys_dir).items() if r == role}
    if not keys:
        raise CurveError(f"no {role} public key ({role}.key) in {keys_dir}: the link would refuse everyone "
                         f"(create the keys with: aetrig keys {keys_dir})")
    return keys


class _Guard(threading.Thread):
    """The ZAP handler of one ZeroMQ context: per ZAP domain (one per bound link), the client keys it accepts.

    It answers libzmq's authentication requests (RFC 27) on ``inproc://zeromq.zap.01``: a CURVE client
    whose public key is allowed on the socket's domain gets 200 and its role as User-Id, anyone else 400.
    An unknown domain, or any other mechanism, is refused. The thread ends when stopped or when the
    context terminates, closing its socket so that ``Context.term()`` never waits for it.
    """

    def __init__(self, context: zmq.Context):
        super().__init__(name="aetrig-curve-zap", daemon=True)
        self.allowed: dict[str, dict[bytes, str]] = {}  # domain -> {z85 key: role}
        self.refused: dict[str, int] = {}
        self.accepted: dict[str, int] = {}
        self._stop_event = threading.Event()
        self.socket = context.socket(zmq.REP, socket_class=zmq.Socket)
        self.socket.linger = 0
        self.socket.bind(ZAP_ENDPOINT)  # before any CURVE server binds: without a handler libzmq admits all

    def allow(self, link: Link, keys: set[bytes]) -> None:
        self.allowed[link.zap_domain] = dict.fromkeys(keys, link.client) | self.allowed.get(link.zap_domain, {})

    def decide(self, domain: str, mechanism: bytes, credentials: list[bytes]) -> tuple[bool, str]:
        """(accepted, role or reason) for one request."""
        if mechanism != b"CURVE" or not credentials or len(credentials[0]) != 32:
            return False, f"mechanism {mechanism.decode(errors='replace')} not allowed"
        allowed = self.allowed.get(domain)
        if allowed is None:
            return False, f"unknown ZAP domain {domain!r}"
        role = allowed.get(z85.encode(credentials[0]))
        return (True, role) if role else (False, "key not allowed on this link")

    def _answer(self, request: list[bytes]) -> None:
        if len(request) < 6:  # never from libzmq; a REP socket must still answer
            self.socket.send_multipart([b"1.0", b"", b"400", b"malformed ZAP request", b"", b""])
            return
        version, request_id, domain_b, _address, _identity, mechanism, *credentials = request
        domain = domain_b.decode(errors="replace")
        ok, detail = self.decide(domain, mechanism, credentials)
        table = self.accepted if ok else self.refused
        table[domain] = n = table.get(domain, 0) + 1
        if not ok and (n <= _LOGGED_REFUSALS or n % 1000 == 0):
            log.warning("CurveZMQ: refused a peer on %s (%s; %d refused so far)", domain, detail, n)
        self.socket.send_multipart([version, request_id, b"200" if ok else b"400",
                                    b"OK" if ok else detail.encode(), detail.encode() if ok else b"", b""])

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                if self.socket.poll(100):
                    self._answer(self.socket.recv_multipart())
        except zmq.ZMQError:
            pass  # ContextTerminated on term(): close the socket below so that term() can finish
        finally:
            self.socket.close(linger=0)

    def stop(self) -> None:
        self._stop_event.set()
        if self is not threading.current_thread() and self.is_alive():
            self.join(timeout=5)


_lock = threading.Lock()
_guards: dict[int, _Guard] = {}


def _guard(context: zmq.Context) -> _Guard:
    with _lock:
        guard = _guards.get(id(context))
        if guard is None or not guard.is_alive():
            guard = _Guard(context)
            guard.start()
            _guards[id(context)] = guard
        return guard


def refusals(context: zmq.Context) -> dict[str, int]:
    """Handshakes refused so far in ``context``, by link name (for stage reports and tests)."""
    guard = _guards.get(id(context))
    if guard is None:
        return {}
    return {domain.removeprefix(ZAP_DOMAIN_PREFIX): n for domain, n in guard.refused.items()}


def _link(name: str) -> Link:
    if name not in LINKS:
        raise ValueError(f"link must be one of {tuple(LINKS)}, not {name!r}")
    return LINKS[name]


def _directory(keys_dir: str | Path) -> Path:
    if not zmq.has("curve"):
        raise CurveError("this libzmq has no CURVE support")
    directory = Path(keys_dir)
    if not directory.is_dir():
        raise CurveError(f"CurveZMQ keys directory {directory} does not exist (create it: aetrig keys {directory})")
    return directory


def secure_server(sock: zmq.Socket, keys_dir: str | Path, link: str) -> zmq.Socket:
    """Make ``sock`` the CURVE server of ``link`` before it binds: it is the link's server role and
    admits only clients holding a key of the link's client role. Raises :class:`CurveError` on missing keys."""
    spec = _link(link)
    directory = _directory(keys_dir)
    public, secret = _load(directory / f"{spec.server}.key_secret", want_secret=True)
    keys = allowed_keys(directory, spec.client)
    _guard(sock.context).allow(spec, keys)
    sock.zap_domain = spec.zap_domain.encode()
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    return sock


def secure_client(sock: zmq.Socket, keys_dir: str | Path, link: str) -> zmq.Socket:
    """Make ``sock`` a CURVE client of ``link`` before it connects: it holds the link's client role's key
    and talks only to a server holding the server role's secret key."""
    spec = _link(link)
    directory = _directory(keys_dir)
    public, secret = _load(directory / f"{spec.client}.key_secret", want_secret=True)
    server_public, _ = _load(directory / f"{spec.server}.key", want_secret=False)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server_public
    return sock


def stop_authenticators(context: zmq.Context | None = None) -> None:
    """Stop the ZAP handler of ``context`` (all of them when None); call before ``term()``."""
    with _lock:
        keys = [id(context)] if context is not None else list(_guards)
        guards = [g for g in (_guards.pop(k, None) for k in keys) if g is not None]
    for guard in guards:
        guard.stop()


atexit.register(stop_authenticators)
