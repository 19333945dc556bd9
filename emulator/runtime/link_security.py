"""Whether a stage may start without CurveZMQ, and where: authenticated by default, plaintext by choice on loopback.

A stage needs its role's keys (``--curve-keys DIR``) to start: without them it refuses with one line
(:func:`require_keys`), unless the operator opts out with ``--plaintext``. Plaintext links are
unauthenticated and unencrypted: any process that can reach a bound address may pull events, push
messages or acknowledge. That is tolerated only where the address is reachable from this host alone
(loopback, ``ipc://``, ``inproc://``), for debugging and benchmarks; a plaintext bind to anything else is
refused at start-up with one line. No ZeroMQ import here: the stage configs call
:func:`check_plaintext_binds` from their validators, the stage commands and their socket set-up
:func:`require_keys`.
"""

from __future__ import annotations

import ipaddress

LOCAL_TRANSPORTS = ("ipc://", "inproc://")


def endpoint_host(address: str) -> str | None:
    """The host of a ``tcp://HOST:PORT`` endpoint (brackets of an IPv6 literal removed); None otherwise."""
    if not address.startswith("tcp://"):
        return None
    host = address[len("tcp://"):].rsplit(":", 1)[0]
    host = host.split(";", 1)[-1]  # tcp://SOURCE;HOST:PORT names the source interface first
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_local_endpoint(address: str) -> bool:
    """True when only this host can reach ``address``: a loopback tcp address, ``ipc://`` or ``inproc://``."""
    if address.startswith(LOCAL_TRANSPORTS):
        return True
    host = endpoint_host(address)
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name or a host name: reachable from elsewhere


def check_plaintext_binds(curve_keys: object, binds: dict[str, str | None]) -> None:
    """ValueError (one line) when a stage without ``--curve-keys`` would bind a non-local address.

    ``binds`` maps each bind flag to its address (None: not bound).
    """
    if curve_keys:
        return
    for flag, address in binds.items():
        if address and not is_local_endpoint(address):
            raise ValueError(f"refusing a plaintext bind on {address} ({flag}): anyone who can reach it could "
                             "pull, push or acknowledge; give --curve-keys DIR (make the keys with `aetrig keys "
                             "--per-role DIR`) or bind 127.0.0.1")


PLAINTEXT_HELP = ("run without CurveZMQ: unauthenticated, unencrypted links, loopback only (any local process could "
                  "then pull events, push messages or acknowledge); for debugging and speed comparisons")


def check_one_choice(curve_keys: object, plaintext: bool) -> None:
    """ValueError when a stage is given both ``--curve-keys`` and ``--plaintext``."""
    if curve_keys and plaintext:
        raise ValueError("--plaintext and --curve-keys contradict each other: give one")


def require_keys(curve_keys: object, plaintext: bool) -> None:
    """ValueError (one line) when a stage has no keys and was not told ``--plaintext``: a stage never runs
    unauthenticated by default, loopback included."""
    if not curve_keys and not plaintext:
        raise ValueError("no CurveZMQ keys, and the links are authenticated by default: pass --curve-keys DIR (this "
                         "stage's role directory, made by `aetrig keys --per-role DIR`), or --plaintext to run "
                         "unauthenticated on loopback only")
