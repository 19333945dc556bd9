"""Every command the README and docs/ show runs as written: `aetrig` lines parse with the real CLI,
`python -m` modules exist, data files come from a generate command shown, and named paths exist."""

from __future__ import annotations

import fnmatch
import glob
import importlib.util
import re

import pytest
from docs_commands import DOC_FILES, REPO, aetrig_argv, bash_blocks, check_aetrig, simple_commands

README = REPO / "README.md"
#: first path components of the repository's own files (outputs such as runs/ or report/ are made by command)
TRACKED_ROOTS = ("emulator/", "consumer/", "producer/", "models/", "deploy/", "tests/", "docs/", ".ci/")
PLACEHOLDER = re.compile(r"\b(NAME|DIR|MODEL|FILE|OUT|K)\b|[<>$]")


def _commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every simple command in the bash blocks of README.md and docs/*.md."""
    found = []
    for path in DOC_FILES:
        for block in bash_blocks(path.read_text()):
            found += [(path.relative_to(REPO).as_posix(), argv) for argv in simple_commands(block)]
    return found


def _aetrig_commands() -> list[tuple[str, list[str]]]:
    return [(where, rest) for where, argv in _commands() if (rest := aetrig_argv(argv)) is not None]


def _expand_braces(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    return [p for alt in match.group(1).split(",")
            for p in _expand_braces(pattern[:match.start()] + alt + pattern[match.end():])]


def _anchors(path) -> set[str]:
    """GitHub's anchors of a markdown file's headings."""
    headings = re.findall(r"^#+ (.*)$", path.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_readme_starts_with_the_two_setup_commands_and_stays_short() -> None:
    text = README.read_text()
    assert bash_blocks(text)[0] == "make demo\nmake test\n"
    assert re.search(r"^demo:", (REPO / "Makefile").read_text(), re.M)
    assert re.search(r"^test:", (REPO / "Makefile").read_text(), re.M)
    assert len(text.splitlines()) <= 200


def test_the_docs_show_every_kind_of_aetrig_command() -> None:
    shown = {argv[0] for _, argv in _aetrig_commands()}
    assert shown >= {"generate", "import-pretrained", "train", "calibrate", "quantize", "run", "produce", "encode",
                     "sink", "verify", "decode", "report", "bench", "keys"}, shown


@pytest.mark.parametrize("where,argv", _aetrig_commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_every_aetrig_command_parses(where: str, argv: list[str]) -> None:
    check_aetrig(argv, where)


def test_every_python_module_command_exists() -> None:
    modules = [(where, argv[argv.index("-m") + 1]) for where, argv in _commands()
               if argv and argv[0].split("/")[-1].startswith("python") and "-m" in argv]
    assert modules
    for where, module in modules:
        assert importlib.util.find_spec(module) is not None, f"{where}: no module {module}"


def test_data_files_in_commands_are_made_by_a_generate_command_shown() -> None:
    made = [argv[argv.index("--out") + 1] for _, argv in _aetrig_commands() if argv[0] == "generate"]
    for where, argv in _aetrig_commands():
        for token in argv:
            path = token.split("=", 1)[-1]
            if not path.startswith("data/") or (argv[0] == "generate" and path in made):
                continue
            for candidate in _expand_braces(path):
                assert any(fnmatch.fnmatch(m, candidate) for m in made), \
                    f"{where}: `aetrig {argv[0]}` reads {candidate}, which no `aetrig generate --out` shown makes"


def test_docs_use_the_neutral_plot_label() -> None:  # paths: tests/test_repo_standalone.py
    for path in DOC_FILES:
        text = path.read_text()
        assert "ATLAS Simulation" not in text, f"{path.name}: plots are labelled 'aetrig · Pythia 8 + toy detector'"


def test_repository_paths_and_links_named_in_the_docs_exist() -> None:
    for path in DOC_FILES:
        text = path.read_text()
        named = re.findall(r"`([^`\s]+)`", text)
        for name in named:
            name = name.rstrip(".,:;")
            if not name.startswith(TRACKED_ROOTS) or PLACEHOLDER.search(name):
                continue  # not a repository path, or a placeholder such as models/zoo/NAME/
            assert glob.glob(str(REPO / name)), f"{path.name}: `{name}` does not exist"
        for target, anchor in re.findall(r"\]\(([^)#\s]+)(?:#([^)]*))?\)", text):
            if "://" in target:
                continue
            linked = path.parent / target
            assert linked.exists(), f"{path.name}: link to {target}, which does not exist"
            if anchor:
                assert anchor in _anchors(linked), f"{path.name}: {target} has no heading #{anchor}"


def _help_example_commands() -> list[tuple[str, list[str]]]:
    """(where, argv after `aetrig`) of every example line under each subcommand's --help."""
    from emulator import cli

    found = []
    for command in cli.COMMANDS:
        try:
            _, module = cli.build_parser(command)
        except ImportError:  # an optional extra (torch, pythia8) is not installed
            continue
        for argv in simple_commands(module.EXAMPLES):
            if (rest := aetrig_argv(argv)) is not None:
                found.append((f"aetrig {command} --help", rest))
    return found


def test_one_recording_path_convention() -> None:
    """A recording is named by the --out of `aetrig run` or `aetrig sink`, in the docs and in every --help example:
    each path that verify, decode or evaluate --recording reads is the --out of a run or sink command shown."""
    commands = _aetrig_commands() + _help_example_commands()
    made = {argv[argv.index("--out") + 1] for _, argv in commands if argv[0] in ("run", "sink") and "--out" in argv}
    read = []
    for where, argv in commands:
        if argv[0] in ("verify", "decode", "evaluate"):
            ns = check_aetrig(argv, where)
            paths = {"verify": [str(getattr(ns, "dir", ""))], "decode": [getattr(ns, "recording", "")]}.get(
                argv[0], getattr(ns, "recording", None) or [])
            read += [(where, p) for p in paths if not PLACEHOLDER.search(p)]
    assert read and made
    assert [(where, p) for where, p in read if p not in made] == []


STAGE_COMMANDS = ("produce", "encode", "sink")


def test_every_stage_command_shown_says_how_it_authenticates() -> None:
    """A stage without keys refuses to start, so each `aetrig produce|encode|sink` line in the docs and the --help
    examples gives its keys (--curve-keys), opts out (--plaintext), or reads a --config file that can say either."""
    commands = [(where, argv) for where, argv in _aetrig_commands() + _help_example_commands()
                if argv[0] in STAGE_COMMANDS]
    assert {argv[0] for _, argv in commands} == set(STAGE_COMMANDS)
    for where, argv in commands:
        ns = check_aetrig(argv, where)
        given = {key for key in ("curve_keys", "plaintext", "config") if getattr(ns, key, None)}
        assert given, f"{where}: `aetrig {' '.join(argv)}` would refuse to start"
