"""Whether a stream carries the compression model's per-jet errors (``jet_error``): the one rule the encoders
apply to what they compute and send, and the sink to the layout it records (``--jet-errors``, an ``aetrig run``
flag that sets both)."""

from __future__ import annotations

from models.runtime.card import Level

#: --jet-errors: ``auto`` computes and sends the per-jet reconstruction error only when per-jet scoring flags
#: with it (an event-level model: latents from encoder.onnx alone, no jet_error column); ``always`` also with
#: an event-level model (scorer.onnx, jet_error sent and recorded, for monitoring)
JET_ERRORS = ("auto", "always")


def computes_jet_errors(level: Level, setting: str) -> bool:
    """Whether the compression model's per-jet errors are computed (and sent as ``jet_error``): always for
    per-jet scoring (the flag is their max), for an event-level model only with ``--jet-errors always``."""
    return level == Level.JET or setting == "always"
