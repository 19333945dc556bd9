"""``--config FILE`` for a command whose flags are written with argparse by hand (the stages' come from their
settings dataclasses, :mod:`emulator.runtime.stage_config`, with the same semantics).

The file (TOML, or JSON for ``*.json``) holds the command's settings flat or in a table named after the
command: each key is a long flag without its dashes (``loss-weights`` or ``loss_weights``) or a positional
argument's name. Its values are the defaults: a flag given on the command line overrides its key, whether
the flag takes one value or several. Values are checked as the flags are (type, choices); an unknown key
is an error naming it and the close ones. Booleans are ``true``/``false``; a list gives a multi-value flag
its values; a table gives a ``K=V`` flag its pairs. A bad file exits 2, as a bad flag does.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from emulator.runtime.stage_config import normal_key, read_config, unknown_key

CONFIG_FLAG = "--config"


def parser_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every action of ``parser``. argparse has no public accessor: this is the one place that reads its private
    ``_actions`` list (tests/test_command_config.py fails when argparse changes it)."""
    return list(parser._actions)


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string (``--out``, ``-h``) of ``parser``."""
    return {flag for action in parser_actions(parser) for flag in action.option_strings}


def config_path(argv: Sequence[str]) -> str | None:
    """The value of ``--config FILE`` (or ``--config=FILE``) in ``argv``, the last one if repeated."""
    path = None
    for i, token in enumerate(argv):
        if token == "--":
            break
        if token == CONFIG_FLAG and i + 1 < len(argv):
            path = argv[i + 1]
        elif token.startswith(CONFIG_FLAG + "="):
            path = token.split("=", 1)[1]
    return path


def _key(action: argparse.Action) -> str:
    """The config key of an action: its long flag without dashes, or a positional's name."""
    longs = [s for s in action.option_strings if s.startswith("--") and not s.startswith("--no-")]
    return normal_key((longs[0][2:]) if longs else action.dest)


def _tokens(action: argparse.Action, value: Any, key: str) -> list[str]:
    """A config value as the command-line tokens that give it (ValueError for a value of the wrong shape)."""
    flag = next((s for s in action.option_strings if s.startswith("--")), None)
    if action.nargs == 0:  # store_true/false, BooleanOptionalAction
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expects true or false, got {value!r}")
        if isinstance(action, argparse.BooleanOptionalAction):
            return [flag if value else "--no-" + flag[2:]]
        return [flag] if value == action.const else []
    if isinstance(value, Mapping):
        value = [f"{k}={v}" for k, v in value.items()]
    many = action.nargs in ("+", "*") or isinstance(action.nargs, int)
    if isinstance(value, list | tuple):
        if not many:
            raise ValueError(f"{key}: expects one value, got the list {value!r}")
        items = [str(v) for v in value]
    elif isinstance(value, bool | dict) or value is None:
        raise ValueError(f"{key}: expects a value of the flag {flag or key}, got {value!r}")
    else:
        items = [str(value)]
    if flag is None:
        return items
    return [flag, *items] if many else [f"{flag}={items[0]}"]


@contextlib.contextmanager
def _optional(actions: list[argparse.Action], default_of: Callable[[argparse.Action], Any]) -> Iterator[None]:
    """Inside: every action optional (a positional takes 0 or 1 value) with default ``default_of(action)``; the
    actions are as built again after (another parse, with another file, starts afresh)."""
    saved = [(a, a.default, a.required, a.nargs) for a in actions]
    try:
        for a in actions:
            a.default, a.required = default_of(a), False
            if not a.option_strings and a.nargs is None:
                a.nargs = "?"
        yield
    finally:
        for a, default, required, nargs in saved:
            a.default, a.required, a.nargs = default, required, nargs


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser that, once :meth:`add_config_flag` is called, reads ``--config FILE`` as the defaults of
    its arguments (module docstring); without it, a plain ArgumentParser."""

    config_table: str | None = None

    def add_config_flag(self, table: str) -> None:
        """Add ``--config FILE``; its keys may sit in a ``[table]`` table."""
        self.config_table = table
        self.add_argument(CONFIG_FLAG, metavar="FILE",
                          help=f"TOML or JSON file of settings: keys are the long flags without dashes (and the "
                               f"positional arguments by name), flat or in a [{table}] table; flags given here "
                               "override it")

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        argv = list(sys.argv[1:] if args is None else args)
        path = config_path(argv) if self.config_table else None
        if path is None:
            return super().parse_known_args(argv, namespace)
        try:
            defaults = self._file_values(path)
        except ValueError as exc:
            self.error(str(exc))
        given = set(vars(self._partial(argv)[0]))
        from_file = [a for a in parser_actions(self) if a.dest in defaults and a.dest not in given]
        with _optional(from_file, lambda a: defaults[a.dest]):
            return super().parse_known_args(argv, namespace)

    def _file_values(self, path: str) -> dict[str, Any]:
        """The config file's values by dest, converted and checked by the flags' own argparse actions."""
        data = read_config(path)
        where = path
        if isinstance(data.get(self.config_table), dict):
            data, where = data[self.config_table], f"{path} [{self.config_table}]"
        by_key = {_key(a): a for a in parser_actions(self) if a.dest not in ("help", "config")}
        positional: list[str] = []
        flags: list[str] = []
        for key, value in data.items():
            action = by_key.get(normal_key(key))
            if action is None:
                raise unknown_key(where, f"{self.prog} setting", key, list(by_key))
            (flags if action.option_strings else positional).extend(_tokens(action, value, f"{where}: {key}"))
        try:
            namespace, rest = self._partial(positional + flags, exit_on_error=False)
        except argparse.ArgumentError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if rest:
            raise ValueError(f"{where}: cannot use {' '.join(rest)}")
        return vars(namespace)

    def _partial(self, argv: list[str], exit_on_error: bool = True) -> tuple[argparse.Namespace, list[str]]:
        """Parse ``argv`` alone: only the arguments it gives are in the namespace, none is required."""
        actions = parser_actions(self)
        saved_exit = self.exit_on_error
        # a positional left out gets None (argparse would convert a SUPPRESS default with its type)
        with _optional(actions, lambda a: argparse.SUPPRESS if a.option_strings else None):
            try:
                self.exit_on_error = exit_on_error
                namespace, rest = super().parse_known_args(argv, argparse.Namespace())
            finally:
                self.exit_on_error = saved_exit
        for a in actions:
            if not a.option_strings and getattr(namespace, a.dest, None) is None and hasattr(namespace, a.dest):
                delattr(namespace, a.dest)
        return namespace, rest
