"""`aetrig run`'s flags come from the stage configs (each stage setting once, the run's own defaults on top), its
--config FILE has a table per stage with the stage's keys, and it builds every stage's command line from them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_stage_config import MODEL, expected_default

from emulator import cli
from emulator.run import settings as run_settings
from emulator.runtime.command_config import option_strings, parser_actions
from emulator.runtime.stage_config import describe
from producer import config as producer_config

PRODUCER_INPUT_FLAGS = ("--input", "--input-format", "--tree", "--branch-map", "--unit", "--columns", "--derive-e",
                        "--step-size")


def test_run_help_lists_every_producer_input_option_and_each_stage_setting_once() -> None:
    parser, _ = cli.build_parser("run")
    text = parser.format_help()
    for flag in PRODUCER_INPUT_FLAGS:
        assert re.search(rf"^  {flag}[ ,]", text, re.M), flag
    assert "[producer]" in text and "[encoder]" in text and "[sink]" in text and "[run]" in text
    flags = run_settings.run_flags()
    targeted = [(stage.name, setting.key) for flag in flags for stage, setting in flag.targets]
    assert len(targeted) == len(set(targeted))
    for stage in run_settings.STAGES:  # every stage setting is a run flag unless the run sets it itself
        assert {key for name, key in targeted if name == stage.name} == set(stage.schema.settings) - stage.owned
    for flag in flags:
        stage, setting = flag.targets[0]
        action = next(a for a in parser_actions(parser) if flag.flags[0] in a.option_strings)
        ov = flag.override
        expected = f"(default: {ov.default_text or describe(ov.default)})" if ov.default_text or ov.default is not \
            run_settings.UNSET else expected_default(setting)
        assert expected in action.help.replace("%%", "%"), (flag.flags, action.help)
    # names that collide with different defaults get the stage's name; equal ones are one flag for both stages
    assert {"--producer-drain-timeout", "--encoder-drain-timeout"} <= option_strings(parser)
    # one name, one meaning: the encoders' wire dtype and the sink's storage dtype are two flags
    for flag, stage in (("--latent-wire-dtype", "encoder"), ("--latent-storage-dtype", "sink")):
        assert [s.name for s, _ in next(f for f in flags if flag in f.flags).targets] == [stage]


def _run(argv: list[str]) -> run_settings.RunSettings:
    parser, _ = cli.build_parser("run")
    return run_settings.resolve(parser.parse_args(argv))


def test_run_config_file_tables_and_precedence(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[run]\nencoders = 3\n[producer]\nrate = 5\ninput-format = "nanoaod"\nmax_events = 300\n'
                    '[encoder]\nthreads = 2\nlatent_wire_dtype = "float16"\n[sink]\ncommit_ms = 50\n'
                    'latent-storage-dtype = "float16"\n')
    settings = _run(["--config", str(path), "--rate", "7", "--latent-wire-dtype", "float32", "--model", str(MODEL)])
    assert settings.run.encoders == 3
    producer = settings.stages["producer"]
    assert producer["rate"] == 7.0 and producer["input_format"] == "nanoaod" and producer["max_events"] == 300
    assert producer["loops"] == 0  # forever with an event limit, as without a file
    assert producer["events_per_message"] == run_settings.RUN_EVENTS_PER_MESSAGE  # the run's own default
    assert settings.stages["encoder"] == {"threads": 2, "latent_wire_dtype": "float32", "model": MODEL}
    assert settings.stages["sink"] == {"commit_ms": 50.0, "latent_storage_dtype": "float16"}
    # the same file as JSON
    json_path = tmp_path / "run.json"
    json_path.write_text(json.dumps({"run": {"encoders": 3}, "producer": {"rate": 5}}))
    assert _run(["--config", str(json_path)]).stages["producer"]["rate"] == 5.0
    # a stage's own --config reads its table of the run file
    assert producer_config.SCHEMA.load_file(path) == {"rate": 5.0, "input_format": "nanoaod", "max_events": 300}


def test_run_config_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    for text, message in [("rate = 5\n", "unknown table 'rate'"), ("rate = 5\n", "put it in [producer]"),
                          ("[producer]\nbind = 'tcp://x:1'\n", "bind is set by aetrig run"),
                          ("[encoder]\nthread = 2\n", "unknown encoder setting 'thread'; did you mean threads?"),
                          ("[run]\nencoders = 0\n", "--encoders must be >= 1")]:
        path.write_text(text)
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            _run(["--config", str(path)])


def test_run_builds_every_stage_argv_with_the_model_variables_as_columns(tmp_path: Path) -> None:
    settings = _run(["--model", str(MODEL), "--input", "in.root", "--events", "300", "--tree", "events",
                     "--branch-map", "px=Jet_Px", "py=Jet_Py", "--curve-keys", str(tmp_path), "--commit-ms", "20"])
    model, inputs = settings.complete()
    assert model == MODEL and inputs == ["in.root"]
    argv = settings.argv("producer", bind="tcp://127.0.0.1:1", ack_bind="tcp://127.0.0.1:2")
    assert argv[0] == "produce" and argv[argv.index("--columns") + 1] == "pt,eta,phi,e"
    assert argv[argv.index("--branch-map") + 1:argv.index("--branch-map") + 3] == ["px=Jet_Px", "py=Jet_Py"]
    cfg = producer_config.resolve(cli.build_parser("produce")[0].parse_args(argv[1:]))
    assert cfg == settings.config("producer", bind="tcp://127.0.0.1:1", ack_bind="tcp://127.0.0.1:2")
    assert cfg.curve_keys == str(tmp_path) and cfg.max_events == 300 and cfg.loops == 0
    sink = settings.argv("sink", bind="tcp://127.0.0.1:3", out=tmp_path, model=tmp_path, manifest=str(tmp_path))
    assert sink[sink.index("--curve-keys") + 1] == str(tmp_path) and sink[sink.index("--commit-ms") + 1] == "20.0"
    # an explicit --columns wins over the model's variables
    explicit = _run(["--model", str(MODEL), "--columns", "pt,eta,phi,m,e"])
    explicit.complete()
    assert explicit.stages["producer"]["columns"] == ["pt", "eta", "phi", "m", "e"]
    # --events and --max-events are one flag
    assert _run(["--max-events", "7"]).stages["producer"]["max_events"] == 7
