"""The producer's input, checked before anything is sent: the files, how to read them, the variables.

`aetrig produce` calls :func:`open_inputs` at start-up, and `aetrig run` and `aetrig calibrate` call it
before they start anything, so a missing file, tree or branch fails at once with the reader's error (file,
tree, missing branch and the close branches present). Each file is inspected once
(:func:`producer.reader.inspect_file`); its plan goes with the inputs to the reader, which does not check
it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.runtime import defaults
from producer.config import INPUT_SETTINGS, SCHEMA, ProducerConfig
from producer.formats import layouts
from producer.reader import FilePlan, ReaderError, ReaderSpec, expand_inputs, inspect_file


@dataclass(frozen=True)
class Inputs:
    """The expanded input files, the reading spec, the per-jet variables every file provides, each file's plan."""

    files: list[Path]
    spec: ReaderSpec
    variables: list[str]
    plans: list[FilePlan]


def reader_spec(cfg: ProducerConfig) -> ReaderSpec:
    """The reading settings of a resolved producer config, with the input format's other layouts to try."""
    return ReaderSpec(tree=cfg.tree, branch_map=cfg.branch_map, unit=cfg.unit, columns=cfg.columns,
                      derive_e=cfg.derive_e, step_size=cfg.step_size, input_format=cfg.input_format,
                      layouts=layouts(cfg.input_format, cfg.tree, cfg.branch_map), max_jets=cfg.max_jets_per_event)


def open_inputs(cfg: ProducerConfig) -> Inputs:
    """Expand ``cfg.input`` (default: the bundled sample) and check each file against the spec.

    Raises ReaderError (a ValueError) or OSError with a message naming the file.
    """
    files = expand_inputs(cfg.input or [str(defaults.default_input())])
    return check_inputs(files, reader_spec(cfg), cfg.columns)


def check_inputs(files: Sequence[Path], spec: ReaderSpec, columns: Sequence[str] | None,
                 specs: Sequence[ReaderSpec] | None = None) -> Inputs:
    """Check each file against ``spec`` (or its own entry of ``specs``) for ``columns`` (None: the first file's
    variables, which every other file must have too). Raises ReaderError naming the file."""
    specs = specs or [spec] * len(files)
    first = inspect_file(files[0], specs[0], columns)
    variables = list(first.variables)
    plans = [first]
    for path, own in zip(files[1:], specs[1:], strict=True):
        plan = inspect_file(path, own, None if columns is None else variables)
        if plan.variables != first.variables:
            raise ReaderError(f"{path}: its jet_* branches differ from {files[0]}; give --columns")
        plans.append(plan)
    return Inputs(list(files), spec, variables, plans)


def settings_reader_spec(settings: Mapping[str, Any], where: str = "run manifest") -> ReaderSpec:
    """The reading spec of recorded producer ``settings`` (a run manifest's ``settings``: input format, tree,
    branch map, unit, derive_e, max jets; absent ones take the producer's defaults). ValueError when they do
    not make a valid producer config."""
    given = {key: settings[key] for key in INPUT_SETTINGS if key != "input" and settings.get(key) is not None}
    return reader_spec(SCHEMA.build(SCHEMA.from_mapping(given, where)))
