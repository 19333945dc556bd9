"""Generate jet ntuples: Pythia 8 collisions, a simple calorimeter (eta-phi towers with Gaussian
smearing), FastJet anti-kT R=0.4 jets and 13 per-jet variables, written with uproot in the
input-ntuple contract (tree `events`, jagged float32 `jet_<name>`, `event_number`, `run_number`,
TObjString `metadata` JSON). Output is reproducible for a given --seed, --jobs and --chunk-events.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from producer.generate.processes import DESCRIPTIONS, PROCESSES, minbias_settings, process_settings

EXAMPLES = """
aetrig generate --process qcd --events 1000 --seed 1 --out qcd.root
aetrig generate --process zprime --events 2000 --seed 103 --jobs 2 --out producer/samples/zprime.root
aetrig generate --process qcd --pthat-min 300 --ecm 8000 --events 20000 --seed 903 --out data/qcd_300.root
aetrig generate --process qcd --pileup 20 --events 500 --seed 5 --out qcd_pu20.root
aetrig generate --process custom --pythia "WeakSingleBoson:ffbar2W = on" --events 1000 --seed 7 --out w.root
"""

VARIABLE_UNITS = {
    "pt": "GeV", "eta": "", "phi": "rad", "m": "GeV", "e": "GeV", "nconst": "count", "charged_frac": "",
    "em_frac": "", "width": "", "lead_frac": "", "n90": "count", "tau21": "", "tau32": "",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    processes = "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items())
    parser.add_argument("--process", default="qcd", help=f"process (default qcd). {processes}")
    parser.add_argument("--events", type=int, default=1000, help="number of events (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="base random seed (default 1); workers derive theirs")
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes (default 1)")
    parser.add_argument("--out", required=True, help="output ROOT file")
    parser.add_argument("--ecm", type=float, default=13000.0, help="centre-of-mass energy in GeV (default 13000)")
    parser.add_argument("--pthat-min", type=float, default=100.0,
                        help="qcd only: minimum pT-hat in GeV (default 100)")
    parser.add_argument("--pileup", type=float, default=0.0, metavar="MU",
                        help="overlay Poisson(MU) minimum-bias events per event (default 0)")
    parser.add_argument("--pythia", action="append", default=[], metavar='"KEY = VALUE"',
                        help="extra Pythia setting, repeatable; applied last, so it overrides presets")
    parser.add_argument("--run-number", type=int, default=None, help="run_number written per event (default: seed)")
    parser.add_argument("--chunk-events", type=int, default=1000,
                        help="events per chunk (unit of work and of writing; default 1000)")
    parser.add_argument("--compression", choices=("zlib", "lz4", "lzma"), default="zlib",
                        help="ROOT compression (default zlib level 6)")


def _check_args(args: argparse.Namespace) -> str | None:
    if args.process not in PROCESSES:
        return f"unknown process {args.process!r}; choose one of: {', '.join(PROCESSES)}"
    checks = [
        (args.events >= 1, "--events must be >= 1"),
        (args.jobs >= 1, "--jobs must be >= 1"),
        (args.chunk_events >= 1, "--chunk-events must be >= 1"),
        (args.ecm > 0, "--ecm must be > 0 (GeV)"),
        (args.pthat_min >= 0, "--pthat-min must be >= 0 (GeV)"),
        (args.pileup >= 0, "--pileup must be >= 0"),
        (args.seed >= 0, "--seed must be >= 0"),
        (args.run_number is None or 0 <= args.run_number < 2**32, "--run-number must fit in uint32"),
    ]
    for ok, message in checks:
        if not ok:
            return message
    bad = [s for s in args.pythia if "=" not in s]
    if bad:
        return f"--pythia expects 'Key = value', got {bad[0]!r}"
    return None


def config_from_args(args: argparse.Namespace):
    from producer.generate.worker import GenConfig

    return GenConfig(
        process=args.process, n_events=args.events, seed=args.seed, jobs=args.jobs, chunk_events=args.chunk_events,
        ecm=args.ecm, pthat_min=args.pthat_min, pileup=args.pileup,
        run_number=args.seed if args.run_number is None else args.run_number, extra=tuple(args.pythia),
    )


def _worker_process(config, worker: int, out: multiprocessing.Queue) -> None:
    from producer.generate.worker import Worker

    try:
        w = Worker(config, worker)
        for chunk in w.chunks():
            out.put(("chunk", w.make_chunk(chunk)))
    except Exception as exc:  # reported to the parent, which fails clearly
        out.put(("error", f"worker {worker}: {exc}"))


def _chunks_in_process(config):
    from producer.generate.worker import Worker

    w = Worker(config, 0)
    for chunk in w.chunks():
        yield w.make_chunk(chunk)


def _chunks_from_workers(config):
    """Chunks in global order; chunk g comes from worker g % jobs through a small bounded queue."""
    from producer.generate.worker import GenerateError

    ctx = multiprocessing.get_context("spawn")
    queues = [ctx.Queue(maxsize=2) for _ in range(config.jobs)]
    procs = [ctx.Process(target=_worker_process, args=(config, j, queues[j]), daemon=True)
             for j in range(config.jobs)]
    for p in procs:
        p.start()
    try:
        for g in range(config.n_chunks()):
            j = g % config.jobs
            while True:
                try:
                    kind, payload = queues[j].get(timeout=2.0)
                    break
                except queue.Empty:
                    if not procs[j].is_alive():
                        raise GenerateError(f"worker {j} died (exit code {procs[j].exitcode})") from None
            if kind == "error":
                raise GenerateError(payload)
            yield payload
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()


def _validate_settings(config) -> str:
    """Build (and init) one Pythia with the run's settings so a bad setting fails before any work."""
    from producer.generate.worker import make_pythia

    pythia = make_pythia(config.settings(), config.process)
    if config.pileup > 0:
        make_pythia(minbias_settings(config.ecm), "pileup")
    return f"{pythia.parm('Pythia:versionNumber'):.3f}"


def metadata(config, args: argparse.Namespace, pythia_version: str, n_jets: int, seconds: float,
             n_pileup: int) -> dict:
    from importlib.metadata import version

    from producer.generate.worker import worker_seeds

    return {
        "generator": {"name": "Pythia", "version": pythia_version, "pythia8mc": version("pythia8mc"),
                      "fastjet": version("fastjet"), "aetrig": version("aetrig")},
        "process": config.process,
        "description": DESCRIPTIONS[config.process],
        "pythia_settings": process_settings(config.process, config.ecm, config.pthat_min, list(config.extra)),
        "pileup_settings": minbias_settings(config.ecm) if config.pileup > 0 else [],
        "ecm_gev": config.ecm,
        "pthat_min_gev": config.pthat_min if config.process == "qcd" else None,
        "pileup_mu": config.pileup,
        "pileup_events_overlaid": n_pileup,
        "seed": config.seed,
        "worker_seeds": [worker_seeds(config.seed, j) for j in range(config.jobs)],
        "jobs": config.jobs,
        "chunk_events": config.chunk_events,
        "run_number": config.run_number,
        "event_number": "global event index 0..n_events-1 in file order (chunk g from worker g % jobs)",
        "detector": config.detector.as_dict(),
        "jets": config.jets.as_dict(),
        "variables": [{"name": k, "unit": u} for k, u in VARIABLE_UNITS.items()],
        "conventions": "ratios with a zero denominator are 0 (tau21, tau32, fractions, width); no NaN/inf written",
        "n_events": config.n_events,
        "n_jets": n_jets,
        "seconds": round(seconds, 3),
        "events_per_s": round(config.n_events / seconds, 2) if seconds > 0 else None,
        "command_line": " ".join(["aetrig", "generate", *sys.argv[2:]]) if sys.argv[1:2] == ["generate"]
        else " ".join(sys.argv),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(args: argparse.Namespace) -> int:
    problem = _check_args(args)
    if problem:
        print(f"aetrig generate: error: {problem}", file=sys.stderr)
        return 2
    from emulator.runtime.progress import Progress
    from producer.generate.worker import GenerateError
    from producer.generate.writer import NtupleWriter

    config = config_from_args(args)
    out = Path(args.out)
    part = out.with_name(out.name + ".part")
    try:
        pythia_version = _validate_settings(config)
    except GenerateError as exc:  # a setting Pythia refuses: bad input, before any work
        print(f"aetrig generate: error: {exc}", file=sys.stderr)
        return 2
    try:
        start = time.perf_counter()
        writer = NtupleWriter(part, config.run_number, args.compression)
        chunks = _chunks_in_process(config) if config.jobs == 1 else _chunks_from_workers(config)
        n_pileup = 0
        with Progress(config.n_events, f"generate {config.process}", unit="events") as bar:
            for chunk in chunks:
                writer.write(chunk.event_number, chunk.n_jets, chunk.columns)
                n_pileup += chunk.n_pileup
                bar.update(len(chunk.event_number), jets=writer.n_jets)
        seconds = time.perf_counter() - start
        meta = metadata(config, args, pythia_version, writer.n_jets, seconds, n_pileup)
        writer.close(meta)
        os.replace(part, out)
    except GenerateError as exc:
        part.unlink(missing_ok=True)
        print(f"aetrig generate: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {config.n_events} events ({meta['n_jets']} jets) to {out} in {seconds:.1f} s: "
          f"{meta['events_per_s']} events/s (jobs={config.jobs}, pileup={config.pileup:g})")
    return 0
