"""Sink: receive scored messages from the encoders and record them durably as ROOT segments.

Group commits (uproot extend, flush, fsync every --commit-events events or --commit-ms ms), then
an acknowledgement to the producer for every batch the commit made durable. Duplicates by
(run_id, seq) are dropped, also after a restart on the same --out. --max-bytes or a full disk
stops commits and acks (backpressure), reported in the log, on /metrics (aetrig_sink_full) and in
the --report JSON; nothing accepted is lost. The recording layout is in emulator/runtime/recording.py.
Every flag is also a config-file key (--config FILE, TOML or JSON; consumer/sink/config.py). The links are
authenticated: --curve-keys DIR gives the sink's keys (`aetrig keys DIR --per-role` makes DIR/sink/); without
them the sink refuses to start unless told --plaintext (loopback only, unauthenticated).
"""

from __future__ import annotations

import argparse
import logging

EXAMPLES = """
aetrig sink --bind tcp://127.0.0.1:5556 --ack-connect tcp://127.0.0.1:5557 --out runs/demo/recording \\
  --model models/zoo/AE_3D_200_ptetaphie --anomaly-model models/zoo/EVT_AE_ht --manifest runs/demo/manifest.json \\
  --curve-keys keys/sink
aetrig sink --bind tcp://0.0.0.0:5556 --ack-connect tcp://10.0.0.5:5557 --out /data/rec --commit-ms 500 \\
  --model /models/AE_3D_200_ptetaphie --manifest /data/manifests/ \\
  --rotate-seconds 300 --max-bytes 50000000000 --metrics-port 9103 --report sink.json --curve-keys keys/sink
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from consumer.sink.config import SCHEMA

    SCHEMA.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from consumer.sink.config import SCHEMA
    from consumer.sink.service import Sink
    from emulator.runtime.stage_log import EXIT_CANNOT_START, resolve_settings, run_service, stage_logger

    stage_logger("sink")
    config = resolve_settings("sink", SCHEMA, args)
    if config is None:
        return EXIT_CANNOT_START
    report = run_service("sink", lambda stop: Sink(config, stop=stop), (OSError, ValueError),
                         f"{config.bind} / {config.ack_connect}")
    if report is None:
        return EXIT_CANNOT_START
    bp = report["backpressure"]
    logging.getLogger("aetrig.sink").info(
        "done: %d events recorded in %d files (%d bytes), %d duplicate events discarded, %d rejected, "
        "%d backpressure episode(s), %d events uncommitted at exit", report["recorded_events"],
        len(report["files"]), report["bytes"], report["duplicates_discarded"], report["rejected_messages"],
        bp["episodes"], bp["uncommitted_events_at_exit"])
    return 0
