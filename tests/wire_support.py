"""Take a wire message apart by column and put it back together, to build malformed messages in tests."""

from __future__ import annotations

import msgpack

from emulator.runtime import wire


def split(frames: list[bytes]) -> tuple[dict, list[bytes]]:
    """A valid message's header and the bytes of each of its columns (its body cut by the header's ``cols``)."""
    header = msgpack.unpackb(frames[0])
    batch = wire.decode(frames)
    return header, [batch.columns[col[0]].tobytes() for col in header["cols"]]


def join(header: dict, parts: list[bytes]) -> list[bytes]:
    """The frames of ``header`` and a body of ``parts``, each padded to ``wire.ALIGN`` as ``wire.encode`` lays it."""
    return [msgpack.packb(header), b"".join(p + bytes(-len(p) % wire.ALIGN) for p in parts)]
