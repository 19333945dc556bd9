"""Shell commands as the documentation and deploy files show them, checked against the real CLI.

One helper for every test that reads commands out of README.md, docs/*.md, the benchmark results'
README or deploy/: split the ``bash`` code blocks into simple commands, and check that an
``aetrig`` command line names a subcommand that exists, uses only its flags (spelled out, not
abbreviated) and parses.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from emulator import cli
from emulator.runtime.command_config import option_strings

REPO = Path(__file__).resolve().parent.parent
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "emulator/bench/results/README.md"]
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")"}
SHELL_WORDS = {"do", "done", "then", "fi", "time", "sudo"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def section(text: str, name: str) -> str:
    """The text between ``<!-- section: NAME -->`` and ``<!-- /section: NAME -->``."""
    match = re.search(rf"<!-- section: {name} -->(.*?)<!-- /section: {name} -->", text, re.S)
    assert match, f"no section {name!r}"
    return match.group(1)


def bash_blocks(text: str) -> list[str]:
    """The bodies of the ```bash code blocks of a markdown text."""
    return re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)


def simple_commands(block: str) -> list[list[str]]:
    """Every simple command of a shell block as argv: continuation lines joined, comments dropped,
    split at ; && || | & and parentheses, leading VAR=value, `nice -n N` and shell keywords removed."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in [*lexer, ";"]:
            if token in SEPARATORS:
                if current:
                    commands.append(_strip_prefix(current))
                current = []
            else:
                current.append(token)
    return [c for c in commands if c]


def _strip_prefix(argv: list[str]) -> list[str]:
    while argv and (argv[0] in SHELL_WORDS or ASSIGNMENT.match(argv[0])):
        argv = argv[1:]
    if argv[:2] == ["nice", "-n"]:
        argv = argv[3:]
    elif argv[:1] == ["nice"]:
        argv = argv[1:]
    return argv


def aetrig_argv(argv: list[str]) -> list[str] | None:
    """argv after `aetrig` (also `.venv/bin/aetrig`), or None for any other program."""
    if argv and (argv[0] == "aetrig" or argv[0].endswith("/aetrig")):
        return argv[1:]
    return None


def aetrig_commands(text: str) -> list[list[str]]:
    """argv after `aetrig` of every aetrig command in the text's bash blocks."""
    found = []
    for block in bash_blocks(text):
        for argv in simple_commands(block):
            rest = aetrig_argv(argv)
            if rest is not None:
                found.append(rest)
    return found


def check_aetrig(argv: list[str], where: str) -> argparse.Namespace:
    """Parse `aetrig ARGV` with the real parser; AssertionError saying what is wrong otherwise."""
    assert argv, f"{where}: `aetrig` without a subcommand"
    command = argv[0]
    assert command in cli.COMMANDS, f"{where}: `aetrig {command}` does not exist"
    parser, _ = cli.build_parser(command)
    for token in argv[1:]:
        if token.startswith("--"):
            flag = token.split("=", 1)[0]
            assert flag in option_strings(parser), f"{where}: `aetrig {command}` has no flag {flag}"
    try:
        return parser.parse_args(argv[1:])
    except SystemExit as exit_:
        raise AssertionError(f"{where}: `aetrig {shlex.join(argv)}` does not parse (exit {exit_.code})") from None
