"""Send and receive multipart messages with less Python work per frame than pyzmq's ``send_multipart`` and
``recv_multipart``.

pyzmq's convenience layer runs several Python calls per frame (type checks, keyword handling, one
``getsockopt(RCVMORE)`` through attribute lookup per received frame). These helpers call the socket's
compiled methods directly (wire messages are two frames, header and body): ``zmq.Socket.recv`` and
``zmq.Socket.get`` are public and compiled already; the public ``zmq.Socket.send`` is a Python wrapper (DRAFT
``routing_id``/``group`` handling) around the compiled send, which only :func:`compiled_send` reaches. Frames are
copied: a body of tens to a few hundred kB copies in microseconds, less than pyzmq's zero-copy bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import zmq


def compiled_send() -> Callable[..., Any]:
    """pyzmq's compiled ``send(socket, data, flags, copy=...)``, below the public ``zmq.Socket.send`` wrapper.

    The wrapper doubles the process CPU time of sending a 25-frame message (22-32 vs 9-11 us, inproc PUSH/PULL,
    pyzmq 27.3). pyzmq offers no public name for it, so this is the one place that reaches pyzmq's internals
    (``zmq.backend.Socket``); tests/test_library_internals.py fails when pyzmq changes them.
    """
    from zmq.backend import Socket as CompiledSocket

    if not issubclass(zmq.Socket, CompiledSocket):
        raise ImportError("pyzmq's zmq.Socket no longer derives from zmq.backend.Socket: update zmq_frames.py")
    return CompiledSocket.send


_send = compiled_send()
_recv = zmq.Socket.recv
_get = zmq.Socket.get


def send_frames(sock: zmq.Socket, frames: Sequence[Any], flags: int = 0) -> None:
    """Send ``frames`` (bytes or buffers) as one multipart message.

    With ``zmq.NOBLOCK`` in ``flags``, raises ``zmq.Again`` when no peer can take the message; then
    nothing was sent (ZeroMQ queues a multipart message whole once its first frame is accepted).
    """
    more = flags | zmq.SNDMORE
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        _send(sock, frame, more if i < last else flags, copy=True)


def recv_frames(sock: zmq.Socket, flags: int = 0) -> list[bytes]:
    """Receive one multipart message as a list of bytes (``zmq.Again`` with NOBLOCK when none is queued)."""
    parts = [_recv(sock, flags, copy=True)]
    while _get(sock, zmq.RCVMORE):
        parts.append(_recv(sock, flags, copy=True))
    return parts
