"""Design study of the event-level anomaly score and shipping of the chosen design (`aetrig event-design`).

Two knobs on top of a trained event model (``aetrig train --level event``), neither retrains it:

- the feature-group weight of its error: ``--global-weight G`` multiplies the score weight of the
  event-level features (models.runtime.event_features.GLOBAL_FEATURES: HT, MHT, MHT/HT, jet
  multiplicity, masses, MHT alignment) by G relative to the per-slot jet features, renormalised
  so the weights still average the original ones; the graphs are re-exported from model.pt with
  these weights (:func:`reweighted_copy`), so the scorer's ``error`` is that weighted error;
- the score: models.runtime.score_transform terms ``--combo E,L,H`` = error weight, latent weight,
  HT weight (E * -log10 p(error | HT bin) + L * -log10 p(latent sum z^2 | HT bin) + H * -log10 P(HT)).

``compare``: for each model, group weight and combo (plus the raw error and latent scores): TPR /
HT TPR / leading-jet-pT TPR / pure TPR at equal FPR (models.runtime.trigger_menu.judge) on the
design signals. Every transform is fitted on the TRAINING split of the training background only
(the model's card split); the design background is that file's val + test splits plus any
``--extra-background`` (events no model was trained on).

``ship``: a new model directory from ``--model``: re-exported with ``--global-weight``, its card
with the ``score_transform`` block (fitted on the training split) and per-event thresholds of the
transformed score computed on ``--calibrate`` background files (so `--fpr` picks the transformed
score's threshold).

    aetrig event-design compare --train-background data/qcd_train_200k.root \
        --models /tmp/evt/j10s4k6 --global-weight 1 10 --combo 1,0,0 1,0.5,1 \
        --signal tth=data/design_tth_s1103.root --out /tmp/design
    aetrig event-design ship --model /tmp/evt/j10s4k6 --global-weight 10 --combo 1,0.5,1 \
        --train-background data/qcd_train_200k.root --calibrate data/qcd_test_200k.root \
        --out models/zoo/EVT_AE_ht
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emulator.runtime.defaults import resolve_model
from emulator.runtime.stage_config import KeyValuesAction
from emulator.runtime.tables import text_table
from models.runtime import score_transform as st
from models.runtime import trigger_menu as tm
from models.runtime.card import Level, ModelDir, load_model_dir, write_card
from models.runtime.data import JetSample, load_jets, split_events
from models.runtime.event_features import EVENT_VARIABLES, GLOBAL_FEATURES
from models.runtime.event_scoring import score_flat_events
from models.runtime.hashing import sha256_file
from models.runtime.rebuild import parent_rebuild, rebuild_block
from models.runtime.thresholds import MIN_TAIL, dense_curve, threshold_rows
from models.training.event_train import event_threshold_table
from models.training.modeldir import CHECKPOINT, load_checkpoint, save_checkpoint

DESIGN_FPRS = (1e-2, 1e-3, 1e-4)


@dataclass
class Outputs:
    """Per-event outputs of one event model on one sample, with the trigger variables."""

    error: np.ndarray
    latent: np.ndarray
    ht: np.ndarray
    lead_pt: np.ndarray


def load(paths: Sequence[str]) -> JetSample:
    """The jets of ``paths`` with the event models' variables."""
    return load_jets(list(paths), list(EVENT_VARIABLES))


def training_split(model: ModelDir, sample: JetSample) -> dict[str, np.ndarray]:
    """The model's own train/val/test event masks on ``sample`` (its card's --split fractions and --seed)."""
    trained = [f["sha256"] for f in model.card["training"]["data"]["files"]]
    if [f["sha256"] for f in sample.files] != trained:
        raise SystemExit(f"{model.name} was trained on other files (sha256 {trained}) than "
                         f"{[f['name'] for f in sample.files]}: its training split cannot be rebuilt")
    config = model.card["training"]["config"]
    fractions = tuple(model.card["training"]["data"]["split"]["fractions"])
    return split_events(sample, fractions, seed=int(config["seed"]))


def outputs(model: ModelDir, sample: JetSample, selection: tm.JetSelection = st.SELECTION) -> Outputs:
    """Scorer outputs (error, latent) and trigger HT / leading-jet pT of every event of ``sample``."""

    values = sample.values[:, [sample.variables.index(v) for v in model.variables]]
    latent, _, error = score_flat_events(model.scorer_path, values, sample.counts,
                                         int(model.card["event_input"]["jets"]))
    ht, lead = tm.trigger_variables(sample.values[:, sample.variables.index("pt")],
                                    sample.values[:, sample.variables.index("eta")], sample.counts, selection)
    return Outputs(error.astype(np.float64), latent.astype(np.float64), ht, lead)


def subset(o: Outputs, mask: np.ndarray) -> Outputs:
    return Outputs(o.error[mask], o.latent[mask], o.ht[mask], o.lead_pt[mask])


def concat(parts: Sequence[Outputs]) -> Outputs:
    return Outputs(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("error", "latent", "ht", "lead_pt")))


def parse_combo(text: str) -> tuple[float, float, float]:
    """'E,L,H' -> (error weight, latent weight, HT weight)."""
    parts = tuple(float(x) for x in text.split(","))
    if len(parts) != 3 or not (parts[0] or parts[1]):
        raise SystemExit(f"--combo expects E,L,H with E or L non-zero, got {text!r}")
    return parts  # type: ignore[return-value]


def fit_block(train: Outputs, combo: tuple[float, float, float], min_events: int = st.MIN_BIN_EVENTS,
              fitted_on: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A score_transform block (terms and HT weight of ``combo``) fitted on the training-split outputs ``train``."""
    mean, std = tm.standardisation(train.latent)
    raws = {"error": train.error, "latent": tm.latent_score(train.latent, mean, std)}
    weights = {k: w for k, w in zip(st.RAW_KINDS, combo[:2], strict=True) if w}
    return st.fit(raws, train.ht, weights, combo[2], min_events, mean.tolist(), std.tolist(), fitted_on=fitted_on)


def variant_scores(train: Outputs, samples: Mapping[str, Outputs], combos: Sequence[tuple[float, float, float]],
                   min_events: int = st.MIN_BIN_EVENTS) -> dict[str, dict[str, np.ndarray]]:
    """{variant: {sample: score}}: the raw error, the raw latent score and each combo's transformed score."""
    mean, std = tm.standardisation(train.latent)
    out: dict[str, dict[str, np.ndarray]] = {
        "error": {n: o.error for n, o in samples.items()},
        "latent": {n: tm.latent_score(o.latent, mean, std) for n, o in samples.items()}}
    for combo in combos:
        block = fit_block(train, combo, min_events)
        out["E{:g},L{:g},H{:g}".format(*combo)] = {n: st.score(block, o.error, o.latent, o.ht)
                                                   for n, o in samples.items()}
    return out


def reweighted_copy(model: ModelDir, out: Path, global_weight: float, train_file: JetSample) -> ModelDir:
    """``model`` re-exported into ``out`` with the global features' score weights times ``global_weight``.

    The network is unchanged (model.pt); scorer/encoder/decoder graphs are exported again with the new
    weights, the card's ``score`` records them and its thresholds are recomputed on the test split."""
    from models.training.event_graphs import export_event_graphs

    net, norm, config = load_checkpoint(model.path)
    base = np.asarray(model.card["score"]["inverse_residual_variance"], dtype=np.float64)
    group = np.ones(base.size)
    group[:len(GLOBAL_FEATURES)] = global_weight
    weights = (base * group * group.size / group.sum()).tolist()
    spec = model.card["event_input"]
    out.mkdir(parents=True, exist_ok=True)
    export_event_graphs(net, norm, out, int(spec["jets"]), int(spec["slots"]), model.variables, weights,
                        config["empty_slot_fill"])
    save_checkpoint(out / CHECKPOINT, net, "event", norm,
                    {k: v for k, v in config.items() if k not in ("kind", "sizes", "normalisation")}
                    | {"score_weights": weights})
    card = json.loads(json.dumps(model.card))
    card["name"] = out.name
    card["score"] = {
        **card["score"],
        "definition": "error = mean_i w_i (out_i - y_i)^2, y = standardised event vector, w_i = weights (the "
                      "global features' 1 / residual variance times global_weight, the slot features' 1 / "
                      "residual variance, renormalised by n_features / sum of the group factors)",
        "global_weight": float(global_weight), "global_features": list(GLOBAL_FEATURES), "weights": weights}
    card["metrics"]["note"] = "test-split metrics of the source model (its score weights, before reweighting)"
    test = train_file.select_events(training_split(model, train_file)["test"])
    values = test.values[:, [test.variables.index(v) for v in model.variables]]
    error = score_flat_events(out / "scorer.onnx", values, test.counts, int(spec["jets"]))[2]
    card["thresholds"] = event_threshold_table(error, {"files": train_file.files, "split": "test"})
    card["files"] = {name: sha256_file(out / name) for name in card["files"]}
    write_card(out, card)
    return load_model_dir(out, level=Level.EVENT)


def judge_all(scores: Mapping[str, np.ndarray], samples: Mapping[str, Outputs], background: str,
              fprs: Sequence[float] = DESIGN_FPRS) -> dict[str, Any]:
    """trigger_menu.judge of one score on every signal against ``background``."""
    b = samples[background]
    tb = tm.TriggerScores(scores[background], b.ht, b.lead_pt)
    return {n: tm.judge(tb, tm.TriggerScores(scores[n], o.ht, o.lead_pt), fprs)
            for n, o in samples.items() if n != background}


def summary_rows(results: Mapping[str, Mapping[str, Any]], fpr: str) -> list[list[str]]:
    """Rows: model/variant, then per signal 'TPR (HT TPR) pure' at ``fpr``."""
    rows = []
    for name, per in results.items():
        cells = [name]
        for r in per.values():
            x = r["fpr"][fpr]
            mark = "+" if x["tpr"] > x["ht_tpr"] else " "
            cells.append(f"{x['tpr']:.3f}{mark}({x['ht_tpr']:.3f}) {x['pure_tpr']:.3f}")
        rows.append(cells)
    return rows


def compare(args: argparse.Namespace) -> int:

    train_file = load([args.train_background])
    extra = load(args.extra_background) if args.extra_background else None
    signals = {}
    for name, files in args.signal.items():
        signals[name] = load(files.split(","))
    combos = [parse_combo(c) for c in args.combo]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.models:
            source = load_model_dir(path, level=Level.EVENT)
            for g in args.global_weight:
                model = source if g == 1 else reweighted_copy(source, Path(tmp) / f"{source.name}_g{g:g}", g,
                                                              train_file)
                masks = training_split(model, train_file)
                full = outputs(model, train_file)
                held = [subset(full, ~masks["train"])] + ([outputs(model, extra)] if extra is not None else [])
                samples = {"background": concat(held), **{n: outputs(model, s) for n, s in signals.items()}}
                for variant, scores in variant_scores(subset(full, masks["train"]), samples, combos,
                                                      args.min_bin_events).items():
                    results[f"{source.name}:g{g:g}:{variant}"] = judge_all(scores, samples, "background")
                print(f"{source.name} g{g:g}: done ({len(samples['background'].ht)} background events)",
                      file=sys.stderr)
    names = list(signals)
    text = []
    for fpr in (f"{f:g}" for f in DESIGN_FPRS):
        text += [f"FPR {fpr}: TPR(+ if > HT)(HT TPR) pure TPR", text_table(["model:score", *names],
                                                                           summary_rows(results, fpr)), ""]
    print("\n".join(text))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "design.txt").write_text("\n".join(text))
        (out / "design.json").write_text(json.dumps(results, indent=1, default=float))
    return 0


def ship(args: argparse.Namespace) -> int:
    """Copy ``--model`` to ``--out`` with the score_transform block and thresholds of the transformed score."""

    source = load_model_dir(args.model, level=Level.EVENT)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} exists and is not empty")
    combo = parse_combo(args.combo)
    train_file = load([args.train_background])
    model = reweighted_copy(source, out, args.global_weight, train_file)
    masks = training_split(model, train_file)
    train = subset(outputs(model, train_file), masks["train"])
    block = fit_block(train, combo, args.min_bin_events,
                      fitted_on={"files": train_file.files, "split": "train", "n_events": int(masks["train"].sum()),
                                 "split_rule": "the model's training split (card training.data.split)"})
    calib = load(args.calibrate)
    o = outputs(model, calib)
    score = st.score(block, o.error, o.latent, o.ht)
    card = json.loads(json.dumps(model.card))
    card["name"] = args.name or out.name
    card["source"] = {"model": source.name, "card_version": source.version,
                      "training_command": source.card["training"]["command"],
                      "what": "the same network (model.pt); graphs re-exported with the score weights of score, and "
                              "the anomaly score is the score_transform of the scorer's error and latent",
                      "command": getattr(args, "command_text", None)
                      or "aetrig event-design ship (run from code: the options are not recorded)"}
    if args.design_signal:
        from models.runtime.hashing import sha256_file

        card["source"]["design_signals"] = [
            {"name": name, "file": Path(f).name, "sha256": sha256_file(f)} for name, f in args.design_signal.items()]
        card["source"]["design_rule"] = ("global weight and combo chosen on these signals only (design background: "
                                         "the training file's val + test splits and producer/samples/qcd.root); "
                                         "results are to be reported on signals generated afterwards")
    card["source"]["rebuild"] = rebuild_block(
        "the aetrig commands that rebuild this directory: its data, then the training, then this ship step",
        [args.train_background, *args.calibrate, *args.design_signal.values()], [card["source"]["command"]],
        parent_rebuild(source.card) or {"commands": [source.card["training"]["command"]]})
    card["score_transform"] = block
    card["score"]["anomaly_score"] = ("score_transform.score(card, error, latent, HT) of the scorer's outputs and the "
                                      "event HT; the thresholds are on that score")
    card["thresholds"] = {
        "sample": {"files": calib.files, "n_events": calib.n_events, "split": "all"},
        "rule": f"flag if event_score > threshold; event_score = score_transform.score(card, error, latent, HT) "
                f"(models/runtime/score_transform.py); n = background events above; reliable if n >= {MIN_TAIL}",
        "per_jet": [], "per_event": threshold_rows(score), "per_event_curve": dense_curve(score)}
    write_card(out, card)
    load_model_dir(out, level=Level.EVENT)
    print(f"wrote {out}: " + ", ".join(f"FPR {r['fpr']:g} > {r['threshold']:.3f} (n={r['n']})"
                                      for r in card["thresholds"]["per_event"]))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``compare`` or ``ship`` and their options (one flat parser: every option is a flag of the command)."""
    parser.add_argument("action", choices=["compare", "ship"],
                        help="compare: score variants of event models on design signals; ship: write a model dir "
                             "with the chosen score_transform")
    parser.add_argument("--models", nargs="+", type=resolve_model, metavar="NAME_OR_DIR",
                        help="compare: the event models (aetrig train --level event), each a directory or a name "
                             "under models/zoo (was --model)")
    parser.add_argument("--model", type=resolve_model, metavar="NAME_OR_DIR",
                        help="ship: the event model to ship, a directory or a name under models/zoo")
    parser.add_argument("--train-background", required=True,
                        help="the models' training file (its train split fits the transform)")
    parser.add_argument("--global-weight", nargs="+", type=float, default=[1.0],
                        help="global features' weight factor(s) (ship: one)")
    parser.add_argument("--combo", nargs="+", default=None,
                        help="E,L,H: error, latent and HT term weights (compare: default 1,0,0 1,0,1 1,0.5,1; "
                             "ship: one, default 1,0,0)")
    parser.add_argument("--signal", action=KeyValuesAction, default={}, metavar="NAME=FILES",
                        help="compare: design signals, each one's files comma-separated")
    parser.add_argument("--extra-background", nargs="*", default=[], help="compare: more held-out background files")
    parser.add_argument("--calibrate", nargs="+", help="ship: background files of the card thresholds")
    parser.add_argument("--name", help="ship: the card name (default: the --out folder name)")
    parser.add_argument("--design-signal", action=KeyValuesAction, default={}, metavar="NAME=FILE",
                        help="ship: record the signals the design was chosen on (name, file, sha256) in the card")
    parser.add_argument("--out", help="compare: folder for design.txt/json; ship: the model dir to write")
    parser.add_argument("--min-bin-events", type=int, default=st.MIN_BIN_EVENTS)


def run(args: argparse.Namespace) -> int:
    """Run the parsed action (SystemExit with a clear message for options that do not fit it)."""
    args.command = args.action
    if args.action == "compare":
        if not args.models:
            raise SystemExit("event-design compare: give the event models, --models DIR [DIR ...]")
        if not args.signal:
            raise SystemExit("event-design compare: give at least one --signal NAME=FILES")
        args.combo = args.combo or ["1,0,0", "1,0,1", "1,0.5,1"]
        return compare(args)
    if not args.model or len(args.global_weight) != 1 or (args.combo and len(args.combo) != 1):
        raise SystemExit("event-design ship: give --model, one --global-weight and one --combo")
    if not args.calibrate or not args.out:
        raise SystemExit("event-design ship: --calibrate FILES and --out DIR are required")
    args.global_weight = args.global_weight[0]
    args.combo = args.combo[0] if args.combo else "1,0,0"
    return ship(args)


def main(argv: Sequence[str] | None = None) -> int:
    """``aetrig event-design`` (models/training/event_design_command.py) without the CLI: the same options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.command_text = shlex.join(["aetrig", "event-design", *(sys.argv[1:] if argv is None else argv)])
    return run(args)
