"""Settings dataclasses as flags and config files: every setting is defined once, in its dataclass.

A stage's settings are one dataclass whose fields are declared with :func:`option`: the default (the
one place it is written), the help text and, where the derived ones do not fit, a flag name, metavar,
choices or a :class:`Kind` (``--branch-map A=B ...``, ``--columns a,b``). :class:`Schema` turns the
dataclass into argparse flags whose help shows the default, reads TOML or JSON config files with the
same keys (``branch-map`` or ``branch_map``; an unknown key is an error naming the close ones), merges
defaults < file < flags, runs the config's one validator on the result, and turns settings back into
a command line for another process (:meth:`Schema.to_argv`).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.runtime.defaults import resolve_model

META = "aetrig.option"
MISSING = dataclasses.MISSING


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "not given" for a default or a title, where None is a value.
UNSET: Any = _Unset()
SCALARS: dict[type, Callable[[str], Any]] = {int: int, float: float, str: str, Path: Path}


@dataclass(frozen=True)
class Kind:
    """How a structured setting is written: argparse ``nargs``, a parser of flag tokens or file values
    (``parse(value, metavar)``, ValueError saying what it expects) and the tokens that give it back."""

    nargs: str | None
    parse: Callable[[Any, str], Any]
    tokens: Callable[[Any], list[str]]


def key_values(value: Any, metavar: str = "K=V") -> dict[str, str]:
    """The one parser of key/value settings: ``["K=V", "K=V"]`` tokens (or one "K=V", or a config file's table)
    as {K: V}, a later K winning; ValueError saying what it expects for an item without ``=``, key or value."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    out = {}
    for item in [value] if isinstance(value, str) else value:
        key, sep, val = str(item).partition("=")
        if not sep or not key.strip() or not val.strip():
            raise ValueError(f"expects {metavar}, got {item!r}")
        out[key.strip()] = val.strip()
    return out


class KeyValuesAction(argparse.Action):
    """``--flag K=V [K=V ...]``, repeatable (the pairs add up): the flag's value is one {K: V} dict
    (:func:`key_values`); a malformed pair is a usage error (exit 2)."""

    def __init__(self, option_strings: list[str], dest: str, nargs: Any = "+", **kwargs: Any):
        super().__init__(option_strings, dest, nargs="+", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        try:
            pairs = key_values(values, self.metavar or "K=V")
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        current = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, {**(current if isinstance(current, dict) else {}), **pairs})


def _comma_list(value: Any, metavar: str) -> list[str] | None:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expects {metavar} (a string or a list), got {value!r}")
    return [str(c).strip() for c in items if str(c).strip()] or None


def _any_base_int(value: Any, metavar: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value), 0)
    except ValueError:
        raise ValueError(f"expects an integer (decimal or 0x hex), got {value!r}") from None


def _model(value: Any, metavar: str) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise ValueError(f"expects {metavar}, got {value!r}")
    return resolve_model(value)


def _model_or_none(value: Any, metavar: str) -> str:
    return "none" if str(value).lower() == "none" else str(_model(value, metavar))


#: ``--model NAME_OR_DIR``: a model directory or a name under models/zoo (:func:`defaults.resolve_model`).
MODEL = Kind(None, _model, lambda v: [str(v)])
#: the same, or ``none``.
MODEL_OR_NONE = Kind(None, _model_or_none, lambda v: [str(v)])
#: ``--flag K=V K=V``, repeatable (file: a table or a list of "K=V").
KEY_VALUES = Kind("+", key_values, lambda d: [f"{k}={v}" for k, v in d.items()])
#: ``--flag a,b,c`` (file: "a,b,c" or a list); empty means None.
COMMA_LIST = Kind(None, _comma_list, lambda v: [",".join(v)])
#: ``--flag 255`` or ``--flag 0xff``.
ANY_BASE_INT = Kind(None, _any_base_int, lambda v: [str(v)])


@dataclass(frozen=True)
class Option:
    """What a field needs besides its type and default to be a flag and a config key."""

    help: str
    flag: str | None = None  # default: --<field name with dashes>
    metavar: str | None = None
    choices: tuple[Any, ...] | None = None
    kind: Kind | None = None
    group: str | None = None  # argparse group title
    default_text: str | None = None  # shown instead of the default value
    exclusive: str | None = None  # name of a group of mutually exclusive flags


def option(default: Any = MISSING, help: str = "", *, factory: Any = MISSING, **spec: Any) -> Any:
    """A dataclass field that is a setting: its default (or default ``factory``), help text and :class:`Option`."""
    return dataclasses.field(default=default, default_factory=factory, metadata={META: Option(help, **spec)})


@dataclass(frozen=True)
class Setting:
    """One field as a setting: attribute ``name``, config ``key`` (the flag without dashes), ``flag``, type."""

    name: str
    key: str
    flag: str
    type: type
    optional: bool
    option: Option
    field: dataclasses.Field

    @property
    def required(self) -> bool:
        return self.field.default is MISSING and self.field.default_factory is MISSING

    def default(self) -> Any:
        if self.field.default_factory is not MISSING:
            return self.field.default_factory()
        return None if self.field.default is MISSING else self.field.default

    @property
    def kind(self) -> Kind | None:
        return self.option.kind or (KEY_VALUES if self.type is dict else None)

    @property
    def metavar(self) -> str:
        return self.option.metavar or self.key.upper()


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(type without None, whether None is allowed): ``int | None`` -> (int, True), ``list[str]`` -> (list, False)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base_type(rest[0])[0], True
    return (origin or hint), False


def describe(value: Any) -> str:
    """A default as the help text shows it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value in ([], {}, ()):
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def help_text(setting: Setting, prefix: str = "", help: str | None = None, default: Any = UNSET,
              default_text: str | None = None) -> str:
    """The flag's help with its default, ``(default: X)``, or ``(required)``; % escaped for argparse."""
    text = default_text or (None if default is not UNSET else setting.option.default_text)
    if text is None and (default is not UNSET or not setting.required):
        text = describe(setting.default() if default is UNSET else default)
    suffix = "(required)" if text is None else f"(default: {text})"
    return f"{prefix}{help or setting.option.help} {suffix}".replace("%", "%%")


def argparse_kwargs(setting: Setting) -> dict[str, Any]:
    """nargs/type/action/choices/metavar of the setting's flag (values are converted again by :meth:`Schema.coerce`)."""
    if setting.type is bool:
        return {"action": argparse.BooleanOptionalAction}
    kw: dict[str, Any] = {"metavar": setting.metavar}
    if setting.kind is KEY_VALUES:
        kw["action"] = KeyValuesAction
    elif setting.kind is not None:
        kw["nargs"] = setting.kind.nargs
    elif setting.type is list:
        kw["nargs"] = "+"
    else:
        kw["type"] = SCALARS[setting.type]
    if setting.option.choices:
        kw["choices"] = setting.option.choices
        del kw["metavar"]
    return kw


def read_config(path: str | Path) -> dict[str, Any]:
    """A TOML (or, for ``*.json``, JSON) file as a dict; ValueError naming the file when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ValueError(f"config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: expected a table of settings")
    return data


def normal_key(key: Any) -> str:
    return str(key).replace("-", "_")


def unknown_key(where: str, what: str, key: str, known: list[str]) -> ValueError:
    """The error for a config key that names no setting, with the close matches (or every known key)."""
    close = difflib.get_close_matches(normal_key(key), known, n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; known: {', '.join(known)}"
    return ValueError(f"{where}: unknown {what} {key!r}{hint}")


class FlagGroups:
    """Adds setting flags to a parser, in argparse groups by title and mutually exclusive groups by name."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser
        self.groups: dict[str | None, Any] = {None: parser}
        self.exclusive: dict[tuple[str | None, str], Any] = {}

    def add(self, setting: Setting, flags: tuple[str, ...], dest: str, help: str, title: str | None = UNSET,
            exclusive: str | None = UNSET) -> argparse.Action:
        """The setting's flag(s), absent from the namespace unless given; title/exclusive default to its Option's."""
        title = setting.option.group if title is UNSET else title
        exclusive = setting.option.exclusive if exclusive is UNSET else exclusive
        if title not in self.groups:
            self.groups[title] = self.parser.add_argument_group(title)
        target = self.groups[title]
        if exclusive:
            if (title, exclusive) not in self.exclusive:
                self.exclusive[title, exclusive] = target.add_mutually_exclusive_group()
            target = self.exclusive[title, exclusive]
        return target.add_argument(*flags, dest=dest, default=argparse.SUPPRESS, help=help,
                                   **argparse_kwargs(setting))


class Schema:
    """A settings dataclass as flags, config files and command lines.

    ``check(cfg)`` is the one validator (ValueError); ``prepare(values)`` completes the merged
    {key: value} before the dataclass is built (e.g. a preset filling other settings).
    """

    def __init__(self, cls: type, name: str, check: Callable[[Any], None] | None = None,
                 prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 sections: tuple[str, ...] = ()):
        self.cls, self.name, self.check, self.prepare = cls, name, check, prepare
        self.sections = sections or (name,)
        hints = typing.get_type_hints(cls)
        self.settings: dict[str, Setting] = {}
        for f in dataclasses.fields(cls):
            opt = f.metadata.get(META)
            if opt is None:
                raise TypeError(f"{cls.__name__}.{f.name} is not declared with option()")
            flag = opt.flag or "--" + f.name.replace("_", "-")
            base, optional = _base_type(hints[f.name])
            if base not in (bool, list, dict, *SCALARS) and opt.kind is None:
                raise TypeError(f"{cls.__name__}.{f.name}: no flag for type {base!r}; give it a Kind")
            self.settings[normal_key(flag[2:])] = Setting(f.name, normal_key(flag[2:]), flag, base, optional, opt, f)

    def add_arguments(self, parser: argparse.ArgumentParser, config_flag: bool = True) -> None:
        """Every setting as a flag (dest: the field name, absent unless given), and ``--config FILE``."""
        groups = FlagGroups(parser)
        for s in self.settings.values():
            groups.add(s, (s.flag,), s.name, help_text(s))
        if config_flag:
            parser.add_argument("--config", metavar="FILE",
                                help=f"TOML or JSON file with the same keys as the long flags (flat, or in the "
                                     f"[{self.sections[0]}] table); flags given here override it")

    def coerce(self, setting: Setting, value: Any, where: str) -> Any:
        """``value`` (a flag's or a config file's) as the setting's type; ValueError naming ``where``."""
        try:
            return self._coerce(setting, value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from None

    @staticmethod
    def _coerce(s: Setting, value: Any) -> Any:
        if value is None:
            if s.optional or (not s.required and s.default() is None):
                return None
            raise ValueError("must be set")
        if s.kind is not None:
            value = s.kind.parse(value, s.metavar)
        elif s.type is bool:
            if not isinstance(value, bool):
                raise ValueError(f"expects true or false, got {value!r}")
        elif s.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError(f"expects a number, got {value!r}")
            try:
                value = s.type(value)
            except ValueError:
                raise ValueError(f"expects {'an integer' if s.type is int else 'a number'}, got {value!r}") from None
        elif s.type is list:
            items = [value] if isinstance(value, str | Path) else value
            if not isinstance(items, list | tuple):
                raise ValueError(f"expects a list, got {value!r}")
            value = [str(v) for v in items]
        elif s.type is Path:
            if not isinstance(value, str | Path):
                raise ValueError(f"expects a path, got {value!r}")
            value = Path(value)
        elif isinstance(value, Path):
            value = str(value)
        elif not isinstance(value, str):
            raise ValueError(f"expects a string, got {value!r}")
        if s.option.choices and value not in s.option.choices:
            raise ValueError(f"must be one of {', '.join(map(str, s.option.choices))}, got {value!r}")
        return value

    def setting(self, key: str, where: str) -> Setting:
        """The setting called ``key`` (dashes or underscores); unknown: ValueError with the close matches."""
        found = self.settings.get(normal_key(key))
        if found is None:
            raise unknown_key(where, f"{self.name} setting", key, list(self.settings))
        return found

    def from_mapping(self, data: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Config-file settings as {key: value}, each converted and checked against its setting."""
        out = {}
        for key, value in data.items():
            s = self.setting(key, where)
            out[s.key] = self.coerce(s, value, f"{where}: {s.key}")
        return out

    def load_file(self, path: str | Path) -> dict[str, Any]:
        """A config file's settings: its table named after this schema if it has one, else its flat keys."""
        data = read_config(path)
        for section in self.sections:
            if isinstance(data.get(section), dict):
                return self.from_mapping(data[section], f"{path} [{section}]")
        return self.from_mapping(data, str(path))

    def from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        """The settings given as flags (as added by :meth:`add_arguments`), as {key: value}."""
        return {key: self.coerce(s, getattr(args, s.name), s.flag)
                for key, s in self.settings.items() if hasattr(args, s.name)}

    def build(self, values: Mapping[str, Any]) -> Any:
        """The dataclass from {key: value} over the defaults, checked by the validator."""
        values = dict(values)
        if self.prepare is not None:
            values = self.prepare(values)
        for key, s in self.settings.items():
            if s.required and values.get(key) is None:
                raise ValueError(f"{s.flag} is required (config key {key})")
        cfg = self.cls(**{self.settings[key].name: value for key, value in values.items()})
        if self.check is not None:
            self.check(cfg)
        return cfg

    def resolve(self, args: argparse.Namespace) -> Any:
        """defaults < ``--config`` file < flags, as a checked config."""
        path = getattr(args, "config", None)
        return self.build((self.load_file(path) if path else {}) | self.from_args(args))

    def tokens(self, key: str, value: Any, flag: str | None = None) -> list[str]:
        """One setting as command-line tokens (nothing for a None that is the default)."""
        s = self.settings[key]
        flag = flag or s.flag
        if value is None or value in ([], {}):
            if value == s.default() or (value is None and s.kind is COMMA_LIST):
                return []
            raise ValueError(f"{flag}: {value!r} cannot be given on a command line")
        if s.type is bool:
            return [flag if value else "--no-" + flag[2:]]
        if s.kind is not None:
            return [flag, *s.kind.tokens(value)]
        if s.type is list:
            return [flag, *map(str, value)]
        return [flag, repr(float(value)) if s.type is float else str(value)]

    def to_argv(self, values: Mapping[str, Any]) -> list[str]:
        """The flags that give exactly ``values`` ({key: value}) to a process parsing this schema."""
        return [token for key, value in values.items() for token in self.tokens(key, value)]
