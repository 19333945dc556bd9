"""Atomic, durable file writes: a reader sees the old file or the whole new one, never half of it.

The text goes to a hidden temporary file next to the target, is fsynced, renamed over the target
and the directory is fsynced, so the new file also survives a crash of the machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | Path, text: str, mode: int = 0o666) -> Path:
    """Replace ``path`` with ``text`` atomically and durably (parent folders made); return the path.

    The file is created with permissions ``mode`` (less the umask) from its first byte: a secret written
    with ``mode=0o600`` is never readable by others, not even while it is being written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # O_EXCL below: a leftover (or planted) file never lends us its permissions
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with open(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def fsync_directory(path: str | Path) -> None:
    """Make the entries of directory ``path`` (a new or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: str | Path, data: Any, *, indent: int = 1, sort_keys: bool = False,
                      default: Callable[[Any], Any] | None = None, allow_nan: bool = True) -> Path:
    """Write ``data`` as indented JSON plus a newline to ``path`` atomically and durably; return the path.

    The JSON is built before the file is touched, so data that cannot be serialised leaves the old file.
    """
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, default=default, allow_nan=allow_nan) + "\n"
    return write_text_atomic(path, text)
