"""Replay jet events from ROOT files over ZeroMQ at a chosen rate and pattern.

Reads the input in chunks with uproot, numbers every event (run_id, event_id, file_index,
entry, event_number), packs events into messages by count and by maximum delay, and sends them
on a PUSH socket. The sink's acknowledgements free a bounded window of in-flight batches;
unacknowledged batches are resent. Every flag has a config-file key of the same name (--config).
--input-format physlite|nanoaod|delphes|aetrig presets the tree (or RNTuple), unit and branches; Cartesian
jets (--branch-map px=.. py=.. pz=.. e=..) get pt, eta, phi, m derived, jets with pt = 0 dropped. Jets with
NaN, inf or -999 values are left out of their (kept) event and counted; see docs/design.md "Input screen".
The links are authenticated: --curve-keys DIR gives the producer's keys (`aetrig keys DIR --per-role` makes
DIR/producer/); without them the producer refuses to start unless told --plaintext (loopback only).
SIGINT/SIGTERM stops reading, drains the window, writes the report and exits 0.
"""

from __future__ import annotations

import argparse
import sys

EXAMPLES = """
aetrig keys keys/ --per-role    # once: keys/producer/ is the producer's (--plaintext: loopback, unauthenticated)
aetrig produce --rate 10000 --duration 30 --curve-keys keys/producer
aetrig produce --input 'data/*.root' --rate 50000 --pattern trains --loops 0 --report producer.json \\
    --curve-keys keys/producer
aetrig produce --input producer/samples/physlite_example.root --input-format physlite --columns pt,eta,phi,e \\
    --curve-keys keys/producer
aetrig produce --input producer/samples/physlite_rntuple_example.root --input-format physlite --curve-keys keys/producer
aetrig produce --input producer/samples/nanoaod_example.root --input-format nanoaod --curve-keys keys/producer
aetrig produce --input producer/samples/delphes_example.root --input-format delphes --curve-keys keys/producer
aetrig produce --input 'nano/*.root' --input-format nanoaod --branch-map pt=Jet_pt_nom m=Jet_mass_nom \\
    --curve-keys keys/producer
aetrig produce --input producer/samples/cms_opendata_example.root --branch-map px=Jet_Px py=Jet_Py pz=Jet_Pz e=Jet_E \\
    --curve-keys keys/producer
aetrig produce --input atlas.root --tree CollectionTree --unit MeV --branch-map pt=AntiKt4EMTopoJetsAuxDyn.pt \\
    eta=AntiKt4EMTopoJetsAuxDyn.eta phi=AntiKt4EMTopoJetsAuxDyn.phi m=AntiKt4EMTopoJetsAuxDyn.m \\
    event_number=EventInfoAuxDyn.eventNumber --columns pt,eta,phi,e --derive-e --curve-keys keys/producer
aetrig produce --config producer.toml --rate 0 --max-events 100000
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from producer import config

    config.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from emulator.runtime.link_security import require_keys
    from emulator.runtime.metrics import start_metrics
    from emulator.runtime.shutdown import on_stop_signals, restore_signals
    from emulator.runtime.stage_log import EXIT_CANNOT_START, stage_logger
    from producer import config
    from producer.inputs import open_inputs
    from producer.manifest import build_manifest, load_manifest, manifest_settings, new_run_id, write_manifest
    from producer.replay import Replayer

    log = stage_logger("produce")
    try:
        cfg = config.resolve(args)
        require_keys(cfg.curve_keys, cfg.plaintext)
        inputs = open_inputs(cfg)
    except (ValueError, OSError) as err:
        print(f"aetrig produce: error: {err}", file=sys.stderr)
        return 2
    files, spec, variables = inputs.files, inputs.spec, inputs.variables
    if cfg.manifest:
        try:
            manifest = load_manifest(cfg.manifest, cfg.run_id)
        except ValueError as err:
            print(f"aetrig produce: error: {err}", file=sys.stderr)
            return 2
        run_id = int(manifest["run_id"])
    else:
        run_id = cfg.run_id if cfg.run_id is not None else new_run_id()
        manifest = build_manifest(run_id, files, manifest_settings(cfg, files), cfg.seed, variables,
                                  plans=inputs.plans)
    if cfg.manifest_out:
        write_manifest(manifest, cfg.manifest_out)
    metrics = start_metrics(cfg.metrics_port)
    resume = None
    if cfg.resume_from:
        from producer.resume import load_resume

        resume = load_resume(cfg.resume_from, run_id, cfg.window)
    replayer = Replayer(cfg, files, spec, variables, manifest, metrics, plans=inputs.plans, resume=resume)
    try:
        replayer.open()
    except Exception as err:  # zmq.ZMQError (address in use) or a curve key problem
        print(f"aetrig produce: error: cannot bind {cfg.bind} / {cfg.ack_bind}: {err}", file=sys.stderr)
        replayer.close()
        return EXIT_CANNOT_START

    previous = on_stop_signals(replayer.request_stop)
    log.info("run %016x: %d file(s), variables %s, rate %g Hz %s, data %s, acks %s", run_id, len(files),
             ",".join(variables), cfg.rate, cfg.pattern, cfg.bind, cfg.ack_bind)
    try:
        report = replayer.run()
    except ValueError as err:  # a later file with a missing branch
        print(f"aetrig produce: error: {err}", file=sys.stderr)
        replayer.request_stop("error")
        report = replayer.report(0.0, 0.0, 0.0, False) | {"error": str(err)}
        _write_report(cfg.report, report)
        return 2
    finally:
        replayer.close()
        restore_signals(previous)
    _write_report(cfg.report, report)
    return 0


def _write_report(path: str | None, report: dict) -> None:
    from emulator.runtime.stage_report import write_report

    if path:
        write_report(path, report)
