"""The sink's receiving thread: reads the PULL socket and time-stamps each message on arrival, so that
a group commit running in the main thread never delays when an event counts as having reached
the sink (the decision latency), and ZeroMQ keeps draining the encoders meanwhile.

The hand-over queue is bounded in messages and in bytes: when the main thread stops taking messages
(backpressure), or the queued messages hold ``max_bytes``, the thread blocks, stops reading, and the
ZeroMQ high-water marks push back upstream.
"""

from __future__ import annotations

import queue
import threading
import time

import zmq

from emulator.runtime.zmq_frames import recv_frames

Item = tuple[list[bytes], float]


class Receiver(threading.Thread):
    """Owns ``sock`` until :meth:`halt` returns; then the caller may use the socket again."""

    def __init__(self, sock: zmq.Socket, maxsize: int, max_bytes: int = 256 << 20):
        super().__init__(name="sink-receiver", daemon=True)
        self.sock = sock
        self.queue: queue.Queue[Item] = queue.Queue(maxsize)
        self.max_bytes = max_bytes
        self.queued_bytes = 0  # bytes of the messages in the queue (a message is taken whole, then counted)
        self._lock = threading.Lock()
        self.leftover: Item | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            if self.queued_bytes >= self.max_bytes:  # hold off reading: ZeroMQ pushes back upstream
                self._halt.wait(0.01)
                continue
            if not self.sock.poll(50, zmq.POLLIN):
                continue
            try:
                item = (recv_frames(self.sock, zmq.NOBLOCK), time.time())
            except zmq.Again:
                continue
            size = sum(len(f) for f in item[0])
            with self._lock:
                self.queued_bytes += size
            while True:
                try:
                    self.queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    if self._halt.is_set():
                        self.leftover = item
                        return

    def get(self, timeout: float) -> Item | None:
        """The next message and its arrival time, waiting up to ``timeout`` s (None if none came)."""
        try:
            item = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
        except queue.Empty:
            return None
        size = sum(len(f) for f in item[0])
        with self._lock:
            self.queued_bytes -= size
        return item

    def halt(self) -> list[Item]:
        """Stop reading; return what was received but not taken yet, in order."""
        self._halt.set()
        self.join()
        items = []
        while True:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                break
        if self.leftover is not None:
            items.append(self.leftover)
        return items
