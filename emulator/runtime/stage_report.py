"""Stage reports: the ``--report FILE.json`` every stage writes when it exits.

Written atomically (temporary file, fsync, rename) so that a reader never sees half a report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_report(path: str | Path | None, report: Mapping[str, Any]) -> Path | None:
    """Write ``report`` as indented JSON to ``path`` (None: do nothing); return the path."""
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as out:
        json.dump(report, out, indent=1, sort_keys=False, default=_jsonable)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return path


def _jsonable(value: Any) -> Any:
    """numpy scalars and paths in reports."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
