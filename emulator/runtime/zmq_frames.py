"""Send and receive multipart messages with less Python work per frame than pyzmq's ``send_multipart`` and
``recv_multipart``.

pyzmq's convenience layer runs several Python calls per frame (type checks, keyword handling, one
``getsockopt(RCVMORE)`` through attribute lookup per received frame). Wire messages carry one frame
per column (15-25 frames), so that adds up to tens of microseconds per message. These helpers call
pyzmq's compiled socket methods directly. Frames are copied: every frame here is far below the size
where pyzmq's zero-copy path pays off (it copies frames under 64 kB anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import zmq
from zmq.backend import Socket as _CompiledSocket

_send = _CompiledSocket.send
_recv = _CompiledSocket.recv
_get = _CompiledSocket.get


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
