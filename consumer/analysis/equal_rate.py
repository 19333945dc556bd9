"""A recording's event scores against HT and leading-jet-pT triggers at equal rate, as `aetrig evaluate
--recording` does, with the input jets read from the files the run manifests name.

The manifests' input files are split by name into the signals asked for and the background (every other file);
each file is found where the manifest says (or, by the same relative path or name, under ``search_dirs``) and
must still have the recorded sha256. Then `aetrig evaluate`'s own code runs: the recorded scores are joined to
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
from consumer.offline.evaluate_recording import RecordingMismatch, recording_set
from consumer.offline.join import JoinError, manifest_inputs, manifest_read_options, resolve_path
from consumer.offline.studies.common import ReadOptions, load_sample
from models.runtime import trigger_menu as tm
from models.runtime.hashing import sha256_file

#: the jets of HT and leading-jet pT unless told (`aetrig evaluate`'s defaults)
DEFAULT_SELECTION = tm.JetSelection()


def _matches(path: str, patterns: str | Sequence[str]) -> bool:
    names = (path, os.path.basename(path))
    return any(fnmatch.fnmatch(n, p) for p in ([patterns] if isinstance(patterns, str) else patterns) for n in names)


def input_groups(manifests: Mapping[int, Mapping[str, Any]], signals: Mapping[str, str | Sequence[str]],
                 search_dirs: Sequence[str] = ()) -> tuple[dict[str, list[str]], ReadOptions]:
    """{"background": files, signal: files} of the manifests' input files (found and sha256-checked) and how the
    producer read them. A file whose name or path matches a signal's pattern(s) is that signal's.

    Example: ``input_groups(run.manifests, {"zprime": "zprime*.root"})[0]`` ->
    ``{"background": [".../qcd.root"], "zprime": [".../zprime.root"]}``."""
    groups: dict[str, list[str]] = {"background": [], **{name: [] for name in signals}}
    seen: set[str] = set()
    options = None
    for manifest in manifests.values():
        read = manifest_read_options(manifest)
        here = ReadOptions(str(read["tree"]), dict(read["branch_map"]), str(read["unit"]), bool(read["derive_e"]))
        if options is not None and here != options:
            raise JoinError("the recording's runs read their inputs differently (tree, branch map, unit)")
        options = here
        for info in manifest_inputs(manifest):
            path = resolve_path(info.path, search_dirs)
            if info.sha256 and sha256_file(path) != info.sha256:
                raise JoinError(f"{path}: sha256 differs from the run manifest (file changed since recording)")
            if os.path.realpath(path) in seen:
                continue
            seen.add(os.path.realpath(path))
            owners = [name for name, patterns in signals.items() if _matches(info.path, patterns)]
            if len(owners) > 1:
                raise JoinError(f"input file {info.path} matches signals {owners}: give patterns that do not overlap")
            groups[owners[0] if owners else "background"].append(path)
    empty = [name for name, files in groups.items() if not files]
    if empty:
        raise JoinError(f"no input file of the recording for {empty} (inputs: {sorted(seen)})")
    return groups, options or ReadOptions()


def evaluate_run(run, signals: Mapping[str, str | Sequence[str]], fprs: Sequence[float] = tm.FPRS,
                 input_rates: Sequence[float] = tm.INPUT_RATES_HZ, selection: tm.JetSelection = DEFAULT_SELECTION,
                 search_dirs: Sequence[str] = ()) -> dict[str, Any]:
    """The equal-rate comparison of a :class:`~consumer.analysis.run.Run`'s recorded scores (the results of
    `aetrig evaluate --recording`: ``models["recording (<model>)"]["signals"][signal]["fpr"]`` per FPR, the HT and
    leading-jet-pT TPRs, AUCs). ``signals``: {name: file name pattern(s) of its input files}; the other input
    files are the background.

    Example::

        results = evaluate_run(run, {"zprime": "zprime.root"}, fprs=(1e-2, 1e-3))
        row = results["models"]["recording (EVT_AE_ht)"]["signals"]["zprime"]["fpr"]["0.01"]
        print(row["tpr"], row["ht_tpr"], row["lead_pt_tpr"])"""
    from consumer.analysis.run import AnalysisError

    try:
        groups, options = input_groups(run.manifests, signals, search_dirs)
        background = load_sample("background", groups["background"], ["pt", "eta"], options)
        samples = {name: load_sample(name, groups[name], ["pt", "eta"], options) for name in signals}
        scores = recording_set([str(run.directory)], background, samples, tree=options.tree)
    except (JoinError, RecordingMismatch, ValueError, OSError) as exc:
        raise AnalysisError(f"{run.directory}: cannot evaluate: {exc}") from exc
    inputs = ev.menu_inputs([scores], background, samples, selection)
    return ev.compare([scores], inputs, background, samples, selection, tuple(fprs), tuple(input_rates))
