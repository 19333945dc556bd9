"""`aetrig run`'s settings: its own (:class:`RunConfig`) and every stage setting, derived from the stage configs.

Each setting of ProducerConfig, EncoderConfig and SinkConfig is a run flag, except those the run sets for
every start (``Stage.owned``: addresses, ports, reports, ids, the recording directory, ``plaintext``). A
setting that stages share with the same default (``--curve-keys``, the message limits) is one flag for all of
them; one whose defaults differ is a flag per stage, ``--<stage>-<flag>`` (``--producer-drain-timeout``,
``--encoder-drain-timeout``). :data:`OVERRIDES` holds the run's own defaults and names (events per message,
``--events``, loops). ``--config FILE`` (TOML or JSON) has a table per stage with that stage's own keys (what
``aetrig produce|encode|sink --config`` takes) and ``[run]`` for the run's own; see :data:`CONFIG_EXAMPLE`.
Precedence: stage default < run default < file < flag. :meth:`RunSettings.argv` turns a stage's merged
settings back into its command line.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumer.sink import config as sink_config
from emulator.encoder import config as encoder_config
from emulator.run.cpu_plan import PIN_SETTINGS
from emulator.runtime import defaults
from emulator.runtime.stage_config import (
    UNSET,
    FlagGroups,
    Schema,
    Setting,
    help_text,
    normal_key,
    option,
    read_config,
)
from models.runtime import latent_coding
from models.runtime.card import ModelError, read_card
from producer import config as producer_config

#: Events per message for the pipeline `aetrig run` starts: at the highest rates the per-message work of
#: every stage (decode, validate, frames, commits) dominates, and 2048 sustains about 8 % more events/s
#: than 1024 with zero loss on 2 cores; at 100 kHz the producer's --max-delay-ms (3 ms) closes messages at
#: about 300 events, which keeps the decision latency short.
RUN_EVENTS_PER_MESSAGE = 2048
_RUN = "run"

CONFIG_EXAMPLE = """\
# run.toml: a table per stage with the keys of `aetrig produce|encode|sink --config`, [run] for the run's own
[run]
encoders = 2
[producer]
input = ["producer/samples/physlite_example.root"]
input_format = "physlite"
rate = 50000
[encoder]
accept_rate = 100
[sink]
max_bytes = 20_000_000
"""


@dataclass
class RunConfig:
    """The run's own settings (the stages' are in their configs)."""

    encoders: int = option(1, "number of encoder processes", metavar="N", group=_RUN)
    out: Path | None = option(None, "run directory", metavar="DIR", group=_RUN, default_text="runs/<UTC time>")
    metrics_base_port: int | None = option(None, "producer /metrics on P, sink on P+1, encoders on P+2..",
                                           metavar="P", group=_RUN, default_text="free ports")
    prometheus: bool = option(False, "also start a local Prometheus scraping the stages", group=_RUN)
    prometheus_port: int = option(9090, "port of that Prometheus (a free port when it is taken)", metavar="PORT",
                                  group=_RUN)
    status_interval: float = option(1.0, "seconds between status lines, 0 = none", metavar="S", group=_RUN)
    plaintext: bool = option(False, "unauthenticated, unencrypted links between the stages (all on loopback): any "
                             "local process could then pull events, push messages or acknowledge; for debugging "
                             "and speed comparisons (default: CurveZMQ keys made for the run, one per role, in "
                             "OUT/keys)", group=_RUN)
    pin_cpus: str = option("auto", "auto: with more cores than encoders, each encoder gets a core of its own and "
                           "the producer and sink share the rest; off: the kernel places every stage",
                           choices=PIN_SETTINGS, group=_RUN)
    lossless_events: int = option(200_000, "compare the recording's bytes per jet with study 2's best lossless "
                                  "codec on the jets of its first N events (read from the inputs), 0 = no "
                                  "comparison", metavar="N", group=_RUN)


def check_run(cfg: RunConfig) -> None:
    """Raise ValueError for run settings that cannot work."""
    if cfg.encoders < 1:
        raise ValueError("--encoders must be >= 1")
    if cfg.status_interval < 0:
        raise ValueError("--status-interval must be >= 0")
    if cfg.lossless_events < 0:
        raise ValueError("--lossless-events must be >= 0")


RUN_SCHEMA = Schema(RunConfig, "run", check=check_run)


@dataclass(frozen=True)
class Stage:
    """A stage as the run starts it: its subcommand, settings and the settings the run sets itself."""

    name: str
    command: str
    schema: Schema
    owned: frozenset[str]


STAGES = (
    Stage("producer", "produce", producer_config.SCHEMA,
          frozenset({"bind", "ack_bind", "metrics_port", "report", "manifest_out", "manifest", "plaintext"})),
    Stage("encoder", "encode", encoder_config.SCHEMA,
          frozenset({"connect", "sink", "metrics_port", "report", "quarantine", "id", "plaintext"})),
    Stage("sink", "sink", sink_config.SCHEMA,
          frozenset({"bind", "ack_connect", "out", "metrics_port", "report", "quarantine", "model", "anomaly_model",
                     "manifest", "plaintext"})),
)
STAGE = {stage.name: stage for stage in STAGES}


@dataclass(frozen=True)
class Override:
    """The run's own default (given to the stage unless set), help, default text or flag names for a setting."""

    default: Any = UNSET
    help: str | None = None
    default_text: str | None = None
    flags: tuple[str, ...] = ()


OVERRIDES: dict[tuple[str, str], Override] = {
    ("producer", "events_per_message"): Override(
        RUN_EVENTS_PER_MESSAGE, "maximum events per message (below about 680 kHz the producer's --max-delay-ms "
        "closes messages first)"),
    ("producer", "max_events"): Override(flags=("--events", "--max-events")),
    ("producer", "loops"): Override(default_text="forever with --duration or --events, else 1"),
    ("producer", "columns"): Override(default_text="every per-jet variable of the input, plus the model's"),
    ("producer", "curve_keys"): Override(
        help="CurveZMQ key directory holding every role's keys (aetrig keys DIR), instead of the run's own",
        default_text="fresh keys made for the run in OUT/keys"),
    ("encoder", "model"): Override(default_text=f"{defaults.DEFAULT_MODEL.relative_to(defaults.REPO)}"),
    ("encoder", "anomaly_model"): Override(default_text=f"{defaults.DEFAULT_ANOMALY_MODEL.relative_to(defaults.REPO)} "
                                           "when the input has its variables, else per-jet max error (announced)"),
}


@dataclass(frozen=True)
class RunFlag:
    """One run flag and the stage settings it sets."""

    flags: tuple[str, ...]
    dest: str
    targets: tuple[tuple[Stage, Setting], ...]
    override: Override = field(default_factory=Override)


def run_flags() -> list[RunFlag]:
    """The run's flags for stage settings: shared, per stage (differing defaults), or the run's own names."""
    by_key: dict[str, list[tuple[Stage, Setting]]] = {}
    for stage in STAGES:
        for key, setting in stage.schema.settings.items():
            if key not in stage.owned:
                by_key.setdefault(key, []).append((stage, setting))
    flags = []
    for key, targets in by_key.items():
        shared = len({repr(s.default()) for _, s in targets}) == 1
        for group in [targets] if shared else [[t] for t in targets]:
            stage, setting = group[0]
            name = setting.flag if shared else f"--{stage.name}-{setting.flag[2:]}"
            override = OVERRIDES.get((stage.name, key), Override())
            dest = f"{'+'.join(st.name for st, _ in group)}:{key}"
            flags.append(RunFlag(override.flags or (name,), dest, tuple(group), override))
    order = {(stage.name, key): i for i, (stage, key) in enumerate(
        (stage, key) for stage in STAGES for key in stage.schema.settings)}
    return sorted(flags, key=lambda f: order[f.targets[0][0].name, f.targets[0][1].key])


def _prefix(names: list[str]) -> str:
    """'encoder and sink: ' for a flag that sets several stages (the group title names a single one)."""
    return "" if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}: "


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's own flags, --config, then every stage flag grouped by stage."""
    RUN_SCHEMA.add_arguments(parser, config_flag=False)
    parser.add_argument("--config", metavar="FILE",
                        help="TOML or JSON file: [producer], [encoder] and [sink] tables with the keys of `aetrig "
                             "produce|encode|sink --config`, [run] with the options above (example below); "
                             "flags given here override it")
    groups = FlagGroups(parser)
    for flag in run_flags():
        stage, setting = flag.targets[0]
        title = f"{stage.name}: {setting.option.group}" if setting.option.group else stage.name
        ov = flag.override
        groups.add(setting, flag.flags, flag.dest, title=title,
                   help=help_text(setting, _prefix([st.name for st, _ in flag.targets]), ov.help, ov.default,
                                  ov.default_text))


@dataclass
class RunSettings:
    """The run's config and, per stage, the settings it gives that stage ({key: value}) besides its own."""

    run: RunConfig
    stages: dict[str, dict[str, Any]]
    #: the anomaly scoring the encoders will choose ({"model", "scoring"}), set by :meth:`complete`
    anomaly: dict[str, Any] = field(default_factory=dict)
    #: whether the links use keys of --curve-keys DIR (else the run makes its own), set by :meth:`secure_links`
    given_keys: bool = False

    @property
    def duration(self) -> float:
        return float(self.stages["producer"].get("duration") or 0.0)

    def complete(self) -> tuple[Path, list[str]]:
        """Fill in the start-up defaults and return (model, inputs): the default model and input
        (FileNotFoundError). Without --columns the producer sends every per-jet variable of the input (so
        the raw copy of a flagged event keeps them all, and the default anomaly model gets its variables
        whenever the input has them); a variable of the model or of an explicit --anomaly-model that the
        input lacks is added to the columns, so that the producer derives it (e from pt, eta, m; pt, eta,
        phi, m from px, py, pz, e) or the run fails at start-up with the producer's missing-branch error.
        A model directory without a readable card is left to the encoder, which reports it as a stage that
        cannot start. :attr:`anomaly` then says which anomaly scoring the encoders will choose."""
        from producer.inputs import open_inputs

        encoder, producer = self.stages["encoder"], self.stages["producer"]
        encoder["model"] = Path(encoder.get("model") or defaults.default_model()).resolve()
        producer["input"] = producer.get("input") or [str(defaults.default_input())]
        anomaly = encoder.get("anomaly_model")
        explicit = anomaly is not None and str(anomaly).lower() != "none"
        if explicit:
            encoder["anomaly_model"] = str(Path(str(anomaly)).resolve())
        needed = _card_variables(encoder["model"]) + (_card_variables(encoder["anomaly_model"]) if explicit else [])
        try:
            sent = open_inputs(self.config("producer")).variables
        except ValueError:
            if producer.get("columns") is None and not needed:
                raise
            sent = []  # e.g. no jet_* branches: asking for the model's variables names the missing branch
        if producer.get("columns") is None:
            missing = [v for v in dict.fromkeys(needed) if v not in sent]
            if missing:
                producer["columns"] = [*sent, *missing]
        else:  # an explicit --columns wins, but one the encoders would reject message by message is an error now
            lacking = [v for v in dict.fromkeys(needed) if v not in producer["columns"]]
            if lacking:
                raise ValueError(f"--columns {','.join(producer['columns'])} lacks {', '.join(lacking)}, needed by "
                                 f"the model (every message would be rejected); add {','.join(lacking)} (the "
                                 "producer derives e from pt, eta, m, and pt, eta, phi, m from px, py, pz, e)")
        stream = list(producer.get("columns") or sent)
        from emulator.encoder.anomaly import predicted_scoring

        self.anomaly = predicted_scoring(anomaly, encoder["model"].name, stream)
        check_latent_codec(encoder["model"], str(self.stages["sink"].get("latent_codec") or "auto"))
        return encoder["model"], producer["input"]

    def secure_links(self, out: Path) -> Path | None:
        """Give every stage the run's CurveZMQ key directory and return it (None with --plaintext).

        Without --curve-keys that is OUT/keys, made fresh for each run by :meth:`make_keys`; --curve-keys DIR
        uses DIR's keys (``aetrig keys DIR``) instead; --plaintext with --curve-keys is an error."""
        given = {str(self.stages[s]["curve_keys"]) for s in STAGE if self.stages[s].get("curve_keys")}
        if self.run.plaintext:
            if given:
                raise ValueError("--plaintext and --curve-keys contradict each other: give one")
            for stage in STAGES:  # the stages refuse to start without keys unless told so
                self.stages[stage.name]["plaintext"] = True
            return None
        if len(given) > 1:
            raise ValueError(f"the stages' curve_keys differ ({', '.join(sorted(given))}): give one key directory")
        self.given_keys = bool(given)
        keys = Path(given.pop()) if given else out / "keys"
        for stage in STAGES:
            setting = stage.schema.settings["curve_keys"]
            self.stages[stage.name]["curve_keys"] = stage.schema.coerce(setting, str(keys), "--curve-keys")
        return keys

    def values(self, stage: str, **owned: Any) -> dict[str, Any]:
        """The stage's settings for one start: the run's for this start (``owned``) first, then the others."""
        schema = STAGE[stage].schema
        own = {key: schema.coerce(schema.settings[key], value, f"aetrig run: {stage} {key}")
               for key, value in owned.items()}
        return own | {k: v for k, v in self.stages[stage].items() if k not in own}

    def config(self, stage: str, **owned: Any) -> Any:
        """The stage's config for one start, checked by the stage's own validator."""
        return STAGE[stage].schema.build(self.values(stage, **owned))

    def argv(self, stage: str, **owned: Any) -> list[str]:
        """``[subcommand, flags...]`` that start the stage with these settings (checked first)."""
        values = self.values(stage, **owned)
        STAGE[stage].schema.build(values)
        return [STAGE[stage].command, *STAGE[stage].schema.to_argv(values)]


def check_latent_codec(model: Path, codec: str) -> None:
    """ValueError (one line) unless the sink can code the model's latents with ``codec``: for ``ans`` the
    model's card must give the entropy model the way the sink finds it (inside the card, or under models/zoo).
    A model directory without a readable card is left to the encoder."""
    if codec in ("none", "auto"):
        return
    try:
        card = read_card(model)
    except ModelError:
        return
    try:
        latent_coding.entropy_model_text(card, [defaults.ZOO])
    except latent_coding.LatentCodingError as exc:
        raise ValueError(f"--latent-codec {codec} needs a rate-trained model (models/zoo/RD_AE_*): {exc}") from exc


def _card_variables(model: Any) -> list[str]:
    """The variable names of a model directory's card ([] when it has no readable card)."""

    with contextlib.suppress(ModelError, KeyError, TypeError):
        return [str(v["name"]) for v in read_card(model)["variables"]]
    return []


def _file_tables(path: str | None) -> dict[str, dict[str, Any]]:
    if not path:
        return {}
    data = read_config(path)
    tables = {"run", *STAGE}
    for key, value in data.items():
        if key not in tables or not isinstance(value, dict):
            owners = [s.name for s in STAGES if normal_key(key) in s.schema.settings] + (
                ["run"] if normal_key(key) in RUN_SCHEMA.settings else [])
            hint = f"; {key!r} is a {' and '.join(owners)} setting: put it in [{owners[0]}]" if owners else ""
            raise ValueError(f"{path}: unknown table {key!r}: use [run], [producer], [encoder] and [sink]{hint}")
    for stage in STAGES:
        owned = sorted(k for k in data.get(stage.name, {}) if normal_key(k) in stage.owned)
        if owned:
            raise ValueError(f"{path} [{stage.name}]: {', '.join(owned)} is set by aetrig run for each start "
                             "(free loopback ports, OUT/..., [run] plaintext); remove it")
    return data


def resolve(args: argparse.Namespace) -> RunSettings:
    """Merge stage defaults < run defaults < --config file < flags; the stage validators run in ``argv``."""
    path = getattr(args, "config", None)
    data = _file_tables(path)
    run = RUN_SCHEMA.build(RUN_SCHEMA.from_mapping(data.get("run", {}), f"{path} [run]") | RUN_SCHEMA.from_args(args))
    stages: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        stages[stage.name] = {key: ov.default for (name, key), ov in OVERRIDES.items()
                              if name == stage.name and ov.default is not UNSET}
        stages[stage.name] |= stage.schema.from_mapping(data.get(stage.name, {}), f"{path} [{stage.name}]")
    for flag in run_flags():
        if hasattr(args, flag.dest):
            for stage, setting in flag.targets:
                stages[stage.name][setting.key] = stage.schema.coerce(setting, getattr(args, flag.dest), flag.flags[0])
    producer = stages["producer"]
    producer.setdefault("loops", 0 if producer.get("duration") or producer.get("max_events") else 1)
    return RunSettings(run, stages)
