"""Recompute a model's anomaly thresholds on your own background and write a new card version.

Thresholds only fit the sample they were computed on: run this on a background that matches the
stream you will process. The background is read exactly as `aetrig run` reads its input, with the same
options (--input-format, --tree, --branch-map, --unit, Cartesian px/py/pz/e maps, --derive-e, the input
screen), so a NanoAOD, PHYSLITE (TTree or RNTuple) or Delphes file calibrates as it streams. Either
kind of model: a per-jet model's scorer runs on every jet (per-jet and per-event error quantiles); an
event-level model scores every event as the encoder does. Both see only the jets inside the card's
training domain, as in the stream (--score-all-jets: every jet, like the encoder's flag of that name).
The rows for false-positive rates 1e-1 .. 1e-5 (with the number of events behind each, and a
reliability flag) and the dense per-event curve replace the card's table; the version is bumped. --fpr,
or --accept-rate with --input-rate, prints the threshold a run will use for that target, and the
`aetrig run` flags that select it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.runtime.data import JetSample
    from producer.inputs import Inputs

EXAMPLES = """
aetrig calibrate --model AE_3D_200_ptetaphie --background producer/samples/qcd.root --out /tmp/ae_mycal
aetrig calibrate --model EVT_AE_ht --background producer/samples/qcd.root --out /tmp/evt_mycal --fpr 1e-3
aetrig calibrate --model AE_3D_200_ptetaphie --background producer/samples/nanoaod_example.root \\
    --input-format nanoaod --out /tmp/ae_nano --accept-rate 100 --input-rate 100000
aetrig calibrate --model /tmp/mymodel --background 'bg/*.root' --input-format physlite \\
    --branch-map pt=AnalysisJetsAuxDyn.pt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from emulator.runtime.defaults import resolve_model
    from producer.config import add_input_arguments

    parser.add_argument("--model", type=resolve_model, required=True, metavar="NAME_OR_DIR",
                        help="the model (per-jet or event-level): a directory or a name under models/zoo (was the "
                             "positional argument MODEL)")
    add_input_arguments(parser, input_flags=("--background", "--input"),
                        title="background input (the options of aetrig produce and aetrig run)",
                        input_help="background ROOT files or globs (required)")
    parser.add_argument("--out", default=None, help="write a calibrated copy here instead of updating MODEL in place")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    parser.add_argument("--score-all-jets", action="store_true",
                        help="score every jet, also those outside the card's training domain (as the encoder's "
                             "--score-all-jets; default: only the jets inside, as the encoder gives them)")
    target = parser.add_argument_group("print the threshold for (one of)").add_mutually_exclusive_group()
    target.add_argument("--fpr", type=float, help="background false-positive rate per event")
    target.add_argument("--accept-rate", type=float, metavar="HZ", help="flagged events per second, at --input-rate")
    parser.add_argument("--input-rate", type=float, metavar="HZ", help="the stream's event rate, for --accept-rate")


def load_background(inputs: Inputs) -> JetSample:
    """Every event of the checked inputs as a models.runtime JetSample (jets of the requested variables)."""
    import numpy as np

    from emulator.runtime.progress import Progress
    from models.runtime.data import JetSample
    from models.runtime.hashing import sha256_file
    from producer.reader import read_chunks

    values, counts, file_index, entry = [], [], [], []
    with Progress(None, "reading the background", unit="events") as bar:
        for chunk in read_chunks(inputs.files, inputs.spec, inputs.variables, plans=inputs.plans):
            values.append(np.stack([chunk.jets[v] for v in inputs.variables], axis=1))
            counts.append(chunk.n_jets.astype(np.int64))
            file_index.append(chunk.file_index.astype(np.int64))
            entry.append(chunk.entry.astype(np.int64))
            bar.update(len(chunk))
    n_vars = len(inputs.variables)
    counts_all = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    index_all = np.concatenate(file_index) if file_index else np.zeros(0, np.int64)
    files = [{"name": p.name, "sha256": sha256_file(p), "n_events": int(np.sum(index_all == i)),
              "n_jets": int(counts_all[index_all == i].sum())} for i, p in enumerate(inputs.files)]
    return JetSample(list(inputs.variables), np.concatenate(values) if values else np.zeros((0, n_vars), np.float32),
                     counts_all, index_all, np.concatenate(entry) if entry else np.zeros(0, np.int64), files)


def main(args: argparse.Namespace) -> int:
    from models.runtime.calibrate import calibrate
    from models.runtime.card import Level, ModelError, load_model_dir
    from models.runtime.data import DataError
    from models.runtime.rebuild import add_step, typed_command
    from producer.config import resolve_inputs
    from producer.inputs import open_inputs

    if args.accept_rate is not None and args.input_rate is None:
        print("aetrig calibrate: --accept-rate needs --input-rate (the stream's event rate in Hz)", file=sys.stderr)
        return 2
    try:
        model = load_model_dir(args.model, level=None)
        if not getattr(args, "input", None):
            raise ValueError("give the background file(s): --background FILE [FILE ...]")
        columns = list(dict.fromkeys([*model.variables, "pt", "eta"]))  # pt, eta: the training domain's cuts
        inputs = open_inputs(resolve_inputs(args, columns=columns))
        sample = load_background(inputs)
        card = calibrate(args.model, sample, threads=args.threads, out=args.out,
                         select_domain=not args.score_all_jets)
        if (command := typed_command("calibrate", sys.argv)) is not None:  # the card's source.rebuild gets the step
            card = add_step(args.out or args.model, "the aetrig commands that rebuild this directory, the last "
                            "recalibrating its thresholds", inputs.files, command)
    except (ModelError, DataError, FileExistsError, ValueError, OSError) as exc:
        print(f"aetrig calibrate: {exc}", file=sys.stderr)
        return 2
    table = card["thresholds"]
    where = args.out or args.model
    outside = table["sample"].get("jets_outside_domain")
    print(f"{card['name']} ({model.level}-level) version {card['version']}: {table['sample']['n_events']} events, "
          f"{table['sample']['n_jets']} jets scored"
          + (f" ({outside} outside the training domain left out)" if outside is not None else "") + f" -> {where}")
    for row in table["per_event"]:
        print(json.dumps(row))
    if args.fpr is not None or args.accept_rate is not None:
        try:
            threshold = load_model_dir(where, level=None).threshold(args.fpr, args.accept_rate, args.input_rate)
        except ModelError as exc:
            print(f"aetrig calibrate: {exc}", file=sys.stderr)
            return 2
        flag = "--model" if model.level == Level.JET else "--anomaly-model"
        pick = f"--fpr {args.fpr:g}" if args.fpr is not None else f"--accept-rate {args.accept_rate:g} --rate " \
                                                                  f"{args.input_rate:g}"
        print(f"threshold {threshold:.6g}: aetrig run {flag} {where} {pick}")
    return 0
