"""Encoder service: pull events from the producer, run the model's scorer.onnx with ONNX Runtime in
micro-batches, push per-jet latents and errors, per-event scores and anomaly flags to the sink.

The threshold comes from the model card: --fpr (default 1e-3), --accept-rate (flagged events per
second at the input rate the producer declares), or an explicit --threshold. Bad messages are
counted by reason on /metrics and in the --report JSON, and quarantined under --quarantine DIR.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

EXAMPLES = """
aetrig encode --model models/zoo/TLA_4D_leading --connect tcp://127.0.0.1:5555 --sink tcp://127.0.0.1:5556
aetrig encode --model models/zoo/AE_3D_200_ptetaphie --connect tcp://10.0.0.5:5555 --sink tcp://10.0.0.6:5556 \\
  --accept-rate 100 --threads 2 --metrics-port 9102 --report enc.json --quarantine quarantine/enc0 --id enc0
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from emulator.runtime.wire import Limits

    limits = Limits()
    parser.add_argument("--model", required=True, type=Path, help="model directory (card.json + scorer.onnx)")
    parser.add_argument("--connect", required=True, help="producer data address to PULL from, tcp://H:P")
    parser.add_argument("--sink", required=True, help="sink address to PUSH scored messages to, tcp://H:P")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--fpr", type=float, default=None, help="background false-positive rate (default 1e-3)")
    choice.add_argument("--accept-rate", type=float, default=None, metavar="HZ",
                        help="flag this many events/s at the producer's declared input rate")
    choice.add_argument("--threshold", type=float, default=None, help="explicit per-event error threshold")
    parser.add_argument("--max-batch-jets", type=int, default=4096, help="jets per inference call (default 4096)")
    parser.add_argument("--max-wait-ms", type=float, default=2.0,
                        help="longest a message waits for its micro-batch to fill (default 2 ms)")
    parser.add_argument("--min-batch-jets", type=int, default=512,
                        help="run a micro-batch of at least this many jets at once when no further message is "
                             "queued, instead of waiting --max-wait-ms (default 512)")
    parser.add_argument("--inference-chunk-jets", type=int, default=2048,
                        help="score a micro-batch in ONNX Runtime calls of at most this many jets (default 2048: "
                             "larger calls cost more per jet once their activations leave the CPU cache)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    parser.add_argument("--latent-dtype", choices=("float32", "float16"), default="float32",
                        help="dtype of jet_latent on the wire (default float32)")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    parser.add_argument("--report", type=Path, default=None, help="write the stage report JSON here on exit")
    parser.add_argument("--quarantine", type=Path, default=None,
                        help="keep the raw frames of rejected messages under DIR/<reason>/ (default: count only)")
    parser.add_argument("--id", default=None, help="encoder name in headers, logs and report (default encoder-PID)")
    parser.add_argument("--curve-keys", type=Path, default=None, help="CurveZMQ key directory (encrypt both links)")
    parser.add_argument("--drain-timeout", type=float, default=10.0,
                        help="on SIGTERM, give up sending to an unresponsive sink after S seconds (default 10)")
    parser.add_argument("--max-jets-per-event", type=int, default=limits.max_jets_per_event,
                        help=f"reject events with more jets (default {limits.max_jets_per_event})")
    parser.add_argument("--max-message-bytes", type=int, default=limits.max_bytes,
                        help=f"reject larger messages (default {limits.max_bytes})")


def main(args: argparse.Namespace) -> int:
    import zmq

    from emulator.encoder.service import EncoderConfig, EncoderService
    from emulator.runtime.shutdown import StopFlag
    from emulator.runtime.wire import Limits
    from models.runtime.card import ModelError

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s aetrig encode[{args.id or 'encoder'}] %(levelname)s %(message)s")
    for name, value in (("--max-batch-jets", args.max_batch_jets), ("--min-batch-jets", args.min_batch_jets),
                        ("--inference-chunk-jets", args.inference_chunk_jets), ("--threads", args.threads)):
        if value < 1:
            print(f"aetrig encode: {name} must be >= 1, got {value}", file=sys.stderr)
            return 2
    if args.max_wait_ms < 0:
        print("aetrig encode: --max-wait-ms must be >= 0", file=sys.stderr)
        return 2
    config_kwargs = {} if args.id is None else {"id": args.id}
    config = EncoderConfig(
        model=args.model, connect=args.connect, sink=args.sink, fpr=args.fpr, accept_rate=args.accept_rate,
        threshold=args.threshold, max_batch_jets=args.max_batch_jets, max_wait_ms=args.max_wait_ms,
        min_batch_jets=args.min_batch_jets, inference_chunk_jets=args.inference_chunk_jets,
        threads=args.threads, latent_dtype=args.latent_dtype, metrics_port=args.metrics_port, report=args.report,
        quarantine=args.quarantine, curve_keys=args.curve_keys, drain_timeout_s=args.drain_timeout,
        limits=Limits(max_jets_per_event=args.max_jets_per_event, max_bytes=args.max_message_bytes),
        **config_kwargs)
    stop = StopFlag().install()
    try:
        service = EncoderService(config, stop=stop)
    except (ModelError, ValueError, OSError) as exc:
        print(f"aetrig encode: {exc}", file=sys.stderr)
        return 2
    try:
        report = service.run()
    except zmq.ZMQError as exc:
        print(f"aetrig encode: cannot use {args.connect} / {args.sink}: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("aetrig.encode").info(
        "done: %d messages, %d events, %d flagged, %d rejected", report["messages"], report["events"],
        report["flagged"], report["rejected_messages"])
    return 0
