"""Free TCP ports on loopback, for stages, tests and the benchmark (the one copy)."""

from __future__ import annotations

import socket

_taken: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now (the OS picks it); never the same twice in this process."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _taken:
            _taken.add(port)
            return port
    raise RuntimeError("no free port found")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` right now."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True

