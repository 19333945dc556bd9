"""Judge anomaly models against an HT and a leading-jet-pT trigger at the same rate.

For each signal, at each FPR on the background (default 1e-2, 1e-3, 1e-4, 1e-5) and as a rate in Hz
at each input rate (default 100 kHz and 1 MHz): the TPR of every anomaly score, the TPR of an HT
trigger and of a leading-jet-pT trigger each at the same FPR, and the pure TPR (flagged by the
model and by neither simple trigger); AUC overall and inside HT bins. Anomaly scores: per-jet models
give the max per-jet error, event-level models their event AE error and, from encoder.onnx alone,
an AXOL1TL-style latent score (sum of squared latent coordinates standardised with the background's
mean and sigma; event models only). --recording adds the event scores a recording holds, joined to
the input files through its run manifest, as one more row, named by the recording's anomaly card
(the model that scored and flagged its events). HT = scalar sum of the pT of jets with
pT > 30 GeV and |eta| < 2.5 (--jet-min-pt, --jet-max-eta); leading-jet pT = the largest pT among
those jets. Rows with fewer than 10 background events above a threshold are marked unreliable.

Every sample is read as `aetrig run` reads its input, with its options (--input-format physlite,
nanoaod, delphes: TTree or RNTuple found file by file; --tree, --branch-map, --unit, --derive-e; the
producer's reader and input screen: jets in GeV, NaN and sentinel jets left out), so the HT and
leading-jet pT of an event are those of the event the producer sent. With --recording, a file its run
manifest names is read with the settings that run read it with (whatever the flags say), and the
background defaults to the recording's input files that no --signal names. Each model scores only the
jets inside its card's training domain, as the encoder gives them (--score-all-jets: every jet).

The background is what the rates are fractions of: with the bundled QCD (pT-hat > 100 GeV) a rate
in Hz is a fraction of that stream, not of zero-bias collisions. Defaults: background
producer/samples/qcd.root, signals zprime, darkshower, ttbar, models AE_3D_200_ptetaphie and
EVT_AE_ht. Prints the table; --out DIR writes evaluate.json, evaluate.md and the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from emulator.runtime.stage_config import KeyValuesAction
from models.runtime.card import LEVELS, Level

if TYPE_CHECKING:
    from producer.reader import ReaderSpec

EXAMPLES = """
aetrig evaluate --out eval
aetrig evaluate --background data/qcd_train_200k.root --signal zprime=producer/samples/zprime.root \\
  --models EVT_AE_k1 EVT_AE_k4 AE_3D_200_ptetaphie --out eval_200k
aetrig run --input producer/samples/qcd.root producer/samples/zprime.root --rate 20000 --loops 1 --out runs/mix
aetrig evaluate --recording runs/mix --recording-model EVT_AE_k1 --signal zprime=producer/samples/zprime.root
aetrig run --input-format physlite --input producer/samples/physlite_example.root \\
  producer/samples/physlite_rntuple_example.root --anomaly-model EVT_AE_4v --rate 0 --loops 1 --out runs/physlite
aetrig evaluate --recording runs/physlite --signal rnt=producer/samples/physlite_rntuple_example.root \\
  --models EVT_AE_4v --fpr 1e-1 1e-2
aetrig evaluate --input-format nanoaod --background producer/samples/nanoaod_example.root \\
  --signal rnt=producer/samples/nanoaod_rntuple_example.root --models EVT_AE_4v --fpr 1e-1
"""

DEFAULT_EVENT_MODEL = "EVT_AE_ht"
DEFAULT_SIGNALS = ("zprime", "darkshower", "ttbar")


class EvaluateError(Exception):
    """Bad input to `aetrig evaluate`, with a message for the user."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from producer.config import add_input_arguments

    add_input_arguments(parser, input_flags=("--background",),
                        title="samples (read as aetrig produce and aetrig run read their input, with its options)",
                        input_help="background ROOT files or globs (default bundled qcd.root; with --recording: the "
                                   "recording's input files that no --signal names)")
    g = parser.add_argument_group("signals")
    g.add_argument("--signal", action=KeyValuesAction, default={}, metavar="NAME=FILES",
                   help="signal samples, each one's files comma-separated or a glob, read with the same options "
                        "(default bundled zprime, darkshower, ttbar)")
    g.add_argument("--max-events", type=int, default=None, help="read at most N events per sample")
    g = parser.add_argument_group("scores")
    g.add_argument("--models", nargs="+", action="extend", metavar="NAME_OR_DIR",
                   help="the models, each a directory or a name under models/zoo (default AE_3D_200_ptetaphie and "
                        "EVT_AE_ht; was --model)")
    g.add_argument("--recording", action="append", default=[], metavar="DIR",
                   help="also evaluate the event scores recorded in DIR (the --out of aetrig run or aetrig "
                        "sink; repeatable, one model)")
    g.add_argument("--score-all-jets", action="store_true",
                   help="score every jet, also those outside a model's training domain (as the encoder's "
                        "--score-all-jets; default: only the jets inside, as the encoder gives them)")
    g.add_argument("--recording-model", metavar="NAME_OR_DIR",
                   help="the model that must have scored the recording's events (error if its anomaly card "
                        "differs)")
    g = parser.add_argument_group("operating points and triggers")
    g.add_argument("--fpr", nargs="+", type=float, default=None, help="background FPRs (default 1e-2 1e-3 1e-4 1e-5)")
    g.add_argument("--input-rate", nargs="+", type=float, default=None, metavar="HZ",
                   help="input rates for the rate in Hz (default 100000 1000000)")
    g.add_argument("--jet-min-pt", type=float, default=30.0, help="jets of HT and leading-jet pT: pT > this [GeV]")
    g.add_argument("--jet-max-eta", type=float, default=2.5, help="jets of HT and leading-jet pT: |eta| < this")
    g = parser.add_argument_group("output")
    g.add_argument("--out", default=None, metavar="DIR", help="write evaluate.json, evaluate.md and figures here")
    g.add_argument("--no-plots", action="store_true", help="with --out: numbers and tables only")


def _signals(samples: dict[str, str]) -> dict[str, list[str]]:
    from consumer.offline.report_command import named_files
    from consumer.offline.studies.common import bundled

    if not samples:
        return {n: [str(bundled(n))] for n in DEFAULT_SIGNALS}
    return named_files(samples)


def _load(name: str, files: list[str], args: argparse.Namespace, recorded: Mapping[str, ReaderSpec]):  # -> Sample
    """A sample read with the producer's input options; a file a --recording's manifest names (by sha256) with the
    settings that run read it with."""
    from consumer.offline.evaluate_recording import file_sha256
    from consumer.offline.studies.common import load_sample
    from producer.config import resolve_inputs
    from producer.inputs import reader_spec

    for f in files:
        if not any(c in f for c in "*?[") and not os.path.isfile(f):
            raise EvaluateError(f"{name}: file {f} does not exist")
    try:
        spec = reader_spec(resolve_inputs(args, input=files))
        return load_sample(name, files, None, spec, args.max_events,
                           (lambda p: recorded.get(file_sha256(p), spec)) if recorded else None)
    except (OSError, ValueError) as exc:  # the reader's errors are ValueErrors
        raise EvaluateError(f"{name}: cannot read {files}: {exc}") from exc


def _models(names: list[str] | None) -> list:
    from consumer.offline.report import model_dirs
    from consumer.offline.studies.common import load_model
    from emulator.runtime.defaults import ZOO, default_model
    from models.runtime.card import ModelError

    if names is None:
        names = [str(default_model(announce=False)), str(ZOO / DEFAULT_EVENT_MODEL)]
    try:
        return [load_model(d, level=None) for d in model_dirs(names)]
    except (FileNotFoundError, ModelError) as exc:
        raise EvaluateError(str(exc)) from exc


def _check_variables(model, samples) -> None:
    for s in samples:
        missing = [v for v in model.variables if v not in s.variables]
        if missing:
            raise EvaluateError(f"model {model.name} needs jet variables {missing} that sample {s.name} "
                                f"({', '.join(s.files)}) lacks (it has {s.variables}); map them with --branch-map "
                                "or choose other --models")


def score_sets(models: list, background, signals, progress: bool = True, select_domain: bool = True) -> list:
    """ScoreSets of each model (max per-jet error or event AE error) and, for event models, the latent score, each
    from the jets inside the model's training domain as the encoder scores them (``select_domain`` False: every
    jet, the encoder's --score-all-jets)."""
    from consumer.offline.evaluate import ScoreSet, in_domain, latent_set
    from consumer.offline.studies.study_anomaly import scores
    from emulator.runtime.progress import Progress

    samples = [background, *signals.values()]
    steps = sum(len(samples) * (2 if m.level == Level.EVENT else 1) for m in models)
    sets = []
    with Progress(steps if progress else None, "evaluate: scoring", unit="samples") as bar:
        for m in models:
            seen, outside = {}, {}
            for s in samples:
                seen[s.name], outside[s.name] = in_domain(m, s, select_domain)
            per = {}
            for s in samples:
                per[s.name] = scores(m, seen[s.name])[Level.EVENT]  # the model's score (score_transform applied once)
                bar.update(1, model=m.name, sample=s.name)
            notes = ["score = the card's score_transform (HT-conditional p-value)"] if "score_transform" in m.card \
                else []
            if any(outside.values()):
                notes.append("jets outside its training domain left out as the encoder does: "
                             + ", ".join(f"{n} {k}" for n, k in outside.items()))
            sets.append(ScoreSet(m.name, m.level, m.name, per[background.name], {n: per[n] for n in signals},
                                 "; ".join(notes), extra={"jets_outside_domain": outside}))
            if m.level == Level.EVENT:
                sets.append(latent_set(m, seen[background.name], {n: seen[n] for n in signals}))
                bar.update(len(samples), model=f"{m.name} latent")
    return sets


def _recording_dirs(args: argparse.Namespace) -> list[str]:
    from emulator.runtime.recording import RecordingError, recording_dir

    if not args.recording and args.recording_model:
        raise EvaluateError("--recording-model needs --recording DIR")
    try:
        return [str(recording_dir(d)) for d in args.recording]
    except RecordingError as exc:
        raise EvaluateError(str(exc)) from exc


def _samples(args: argparse.Namespace, dirs: list[str]) -> tuple:  # -> (Sample, {name: Sample})
    """The background and signals; with --recording its inputs are read as its runs read them, and the
    background defaults to its input files that no --signal names."""
    from consumer.offline.evaluate_recording import file_sha256, recorded_inputs
    from consumer.offline.join import JoinError
    from consumer.offline.studies.common import bundled
    from emulator.runtime.recording import RecordingError, open_recording
    from producer.reader import expand_inputs

    try:
        recorded = recorded_inputs([m for d in dirs for m in open_recording(d).manifests.values()], find=False)
    except (RecordingError, JoinError) as exc:
        raise EvaluateError(str(exc)) from exc
    specs = {r.sha256: r.spec for r in recorded if r.sha256}
    signal_files = _signals(args.signal)
    background_files = getattr(args, "input", None) or ([str(bundled("qcd"))] if not dirs else None)
    if background_files is None:
        try:
            taken = {file_sha256(p) for files in signal_files.values() for p in expand_inputs(files)}
        except (OSError, ValueError) as exc:
            raise EvaluateError(f"signal: {exc}") from exc
        background_files = [r.path for r in recorded if r.sha256 not in taken]
        if not background_files:
            raise EvaluateError(f"every input file of {dirs} is a --signal's: give --background FILE")
    background = _load("background", background_files, args, specs)
    return background, {n: _load(n, f, args, specs) for n, f in signal_files.items()}


def _recording(args: argparse.Namespace, dirs: list[str], background, signals):  # -> ScoreSet | None
    """The recording row, checked against --recording-model when given."""
    from consumer.offline.evaluate_recording import recording_set
    from consumer.offline.join import JoinError
    from emulator.runtime.recording import RecordingError

    if not dirs:
        return None
    model = _models([args.recording_model])[0] if args.recording_model else None
    try:
        return recording_set(dirs, background, signals, model)
    except (RecordingError, JoinError, ValueError, KeyError) as exc:
        raise EvaluateError(str(exc)) from exc


def evaluate(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """Run the comparison from parsed arguments; return the results and the files written."""
    from consumer.offline import evaluate as ev
    from consumer.offline.evaluate_recording import FULL_BITS, agreement, card_identity
    from models.runtime import trigger_menu as tm

    dirs = _recording_dirs(args)
    background, signals = _samples(args, dirs)
    for s in (background, *signals.values()):
        if not {"pt", "eta"} <= set(s.variables):
            raise EvaluateError(f"sample {s.name} lacks jet pt/eta: the HT and leading-jet-pT triggers need them")
    models = _models(args.models)
    for m in models:
        _check_variables(m, [background, *signals.values()])
    rec = _recording(args, dirs, background, signals)  # before the models run: a wrong recording fails fast
    sets = score_sets(models, background, signals, select_domain=not args.score_all_jets)
    if rec is not None:
        offline = {st.model: st for st in sets if st.kind in LEVELS}
        same = [m for m in models if m.name in offline
                and card_identity(m.card) == card_identity({"name": rec.model, "files": rec.extra["card_files"]})]
        if same:
            rec.extra["agreement_with_offline"] = {"model": same[0].name, **agreement(rec, offline[same[0].name])}
        elif any(m.name == rec.model for m in models):
            rec.note += ("; the model of that name in --models has other graphs (sha256) than the recording's card: it "
                         "is not the model the recording was made with")
        sets.append(rec)
    selection = tm.JetSelection(args.jet_min_pt, args.jet_max_eta)
    inputs = ev.menu_inputs(sets, background, signals, selection)
    results = ev.compare(sets, inputs, background, signals, selection, tuple(args.fpr or tm.FPRS),
                         tuple(args.input_rate or tm.INPUT_RATES_HZ))
    if rec is not None and "agreement_with_offline" in rec.extra:
        a = rec.extra["agreement_with_offline"]
        results["notes"].append(f"recorded scores vs {a['model']} run offline on the same {a['n_events']} events: "
                                f"max |difference| {a['max_abs_difference']:.3g} "
                                f"(relative {a['max_rel_difference']:.3g})"
                                + (f"; the recording keeps {rec.extra['score_bits']} mantissa bits of each score "
                                   f"(relative rounding up to {2.0 ** -rec.extra['score_bits']:.2g})"
                                   if rec.extra["score_bits"] < FULL_BITS else ""))
    written: list[str] = []
    if args.out:
        written += ev.write_outputs(results, args.out)
        if not args.no_plots:
            from consumer.offline import evaluate_plots
            from emulator.runtime import plotting

            origin = plotting.merge_origins(*(plotting.origin_of_files(s.files)
                                              for s in (background, *signals.values())))
            fig_dir = os.path.join(args.out, "figures")
            written += evaluate_plots.roc_figures(inputs, results, fig_dir, "evaluate", origin=origin)
            written += evaluate_plots.pure_figures(inputs, results, fig_dir, "evaluate", origin=origin)
    return results, written


def main(args: argparse.Namespace) -> int:
    try:
        results, written = evaluate(args)
    except EvaluateError as exc:
        print(f"aetrig evaluate: {exc}", file=sys.stderr)
        return 2
    from consumer.offline.evaluate import render

    print(render(results))
    if written:
        print(f"evaluate: wrote {', '.join(str(Path(p)) for p in written if not p.endswith('.pdf'))} "
              "(figures also as PDF)")
    return 0
