"""Benchmark the encoder in-process (ONNX Runtime, PyTorch eager), as a service over ZeroMQ, and the whole
pipeline; write results.json and plots.

In one run, on the same jets of the bundled background: ONNX Runtime called in-process on
scorer.onnx (the limit) and PyTorch eager on the same model, one thread each, over micro-batches of
1 to 8192 jets; the encoder service fed over real ZeroMQ (per micro-batch size and per events per
message); the wide model's cycles per jet through the service; what CurveZMQ (the default links)
costs against plaintext on one loopback link, in CPU per MB and latency; the full pipeline at rate 0
with 1 and 2 encoders (zero loss checked; the full benchmark also with --plaintext); a rate scan for
each producer pattern; p99 latency against offered rate; and (full benchmark only) a soak at 100 kHz
with resident memory over time. Ratios (service / in-process, pipeline / in-process) are the figures
to quote: absolute speeds vary between machines and with other load on them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from emulator.runtime.atomic import write_json_atomic
from emulator.runtime.defaults import DEFAULT_ANOMALY_MODEL, REPO, resolve_model
from emulator.runtime.shutdown import on_stop_signals

EXAMPLES = """
aetrig bench --quick
aetrig bench --out bench/full
aetrig bench --quick --model models/zoo/TLA_4D_leading --only inprocess,service
aetrig bench --soak-seconds 600 --soak-rate 100000 --out emulator/bench/results
"""

STEPS = ("inprocess", "torch", "breakdown", "service", "messages", "wide", "links", "pipeline", "ratescan",
         "decision", "latency", "soak", "profile")


@dataclass
class Plan:
    """How much of everything to measure; --quick and the full benchmark differ only here."""

    inprocess_sizes: tuple[int, ...]
    budget_s: float
    service_sizes: tuple[int, ...]
    service_duration_s: float
    service_warmup_s: float
    message_scan: tuple[int, ...]
    message_scan_batch: int
    wide_sizes: tuple[int, ...]
    pipeline_duration_s: float
    pipeline_encoders: tuple[int, ...]
    scan_patterns: tuple[str, ...]
    scan_rates: dict[str, tuple[float, ...]] = field(default_factory=dict)
    scan_duration_s: float = 5.0
    latency_rates: tuple[float, ...] = ()
    soak_seconds: float = 0.0
    soak_rate_hz: float = 100_000.0
    pipeline_extra: tuple[tuple[int, tuple[str, ...]], ...] = ()  # (encoders, extra `aetrig run` flags) variants
    decision_repeats: int = 1  # alternated runs per encoder count at 100 kHz with the default models (step decision)
    decision_duration_s: float = 6.0
    deadline_s: float | None = None  # steps (and scan points) not started by then are skipped, and listed


#: The pipeline variant with the two-model encoder: the compression model's latents and the shipped event-level
#: anomaly model's flags (every other pipeline run measures the compression model alone, --anomaly-model none).
EVENT_MODEL_FLAGS = ("--anomaly-model", str(DEFAULT_ANOMALY_MODEL))
#: The same without authentication (`aetrig run --plaintext`), next to it: what CurveZMQ costs on this machine.
#: The goals count only runs with the default, authenticated links (emulator/bench/goals.py).
PLAINTEXT_FLAGS = (*EVENT_MODEL_FLAGS, "--plaintext")


QUICK = Plan(
    inprocess_sizes=(1, 16, 128, 1024, 4096, 8192), budget_s=0.4,
    service_sizes=(1024, 4096), service_duration_s=2.5, service_warmup_s=1.0,
    message_scan=(16,), message_scan_batch=4096, wide_sizes=(1024,),
    pipeline_duration_s=6.0, pipeline_encoders=(1, 2), pipeline_extra=((2, EVENT_MODEL_FLAGS),),
    scan_patterns=("constant", "poisson", "trains"),
    scan_rates={"constant": (10_000.0, 100_000.0), "poisson": (100_000.0,), "trains": (100_000.0,)},
    scan_duration_s=4.0, latency_rates=(200_000.0,), soak_seconds=0.0, deadline_s=165.0,
)

FULL = Plan(
    inprocess_sizes=tuple(2**i for i in range(14)), budget_s=1.5,
    service_sizes=(1, 16, 64, 256, 1024, 2048, 4096, 8192), service_duration_s=6.0, service_warmup_s=2.0,
    message_scan=(1, 16, 64, 256, 1024), message_scan_batch=4096, wide_sizes=(1024, 4096),
    pipeline_duration_s=15.0, pipeline_encoders=(1, 2), pipeline_extra=((2, ("--window", "8")), (2, EVENT_MODEL_FLAGS),
                                                                      (2, PLAINTEXT_FLAGS)),
    scan_patterns=("constant", "poisson", "trains"),
    scan_rates={"constant": (1_000.0, 10_000.0, 30_000.0, 50_000.0, 100_000.0, 200_000.0, 0.0),
                "poisson": (10_000.0, 100_000.0, 0.0), "trains": (10_000.0, 100_000.0, 0.0)},
    scan_duration_s=8.0, latency_rates=(150_000.0, 250_000.0, 300_000.0), soak_seconds=600.0, decision_repeats=5,
    decision_duration_s=15.0,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a reduced benchmark that finishes in under 3 minutes")
    parser.add_argument("--out", type=Path, default=Path("bench"), help="output directory (default bench/)")
    parser.add_argument("--model", type=resolve_model, default=None, metavar="NAME_OR_DIR",
                        help="the model: a directory or a name under models/zoo (default: the default model)")
    parser.add_argument("--wide-model", type=resolve_model, default=None, metavar="NAME_OR_DIR",
                        help="wide model for the cycles-per-jet goal (default wide_k6)")
    parser.add_argument("--input", type=Path, default=None, help="ROOT sample (default: the bundled qcd.root)")
    parser.add_argument("--only", default=None, help=f"comma-separated steps to run, of: {','.join(STEPS)}")
    parser.add_argument("--soak-seconds", type=float, default=None,
                        help="soak duration (default 600 in the full benchmark, 0 = none; never in --quick)")
    parser.add_argument("--soak-rate", type=float, default=None, help="soak rate in events/s (default 100000)")
    parser.add_argument("--budget", type=float, default=None, help="seconds per in-process micro-batch size")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the encoder and the pipeline stages with py-spy (default in the full run)")
    parser.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")


def main(args: argparse.Namespace) -> int:
    from emulator.bench.runner import Bench

    plan = QUICK if args.quick else FULL
    if args.budget is not None:
        plan = replace(plan, budget_s=args.budget)
    if args.soak_seconds is not None and not args.quick:
        plan = replace(plan, soak_seconds=args.soak_seconds)
    if args.soak_rate is not None:
        plan = replace(plan, soak_rate_hz=args.soak_rate)
    steps = set(STEPS) if args.only is None else {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = steps - set(STEPS)
    if unknown:
        print(f"aetrig bench: unknown step(s) {sorted(unknown)}; choose from {','.join(STEPS)}", file=sys.stderr)
        return 2
    if args.quick or plan.soak_seconds <= 0:
        steps.discard("soak")
    if args.quick and not args.profile and args.only is None:
        steps.discard("profile")
    from models.runtime.data import DataError

    try:
        bench = Bench(plan, steps, args.out, args.model, args.wide_model, args.input, quick=args.quick)
    except (FileNotFoundError, KeyError, ValueError, DataError) as exc:
        print(f"aetrig bench: {exc}", file=sys.stderr)
        return 2
    on_stop_signals(_interrupt)  # run the finally blocks that stop the stage processes
    t0 = time.monotonic()
    results = bench.run(command="aetrig bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else []))
    results["plan"] = asdict(plan)
    results["runtime_s"] = time.monotonic() - t0
    results["machine"]["loadavg_end"] = list(os.getloadavg())
    write_results(results, args.out)
    if not args.no_plots:
        try:
            from emulator.bench.plots import plot_all

            results["plots"] = [p.name for p in plot_all(results, args.out)]
            write_results(results, args.out)
        except Exception as exc:
            results["errors"].append({"step": "plots", "error": repr(exc)})
            write_results(results, args.out)
    from emulator.bench.markdown import write_markdown

    write_markdown(repo_relative(results), args.out)
    print_summary(results)
    print(f"aetrig bench: wrote {args.out / 'results.json'} and SUMMARY.md in {results['runtime_s']:.0f} s")
    return 1 if results["errors"] else 0


def _interrupt(signal_name: str) -> None:
    raise KeyboardInterrupt(signal_name)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def repo_relative(obj: Any) -> Any:
    """``obj`` with every path under the repository (also inside command lines) written relative to it: results
    that are committed must not name the checkout they were measured in."""
    if isinstance(obj, Path):
        obj = str(obj)
    if isinstance(obj, str):
        return obj.replace(f"{REPO}{os.sep}", "")
    if isinstance(obj, dict):
        return {k: repo_relative(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [repo_relative(v) for v in obj]
    return obj


def write_results(results: dict, out: Path) -> Path:
    """Write ``out/results.json`` (atomically, paths in the repository relative to it); return its path."""
    return write_json_atomic(out / "results.json", repo_relative(results), default=_jsonable, allow_nan=False)


def _fmt(value: Any, scale: float = 1.0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value * scale:,.4g}{unit}"


def print_summary(results: dict) -> None:
    """The headline ratios and the goal verdicts, on stdout."""
    from emulator.bench.stats import verdict

    ratios = results.get("ratios", {})
    print("micro-batch  in-process jets/s  service/in-process  pipeline/in-process  torch/in-process")
    by_size = {r["batch_jets"]: r for r in results.get("inprocess", {}).get("onnxruntime", [])}
    for size in sorted(by_size):
        key = str(size)
        print(f"{size:>11}  {_fmt(by_size[size]['jets_per_s']):>17}  "
              f"{_fmt((ratios.get('service_vs_inprocess') or {}).get(key)):>18}  "
              f"{_fmt((ratios.get('pipeline_vs_inprocess') or {}).get(key)):>19}  "
              f"{_fmt((ratios.get('torch_vs_inprocess') or {}).get(key)):>16}")
    for run in results.get("pipeline", {}).get("runs", []):
        print(f"pipeline rate 0, {run['encoders']} encoder(s): {_fmt(run.get('events_per_s'))} events/s, "
              f"{_fmt(run.get('jets_per_s'))} jets/s, zero loss {run.get('zero_loss')}, "
              f"decision p99 {_fmt(run['decision_latency_s'].get('p99'), 1e3, ' ms')}")
    for p in results.get("ratescan", []):
        print(f"rate scan {p['pattern']:>8} requested {_fmt(p['requested_hz'])} achieved {_fmt(p['achieved_hz'])} "
              f"decision p99 {_fmt(p['decision_p99_s'], 1e3, ' ms')} commit p99 {_fmt(p['commit_p99_s'], 1e3, ' ms')} "
              f"zero loss {p['zero_loss']}")
    for name, g in results.get("goals", {}).items():
        print(f"goal {name}: measured {_fmt(g.get('measured'))} vs goal {_fmt(g.get('goal'))} "
              f"(ratio {_fmt(g.get('ratio_to_goal'))}) {verdict(g).upper()}")
    for err in results.get("errors", []):
        print(f"error in {err['step']}: {err['error']}", file=sys.stderr)
