"""One definition per setting: each stage config generates the flags of `aetrig produce|encode|sink`, reads
config files with the same keys (flags win), and runs one validator on both."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from consumer.sink import config as sink_config
from emulator import cli
from emulator.encoder import config as encoder_config
from emulator.runtime.command_config import parser_actions
from emulator.runtime.stage_config import Schema, describe
from producer import config as producer_config

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "zoo" / "AE_3D_200_ptetaphie"
COMMANDS = {"produce": producer_config.SCHEMA, "encode": encoder_config.SCHEMA, "sink": sink_config.SCHEMA}


def _parser(schema: Schema) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    schema.add_arguments(parser)
    return parser


def expected_default(setting) -> str:
    """How the help shows a setting's default."""
    if setting.option.default_text:
        return f"(default: {setting.option.default_text})"
    return "(required)" if setting.required else f"(default: {describe(setting.default())})"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_field_has_one_flag_with_its_default_in_the_help(command: str) -> None:
    schema = COMMANDS[command]
    parser, _ = cli.build_parser(command)
    by_dest: dict[str, list[argparse.Action]] = {}
    for action in parser_actions(parser):
        by_dest.setdefault(action.dest, []).append(action)
    fields = {s.name for s in schema.settings.values()}
    assert set(by_dest) - fields == {"help", "config"}, "a flag that is not a config field"
    for setting in schema.settings.values():
        (action,) = by_dest[setting.name]
        assert setting.flag in action.option_strings
        assert expected_default(setting) in action.help.replace("%%", "%"), (setting.flag, action.help)
    assert f"--{'max-events' if command == 'produce' else 'config'}" in parser.format_help()


PRODUCER_VALUES = {"input": ["a.root", "b*.root"], "input_format": "nanoaod", "branch_map": {"pt": "Jet_pt_nom"},
                   "columns": ["pt", "eta"], "derive_e": True, "rate": 123.5, "run_id": 255, "window": 8,
                   "curve_keys": "keys"}
PRODUCER_TOML = """\
input = ["a.root", "b*.root"]
input-format = "nanoaod"
branch_map = ["pt=Jet_pt_nom"]
columns = "pt,eta"
derive-e = true
rate = 123.5
run_id = "0xff"
window = 8
curve_keys = "keys"
"""


@pytest.mark.parametrize("form", ["toml", "toml-table", "json"])
def test_config_file_round_trip_and_flags_override(tmp_path: Path, form: str) -> None:
    schema = producer_config.SCHEMA
    path = tmp_path / ("p.json" if form == "json" else "p.toml")
    if form == "json":
        path.write_text(json.dumps({k.replace("_", "-"): v for k, v in PRODUCER_VALUES.items()}))
    else:
        path.write_text("[producer]\n" + PRODUCER_TOML if form == "toml-table" else PRODUCER_TOML)
    assert schema.load_file(path) == PRODUCER_VALUES
    # the same values as a command line, and back
    argv = schema.to_argv(PRODUCER_VALUES)
    assert schema.from_args(_parser(schema).parse_args(argv)) == PRODUCER_VALUES
    # defaults < file < flags; the preset fills what neither gives
    cfg = schema.resolve(_parser(schema).parse_args(["--config", str(path), "--rate", "50", "--no-derive-e"]))
    assert cfg.rate == 50.0 and cfg.derive_e is False and cfg.window == 8 and cfg.run_id == 255
    assert cfg.branch_map["pt"] == "Jet_pt_nom" and cfg.branch_map["eta"] == "Jet_eta" and cfg.tree == "Events"
    assert cfg.events_per_message == producer_config.DEFAULTS.events_per_message


@pytest.mark.parametrize("command,text", [("encode", 'threads = 3\nlatent-wire-dtype = "float16"\nfpr = 0.01\n'),
                                          ("sink", 'commit_ms = 50\nmax_bytes = 1000\ncompression = "lz4:1"\n')])
def test_every_stage_reads_config_files(tmp_path: Path, command: str, text: str) -> None:
    path = tmp_path / "stage.toml"
    path.write_text(text)
    parser, _ = cli.build_parser(command)
    required = (["--model", str(MODEL), "--connect", "tcp://127.0.0.1:1", "--sink", "tcp://127.0.0.1:2"]
                if command == "encode" else ["--bind", "tcp://127.0.0.1:1", "--out", str(tmp_path),
                                             "--model", str(MODEL), "--manifest", str(tmp_path)])
    cfg = COMMANDS[command].resolve(parser.parse_args([*required, "--config", str(path)]))
    if command == "encode":
        assert cfg.threads == 3 and cfg.latent_wire_dtype == "float16" and cfg.fpr == 0.01 and cfg.model == MODEL
    else:
        assert cfg.commit_ms == 50.0 and cfg.max_bytes == 1000 and cfg.compression == "lz4:1"
        assert cfg.limits.max_jets_per_event == sink_config.SinkConfig.max_jets_per_event


def test_unknown_keys_and_bad_values_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    for text, schema, message in [
        ("rat = 3\n", producer_config.SCHEMA, "unknown producer setting 'rat'; did you mean rate?"),
        ("treads = 2\n", encoder_config.SCHEMA, "unknown encoder setting 'treads'; did you mean threads?"),
        ("comit-ms = 2\n", sink_config.SCHEMA, "unknown sink setting 'comit-ms'; did you mean commit_ms"),
        ('window = "many"\n', producer_config.SCHEMA, "window: expects an integer, got 'many'"),
        ('unit = "keV"\n', producer_config.SCHEMA, "unit: must be one of GeV, MeV"),
        ('branch-map = ["pt"]\n', producer_config.SCHEMA, "branch_map: expects VAR=BRANCH, got 'pt'"),
        ("rate = -1\n", producer_config.SCHEMA, "rate must be >= 0"),  # the validator, as for --rate -1
    ]:
        bad.write_text(text)
        with pytest.raises(ValueError) as err:
            schema.build(schema.load_file(bad))
        assert message in str(err.value) and (str(bad) in str(err.value) or "must be" in message), str(err.value)


def test_one_validator_for_flags_and_files(tmp_path: Path) -> None:
    schema = encoder_config.SCHEMA
    base = ["--model", str(MODEL), "--connect", "tcp://127.0.0.1:1", "--sink", "tcp://127.0.0.1:2"]
    path = tmp_path / "enc.json"
    path.write_text(json.dumps({"fpr": 0.01, "threshold": 2.0}))
    with pytest.raises(ValueError, match="give one of --fpr, --accept-rate and --threshold"):
        schema.resolve(_parser(schema).parse_args([*base, "--config", str(path)]))
    with pytest.raises(ValueError, match="--max-batch-jets must be >= 1, got 0"):
        schema.resolve(_parser(schema).parse_args([*base, "--max-batch-jets", "0"]))
    path.write_text(json.dumps({"max_batch_jets": 0}))
    with pytest.raises(ValueError, match="--max-batch-jets must be >= 1, got 0"):
        schema.resolve(_parser(schema).parse_args([*base, "--config", str(path)]))
    with pytest.raises(ValueError, match="--model is required"):
        schema.resolve(_parser(schema).parse_args(base[2:]))
