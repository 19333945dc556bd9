"""The run manifest: which input files (with sha256), which settings and seed, when, which version.

Every message names it by the sha256 of its canonical bytes (``manifest_sha256``: the producer writes the
manifest once, and the sink is told it); it is written into every recorded file, so a recording can be
traced back to its exact inputs. ``file_index`` on the wire indexes
``files`` here.
"""

from __future__ import annotations

import os
import platform
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emulator import __version__
from emulator.runtime.atomic import write_json_atomic
from models.runtime.hashing import sha256_file

MANIFEST_VERSION = 1


def new_run_id() -> int:
    """A random 64-bit run id (never 0)."""
    return secrets.randbits(64) or 1


def build_manifest(run_id: int, files: Sequence[str | Path], settings: Mapping[str, Any], seed: int,
                   variables: Sequence[str], start_time: float | None = None,
                   plans: Sequence[Any] | None = None) -> dict[str, Any]:
    """The manifest as a JSON-ready dict; ``plans`` (producer.reader.FilePlan, one per file) add each file's
    ``layout``: the TTree or RNTuple and the branches the producer read it with."""

    start = time.time() if start_time is None else start_time
    return {
        "manifest_version": MANIFEST_VERSION,
        "run_id": int(run_id),
        "run_id_hex": f"{int(run_id):016x}",
        "files": [{"index": i, "path": str(Path(p).resolve()), "name": Path(p).name,
                   "size": os.path.getsize(p), "sha256": sha256_file(p),
                   **({"layout": file_layout(plans[i])} if plans is not None else {})} for i, p in enumerate(files)],
        "variables": list(variables),
        "settings": dict(settings),
        "seed": int(seed),
        "start_time": start,
        "start_time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
        "version": __version__,
        "python": sys.version.split()[0],
        "host": platform.node(),
    }


def file_layout(plan: Any) -> dict[str, Any]:
    """What a manifest records of how one file was read (a producer.reader.FilePlan): its kind ("TTree" or
    "RNTuple"), tree and branch map."""
    return {"kind": plan.kind, "tree": plan.spec.tree, "branch_map": dict(plan.spec.branch_map)}


def manifest_settings(cfg: Any, files: Sequence[str | Path]) -> dict[str, Any]:
    """The ``settings`` a manifest records for a producer config (``ProducerConfig``) reading ``files``."""
    return cfg.as_dict() | {"input": [str(p) for p in files]}


def load_manifest(path: str | Path, run_id: int | None = None) -> dict[str, Any]:
    """A manifest written by :func:`write_manifest` (ValueError when unreadable, or when ``run_id`` is given and
    differs from the manifest's)."""
    import json

    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a run manifest: {exc}") from exc
    if not isinstance(manifest, dict) or type(manifest.get("run_id")) is not int:
        raise ValueError(f"{path}: not a run manifest (no integer run_id)")
    if run_id is not None and run_id != manifest["run_id"]:
        raise ValueError(f"--run-id {run_id:#x} differs from the manifest's run id {manifest['run_id']:#x}")
    return manifest


def write_manifest(manifest: Mapping[str, Any], path: str | Path) -> Path:
    return write_json_atomic(path, manifest, indent=2, sort_keys=True)
