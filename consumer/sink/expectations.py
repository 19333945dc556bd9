"""What a sink records, as told by whoever starts it: the compression model's card, the card of the model
that flags the events, and the manifests of the runs (`aetrig run` passes ``--model``, ``--anomaly-model``
and ``--manifest``; a deployment sets the same config keys).

Scored messages (wire schema 2 on) name the cards and the manifest by sha256 (``card_sha256``,
``anomaly_card_sha256``, ``manifest_sha256``); a message naming any other card is rejected as
``wrong_model``, any other manifest, or a run id other than its manifest's, as ``wrong_run``. So no
message decides what a recording holds, and the cards travel once per run (in the segments), not in
every message. ``--manifest`` is a file, or a directory of manifest files (``*.json``): an unknown
manifest hash re-reads it, at most once a second (a deployment drops the manifest of a new run there).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from emulator.runtime import wire
from emulator.runtime.jet_errors import computes_jet_errors
from emulator.runtime.recording import model_identity
from models.runtime.card import Level, ModelError, model_level

log = logging.getLogger("aetrig.sink")

RELOAD_SECONDS = 1.0
MAX_MANIFESTS = 4096


@dataclass(frozen=True)
class Card:
    """A model card as the sink records it: its canonical text, sha256, content and identity."""

    text: str
    card: dict[str, Any]

    @cached_property
    def sha256(self) -> str:
        """The card's sha256, taken once: every scored message is checked against it (about 100 kB of cards)."""
        return wire.sha256_hex(self.text.encode())

    @property
    def name(self) -> str:
        return str(self.card.get("name"))

    @property
    def level(self) -> Level:
        return model_level(self.card)

    @property
    def identity(self) -> tuple[str, str] | None:
        return model_identity(self.card)


def load_card(model: str | Path) -> Card:
    """The card of a model directory (its ``card.json``; or a card file), in the canonical text encoders hash
    (``ModelDir.card_json``: sorted keys, no spaces)."""
    path = Path(model)
    path = path / "card.json" if path.is_dir() else path
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{model}: no readable model card: {exc}") from exc
    if not isinstance(card, dict) or "name" not in card:
        raise ValueError(f"{path}: not a model card (no name)")
    try:
        model_level(card)
    except ModelError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return Card(json.dumps(card, sort_keys=True, separators=(",", ":")), card)


@dataclass(frozen=True)
class Manifest:
    """A run manifest: its run id and canonical text (what the segments of the run hold)."""

    run_id: int
    text: str


def read_manifest(path: Path) -> Manifest:
    """ValueError unless ``path`` is a JSON object with an integer ``run_id`` < 2^64."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a run manifest: {exc}") from exc
    run_id = obj.get("run_id") if isinstance(obj, dict) else None
    if type(run_id) is not int or not 0 <= run_id < 1 << 64:
        raise ValueError(f"{path}: not a run manifest (no integer run_id)")
    return Manifest(run_id, wire.canonical_json(obj).decode())


@dataclass
class Expectations:
    """The cards and manifests a sink accepts; :meth:`check` of each scored message."""

    card: Card
    anomaly: Card
    manifest_path: Path
    #: whether the recording holds jet_error (the anomaly card's level and --jet-errors, the encoders' rule)
    jet_error: bool = True
    manifests: dict[str, Manifest] = field(default_factory=dict)  # by sha256
    #: run id -> sha256 of the manifest its recorded events came with (the segments', then the first accepted)
    recorded: dict[int, str] = field(default_factory=dict)
    _next_reload: float = 0.0

    @classmethod
    def load(cls, model: Path, anomaly_model: str | None, manifest: str | Path,
             jet_errors: str = "auto") -> Expectations:
        """From the sink's settings; ValueError with a clear message when something cannot be read."""
        card = load_card(model)
        anomaly = card if anomaly_model is None or str(anomaly_model).lower() == "none" else load_card(anomaly_model)
        expected = cls(card, anomaly, Path(manifest), computes_jet_errors(anomaly.level, jet_errors))
        if str(manifest).endswith("/"):
            expected.manifest_path.mkdir(parents=True, exist_ok=True)  # a directory that producers fill later
        if not expected.manifest_path.is_dir() and not expected.manifest_path.is_file():
            raise ValueError(f"--manifest {manifest}: no such file or directory (end a directory with / to have "
                             "the sink create it)")
        expected.reload(force=True)  # a directory may be empty yet: a run's producer writes its manifest there
        return expected

    @property
    def run_ids(self) -> set[int]:
        return {m.run_id for m in self.manifests.values()}

    def reload(self, force: bool = False) -> None:
        """Read the manifest file, or every ``*.json`` of the manifest directory (not more than once a second)."""
        now = time.monotonic()
        if not force and now < self._next_reload:
            return
        self._next_reload = now + RELOAD_SECONDS
        paths = sorted(self.manifest_path.glob("*.json")) if self.manifest_path.is_dir() else [self.manifest_path]
        for path in paths[:MAX_MANIFESTS]:
            try:
                manifest = read_manifest(path)
            except ValueError as exc:
                if force and not self.manifest_path.is_dir():
                    raise
                log.warning("%s", exc)
                continue
            self.manifests.setdefault(wire.sha256_hex(manifest.text.encode()), manifest)

    def check(self, batch: wire.Batch) -> Manifest:
        """The manifest of a scored message's run; WireError ``wrong_model`` / ``wrong_run`` otherwise."""
        header = batch.header
        for key, card, what in (("card_sha256", self.card, "compression model"),
                                ("anomaly_card_sha256", self.anomaly, "anomaly model")):
            if header[key] != card.sha256:
                raise wire.WireError("wrong_model", f"{key} {header[key]:.12} is not the card of this recording's "
                                     f"{what} {card.name!r} ({card.sha256:.12}): the sink records the cards it was "
                                     "started with (--model, --anomaly-model)")
        for key, card in (("model", self.card), ("anomaly_model", self.anomaly)):
            if header.get(key, card.name) != card.name:
                raise wire.WireError("wrong_model", f"header {key} {header.get(key)!r} disagrees with its card "
                                     f"{card.name!r}")
        manifest = self.manifests.get(header["manifest_sha256"])
        if manifest is None:
            self.reload()
            manifest = self.manifests.get(header["manifest_sha256"])
        if manifest is None:
            raise wire.WireError("wrong_run", f"manifest_sha256 {header['manifest_sha256']:.12} names no run this "
                                 f"sink records ({len(self.manifests)} manifest(s) from {self.manifest_path})")
        if batch.run_id != manifest.run_id:
            raise wire.WireError("wrong_run", f"run id {batch.run_id:016x} is not its manifest's "
                                 f"{manifest.run_id:016x}")
        first = self.recorded.setdefault(batch.run_id, header["manifest_sha256"])
        if first != header["manifest_sha256"]:
            raise wire.WireError("wrong_run", f"run id {batch.run_id:016x} is recorded here with another manifest "
                                 f"({first:.12}): a reused run id; its batches would be discarded as duplicates")
        self.check_layout(batch)
        return manifest

    def check_layout(self, batch: wire.Batch) -> None:
        """A message must carry ``jet_error`` exactly when this recording holds it (:attr:`jet_error`)."""
        has = "jet_error" in batch.columns
        if has == self.jet_error:
            return
        if self.jet_error:
            raise wire.WireError("missing_column", "scored message without jet_error, but this recording holds "
                                 f"jet_error ({self.layout_text}): give the encoders and the sink the same "
                                 "--jet-errors")
        raise wire.WireError("bad_column", f"scored message with jet_error, but this recording holds none "
                             f"({self.layout_text}): give the encoders and the sink the same --jet-errors")

    @property
    def layout_text(self) -> str:
        """Why the recording holds jet_error or not, in words."""
        if self.anomaly.level != Level.EVENT:
            return f"per-jet scoring by {self.card.name!r} flags with it"
        return (f"event-level model {self.anomaly.name!r} with the sink's --jet-errors "
                f"{'always' if self.jet_error else 'auto'}")
