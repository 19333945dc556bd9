"""Decode a recorded latent stream back to jet variables (GeV) with the decoder named by its model card.

The decoder is found by the card's model name under models/zoo (or --model DIR). A decoder whose
sha256 differs from the one recorded in the card is refused unless --force (which warns). The
output file has the model's variables as jet_<name>, the event identity (run_id, event_id,
file_index, entry, event_number), and the raw jet columns of flagged events copied exactly.
With --plots DIR it also makes the standard plots, joining the recording to the input files named
in its run manifest by (file_index, entry), and reports the fidelity of the jets inside and outside
the model's training domain (card ``domain``) apart (summary.json ``by_domain``).
"""

from __future__ import annotations

import argparse
import json
import sys

EXAMPLES = """
aetrig decode runs/demo --out runs/demo/decoded.root --plots runs/demo/plots
aetrig decode runs/demo --out decoded.root --model AE_3D_200_ptetaphie
aetrig decode runs/fast --out fast.root --model my_models/retrained --force
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from emulator.runtime.defaults import resolve_model
    from emulator.runtime.recording import RECORDING_HELP

    parser.add_argument("recording", help=RECORDING_HELP)
    parser.add_argument("--out", required=True, help="decoded ROOT file to write")
    parser.add_argument("--model", type=resolve_model, default=None, metavar="NAME_OR_DIR",
                        help="the model: a directory or a name under models/zoo (default: models/zoo/<card name>)")
    parser.add_argument("--force", action="store_true", help="decode even if the decoder sha256 differs (warns)")
    parser.add_argument("--plots", default=None, metavar="DIR", help="also make the standard plots in DIR")
    parser.add_argument("--plot-events", type=int, default=200_000,
                        help="events joined to the inputs for the plots (default 200000; 0 = all)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")


def main(args: argparse.Namespace) -> int:
    from consumer.offline.decode import DecodeError, decode_recording
    from consumer.offline.join import JoinError
    from emulator.runtime.recording import RecordingError, recording_dir

    try:
        recording = str(recording_dir(args.recording))
    except RecordingError as exc:
        print(f"aetrig decode: {exc}", file=sys.stderr)
        return 2
    try:
        summary = decode_recording(recording, args.out, model_dir=args.model, force=args.force,
                                   threads=args.threads)
    except DecodeError as exc:  # the recording, its card or the model does not fit: bad input
        print(f"aetrig decode: {exc}", file=sys.stderr)
        return 2
    print(f"decoded {summary.n_events} events, {summary.n_jets} jets ({summary.n_flagged} flagged, "
          f"{summary.n_raw_jets} raw jets passed through) with {summary.model_dir} -> {summary.out}")
    if args.plots:
        from consumer.offline.decode_plots import make_plots

        try:
            result = make_plots(args.out, args.plots, recording_dir=recording,
                                max_events=args.plot_events or None)
        except (JoinError, ValueError) as exc:
            print(f"aetrig decode: plots failed: {exc}", file=sys.stderr)
            return 1
        for var, s in result["stats"].items():
            print(f"  {var:<12} {s['kind']:<8} mean {s['mean']:+.3e}  core half-width {s['core_half_width']:.4g}  "
                  f"RMS {s['rms']:.4g}")
        by_domain = result.get("by_domain")
        if by_domain:
            for where in ("inside", "outside"):
                part = by_domain[where]
                cores = ", ".join(f"{v} {st['core_half_width']:.4g}" for v, st in part["stats"].items() if st)
                print(f"  {where} the training domain ({part['n_jets']} jets): core half-width {cores or 'n/a'}")
        raw = result["raw_passthrough"]
        exact = all(v["bit_exact"] for v in raw["variables"].values())
        print(f"  raw columns of {raw['flagged_events']} flagged events bit-exact vs input: {exact}")
        print(f"{len(result['plots'])} plot files in {args.plots} (summary.json has the numbers)")
        print(json.dumps({"plots": args.plots, "events": result["n_events"]}))
    return 0
