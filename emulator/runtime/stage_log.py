"""One log format for every stage process: ``<time> aetrig <stage>[<id>] <LEVEL> <message>`` on stderr."""

from __future__ import annotations

import logging
import sys

#: Exit code of a stage that cannot start: bad settings or input, or an address it cannot bind or reach.
EXIT_CANNOT_START = 2


def stage_logger(stage: str, ident: str | None = None) -> logging.Logger:
    """Configure this process's logging for ``stage`` and return the stage's logger ``aetrig.<stage>``."""
    tag = f"aetrig {stage}" + (f"[{ident}]" if ident else "")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format=f"%(asctime)s {tag} %(levelname)s %(message)s")
    return logging.getLogger(f"aetrig.{stage}")
