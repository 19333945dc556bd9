"""Run the three studies (generalisation, pre-compression + codecs + CPU, anomaly detection) and write a report.

Defaults: the bundled samples (producer/samples: qcd background; zprime, darkshower, ttbar signals;
ttbar also as the study 1 cross sample) and every model under models/zoo. Larger samples are used only
when given: --cross-sample, --large-background (or --generate-large-background). Writes
--out DIR/index.html (every plot and table, a conclusion per study) and DIR/results.json (every
number). User ROOT files take the producer's reading options (--tree, --branch-map, --unit, --derive-e).
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
aetrig report --signal myexotic=/data/exotic_*.root --tree CollectionTree --unit MeV \\
  --branch-map pt=AntiKt4EMTopoJetsAuxDyn.pt eta=AntiKt4EMTopoJetsAuxDyn.eta --derive-e
aetrig report --studies 3 --models AE_3D_200_ptetaphie wide_k6 --max-events 5000
aetrig report --studies 3 --generate-large-background 200000 --out report_1e4
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="report", help="output directory (default report/)")
    parser.add_argument("--background", nargs="+", metavar="FILE", help="background ROOT files (default bundled qcd)")
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
    parser.add_argument("--tree", default="events", help="TTree name in user files (default events)")
    parser.add_argument("--branch-map", action=KeyValuesAction, default={}, metavar="VAR=BRANCH",
                        help="branches of jet variables in user files")
    parser.add_argument("--unit", choices=("GeV", "MeV"), default="GeV", help="energy unit of user files")
    parser.add_argument("--derive-e", action="store_true", help="compute E from pt, eta, m")
    parser.add_argument("--max-events", type=int, default=None, help="read at most N events per sample")
    parser.add_argument("--max-events-large", type=int, default=None, help="cap for the large background")
    parser.add_argument("--studies", default="1,2,3", help="which studies to run, e.g. 1,3 (default 1,2,3)")
    parser.add_argument("--quick", action="store_true", help="fewer codecs and batch sizes in study 2 (smoke runs)")


def named_files(samples: dict[str, str]) -> dict[str, list[str]]:
    """``--signal``/``--cross-sample`` {name: comma-separated files} as {name: [files]}."""
    return {name: [f for f in files.split(",") if f] for name, files in samples.items()}


def read_options(args: argparse.Namespace):  # -> ReadOptions
    """The reading options of user ROOT files (--tree, --branch-map VAR=BRANCH ..., --unit, --derive-e)."""
    from consumer.offline.studies.common import ReadOptions

    return ReadOptions(args.tree, dict(args.branch_map), args.unit, args.derive_e)


def config_from_args(args: argparse.Namespace):  # -> ReportConfig
    from consumer.offline.report import ReportConfig

    options = read_options(args)
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
    if args.background:
        cfg.background = args.background
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
