"""Recompute a model's threshold table on a background sample and write a new card version.

Either kind of model: a per-jet model's scorer runs on every jet (per-jet rows, and per-event rows and
curve of the max jet error); an event-level model scores every event as the encoder does
(:func:`models.runtime.event_scoring.event_anomaly_scores`: its error, or its card's score_transform of
it), giving the per-event rows and curve. Either gets only the jets inside the card's training domain
(models/runtime/domain.py), exactly as the encoder gives them, unless ``select_domain`` is False (the
encoder's --score-all-jets). The card's score definition (and score_transform) is kept: only where its
threshold sits on this background changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.card import GRAPH_FILES, Level, ModelError, load_model_dir, write_card
from models.runtime.data import JetSample
from models.runtime.domain import Domain, select
from models.runtime.evaluate import run_scorer
from models.runtime.event_scoring import event_anomaly_scores
from models.runtime.hashing import sha256_file
from models.runtime.thresholds import event_threshold_table, threshold_table


def calibrate(model_path: str | Path, sample: JetSample, threads: int = 1, out: str | Path | None = None,
              select_domain: bool = True) -> dict[str, Any]:
    """Score ``sample`` (the background, holding the model's variables and pt, eta), rebuild ``thresholds``, bump
    ``version``.

    Writes into ``out`` (a copy of the model directory) when given, else updates the card in place.
    """
    model = load_model_dir(model_path, level=None)
    domain = Domain.from_card(model.card) if select_domain else None
    missing = [v for v in [*model.variables, *(("pt", "eta") if domain else ())] if v not in sample.variables]
    if missing:
        raise ModelError(f"the background lacks {missing}, needed by {model.name}")
    target = Path(out) if out else model.path
    if out:
        if target.exists() and any(target.iterdir()):
            raise FileExistsError(f"output directory {target} exists and is not empty")
        shutil.copytree(model.path, target, dirs_exist_ok=True)
    values, counts = sample.values, np.asarray(sample.counts, np.int64)
    info: dict[str, Any] = {"files": sample.files, "domain_selection": "none stated" if Domain.from_card(
        model.card) is None else ("on" if domain else "off (all jets scored)")}
    if domain is not None:
        column = {v: values[:, i] for i, v in enumerate(sample.variables)}
        inside = domain.mask(column["pt"], column["eta"], counts, limit_jets=model.level == Level.JET)
        info["jets_outside_domain"] = int((~inside).sum())
        values, counts = values[inside], select(inside, counts)
    card = dict(model.card)
    previous = {"version": card["version"], "sample": card.get("thresholds", {}).get("sample")}
    if model.level == Level.EVENT:
        columns = {v: values[:, i] for i, v in enumerate(sample.variables)}
        scores = event_anomaly_scores(model, columns, counts, threads)
        card["thresholds"] = event_threshold_table(np.asarray(scores, np.float64), counts, info,
                                                   card.get("thresholds", {}).get("rule"))
    else:
        model_values = values[:, [sample.variables.index(v) for v in model.variables]]
        _, _, errors = run_scorer(model.scorer_path, model_values, threads=threads)
        card["thresholds"] = threshold_table(errors, counts, info)
    card["version"] = int(card["version"]) + 1
    card.setdefault("calibration_history", []).append(previous)
    card["files"] = {name: sha256_file(target / name) for name in card["files"]}
    for graph in GRAPH_FILES:
        assert graph in card["files"]
    write_card(target, card)
    load_model_dir(target, level=None)
    return card
