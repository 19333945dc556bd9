"""Validation of one scored message: ``wire.parse_scored`` (structure and limits), typed columns, the cards and
manifest the sink records (:class:`~consumer.sink.expectations.Expectations`), and the segment layout it needs.

Every failure is a ``wire.WireError`` whose reason the sink counts and quarantines the message under.
"""

from __future__ import annotations

from typing import Any

from consumer.sink.config import SinkConfig
from consumer.sink.expectations import Expectations, Manifest
from consumer.sink.scored_chunk import batch_layout
from emulator.runtime import wire
from emulator.runtime.defaults import ZOO
from emulator.runtime.recording import JET_ERROR, Layout


def check_scored_dtypes(batch: wire.Batch) -> None:
    """The sink writes typed branches: floats where floats belong, flags 0 or 1 (WireError bad_column)."""
    for name, col in batch.columns.items():
        is_float_column = name in ("event_score", JET_ERROR, "jet_latent") or wire.raw_column_variable(name)
        if is_float_column and col.dtype.kind != "f":
            raise wire.WireError("bad_column", f"{name} has dtype {col.dtype.str}, expected a float")
    flag = batch.columns["flag"]
    if flag.dtype.str != "|u1" or (flag.size and int(flag.max()) > 1):
        raise wire.WireError("bad_column", f"flag must be |u1 holding 0 or 1 (got {flag.dtype.str})")


class Validator:
    """Checks scored messages against the sink's settings and expectations."""

    def __init__(self, config: SinkConfig, expected: Expectations):
        self.config = config
        self.expected = expected
        self.entropy: str | None = None  # the sink's card's entropy model JSON ("" none), found on the first message

    def entropy_model(self, card: dict[str, Any]) -> str:
        """--latent-codec ans (auto: for a rate-trained model): the entropy model JSON of the card's model (its
        context model when the card has one, else its factorised model; from its card, or models/zoo/<name> for
        older cards); "" for none. A model without one is a wrong_model rejection."""
        if self.config.latent_codec == "none":
            return ""
        from models.runtime.latent_coding import is_rate_card

        if self.config.latent_codec == "auto" and not is_rate_card(card):
            return ""  # auto: a model without an entropy model keeps its float latents
        from models.runtime.latent_coding import LatentCodingError
        from models.runtime.latent_context import recording_model_text

        try:
            return recording_model_text(card, [ZOO])
        except LatentCodingError as exc:
            raise wire.WireError("wrong_model", f"--latent-codec {self.config.latent_codec}: {exc}") from exc

    def validate(self, frames: list[bytes]) -> tuple[wire.Batch, Layout, Manifest]:
        """The message's batch, the segment layout it needs and its run's manifest; WireError when invalid."""
        batch = wire.parse_scored(frames, self.config.limits)
        check_scored_dtypes(batch)
        manifest = self.expected.check(batch)
        if self.entropy is None:  # the sink's card is fixed: worked out once, not per message
            self.entropy = self.entropy_model(self.expected.card.card)
        entropy = self.entropy
        layout = batch_layout(batch, self.config.latent_storage_dtype, "ans" if entropy else "none", entropy,
                              self.config.score_bits)
        return batch, layout, manifest
