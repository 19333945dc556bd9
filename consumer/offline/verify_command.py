"""Verify a recording: every segment readable, every seq of every run present (0..max), no batch
or (run_id, event_id) recorded twice, counts consistent (jets, raw copies of flagged events, scores
= max jet error under per-jet scoring). Exits 0 when the recording is good, 1 with the list of problems otherwise.

It also prints the recording's bytes on disk per event and per jet, split into latents, identity, scores and
flags, raw copies, cards and metadata and ROOT overhead, and the ratio to study 2's best lossless codec on the
same jets, read from the input files the run manifest names (the split alone when they are not at hand).

When an `aetrig run` summary.json sits in DIR or its parent, the recorded event count is also
compared with its events.produced (or give --expect-events).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = """
aetrig verify runs/demo
aetrig verify /data/rec --expect-events 1000000 --json verify.json
aetrig verify runs/demo --lossless-events 0
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from emulator.runtime.recording import RECORDING_HELP

    parser.add_argument("dir", type=Path, help=RECORDING_HELP)
    parser.add_argument("--expect-events", type=int, default=None, help="the number of events that must be there")
    parser.add_argument("--expect-batches", type=int, default=None, help="the number of batches that must be there")
    parser.add_argument("--no-summary", action="store_true", help="ignore a summary.json next to the recording")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    parser.add_argument("--lossless-events", type=int, default=200_000, metavar="N",
                        help="compare the bytes per jet with the best lossless codec on the jets of the first N "
                             "events, read from the inputs (default 200000; 0 = the byte split alone)")


def main(args: argparse.Namespace) -> int:
    from consumer.offline.recording_bytes import byte_text, recording_byte_report
    from consumer.offline.verify import verify_recording
    from emulator.runtime.atomic import write_json_atomic
    from emulator.runtime.recording import RecordingError, recording_dir

    if args.lossless_events < 0:
        print("aetrig verify: --lossless-events must be >= 0", file=sys.stderr)
        return 2
    try:
        directory = recording_dir(args.dir)
    except RecordingError as exc:
        print(f"aetrig verify: {exc}", file=sys.stderr)
        return 2
    result = verify_recording(directory, expect_events=args.expect_events, expect_batches=args.expect_batches,
                              use_summary=not args.no_summary)
    stats = result.stats
    recorded_bytes = recording_byte_report(directory, args.lossless_events)
    if args.json:
        write_json_atomic(args.json, {"ok": result.ok, "problems": result.problems, "stats": stats,
                                      "recording_bytes": recorded_bytes})
    if recorded_bytes is not None:
        print(f"aetrig verify: bytes: {byte_text(recorded_bytes)}")
    if result.ok:
        print(f"aetrig verify: {directory}: OK: {stats['events']} events, {stats['jets']} jets, "
              f"{stats['flagged']} flagged, {stats['batches']} batches in {len(stats['runs'])} run(s), "
              f"{stats['segments']} segment file(s), {stats['bytes']} bytes"
              + (f"; counts match {stats['expected_from']}" if stats.get("expected_from") else ""))
        return 0
    print(f"aetrig verify: {directory}: {len(result.problems)} problem(s):", file=sys.stderr)
    for problem in result.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1
