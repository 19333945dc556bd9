"""A recording's event scores against HT and leading-jet-pT triggers at equal rate, as `aetrig evaluate
--recording` does, with the input jets read from the files the run manifests name.

The manifests' input files are split by name into the signals asked for and the background (every other file);
each file is found where the manifest says (or, by the same relative path or name, under ``search_dirs``), must
still have the recorded sha256, and is read as the producer read it (the manifest's input settings). Then
`aetrig evaluate`'s own code runs: the recorded scores are joined to
those samples by (file_index, entry) (``consumer.offline.evaluate_recording.recording_set``), HT and the
leading-jet pT come from the samples' jets, and ``consumer.offline.evaluate.compare`` judges them per FPR.

Example::

    results = evaluate_run(open_run("runs/mix"), {"zprime": "zprime.root"})
    print(consumer.offline.evaluate.render(results))
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from typing import Any

from consumer.offline import evaluate as ev
from consumer.offline.evaluate_recording import RecordingMismatch, recorded_inputs, recording_set
from consumer.offline.join import JoinError
from consumer.offline.studies.common import load_sample
from models.runtime import trigger_menu as tm
from producer.reader import ReaderSpec

#: the jets of HT and leading-jet pT unless told (`aetrig evaluate`'s defaults)
DEFAULT_SELECTION = tm.JetSelection()


def _matches(path: str, patterns: str | Sequence[str]) -> bool:
    names = (path, os.path.basename(path))
    return any(fnmatch.fnmatch(n, p) for p in ([patterns] if isinstance(patterns, str) else patterns) for n in names)


def input_groups(manifests: Mapping[int, Mapping[str, Any]], signals: Mapping[str, str | Sequence[str]],
                 search_dirs: Sequence[str] = ()) -> tuple[dict[str, list[str]], dict[str, ReaderSpec]]:
    """{"background": files, signal: files} of the manifests' input files (found and sha256-checked) and how the
    producer read each ({path: its run's reading spec: input format, tree, branch map, unit, jet cap}). A file
    whose name or path matches a signal's pattern(s) is that signal's.

    Example: ``input_groups(run.manifests, {"zprime": "zprime*.root"})[0]`` ->
    ``{"background": [".../qcd.root"], "zprime": [".../zprime.root"]}``."""
    groups: dict[str, list[str]] = {"background": [], **{name: [] for name in signals}}
    recorded = recorded_inputs(manifests.values(), search_dirs)
    for item in recorded:
        owners = [name for name, patterns in signals.items() if _matches(item.path, patterns)]
        if len(owners) > 1:
            raise JoinError(f"input file {item.path} matches signals {owners}: give patterns that do not overlap")
        groups[owners[0] if owners else "background"].append(item.path)
    empty = [name for name, files in groups.items() if not files]
    if empty:
        raise JoinError(f"no input file of the recording for {empty} (inputs: {[r.path for r in recorded]})")
    return groups, {r.path: r.spec for r in recorded}


def evaluate_run(run, signals: Mapping[str, str | Sequence[str]], fprs: Sequence[float] = tm.FPRS,
                 input_rates: Sequence[float] = tm.INPUT_RATES_HZ, selection: tm.JetSelection = DEFAULT_SELECTION,
                 search_dirs: Sequence[str] = ()) -> dict[str, Any]:
    """The equal-rate comparison of a :class:`~consumer.analysis.run.Run`'s recorded scores (the results of
    `aetrig evaluate --recording`: ``models["recording (<model>)"]["signals"][signal]["fpr"]`` per FPR, the HT and
    leading-jet-pT TPRs, AUCs). ``signals``: {name: file name pattern(s) of its input files}; the other input
    files are the background. Each file is read as the run's producer read it (the manifest's input format, tree,
    branch map, unit; TTree or RNTuple found file by file), so PHYSLITE, NanoAOD and Delphes runs evaluate too.

    Example::

        results = evaluate_run(run, {"zprime": "zprime.root"}, fprs=(1e-2, 1e-3))
        row = results["models"]["recording (EVT_AE_ht)"]["signals"]["zprime"]["fpr"]["0.01"]
        print(row["tpr"], row["ht_tpr"], row["lead_pt_tpr"])"""
    from consumer.analysis.run import AnalysisError

    try:
        groups, specs = input_groups(run.manifests, signals, search_dirs)

        def read(name: str, files: list[str]):  # -> Sample
            return load_sample(name, files, ["pt", "eta"], specs[files[0]], spec_for=lambda p: specs[str(p)])

        background = read("background", groups["background"])
        samples = {name: read(name, groups[name]) for name in signals}
        scores = recording_set([str(run.directory)], background, samples)
    except (JoinError, RecordingMismatch, ValueError, OSError) as exc:
        raise AnalysisError(f"{run.directory}: cannot evaluate: {exc}") from exc
    inputs = ev.menu_inputs([scores], background, samples, selection)
    return ev.compare([scores], inputs, background, samples, selection, tuple(fprs), tuple(input_rates))
