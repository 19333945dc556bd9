"""Every `aetrig` subcommand takes `--config FILE` with the stages' semantics: the file's values are defaults,
flags override them, an unknown key exits 2 naming it (emulator/runtime/command_config.py, stage_config.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from emulator import cli
from emulator.runtime.command_config import CommandParser, parser_actions


def _exit_code(argv: list[str]) -> int:
    """`aetrig ARGV`'s exit code, whether the parser exits or main returns."""
    try:
        return cli.main(argv)
    except SystemExit as exit_:
        return int(exit_.code)


def _parse(command: str, config: Path, *argv: str) -> argparse.Namespace:
    parser, _ = cli.build_parser(command)
    return parser.parse_args(["--config", str(config), *argv])


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_subcommand_has_config_in_its_help(command: str) -> None:
    parser, _ = cli.build_parser(command)
    assert "--config FILE" in parser.format_help()


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
@pytest.mark.parametrize("text,named", [("no_such_setting_xyz = 1\n", "no_such_setting_xyz"),
                                        ("this is = = not toml\n", "bad.toml")])
def test_every_subcommand_refuses_a_bad_config_file_with_exit_2_saying_what(
        command: str, text: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown key is named; a file that is not TOML is named."""
    config = tmp_path / "bad.toml"
    config.write_text(text)
    assert _exit_code([command, "--config", str(config)]) == 2
    assert named in capsys.readouterr().err


def test_file_values_are_defaults_and_flags_override_them(tmp_path: Path) -> None:
    config = tmp_path / "verify.toml"
    config.write_text('[verify]\ndir = "runs/a"\nexpect-events = 5\nno_summary = true\njson = "v.json"\n')
    args = _parse("verify", config)
    assert (args.dir, args.expect_events, args.no_summary, args.json) == (Path("runs/a"), 5, True, Path("v.json"))
    args = _parse("verify", config, "runs/b", "--expect-events", "7")
    assert (args.dir, args.expect_events, args.no_summary) == (Path("runs/b"), 7, True)
    plain = cli.build_parser("verify")[0].parse_args(["runs/c"])
    assert (plain.expect_events, plain.no_summary, plain.config) == (None, False, None)


def test_a_file_list_is_replaced_not_extended_by_the_flag_and_satisfies_a_required_flag(tmp_path: Path) -> None:
    config = tmp_path / "train.toml"
    config.write_text('input = ["a.root", "b.root"]\nout = "m"\nepochs = 3\nresume = true\n')
    args = _parse("train", config)
    assert (args.input, args.out, args.epochs, args.resume) == (["a.root", "b.root"], "m", 3, True)
    assert _parse("train", config, "--input", "c.root").input == ["c.root"]
    assert _parse("train", config, "--epochs", "9").epochs == 9


@pytest.mark.parametrize("text,message", [
    ('epochs = "many"\n', "invalid int value"),
    ("resume = 1\n", "expects true or false"),
    ('name = ["a", "b"]\n', "expects one value"),
    ('schedule = "cosine"\n', "invalid choice"),
])
def test_a_bad_file_value_exits_2_naming_the_file_and_the_setting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    config = tmp_path / "train.toml"
    config.write_text('input = ["a.root"]\nout = "m"\n' + text)
    with pytest.raises(SystemExit) as exit_:
        _parse("train", config)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "train.toml" in err


def test_parser_actions_sees_every_argument_argparse_holds() -> None:
    """The one access to argparse's private action list: fails when argparse changes it."""
    parser = CommandParser(prog="t")
    added = [parser.add_argument("x"), parser.add_argument("--y", type=int),
             parser.add_argument_group("g").add_argument("--z", action="store_true")]
    actions = parser_actions(parser)
    assert all(a in actions for a in added) and {a.dest for a in actions} == {"help", "x", "y", "z"}


REQUIRED = {"train": ["--input", "a.root", "--out", "m"],
            "event-design": ["ship", "--model", "m", "--train-background", "a.root"]}


@pytest.mark.parametrize("command,flag,dest", [("train", "--loss-weights", "loss_weights"),
                                               ("report", "--signal", "signal"),
                                               ("evaluate", "--branch-map", "branch_map"),
                                               ("event-design", "--design-signal", "design_signal"),
                                               ("produce", "--branch-map", "branch_map"),
                                               ("run", "--branch-map", "producer:branch_map")])
def test_key_value_flags_take_space_separated_pairs_and_add_up_when_repeated(command: str, flag: str,
                                                                            dest: str) -> None:
    parser, _ = cli.build_parser(command)
    args = parser.parse_args([*REQUIRED.get(command, []), flag, "a=1", "b=x.root,y.root", flag, "c=3", "a=4"])
    assert vars(args)[dest] == {"a": "4", "b": "x.root,y.root", "c": "3"}


@pytest.mark.parametrize("bad", ["pt", "pt=", "=3", "pt=10,m=5"])
def test_a_malformed_key_value_pair_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    """'pt=10,m=5' (the old comma form) reads as pt -> '10,m=5', which the weights parser refuses."""
    from models.training.train_command import parse_weights
    from models.training.train_options import TrainError

    parser, _ = cli.build_parser("train")
    if bad == "pt=10,m=5":
        weights = parser.parse_args([*REQUIRED["train"], "--loss-weights", bad]).loss_weights
        with pytest.raises(TrainError, match="W a number"):
            parse_weights(weights, ["pt", "m"])
        return
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([*REQUIRED["train"], "--loss-weights", bad])
    assert exit_.value.code == 2 and "expects VAR=W" in capsys.readouterr().err


def test_a_config_table_or_list_gives_a_key_value_flag_its_pairs(tmp_path: Path) -> None:
    from models.training.train_command import parse_weights

    table = tmp_path / "table.toml"
    table.write_text('input = ["a.root"]\nout = "m"\n[loss_weights]\npt = 10\nm = 5\n')
    as_list = tmp_path / "list.toml"
    as_list.write_text('input = ["a.root"]\nout = "m"\nloss-weights = ["pt=10", "m=5"]\n')
    for config in (table, as_list):
        weights = _parse("train", config).loss_weights
        assert weights == {"pt": "10", "m": "5"}
        assert parse_weights(weights, ["pt", "eta", "m"]) == [10.0, 1.0, 5.0]
    assert _parse("train", table, "--loss-weights", "eta=2").loss_weights == {"eta": "2"}


def test_a_model_is_a_directory_or_a_zoo_name_resolved_by_one_function(tmp_path: Path) -> None:
    from emulator.runtime.defaults import ZOO, resolve_model

    assert resolve_model("AE_3D_200_ptetaphie") == ZOO / "AE_3D_200_ptetaphie"
    assert resolve_model(ZOO / "EVT_AE_ht") == ZOO / "EVT_AE_ht"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "card.json").write_text("{}")
    assert resolve_model(tmp_path / "mine") == tmp_path / "mine"
    assert resolve_model("no_such_model") == Path("no_such_model")  # the loader says what is wrong
    assert resolve_model("runs/AE_3D_200_ptetaphie") == Path("runs/AE_3D_200_ptetaphie")  # a path is never a name
    for command, argv in (("encode", ["--model", "RD_AE_g23", "--anomaly-model", "EVT_AE_4v"]),
                          ("calibrate", ["--model", "RD_AE_g23"]),
                          ("decode", ["runs/demo", "--out", "d.root", "--model", "RD_AE_g23"])):
        parser, _ = cli.build_parser(command)
        args = parser.parse_args(argv)
        if command == "encode":
            from emulator.encoder.config import SCHEMA

            values = SCHEMA.from_args(args)
            assert (values["model"], values["anomaly_model"]) == (ZOO / "RD_AE_g23", str(ZOO / "EVT_AE_4v"))
        else:
            assert args.model == ZOO / "RD_AE_g23"


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_model_flags_name_models_never_architectures(command: str) -> None:
    """--model (and --anomaly-model, --wide-model, ...) is one model; --models several; --arch an architecture."""
    parser, _ = cli.build_parser(command)
    for action in parser_actions(parser):
        flags = [f for f in action.option_strings if f in ("--model", "--models") or f.rstrip("s").endswith("-model")]
        for flag in flags:
            assert action.choices is None, f"aetrig {command} {flag} has fixed choices: an architecture is --arch"
            assert action.metavar in ("NAME_OR_DIR", "NAME_OR_DIR|none"), (command, flag, action.metavar)
            assert (action.nargs == "+") == flag.endswith("s"), f"aetrig {command} {flag}: one model, --models several"


def test_a_metrics_port_of_0_is_off_on_every_stage_and_latent_dtypes_have_distinct_names() -> None:
    from consumer.sink.config import SCHEMA as SINK
    from emulator.encoder.config import SCHEMA as ENCODER
    from producer.config import SCHEMA as PRODUCER

    for schema in (PRODUCER, ENCODER, SINK):
        port = schema.settings["metrics_port"]
        assert (port.type, port.optional, port.default()) == (int, False, 0), schema.name
        assert "0 = off" in port.option.help
        assert "latent_dtype" not in schema.settings
    assert "latent_wire_dtype" in ENCODER.settings and "latent_storage_dtype" in SINK.settings


@pytest.mark.parametrize("argv,said", [
    (["quantize", "--model", "{tmp}/none", "--out", "{tmp}/q", "--calibration", "{tmp}/a.root",
      "--background", "{tmp}/a.root"], "does not exist"),
    (["import-pretrained", "--pretrained", "{tmp}/none.pth", "--out", "{tmp}/tla"], "not found"),
    (["calibrate", "--model", "{tmp}/none", "--background", "{tmp}/a.root"], "none"),
    (["decode", "{tmp}/none", "--out", "{tmp}/d.root"], "none"),
    (["train", "--input", "{tmp}/a.root", "--out", "{tmp}/m", "--variables", "pt,pt"], "distinct"),
])
def test_bad_input_exits_2_with_one_clear_line(argv: list[str], said: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Usage and input errors exit 2 on every command (quantize and import-pretrained exited 1)."""
    assert _exit_code([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1, err
    assert not any(tmp_path.iterdir())  # nothing written


def test_one_parser_parses_again_without_the_last_files_values(tmp_path: Path) -> None:
    config = tmp_path / "verify.toml"
    config.write_text('dir = "runs/a"\nexpect-events = 5\n')
    parser, _ = cli.build_parser("verify")
    assert parser.parse_args(["--config", str(config)]).expect_events == 5
    again = parser.parse_args(["runs/b"])
    assert (again.dir, again.expect_events) == (Path("runs/b"), None)
    with pytest.raises(SystemExit):
        parser.parse_args([])  # the positional is required again
