"""The /metrics HTTP server of a stage, with timeouts: a slow or idle client cannot hold it.

prometheus_client's ``start_http_server`` starts a thread per connection and waits for a client for as
long as it likes, so a slow-loris client (or many) keeps handler threads alive forever. Here every socket
operation times out after :data:`SOCKET_TIMEOUT_S`, a watchdog thread shuts any connection down
:data:`CONNECTION_DEADLINE_S` after it was accepted (however slowly it trickles bytes), and at most
:data:`MAX_CONNECTIONS` are served at once: further ones are closed at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

SOCKET_TIMEOUT_S = 2.0
CONNECTION_DEADLINE_S = 5.0  # a scrape takes milliseconds; Prometheus's own scrape timeout is 10 s
MAX_CONNECTIONS = 32
_WATCH_INTERVAL_S = 0.5


class _Handler(WSGIRequestHandler):
    """A WSGI request handler that logs nothing and whose socket operations time out."""

    timeout: float | None = SOCKET_TIMEOUT_S  # StreamRequestHandler.setup applies it to the connection

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing (a scrape a second would flood the stage log)."""

    def setup(self) -> None:
        super().setup()
        self.server.watch(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.unwatch(self.connection)  # type: ignore[attr-defined]


class MetricsServer(ThreadingMixIn, WSGIServer):
    """Thread per connection, at most :data:`MAX_CONNECTIONS` at once, each at most :data:`CONNECTION_DEADLINE_S`."""

    daemon_threads = True
    max_connections = MAX_CONNECTIONS
    deadline_s = CONNECTION_DEADLINE_S

    def __init__(self, *args: Any, **kwargs: Any):
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self.refused_connections = 0
        self.expired_connections = 0
        super().__init__(*args, **kwargs)
        threading.Thread(target=self._watchdog, name="aetrig-metrics-watchdog", daemon=True).start()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused_connections += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def watch(self, conn: socket.socket) -> None:
        with self._lock:
            self._deadlines[conn] = time.monotonic() + self.deadline_s

    def unwatch(self, conn: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(conn, None)

    def _watchdog(self) -> None:
        while True:
            time.sleep(_WATCH_INTERVAL_S)
            now = time.monotonic()
            with self._lock:
                expired = [c for c, deadline in self._deadlines.items() if deadline < now]
                for conn in expired:
                    del self._deadlines[conn]
            for conn in expired:
                self.expired_connections += 1
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)  # the handler's blocked recv or send returns at once


def serve_metrics(registry: CollectorRegistry, port: int, host: str, socket_timeout_s: float = SOCKET_TIMEOUT_S,
                  deadline_s: float = CONNECTION_DEADLINE_S, max_connections: int = MAX_CONNECTIONS) -> MetricsServer:
    """Serve ``registry`` on http://host:port/metrics (port 0: a free one, ``server_port``) from a daemon
    thread; return the server."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class = type("MetricsServer", (MetricsServer,), {"address_family": family, "deadline_s": deadline_s,
                                                            "max_connections": max_connections})
    handler_class = type("Handler", (_Handler,), {"timeout": socket_timeout_s})
    httpd = make_server(host, port, make_wsgi_app(registry), server_class, handler_class=handler_class)
    threading.Thread(target=httpd.serve_forever, name="aetrig-metrics", daemon=True).start()
    return httpd
