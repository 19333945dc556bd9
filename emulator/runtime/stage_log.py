"""One convention for every stage process: the log format ``<time> aetrig <stage>[<id>] <LEVEL> <message>``
on stderr, the exit code of a stage that cannot start, resolving its settings, and building and running its
service."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from emulator.runtime.link_security import require_keys
from emulator.runtime.shutdown import StopFlag

if TYPE_CHECKING:
    import argparse

    from emulator.runtime.stage_config import Schema

#: Exit code of a stage that cannot start: bad settings or input, or an address it cannot bind or reach.
EXIT_CANNOT_START = 2


def stage_logger(stage: str, ident: str | None = None) -> logging.Logger:
    """Configure this process's logging for ``stage`` and return the stage's logger ``aetrig.<stage>``."""
    tag = f"aetrig {stage}" + (f"[{ident}]" if ident else "")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format=f"%(asctime)s {tag} %(levelname)s %(message)s")
    return logging.getLogger(f"aetrig.{stage}")


def resolve_settings(stage: str, schema: Schema, args: argparse.Namespace) -> Any | None:
    """The stage's checked settings (defaults < ``--config`` file < flags) with CurveZMQ keys or ``--plaintext``;
    None (said on stderr as ``aetrig <stage>: ...``) when they cannot work: the stage then exits with
    :data:`EXIT_CANNOT_START`."""
    try:
        config = schema.resolve(args)
        require_keys(config.curve_keys, config.plaintext)
    except ValueError as exc:
        print(f"aetrig {stage}: {exc}", file=sys.stderr)
        return None
    return config


def run_service(stage: str, build: Callable[[Any], Any], build_errors: tuple[type[Exception], ...],
                endpoints: str) -> dict[str, Any] | None:
    """Route SIGTERM/SIGINT to a stop flag, ``build(stop)`` the stage's service and ``run()`` it: its report, or
    None (said on stderr as ``aetrig <stage>: ...``) when building raises ``build_errors`` or the sockets on
    ``endpoints`` fail (zmq.ZMQError); the stage then exits with :data:`EXIT_CANNOT_START`."""


    stop = StopFlag().install()
    try:
        service = build(stop)
    except build_errors as exc:
        print(f"aetrig {stage}: {exc}", file=sys.stderr)
        return None
    try:
        return service.run()
    except zmq.ZMQError as exc:
        print(f"aetrig {stage}: cannot use {endpoints}: {exc}", file=sys.stderr)
        return None
