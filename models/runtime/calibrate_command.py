"""Recompute a model's anomaly thresholds on your own background and write a new card version.

Thresholds only fit the sample they were computed on: run this on a background that matches the
stream you will process. The scorer graph runs on every jet; per-jet and per-event error
quantiles for false-positive rates 1e-1 .. 1e-5 (with the number of events behind each, and a
reliability flag) and the dense per-event curve replace the card's table; the version is bumped.
"""

from __future__ import annotations

import argparse
import json
import sys

EXAMPLES = """
aetrig calibrate models/zoo/AE_3D_200_ptetaphie --background producer/samples/qcd.root --out /tmp/ae_mycal
aetrig calibrate /tmp/mymodel --background bg1.root bg2.root
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model directory")
    parser.add_argument("--background", nargs="+", required=True, help="background ROOT file(s) (input contract)")
    parser.add_argument("--tree", default="events", help="TTree name (default events)")
    parser.add_argument("--out", default=None, help="write a calibrated copy here instead of updating MODEL in place")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")


def main(args: argparse.Namespace) -> int:
    from models.runtime.calibrate import calibrate
    from models.runtime.card import ModelError
    from models.runtime.data import DataError

    try:
        card = calibrate(args.model, args.background, tree=args.tree, threads=args.threads, out=args.out)
    except (ModelError, DataError, FileExistsError) as exc:
        print(f"aetrig calibrate: {exc}", file=sys.stderr)
        return 1
    table = card["thresholds"]
    print(f"{card['name']} version {card['version']}: {table['sample']['n_events']} events, "
          f"{table['sample']['n_jets']} jets -> {args.out or args.model}")
    for row in table["per_event"]:
        print(json.dumps(row))
    return 0
