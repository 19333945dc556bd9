"""The project stands alone: no code, test, doc, build or shipped-artefact line (model cards and bench results
included: their recorded commands name repo-relative paths) points beside the clone or at this machine."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEXT = (".py", ".md", ".toml", ".yaml", ".yml", ".cfg", ".txt", ".json")
#: what must not appear: the folder beside the clone, and this machine's work area (spelled in parts, so that
#: this file does not match itself)
FORBIDDEN = ("..".__add__("/shared"), "parent / ".__add__('"shared"'), "/".join(("", "work", "")))


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [REPO / n for n in names if (n.endswith(TEXT) or Path(n).name in ("Makefile", "run", "Dockerfile"))
            and (REPO / n).is_file()]


def test_nothing_points_outside_the_repo_or_at_this_machine() -> None:
    bad = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in tracked_text_files()
           for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
           if any(text in line for text in FORBIDDEN)]
    assert not bad, "\n".join(bad[:20])
