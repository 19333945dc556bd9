"""Quantise a float32 model directory to int8 (ONNX Runtime static quantisation) and recalibrate its thresholds.

BatchNorm is folded into the Gemms, channels are equalised across each Gemm -> LeakyReLU -> Gemm
pair, activation ranges come from real background jets (--calibration), and the hidden Gemms
(weight dimensions >= --min-features) run in int8 (weights per output channel, inputs uint8): on
x86 with AVX512-VNNI that roughly halves the cost per jet. Normalisation, the small
input/latent/output layers and the error stay float32. The output is a normal model directory
(card precision "int8") that `aetrig encode` runs unchanged; its card records the int8-vs-float32
agreement and residuals on --background, and thresholds recalibrated there with the int8 scorer.
"""

from __future__ import annotations

import argparse
import json
import sys

#: below this Spearman correlation of int8 and float32 per-jet errors the command warns
RANK_WARNING = 0.9

EXAMPLES = """
aetrig quantize --model wide_k6 --out /tmp/wide_int8 --calibration producer/samples/qcd.root \\
    --background producer/samples/qcd.root
aetrig generate --process qcd --events 200000 --seed 901 --jobs 2 --out data/qcd_train_200k.root
aetrig quantize --model wide_k6 --out /tmp/wide_pct --calibration data/qcd_train_200k.root \\
    --background producer/samples/qcd.root --method percentile --percentile 99.99 --no-equalise
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from emulator.runtime.defaults import resolve_model
    from models.training.quantize import DEFAULT_ALPHA, DEFAULT_MIN_FEATURES, DEFAULT_PERCENTILE, METHODS

    parser.add_argument("--model", type=resolve_model, required=True, metavar="NAME_OR_DIR",
                        help="the float32 model to quantise: a directory or a name under models/zoo (was the "
                             "positional argument MODEL)")
    parser.add_argument("--out", required=True, help="new model directory (must not exist or be empty)")
    parser.add_argument("--calibration", nargs="+", required=True,
                        help="background ROOT file(s) whose jets set the activation ranges")
    parser.add_argument("--calibration-events", type=int, default=20000,
                        help="events read per calibration file (default 20000; 0 = all)")
    parser.add_argument("--background", nargs="+", required=True,
                        help="background ROOT file(s) for the new thresholds and the int8-vs-float32 check")
    parser.add_argument("--background-events", type=int, default=0, help="events read per background file (0 = all)")
    parser.add_argument("--method", choices=METHODS, default="minmax", help="activation range calibration")
    parser.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                        help=f"share of activations kept in range, method percentile (default {DEFAULT_PERCENTILE})")
    parser.add_argument("--min-features", type=int, default=DEFAULT_MIN_FEATURES,
                        help=f"quantise Gemms whose weight dimensions are all >= this (default {DEFAULT_MIN_FEATURES})")
    parser.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor instead of per channel")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help=f"channel equalisation strength (default {DEFAULT_ALPHA}: equal activation ranges)")
    parser.add_argument("--no-equalise", action="store_true", help="skip the channel equalisation")
    parser.add_argument("--name", default=None, help="card name (default <source name>_int8)")
    parser.add_argument("--tree", default="events", help="TTree name (default events)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the checks")


def main(args: argparse.Namespace) -> int:
    from models.runtime.card import ModelError
    from models.runtime.data import DataError
    from models.runtime.rebuild import typed_command
    from models.training.quantize import Recipe, quantize_model

    recipe = Recipe(method=args.method, percentile=args.percentile, per_channel=not args.per_tensor,
                    min_features=args.min_features, alpha=None if args.no_equalise else args.alpha)
    command = typed_command("quantize", sys.argv)  # the card's quantization.command and source.rebuild step
    try:
        card = quantize_model(args.model, args.out, args.calibration, args.background,
                              calibration_events=args.calibration_events or None,
                              background_events=args.background_events or None, recipe=recipe, name=args.name,
                              tree=args.tree, threads=args.threads, command=command)
    except (ModelError, DataError, FileExistsError) as exc:
        print(f"aetrig quantize: {exc}", file=sys.stderr)
        return 2
    q, m = card["quantization"], card["metrics"]
    print(f"{card['name']}: {len(q['quantised_nodes'])} Gemms int8, {q['batchnorm_folded']} BatchNorms folded, "
          f"calibrated on {q['calibration_sample']['n_jets']} jets -> {args.out}")
    print("int8 vs float32 on background:", json.dumps(m["int8_vs_float32"]))
    for var, s in m["background"]["all_jets"].items():
        ref = m["background_float32_source"]["all_jets"][var]["core_half_width"]
        print(f"  {var:<13} core half-width int8 {s['core_half_width']:.4g}  float32 {ref:.4g}")
    rank = m["int8_vs_float32"]["error_rank_correlation"]
    if rank < RANK_WARNING:
        print(f"aetrig quantize: warning: the int8 error ranks jets unlike float32 (rank correlation {rank:.2f} < "
              f"{RANK_WARNING}): quantisation noise is comparable to this model's reconstruction error, so its "
              "anomaly scores change; compare AUCs before using it", file=sys.stderr)
    return 0
