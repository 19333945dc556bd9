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


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` atomically and durably (parent folders made); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as out:
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
