"""Every shipped model names the `aetrig` commands that rebuild it (card ``source.rebuild``): the `aetrig generate`
commands of its data, then the train / ship / quantize / calibrate / import commands, each of which parses with the
real `aetrig` parser; every file they read is made by one of its generate commands (or is shipped), and the last
command writes the model's own directory. Every other command a card names parses too (no `python -m`)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docs_commands import REPO, check_aetrig

ZOO = REPO / "models" / "zoo"
CARDS = sorted(ZOO.glob("*/card.json"))
READ_SUFFIXES = (".root", ".pth")


def _card(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _named_commands(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(key path, text) of every string under a key ending in ``command`` or in a ``commands``/``data`` list."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else key
            if isinstance(value, str) and key.endswith("command"):
                yield here, value
            elif key in ("commands", "data") and isinstance(value, list) and all(isinstance(v, str) for v in value):
                yield from ((f"{here}[{i}]", v) for i, v in enumerate(value))
            else:
                yield from _named_commands(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _named_commands(value, f"{where}[{i}]")


def _aetrig(text: str, where: str) -> list[str]:
    """argv after `aetrig` of a command that parses, and for `train` whose variables and loss weights are valid
    (what argparse leaves to the run; a TrainError otherwise)."""
    argv = shlex.split(text)
    assert argv and argv[0] == "aetrig", f"{where}: not an aetrig command: {text}"
    ns = check_aetrig(argv[1:], where)
    if argv[1] == "train":
        from models.training.train_command import parse_variables, parse_weights
        from models.training.train_options import TrainOptions

        options = TrainOptions.from_namespace(ns)
        if options.level != "event":
            parse_weights(options.loss_weights, parse_variables(options.variables))
    return argv[1:]


def test_the_zoo_has_cards() -> None:
    assert {"RD_AE_g23", "EVT_AE_4v", "EVT_AE_ht", "wide_k6_int8", "TLA_4D_leading"} <= {p.parent.name for p in CARDS}


@pytest.mark.parametrize("path", CARDS, ids=[p.parent.name for p in CARDS])
def test_card_names_the_aetrig_commands_that_rebuild_it(path: Path) -> None:
    name = path.parent.name
    rebuild = (_card(path).get("source") or {}).get("rebuild")
    assert rebuild and rebuild["commands"] and rebuild["data"], f"{name}: no source.rebuild with data and commands"
    made = set()
    for i, text in enumerate(rebuild["data"]):
        argv = _aetrig(text, f"{name} source.rebuild.data[{i}]")
        assert argv[0] == "generate", f"{name}: source.rebuild.data[{i}] is not `aetrig generate`: {text}"
        made.add(argv[argv.index("--out") + 1])
    for i, text in enumerate(rebuild["commands"]):
        argv = _aetrig(text, f"{name} source.rebuild.commands[{i}]")
        assert argv[0] != "generate", f"{name}: data belongs in source.rebuild.data: {text}"
        outs = {argv[k + 1] for k, token in enumerate(argv[:-1]) if token == "--out"}
        read = [t.split("=", 1)[-1] for t in argv[1:] if t.endswith(READ_SUFFIXES) and t not in outs]
        missing = [t for t in read if t not in made and not (REPO / t).is_file()]
        assert not missing, f"{name}: source.rebuild.commands[{i}] reads {missing}, which no generate command makes"
    assert f"models/zoo/{name}" in shlex.split(rebuild["commands"][-1]), \
        f"{name}: the last rebuild command does not write models/zoo/{name}"


@pytest.mark.parametrize("path", CARDS, ids=[p.parent.name for p in CARDS])
def test_every_command_a_card_names_parses(path: Path) -> None:
    named = list(_named_commands(_card(path)))
    assert named
    for where, text in named:
        _aetrig(text, f"{path.parent.name} {where}")


def test_a_command_that_does_not_exist_fails_the_check() -> None:
    """The check this file relies on refuses an unknown flag, bad loss weights and another program."""
    from models.training.train_options import TrainError

    with pytest.raises(AssertionError, match="no flag --lam"):
        _aetrig("aetrig train --lam 2e-5 --input a.root --out b", "example")
    with pytest.raises(TrainError, match="loss-weights"):  # the comma form parses, but no run takes it
        _aetrig("aetrig train --input a.root --loss-weights pt=1,eta=2 --out b", "example")
    with pytest.raises(AssertionError, match="not an aetrig command"):
        _aetrig("python -m models.training.rate_train --lam 2e-5", "example")
