"""A card's ``source.rebuild``: the `aetrig` commands that rebuild its model directory.

``data`` holds the `aetrig generate` command of each file the steps read (the command line the generator
stores in the file's ``metadata``), ``commands`` the steps in order (train, ship, quantize, ...). A model made
from another one (an int8 copy, a shipped event model) starts from its parent's block. Every writer of a model
directory records it (``aetrig train``, ``event-design ship``, ``quantize``, ``import-pretrained``), and
``aetrig calibrate`` adds its step (:func:`add_step`); tests/test_zoo_rebuild.py parses the shipped cards'
commands with the real `aetrig` parser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: what the commands of a trained model's block do
TRAINED = "the aetrig commands that rebuild this directory: its training data, then the training"


def generate_commands(paths: Sequence[str | Path]) -> list[str]:
    """The `aetrig generate` command of each generated file (its metadata ``command_line``), once each; a file
    without that metadata is named as it is."""
    import uproot

    commands = []
    for path in paths:
        with uproot.open(path) as f:
            try:
                line = json.loads(str(f["metadata"]))["command_line"] if "metadata" in f else None
            except (ValueError, KeyError):
                line = None
        commands.append(line or f"(no generator metadata: {path})")
    return list(dict.fromkeys(commands))


def rebuild_block(what: str, reads: Sequence[str | Path], commands: Sequence[str],
                  parent: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``source.rebuild``: the generate commands of the files ``reads``, then ``commands``, after the data and
    commands of ``parent`` (the rebuild block of the model this one is made from) when given."""
    parent = parent or {}
    return {"what": what,
            "data": list(dict.fromkeys([*parent.get("data", []), *generate_commands(reads)])),
            "commands": [*parent.get("commands", []), *commands]}


def parent_rebuild(card: Mapping[str, Any]) -> dict[str, Any] | None:
    """The rebuild block a card records (None: it has none)."""
    return (card.get("source") or {}).get("rebuild")


def add_step(model_dir: str | Path, what: str, reads: Sequence[str | Path], command: str) -> dict[str, Any]:
    """Append ``command`` (and the generate commands of the files it ``reads``) to the ``source.rebuild`` of the
    card in ``model_dir`` and write it back (the card is not among the files it pins); returns the card."""
    from models.runtime.card import read_card, write_card

    card = read_card(model_dir)
    card["source"] = {**(card.get("source") or {}), "rebuild": rebuild_block(what, reads, [command],
                                                                              parent_rebuild(card))}
    write_card(model_dir, card)
    return card


def typed_command(command: str, argv: Sequence[str]) -> str | None:
    """``aetrig COMMAND ...`` as typed when ``argv`` (sys.argv) runs that subcommand, else None (called from code)."""
    import shlex

    return shlex.join(["aetrig", *argv[1:]]) if list(argv[1:2]) == [command] else None
