"""Run the three studies (generalisation, pre-compression + codecs + CPU, anomaly detection) and write a report.

Defaults: the bundled samples (producer/samples: qcd background; zprime, darkshower, ttbar signals;
ttbar also as the study 1 cross sample) and every model under models/zoo. Larger samples are used only
when given: --cross-sample, --large-background (or --generate-large-background). Writes
--out DIR/index.html (every plot and table, a conclusion per study) and DIR/results.json (every
number). Every sample is read as `aetrig run` reads its input, with the same options (--input-format physlite,
nanoaod, delphes: TTree or RNTuple found file by file; --tree, --branch-map, --unit, --derive-e).
"""

from __future__ import annotations

import argparse
import sys

from emulator.runtime.stage_config import KeyValuesAction

EXAMPLES = """
aetrig report
aetrig generate --process qcd --events 50000 --seed 902 --jobs 2 --out data/qcd_test_50k.root
aetrig generate --process qcd --pthat-min 300 --events 20000 --seed 903 --jobs 2 --out data/qcd_ptmin300.root
aetrig report --out report_full --large-background data/qcd_test_50k.root \\
  --cross-sample qcd_ptmin300=data/qcd_ptmin300.root
aetrig report --studies 3 --input-format physlite --background producer/samples/physlite_example.root \\
  --signal rnt=producer/samples/physlite_rntuple_example.root --models EVT_AE_ht --out report_physlite
aetrig report --studies 3 --models AE_3D_200_ptetaphie wide_k6 --max-events 5000
aetrig report --studies 3 --generate-large-background 200000 --out report_1e4
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from producer.config import add_input_arguments

    parser.add_argument("--out", default="report", help="output directory (default report/)")
    add_input_arguments(parser, input_flags=("--background",),
                        title="samples (read as aetrig produce and aetrig run read their input, with its options)",
                        input_help="background ROOT files or globs (default bundled qcd)")
    parser.add_argument("--signal", action=KeyValuesAction, default={}, metavar="NAME=FILES",
                        help="signal samples, each one's files comma-separated or a glob (default bundled signals)")
    parser.add_argument("--cross-sample", action=KeyValuesAction, default={}, metavar="NAME=FILES",
                        help="study 1 evaluation samples (default the bundled ttbar), "
                             "e.g. qcd_ptmin300=data/qcd_ptmin300.root")
    parser.add_argument(
        "--large-background",
        nargs="+",
        metavar="FILE",
        help="large background for TPR at FPR 1e-4 (default none: that row is left out), "
        "e.g. data/qcd_test_50k.root",
    )
    parser.add_argument("--generate-large-background", type=int, default=0, metavar="N",
                        help="generate N QCD events (aetrig generate, seed --generate-seed) as the large background")
    parser.add_argument("--generate-seed", type=int, default=931, help="seed for --generate-large-background")
    parser.add_argument("--models", nargs="+", metavar="NAME_OR_DIR", help="models (default: all in models/zoo)")
    parser.add_argument(
        "--compression-model",
        metavar="NAME_OR_DIR",
        help="model for study 2 (default AE_3D_200_ptetaphie, else the first found)",
    )
    parser.add_argument("--max-events", type=int, default=None, help="read at most N events per sample")
    parser.add_argument("--max-events-large", type=int, default=None, help="cap for the large background")
    parser.add_argument("--studies", default="1,2,3", help="which studies to run, e.g. 1,3 (default 1,2,3)")
    parser.add_argument("--quick", action="store_true", help="fewer codecs and batch sizes in study 2 (smoke runs)")


def named_files(samples: dict[str, str]) -> dict[str, list[str]]:
    """``--signal``/``--cross-sample`` {name: comma-separated files} as {name: [files]}."""
    return {name: [f for f in files.split(",") if f] for name, files in samples.items()}


def reader_spec(args: argparse.Namespace):  # -> producer.reader.ReaderSpec
    """How every sample is read: the producer's input options (--input-format, --tree, --branch-map, --unit,
    --derive-e, ...; producer.config.add_input_arguments), as `aetrig run` reads its input."""
    from producer.config import resolve_inputs
    from producer.inputs import reader_spec as producer_spec

    return producer_spec(resolve_inputs(args))


def config_from_args(args: argparse.Namespace):  # -> ReportConfig
    from consumer.offline.report import ReportConfig

    options = reader_spec(args)
    cfg = ReportConfig(
        out=args.out,
        signals=named_files(args.signal),
        cross=named_files(args.cross_sample),
        large_background=args.large_background,
        models=args.models,
        compression_model=args.compression_model,
        options=options,
        max_events=args.max_events,
        max_events_large=args.max_events_large,
        studies=tuple(int(s) for s in args.studies.split(",") if s.strip()),
        quick=args.quick,
    )
    if getattr(args, "input", None):  # the producer's input flags set only what is given
        cfg.background = args.input
    return cfg


def main(args: argparse.Namespace) -> int:
    from consumer.offline.report import run_report

    try:
        cfg = config_from_args(args)
        results = run_report(cfg)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"aetrig report: {exc}", file=sys.stderr)
        return 2
    for name, study in results["studies"].items():
        print(f"[{name}] {study.get('conclusion', '')}\n")
    print(f"report: {cfg.out}/index.html, numbers in {cfg.out}/results.json")
    return 0
