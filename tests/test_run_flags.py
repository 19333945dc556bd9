"""`aetrig run` hands its stage options to the right stage processes, and each stage accepts them."""

from __future__ import annotations

from pathlib import Path

from emulator import cli
from emulator.run import command as run_command
from emulator.run import settings as run_settings


def _stage_args(tmp_path: Path, *argv: str) -> dict[str, list[str]]:
    parser, _ = cli.build_parser("run")
    settings = run_settings.resolve(parser.parse_args(["--encoders", "2", *argv]))
    plan = run_command._plan(settings, tmp_path, tmp_path / "model", ["in.root"])
    return {stage.name: stage.args for stage in run_command._stages(settings, plan)}


def test_encoder_and_sink_options_reach_their_stages(tmp_path: Path) -> None:
    stages = _stage_args(tmp_path, "--latent-wire-dtype", "float16", "--latent-storage-dtype", "float16",
                         "--max-batch-jets", "2048", "--fpr", "0.01")
    for name in ("encoder-0", "encoder-1"):
        enc = stages[name]
        assert enc[enc.index("--latent-wire-dtype") + 1] == "float16"
        assert enc[enc.index("--max-batch-jets") + 1] == "2048"
        assert float(enc[enc.index("--fpr") + 1]) == 0.01
    assert stages["sink"][stages["sink"].index("--latent-storage-dtype") + 1] == "float16"
    assert "--latent-storage-dtype" not in stages["encoder-0"] and "--latent-wire-dtype" not in stages["sink"]
    assert not any("latent" in token for token in stages["producer"])


def test_every_generated_stage_command_line_parses(tmp_path: Path) -> None:
    stages = _stage_args(tmp_path, "--latent-wire-dtype", "float16", "--max-batch-jets", "512", "--duration", "5",
                         "--window", "8", "--max-bytes", "1000000", "--drop-on-overload")
    for argv in stages.values():
        parser, _ = cli.build_parser(argv[0])
        parser.parse_args(argv[1:])
