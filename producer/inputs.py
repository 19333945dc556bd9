"""The producer's input, checked before anything is sent: the files, how to read them, the variables.

`aetrig produce` calls :func:`open_inputs` at start-up, and `aetrig run` calls it before it starts
any stage, so a missing file, tree or branch fails at once with the reader's error (file, tree,
missing branch and the close branches present).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emulator.runtime import defaults
from producer.config import ProducerConfig
from producer.reader import ReaderError, ReaderSpec, expand_inputs, resolve_variables


@dataclass(frozen=True)
class Inputs:
    """The expanded input files, the reading spec and the per-jet variables every file provides."""

    files: list[Path]
    spec: ReaderSpec
    variables: list[str]


def reader_spec(cfg: ProducerConfig) -> ReaderSpec:
    return ReaderSpec(tree=cfg.tree, branch_map=cfg.branch_map, unit=cfg.unit, columns=cfg.columns,
                      derive_e=cfg.derive_e, step_size=cfg.step_size, input_format=cfg.input_format)


def open_inputs(cfg: ProducerConfig) -> Inputs:
    """Expand ``cfg.input`` (default: the bundled sample) and check each file against the spec.

    Raises ReaderError (a ValueError) or OSError with a message naming the file.
    """
    files = expand_inputs(cfg.input or [str(defaults.default_input())])
    spec = reader_spec(cfg)
    variables = resolve_variables(files[0], spec)
    for path in files[1:]:
        if resolve_variables(path, spec) != variables and cfg.columns is None:
            raise ReaderError(f"{path}: its jet_* branches differ from {files[0]}; give --columns")
    return Inputs(files, spec, variables)
