"""Producer settings: the one place that defines their defaults, from flags and/or a config file.

Every long flag of ``aetrig produce`` has a config-file key of the same name (dashes or
underscores both accepted). A ``--config FILE`` (TOML or JSON) sets values; flags given on the
command line override it; :data:`DEFAULTS` fills the rest. An ``input_format`` preset
(:mod:`producer.formats`) fills ``tree``, ``unit`` and ``branch_map`` entries not given explicitly,
so a resolved config always holds the effective reading settings.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from producer.formats import DEFAULT_FORMAT, FORMATS, apply_format, get_format

PATTERNS = ("constant", "poisson", "trains")
UNITS = ("GeV", "MeV")


@dataclass
class ProducerConfig:
    """All producer settings; the field defaults are THE defaults."""

    input: list[str] = field(default_factory=list)
    input_format: str = DEFAULT_FORMAT  # preset of tree, unit and branch map (producer.formats)
    tree: str = "events"
    branch_map: dict[str, str] = field(default_factory=dict)
    unit: str = "GeV"
    columns: list[str] | None = None  # None: every jet_* branch
    derive_e: bool = False
    step_size: int = 20000  # events per uproot chunk
    rate: float = 10000.0  # mean events/s; 0 = as fast as possible
    pattern: str = "constant"
    train_ms: float = 8.0  # bunch-train pattern: burst length ...
    gap_ms: float = 2.0  # ... and gap (duty 0.8, like the LHC's 2808 of 3564 filled bunch slots)
    events_per_message: int = 1024
    max_delay_ms: float = 3.0
    loops: int = 1  # 0 = forever
    max_events: int = 0  # 0 = no limit
    duration: float = 0.0  # seconds, 0 = no limit
    run_id: int | None = None
    seed: int = 1
    bind: str = "tcp://127.0.0.1:5555"
    ack_bind: str = "tcp://127.0.0.1:5556"
    window: int = 64  # unacknowledged batches in flight
    resend_timeout: float = 2.0  # seconds; must exceed the sink's commit interval comfortably
    drain_timeout: float = 30.0  # seconds to wait for the window to drain when stopping
    drop_on_overload: bool = False
    metrics_port: int = 0
    report: str | None = None
    manifest_out: str | None = None
    curve_keys: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULTS = ProducerConfig()
_FIELDS = {f.name for f in fields(ProducerConfig)}


def _parse_branch_map(items: list[str] | dict[str, str]) -> dict[str, str]:
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    out = {}
    for item in items:
        var, sep, branch = item.partition("=")
        if not sep or not var or not branch:
            raise ValueError(f"--branch-map expects VAR=BRANCH, got {item!r}")
        out[var.strip()] = branch.strip()
    return out


def _parse_columns(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    cols = [c.strip() for c in items if c.strip()]
    return cols or None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON config file into {field: value}; unknown keys are an error."""
    path = Path(path)
    text = path.read_text()
    data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    if "produce" in data and isinstance(data["produce"], dict):
        data = data["produce"]
    out = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in _FIELDS or name == "config":
            raise ValueError(f"{path}: unknown producer setting {key!r}")
        out[name] = value
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every producer flag. Defaults are None here so that a config file can fill them."""
    d = DEFAULTS
    g = parser.add_argument_group("input")
    g.add_argument("--input", nargs="+", metavar="FILE_OR_GLOB",
                   help="ROOT files or globs (default: the bundled background sample)")
    g.add_argument("--input-format", metavar="NAME",
                   help=f"preset of tree, unit and branches: {', '.join(FORMATS)} (default {d.input_format}); "
                        "--tree, --unit and --branch-map entries override it")
    g.add_argument("--tree", help=f"TTree name (default {d.tree}, or the input format's)")
    g.add_argument("--branch-map", nargs="+", metavar="VAR=BRANCH",
                   help="map a variable (or event_number) to a branch, e.g. pt=AntiKt4EMTopoJetsAuxDyn.pt; "
                        "px=.. py=.. pz=.. e=.. reads Cartesian jets and derives pt, eta, phi, m")
    g.add_argument("--unit", choices=UNITS,
                   help="energy unit of the input; MeV is converted to GeV (default GeV, or the input format's)")
    g.add_argument("--columns", help="comma-separated per-jet variables to send (default: every mapped and jet_* "
                                     "variable, completed to pt,eta,phi,m,e when the input holds a four-vector)")
    g.add_argument("--derive-e", action="store_const", const=True,
                   help="compute e from pt, eta, m (also done when e is requested but absent)")
    g.add_argument("--step-size", type=int, help=f"events per uproot read chunk (default {d.step_size})")
    g = parser.add_argument_group("rate and framing")
    g.add_argument("--rate", type=float, help=f"mean event rate in Hz, 0 = as fast as possible (default {d.rate:g})")
    g.add_argument("--pattern", choices=PATTERNS, help="arrival pattern (default constant)")
    g.add_argument("--train-ms", type=float, help=f"trains pattern: burst length in ms (default {d.train_ms:g})")
    g.add_argument("--gap-ms", type=float, help=f"trains pattern: gap between bursts in ms (default {d.gap_ms:g})")
    g.add_argument("--events-per-message", type=int,
                   help=f"maximum events per message (default {d.events_per_message})")
    g.add_argument("--max-delay-ms", type=float,
                   help=f"send a partial message after this wait (default {d.max_delay_ms:g})")
    g.add_argument("--loops", type=int, help="passes over the input, 0 = forever (default 1)")
    g.add_argument("--max-events", type=int, help="stop after this many events (default: no limit)")
    g.add_argument("--duration", type=float, help="stop after this many seconds (default: no limit)")
    g.add_argument("--run-id", type=lambda s: int(s, 0), help="run id (default: random 64-bit)")
    g.add_argument("--seed", type=int, help=f"seed of the arrival pattern (default {d.seed})")
    g = parser.add_argument_group("transport and reliability")
    g.add_argument("--bind", help=f"data PUSH address (default {d.bind})")
    g.add_argument("--ack-bind", help=f"acknowledgement PULL address (default {d.ack_bind})")
    g.add_argument("--window", type=int, help=f"unacknowledged batches in flight (default {d.window})")
    g.add_argument("--resend-timeout", type=float,
                   help=f"seconds before an unacknowledged batch is resent (default {d.resend_timeout:g})")
    g.add_argument("--drain-timeout", type=float,
                   help=f"seconds to wait for acknowledgements when stopping (default {d.drain_timeout:g})")
    g.add_argument("--drop-on-overload", action="store_const", const=True,
                   help="trigger-emulation deadtime: drop (and count) batches when the window is full")
    g.add_argument("--curve-keys", metavar="DIR", help="CurveZMQ key directory (encrypt + authenticate)")
    g = parser.add_argument_group("outputs")
    g.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port (default: off)")
    g.add_argument("--report", metavar="FILE.json", help="write the producer report here on exit")
    g.add_argument("--manifest-out", metavar="FILE", help="write the run manifest JSON here")
    g.add_argument("--config", metavar="FILE", help="TOML or JSON file with the same keys as the long flags")


def resolve(args: argparse.Namespace) -> ProducerConfig:
    """Merge defaults < config file < command-line flags into a checked ProducerConfig."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(load_config_file(args.config))
    for name in _FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    if "input" in values and isinstance(values["input"], str):
        values["input"] = [values["input"]]
    if "branch_map" in values:
        values["branch_map"] = _parse_branch_map(values["branch_map"])
    if "columns" in values:
        values["columns"] = _parse_columns(values["columns"])
    if "input_format" in values:
        get_format(values["input_format"])  # the same check as check(), before the preset is used
        values["tree"], values["unit"], values["branch_map"] = apply_format(
            values["input_format"], values.get("tree"), values.get("unit"), values.get("branch_map"))
    if isinstance(values.get("run_id"), str):
        values["run_id"] = int(values["run_id"], 0)
    cfg = ProducerConfig(**values)
    check(cfg)
    return cfg


def check(cfg: ProducerConfig) -> None:
    """Raise ValueError with a clear message for settings that cannot work."""
    get_format(cfg.input_format)
    if cfg.unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {cfg.unit!r}")
    if cfg.pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {PATTERNS}, got {cfg.pattern!r}")
    if cfg.rate < 0:
        raise ValueError("rate must be >= 0")
    if cfg.events_per_message < 1 or cfg.window < 1 or cfg.step_size < 1:
        raise ValueError("events-per-message, window and step-size must be >= 1")
    if cfg.max_delay_ms < 0 or cfg.resend_timeout <= 0 or cfg.train_ms <= 0 or cfg.gap_ms < 0:
        raise ValueError("max-delay-ms >= 0, resend-timeout > 0, train-ms > 0, gap-ms >= 0 required")
    if cfg.loops < 0 or cfg.max_events < 0 or cfg.duration < 0:
        raise ValueError("loops, max-events and duration must be >= 0")
    if cfg.run_id is not None and not 0 <= cfg.run_id < 1 << 64:
        raise ValueError("run-id must be a 64-bit unsigned integer")
