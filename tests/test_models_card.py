"""Model card loader and thresholds: sha256 verification, clear errors, threshold lookup and tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.runtime.card import ModelError, load_model_dir, write_card
from models.runtime.hashing import sha256_file
from models.runtime.thresholds import dense_curve, event_scores, threshold_rows, threshold_table


def _fake_dir(tmp_path: Path, scores: np.ndarray) -> Path:
    """A model dir whose graphs are placeholder bytes (the loader only hashes them)."""
    for name in ("encoder.onnx", "decoder.onnx", "scorer.onnx"):
        (tmp_path / name).write_bytes(name.encode() * 10)
    table = threshold_table(scores, np.ones(len(scores), dtype=np.int64), {"files": {}})
    card = {
        "name": "t", "version": 1, "variables": [{"name": "pt", "unit": "GeV"}, {"name": "eta", "unit": ""}],
        "files": {n: sha256_file(tmp_path / n) for n in ("encoder.onnx", "decoder.onnx", "scorer.onnx")},
        "normalisation": {}, "architecture": {"latent_dim": 1}, "thresholds": table,
    }
    write_card(tmp_path, card)
    return tmp_path


def test_load_verifies_and_exposes_fields(tmp_path: Path) -> None:
    model = load_model_dir(_fake_dir(tmp_path, np.arange(1, 1001, dtype=float)))
    assert model.variables == ["pt", "eta"] and model.units == ["GeV", ""]
    assert model.latent_dim == 1 and model.scorer_path.name == "scorer.onnx" and model.version == 1
    assert json.loads(model.card_json)["name"] == "t"


def test_tampered_onnx_is_refused(tmp_path: Path) -> None:
    path = _fake_dir(tmp_path, np.arange(1, 101, dtype=float))
    with open(path / "scorer.onnx", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(ModelError, match=r"scorer\.onnx: sha256 .* does not match the card"):
        load_model_dir(path)
    assert load_model_dir(path, verify=False).name == "t"


def test_missing_file_and_missing_dir_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model_dir(tmp_path / "nope")
    with pytest.raises(ModelError, match=r"no card\.json"):
        load_model_dir(tmp_path)
    path = _fake_dir(tmp_path, np.arange(1, 101, dtype=float))
    (path / "decoder.onnx").unlink()
    with pytest.raises(ModelError, match=r"decoder\.onnx listed in the card is missing"):
        load_model_dir(path)


def test_threshold_lookup_matches_counts(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    scores = rng.exponential(size=100_000)
    model = load_model_dir(_fake_dir(tmp_path, scores))
    for fpr in (0.3, 1e-2, 3e-3, 1e-4):
        threshold = model.threshold(fpr=fpr)
        flagged = np.mean(scores > threshold)
        assert abs(flagged - fpr) <= 0.1 * fpr + 2e-5
        # exponential tail: independent quantile -log(fpr)
        assert threshold == pytest.approx(-np.log(fpr), rel=0.1)
    assert model.threshold(accept_rate=100.0, input_rate=1e4) == pytest.approx(model.threshold(fpr=1e-2))
    with pytest.raises(ModelError, match="outside the calibrated range"):
        model.threshold(fpr=1e-7)
    with pytest.raises(ModelError, match="exactly one"):
        model.threshold()
    with pytest.raises(ModelError, match="input_rate"):
        model.threshold(accept_rate=10.0)
    with pytest.raises(ModelError, match=r"\(0, 1\)"):
        model.threshold(accept_rate=10.0, input_rate=5.0)


def test_event_scores_and_rows() -> None:
    errors = np.array([0.1, 0.5, 0.2, 0.9, 0.3])
    counts = np.array([2, 0, 3, 0])
    assert event_scores(errors, counts).tolist() == [0.5, 0.0, 0.9, 0.0]
    with pytest.raises(ValueError, match="sum"):
        event_scores(errors, np.array([1, 1]))
    values = np.arange(1000, dtype=float)
    rows = threshold_rows(values)
    assert [r["n"] for r in rows] == [100, 10, 1, 0, 0]
    assert [r["reliable"] for r in rows] == [True, True, False, False, False]
    for row in rows:
        assert np.sum(values > row["threshold"]) == row["n"]
    curve = dense_curve(values)
    assert curve["fpr"][0] == pytest.approx(1e-3) and curve["fpr"][-1] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(curve["threshold"], curve["threshold"][1:], strict=False))
