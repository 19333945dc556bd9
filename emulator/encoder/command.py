"""Encoder service: pull events from the producer, run the model's scorer.onnx with ONNX Runtime in
micro-batches, push per-jet latents and errors, per-event scores and anomaly flags to the sink.

The per-event score and flag come from the anomaly model (--anomaly-model DIR: an event-level model;
default models/zoo/EVT_AE_ht when the stream carries its variables, else the compression model's
per-jet max error, announced in the log and the report; 'none': per-jet max error). The threshold
comes from the anomaly model's card: --fpr (default 1e-3), --accept-rate (flagged events per second
at the input rate the producer declares), or an explicit --threshold. Bad messages are
counted by reason on /metrics and in the --report JSON, and quarantined under --quarantine DIR.
Every flag is also a config-file key (--config FILE, TOML or JSON; emulator/encoder/config.py). The links are
authenticated: --curve-keys DIR gives the encoder's keys (`aetrig keys DIR --per-role` makes DIR/encoder/);
without them the encoder refuses to start unless told --plaintext (loopback only, unauthenticated).
"""

from __future__ import annotations

import argparse

EXAMPLES = """
aetrig encode --model models/zoo/TLA_4D_leading --connect tcp://127.0.0.1:5555 --sink tcp://127.0.0.1:5556 \\
  --curve-keys keys/encoder
aetrig encode --model models/zoo/AE_3D_200_ptetaphie --anomaly-model models/zoo/EVT_AE_k4 \\
  --connect tcp://127.0.0.1:5555 --sink tcp://127.0.0.1:5556 --fpr 1e-4 --curve-keys keys/encoder
aetrig encode --model models/zoo/AE_3D_200_ptetaphie --connect tcp://10.0.0.5:5555 --sink tcp://10.0.0.6:5556 \\
  --accept-rate 100 --threads 2 --metrics-port 9102 --report enc.json --quarantine quarantine/enc0 --id enc0 \\
  --curve-keys keys/encoder
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from emulator.encoder.config import SCHEMA

    SCHEMA.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from emulator.encoder.config import SCHEMA
    from emulator.encoder.service import EncoderService
    from emulator.runtime.stage_log import EXIT_CANNOT_START, resolve_settings, run_service, stage_logger
    from models.runtime.card import ModelError

    config = resolve_settings("encode", SCHEMA, args)
    if config is None:
        return EXIT_CANNOT_START
    log = stage_logger("encode", config.id)
    report = run_service("encode", lambda stop: EncoderService(config, stop=stop), (ModelError, ValueError, OSError),
                         f"{config.connect} / {config.sink}")
    if report is None:
        return EXIT_CANNOT_START
    log.info(
        "done: %d messages, %d events, %d flagged, %d rejected", report["messages"], report["events"],
        report["flagged"], report["rejected_messages"])
    return 0
