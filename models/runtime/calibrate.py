"""Recompute a model's threshold table on a background sample and write a new card version."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from models.runtime.card import GRAPH_FILES, load_model_dir, write_card
from models.runtime.data import load_jets
from models.runtime.evaluate import run_scorer
from models.runtime.hashing import sha256_file
from models.runtime.thresholds import threshold_table


def calibrate(model_path: str | Path, backgrounds: list[str | Path], tree: str = "events",
              threads: int = 1, out: str | Path | None = None) -> dict[str, Any]:
    """Run the scorer on every jet of ``backgrounds``, rebuild ``thresholds``, bump ``version``.

    Writes into ``out`` (a copy of the model directory) when given, else updates the card in place.
    """

    model = load_model_dir(model_path)
    target = Path(out) if out else model.path
    if out:
        if target.exists() and any(target.iterdir()):
            raise FileExistsError(f"output directory {target} exists and is not empty")
        shutil.copytree(model.path, target, dirs_exist_ok=True)
    sample = load_jets(list(backgrounds), model.variables, tree=tree)
    _, _, errors = run_scorer(model.scorer_path, sample.values, threads=threads)
    card = dict(model.card)
    previous = {"version": card["version"], "sample": card.get("thresholds", {}).get("sample")}
    card["thresholds"] = threshold_table(errors, sample.counts, {"files": sample.files})
    card["version"] = int(card["version"]) + 1
    card.setdefault("calibration_history", []).append(previous)
    card["files"] = {name: sha256_file(target / name) for name in card["files"]}
    for graph in GRAPH_FILES:
        assert graph in card["files"]
    write_card(target, card)
    load_model_dir(target)
    return card
