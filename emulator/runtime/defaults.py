"""Default paths of the bundled sample, the default streaming model and the default anomaly model, and the one
function that turns a model given on the command line (a directory or a models/zoo name) into its directory."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLES_DIR = REPO / "producer" / "samples"
DEFAULT_SAMPLE = SAMPLES_DIR / "qcd.root"
ZOO = REPO / "models" / "zoo"
#: the rate-trained AE whose ANS-coded latents the sink records (study 2's Pareto front at the goal widths);
#: AE_3D_200_ptetaphie (float latents) is the finer choice, at about twice the bytes
DEFAULT_MODEL = ZOO / "RD_AE_g23"
#: the event-level model that flags events in the stream whenever the stream carries its variables
DEFAULT_ANOMALY_MODEL = ZOO / "EVT_AE_ht"
#: the default event-level models in order of preference: the first whose variables the stream carries flags
#: (EVT_AE_4v takes only the jet four-vectors, which every input format has)
DEFAULT_ANOMALY_MODELS = (DEFAULT_ANOMALY_MODEL, ZOO / "EVT_AE_4v")


def default_input() -> Path:
    """The bundled background sample; a clear error when it has not been generated yet."""
    if not DEFAULT_SAMPLE.is_file():
        raise FileNotFoundError(f"bundled sample {DEFAULT_SAMPLE} is missing; give --input FILE")
    return DEFAULT_SAMPLE


def resolve_model(value: str | Path) -> Path:
    """The model a ``--model`` (``--models``, ``--anomaly-model``, ...) names: a directory, or a name under
    models/zoo (``RD_AE_g23``). A value that is neither is returned as given, for the loader to report."""
    path = Path(value)
    if (path / "card.json").is_file() or len(path.parts) != 1:
        return path
    named = ZOO / path
    return named if (named / "card.json").is_file() else path


def default_model(announce: bool = True) -> Path:
    """The default streaming (compression) model dir; a clear error when it is missing."""
    if not (DEFAULT_MODEL / "card.json").is_file():
        raise FileNotFoundError(f"no default model: {DEFAULT_MODEL} is missing; give --model DIR")
    if announce:
        print(f"aetrig: using model {DEFAULT_MODEL}", file=sys.stderr)
    return DEFAULT_MODEL


def default_anomaly_model() -> Path | None:
    """The shipped event-level anomaly model dir, or None when it is not there (per-jet scoring then)."""
    return DEFAULT_ANOMALY_MODEL if (DEFAULT_ANOMALY_MODEL / "card.json").is_file() else None


def default_anomaly_models() -> list[Path]:
    """The shipped default event-level models that are there, in order of preference."""
    return [p for p in DEFAULT_ANOMALY_MODELS if (p / "card.json").is_file()]
