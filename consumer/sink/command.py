"""Sink: receive scored messages from the encoders and record them durably as ROOT segments.

Group commits (uproot extend, flush, fsync every --commit-events events or --commit-ms ms), then
an acknowledgement to the producer for every batch the commit made durable. Duplicates by
(run_id, seq) are dropped, also after a restart on the same --out. --max-bytes or a full disk
stops commits and acks (backpressure), reported in the log, on /metrics (aetrig_sink_full) and in
the --report JSON; nothing accepted is lost. The recording layout is in emulator/runtime/recording.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

EXAMPLES = """
aetrig sink --bind tcp://127.0.0.1:5556 --ack-connect tcp://127.0.0.1:5557 --out runs/demo/recording
aetrig sink --bind tcp://0.0.0.0:5556 --ack-connect tcp://10.0.0.5:5557 --out /data/rec --commit-ms 500 \\
  --rotate-seconds 300 --max-bytes 50000000000 --metrics-port 9103 --report sink.json --curve-keys keys/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from emulator.runtime.wire import Limits

    limits = Limits()
    parser.add_argument("--bind", required=True, help="address to PULL scored messages on, tcp://127.0.0.1:PORT")
    parser.add_argument("--ack-connect", default=None, help="producer ack address to PUSH acks to, tcp://H:P")
    parser.add_argument("--out", required=True, type=Path, help="recording directory (segments/ under it)")
    parser.add_argument("--commit-events", type=int, default=50000, help="commit after this many events (50000)")
    parser.add_argument("--commit-ms", type=float, default=100.0, help="commit at least this often (100 ms)")
    parser.add_argument("--rotate-events", type=int, default=5_000_000, help="new segment after N events")
    parser.add_argument("--rotate-seconds", type=float, default=600.0, help="new segment after S seconds")
    parser.add_argument("--max-bytes", type=int, default=None,
                        help="retention limit on the segments' bytes: reaching it is backpressure")
    parser.add_argument("--min-free-bytes", type=int, default=64 << 20,
                        help="treat the disk as full below this much free space (default 64 MiB)")
    parser.add_argument("--latent-dtype", choices=("float32", "float16"), default="float32",
                        help="storage of jet_latent: float32, or float16 (as uint16 bit patterns)")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    parser.add_argument("--report", type=Path, default=None, help="write the stage report JSON here on exit")
    parser.add_argument("--quarantine", type=Path, default=None,
                        help="keep rejected messages under DIR/<reason>/ (default OUT/quarantine)")
    parser.add_argument("--curve-keys", type=Path, default=None, help="CurveZMQ key directory (encrypt both links)")
    parser.add_argument("--max-jets-per-event", type=int, default=limits.max_jets_per_event,
                        help=f"reject events with more jets (default {limits.max_jets_per_event})")
    parser.add_argument("--max-message-bytes", type=int, default=limits.max_bytes,
                        help=f"reject larger messages (default {limits.max_bytes})")
    parser.add_argument("--compression", default="zstd:1",
                        help="segment compression: none or zlib|lz4|zstd|lzma:LEVEL (default zstd:1)")
    parser.add_argument("--max-pending-events", type=int, default=None,
                        help="uncommitted events held in memory before reading stops (default 4x --commit-events)")


def main(args: argparse.Namespace) -> int:
    import zmq

    from consumer.sink.segment_writer import parse_compression
    from consumer.sink.service import Sink, SinkConfig
    from emulator.runtime.shutdown import StopFlag
    from emulator.runtime.wire import Limits

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s aetrig sink %(levelname)s %(message)s")
    if args.commit_events < 1 or args.commit_ms < 0 or args.rotate_events < 1 or args.rotate_seconds <= 0:
        print("aetrig sink: --commit-events/--rotate-events must be >= 1, --commit-ms >= 0, --rotate-seconds > 0",
              file=sys.stderr)
        return 2
    config = SinkConfig(
        bind=args.bind, ack_connect=args.ack_connect, out=args.out, commit_events=args.commit_events,
        commit_ms=args.commit_ms, rotate_events=args.rotate_events, rotate_seconds=args.rotate_seconds,
        max_bytes=args.max_bytes, min_free_bytes=args.min_free_bytes, latent_dtype=args.latent_dtype,
        metrics_port=args.metrics_port, report=args.report, quarantine=args.quarantine, curve_keys=args.curve_keys,
        limits=Limits(max_jets_per_event=args.max_jets_per_event, max_bytes=args.max_message_bytes),
        max_pending_events=args.max_pending_events, compression=args.compression)
    try:
        parse_compression(args.compression)
    except ValueError as exc:
        print(f"aetrig sink: {exc}", file=sys.stderr)
        return 2
    stop = StopFlag().install()
    try:
        sink = Sink(config, stop=stop)
    except OSError as exc:
        print(f"aetrig sink: {exc}", file=sys.stderr)
        return 2
    try:
        report = sink.run()
    except zmq.ZMQError as exc:
        print(f"aetrig sink: cannot use {args.bind} / {args.ack_connect}: {exc}", file=sys.stderr)
        return 2
    bp = report["backpressure"]
    logging.getLogger("aetrig.sink").info(
        "done: %d events recorded in %d files (%d bytes), %d duplicate events discarded, %d rejected, "
        "%d backpressure episode(s), %d events uncommitted at exit", report["recorded_events"],
        len(report["files"]), report["bytes"], report["duplicates_discarded"], report["rejected_messages"],
        bp["episodes"], bp["uncommitted_events_at_exit"])
    return 0
