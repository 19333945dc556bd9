"""The `aetrig` dispatcher: every subcommand imports, has help with an example, and bad input is clear."""

from __future__ import annotations

import pytest

from emulator import cli


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_subcommand_has_help_with_an_example(command: str) -> None:
    parser, _ = cli.build_parser(command)
    text = parser.format_help()
    assert "examples:" in text and f"aetrig {command}" in text
