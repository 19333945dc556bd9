"""Stage reports: the ``--report FILE.json`` every stage writes when it exits.

Written atomically and durably (:mod:`emulator.runtime.atomic`) so that a reader never sees half a report.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emulator.runtime.atomic import write_json_atomic


def write_report(path: str | Path | None, report: Mapping[str, Any]) -> Path | None:
    """Write ``report`` as indented JSON to ``path`` (None: do nothing); return the path."""
    if path is None:
        return None
    return write_json_atomic(path, report, default=_jsonable)


def _jsonable(value: Any) -> Any:
    """numpy scalars and paths in reports."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
