"""Which ZeroMQ endpoints may go without CurveZMQ: plaintext links stay on the local host.

A stage started without ``--curve-keys`` has unauthenticated, unencrypted links: any process that can
reach a bound address may pull events, push messages or acknowledge. That is tolerated only where the
address is reachable from this host alone (loopback, ``ipc://``, ``inproc://``), for debugging and
benchmarks; a plaintext bind to anything else is refused at start-up with one line. No ZeroMQ import
here: the stage configs call :func:`check_plaintext_binds` from their validators.
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
                             "DIR`) or bind 127.0.0.1")
