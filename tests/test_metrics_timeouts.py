"""The /metrics server against slow and idle clients, over real TCP sockets: none of them can hold it."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

from waiting import wait_until

from emulator.runtime.metrics import make_metrics
from emulator.runtime.metrics_server import serve_metrics


def _connect(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.settimeout(5)
    return conn


def _closed_within(conn: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``conn`` within ``seconds`` (EOF or reset on recv)."""
    conn.settimeout(seconds)
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_idle_and_trickling_clients_are_cut_and_scrapes_go_on() -> None:
    metrics = make_metrics()
    metrics.events.labels(stage="sink").inc(7)
    server = serve_metrics(metrics.registry, 0, "127.0.0.1", socket_timeout_s=1.0, deadline_s=2.5, max_connections=3)
    port = server.server_port
    threads_before = threading.active_count()
    # an idle client: dropped after the socket timeout (nothing arrives within 1 s)
    idle = _connect(port)
    t0 = time.monotonic()
    assert _closed_within(idle, 5.0)
    assert time.monotonic() - t0 < 4.0, "the idle client outlived its socket timeout"
    # a slow loris: one header byte every 0.2 s never trips the socket timeout, but the deadline cuts it
    loris = _connect(port)
    loris.sendall(b"GET /metrics HTTP/1.1\r\n")
    t0, cut = time.monotonic(), False
    while time.monotonic() - t0 < 10.0:
        try:
            loris.sendall(b"X")
        except OSError:
            cut = True
            break
        if _closed_within(loris, 0.2):
            cut = True
            break
    assert cut and time.monotonic() - t0 < 7.0, "the trickling client was not cut at its deadline"
    assert server.expired_connections >= 1
    assert 'aetrig_events_total{stage="sink"} 7.0' in _scrape(port)
    wait_until(lambda: threading.active_count() <= threads_before, 5.0, what="the handler threads to end")
    server.shutdown()


def test_connections_beyond_the_cap_are_closed_at_once() -> None:
    metrics = make_metrics()
    server = serve_metrics(metrics.registry, 0, "127.0.0.1", socket_timeout_s=10.0, deadline_s=10.0,
                           max_connections=3)
    port = server.server_port
    crowd = [_connect(port) for _ in range(3)]
    wait_until(lambda: len(server._deadlines) == 3, 5.0, what="the crowd to be served")
    extra = _connect(port)
    assert _closed_within(extra, 3.0) and server.refused_connections == 1
    for conn in crowd:  # the crowd leaves: its slots are free again
        conn.close()
    wait_until(lambda: not server._deadlines, 5.0, what="the crowd's handlers to end")
    assert "aetrig_events_total" in _scrape(port)
    server.shutdown()
