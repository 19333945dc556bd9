"""Model directories: load and verify `card.json` and its files, and look up anomaly thresholds.

A model directory holds ``encoder.onnx``, ``decoder.onnx``, ``scorer.onnx``, ``model.pt`` and
``card.json``. ``load_model_dir`` reads the card, checks that every file listed under
``card["files"]`` exists and has the recorded sha256 (unless ``verify=False``), and returns a
``ModelDir``. ``ModelDir.threshold`` turns a false-positive rate (or an accepted event rate at a
given input rate) into a per-event error threshold using the card's ``per_event_curve``.

A card's ``level`` (:class:`Level`, what :func:`model_level` and ``ModelDir.level`` give) says what the graphs
take: ``jet`` (default; ``x`` [n_jets, n_vars], one error per jet) or ``event`` (``x`` [n_events, J, n_vars], the
padded leading jets, one error per event; see models/runtime/event_features.py). Per-jet tools (the encoder
service, calibrate, decode) load with the default ``level=Level.JET`` and so refuse an event-level model with a
clear error instead of feeding it jets.
"""

from __future__ import annotations

import enum
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.runtime.hashing import sha256_file

CARD_NAME = "card.json"
GRAPH_FILES = ("encoder.onnx", "decoder.onnx", "scorer.onnx")
REQUIRED_KEYS = ("name", "version", "variables", "files", "normalisation", "architecture", "thresholds")


class Level(enum.StrEnum):
    """What one row of a model's input is, from its card's ``level``: a jet (one error per jet) or an event (the
    event's padded leading jets, one score per event). A str, so it is the card's and the JSON's text as is."""

    JET = "jet"
    EVENT = "event"


LEVELS = tuple(Level)


class ModelError(Exception):
    """A model directory is missing, malformed or does not match its card."""


@dataclass
class ModelDir:
    """A verified model directory: paths to the three graphs and the parsed card."""

    path: Path
    card: dict[str, Any]
    variables: list[str]
    units: list[str]
    latent_dim: int
    scorer_path: Path
    encoder_path: Path
    decoder_path: Path
    name: str = field(default="")
    level: Level = field(default=Level.JET)

    @property
    def version(self) -> int:
        return int(self.card["version"])

    @property
    def card_json(self) -> str:
        """The card as compact JSON text (what encoders attach to scored messages)."""
        return json.dumps(self.card, sort_keys=True, separators=(",", ":"))

    def threshold(self, fpr: float | None = None, accept_rate: float | None = None,
                  input_rate: float | None = None) -> float:
        """Per-event error threshold for a background false-positive rate.

        Give ``fpr`` (fraction of background events flagged), or ``accept_rate`` (Hz) together
        with ``input_rate`` (Hz), which means ``fpr = accept_rate / input_rate``. The threshold is
        interpolated log-log on the card's ``per_event_curve``; a rate outside the range the
        calibration sample supports raises ``ModelError`` instead of extrapolating.
        """
        fpr = resolve_fpr(fpr, accept_rate, input_rate)
        curve = self.card.get("thresholds", {}).get("per_event_curve")
        if not curve or not curve.get("fpr"):
            raise ModelError(f"model {self.name!r} has no per_event_curve in its card; run `aetrig calibrate`")
        return interpolate_threshold(curve["fpr"], curve["threshold"], fpr, self.name)


def resolve_fpr(fpr: float | None, accept_rate: float | None, input_rate: float | None) -> float:
    """The false-positive rate asked for, from either ``fpr`` or ``accept_rate / input_rate``."""
    if (fpr is None) == (accept_rate is None):
        raise ModelError("give exactly one of fpr or accept_rate (with input_rate)")
    if accept_rate is not None:
        if input_rate is None or not input_rate > 0:
            raise ModelError(f"accept_rate needs a positive input_rate, got input_rate={input_rate!r}")
        if not accept_rate > 0:
            raise ModelError(f"accept_rate must be positive, got {accept_rate!r}")
        fpr = accept_rate / input_rate
    assert fpr is not None
    if not (math.isfinite(fpr) and 0 < fpr < 1):
        raise ModelError(f"false-positive rate must be in (0, 1), got {fpr!r}")
    return float(fpr)


def interpolate_threshold(fprs: list[float], thresholds: list[float], fpr: float, name: str = "") -> float:
    """Log-log interpolation of a threshold curve at ``fpr`` (points may come in any order)."""
    pairs = sorted(zip(fprs, thresholds, strict=True))
    lo, hi = pairs[0][0], pairs[-1][0]
    if not lo <= fpr <= hi:
        raise ModelError(
            f"false-positive rate {fpr:g} is outside the calibrated range [{lo:g}, {hi:g}] of model {name!r}; "
            "calibrate on a larger background (`aetrig calibrate`) or choose another rate")
    for (f0, t0), (f1, t1) in itertools.pairwise(pairs):
        if f0 <= fpr <= f1:
            if f1 == f0:
                return float(t0)
            w = (math.log(fpr) - math.log(f0)) / (math.log(f1) - math.log(f0))
            if t0 > 0 and t1 > 0:
                return float(math.exp(math.log(t0) + w * (math.log(t1) - math.log(t0))))
            return float(t0 + w * (t1 - t0))
    return float(pairs[-1][1])


def read_card(path: str | Path) -> dict[str, Any]:
    """Parse ``card.json`` in a model directory and check the required keys are present."""
    card_path = Path(path) / CARD_NAME
    if not card_path.is_file():
        raise ModelError(f"{path}: not a model directory (no {CARD_NAME})")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{card_path}: invalid JSON: {exc}") from exc
    missing = [key for key in REQUIRED_KEYS if key not in card]
    if missing:
        raise ModelError(f"{card_path}: missing keys {missing}")
    return card


def verify_files(path: Path, card: dict[str, Any]) -> None:
    """Raise ``ModelError`` unless every file of the card exists with its recorded sha256."""
    files = card["files"]
    for graph in GRAPH_FILES:
        if graph not in files:
            raise ModelError(f"{path / CARD_NAME}: card lists no sha256 for {graph}")
    for filename, expected in files.items():
        file_path = path / filename
        if not file_path.is_file():
            raise ModelError(f"{path}: file {filename} listed in the card is missing")
        actual = sha256_file(file_path)
        if actual != expected:
            raise ModelError(
                f"{file_path}: sha256 {actual} does not match the card ({expected}); "
                "the file was changed after export — re-export the model or restore the file")


def model_level(card: Mapping[str, Any]) -> Level:
    """What one row of the model's input is (cards without ``level`` are per-jet); ModelError for another."""
    level = str(card.get("level", Level.JET))
    try:
        return Level(level)
    except ValueError:
        raise ModelError(f"model {card.get('name')!r}: unknown level {level!r} (known: "
                         f"{', '.join(LEVELS)})") from None


def check_level(card: Mapping[str, Any], wanted: Level, path: str | Path = "") -> None:
    """Raise ``ModelError`` unless the card's level is ``wanted`` (a per-jet tool must not feed an event model)."""
    level = model_level(card)
    if level == wanted:
        return
    if level == Level.EVENT:
        jets = card.get("event_input", {}).get("jets", "J")
        raise ModelError(
            f"{path or card.get('name')}: {card.get('name')!r} is an event-level model (input: the {jets} leading "
            "jets of each event, output: one score per event); this tool works per jet and cannot use it. "
            "Use a per-jet model (e.g. models/zoo/AE_3D_200_ptetaphie); event-level models are evaluated by "
            "`aetrig report` (study 3)")
    raise ModelError(f"{path or card.get('name')}: {card.get('name')!r} is a {level}-level model; "
                     f"this tool needs a {wanted}-level model")


def load_model_dir(path: str | Path, verify: bool = True, level: Level | None = Level.JET) -> ModelDir:
    """Load a model directory; with ``verify`` the sha256 of every listed file is checked.

    ``level`` (per-jet by default) is the kind of model the caller can use; ``None`` accepts any.
    """
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"model directory {path} does not exist")
    card = read_card(path)
    if level is not None:
        check_level(card, level, path)
    if verify:
        verify_files(path, card)
    variables = card["variables"]
    try:
        names = [str(v["name"]) for v in variables]
        units = [str(v.get("unit", "")) for v in variables]
        latent_dim = int(card["architecture"]["latent_dim"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path / CARD_NAME}: malformed variables/architecture: {exc}") from exc
    return ModelDir(
        path=path, card=card, variables=names, units=units, latent_dim=latent_dim,
        scorer_path=path / "scorer.onnx", encoder_path=path / "encoder.onnx", decoder_path=path / "decoder.onnx",
        name=str(card["name"]), level=model_level(card),
    )


def write_card(path: str | Path, card: dict[str, Any]) -> Path:
    """Write ``card.json`` (sorted keys, indented) into a model directory."""
    card_path = Path(path) / CARD_NAME
    card_path.write_text(json.dumps(card, indent=1, sort_keys=False) + "\n")
    return card_path
