"""Start sink, N encoders and the producer together on loopback, watch them, and summarise the run.

Each stage is its own `aetrig sink|encode|produce` process (see them with `ps`), on 127.0.0.1
with free ports, on the bundled sample and the default model unless told otherwise. A status
line once a second shows events/s, decision latency, anomaly rate, in-flight batches and CPU,
read from the stages' /metrics. The run stops after --duration, --events, the end of the input,
or Ctrl-C/SIGTERM: the producer is stopped first (it drains its window of unacknowledged
batches), then the encoders and the sink. The stage reports and the recording are merged into
OUT/summary.json; logs are in OUT/logs/, stage reports in OUT/reports/, the recording in
OUT/segments/. An encoder or the sink that dies is started again (emulator/run/restarts.py).
Exit 0 on success, 1 if a stage failed, 3 if events were lost or recorded twice.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from emulator.run import restarts

EXAMPLES = """
aetrig run --duration 20 --rate 50000 --encoders 2 --out runs/demo
aetrig run --events 100000 --rate 0 --out runs/fast
aetrig run --input 'data/*.root' --model models/zoo/TLA_4D_leading --pattern trains --accept-rate 100 --duration 60
aetrig run --duration 30 --max-bytes 20000000 --drop-on-overload --prometheus --out runs/deadtime
"""

#: Events per message for the pipeline `aetrig run` starts: at the highest rates the per-message work of
#: every stage (decode, validate, frames, commits) dominates, and 2048 sustains about 8 % more events/s
#: than 1024 with zero loss on 2 cores; at 100 kHz the 10 ms delay limit closes messages at ~1000 events.
RUN_EVENTS_PER_MESSAGE = 2048
START_ATTEMPTS = 3
READY_TIMEOUT_S = 90.0
STAGE_STOP_TIMEOUT_S = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("what to run")
    g.add_argument("--input", nargs="+", metavar="FILE_OR_GLOB", help="ROOT input (default: bundled qcd sample)")
    g.add_argument("--model", type=Path, help="model directory (default: models/zoo/AE_3D_200_ptetaphie)")
    g.add_argument("--encoders", type=int, default=1, help="number of encoder processes (default 1)")
    g.add_argument("--max-batch-jets", type=int, help="encoder: ONNX Runtime micro-batch cap in jets (encoder default)")
    g.add_argument("--latent-dtype", choices=("float32", "float16"), help="encoder and sink: latent storage type")
    choice = g.add_mutually_exclusive_group()
    choice.add_argument("--fpr", type=float, help="background false-positive rate of the flag (encoder default 1e-3)")
    choice.add_argument("--accept-rate", type=float, metavar="HZ", help="flag this many events per second")
    choice.add_argument("--threshold", type=float, help="explicit per-event anomaly threshold")
    g = parser.add_argument_group("rate and stop")
    g.add_argument("--rate", type=float, default=10000.0, help="mean event rate in Hz, 0 = max (default 10000)")
    g.add_argument("--pattern", choices=("constant", "poisson", "trains"), default="constant")
    g.add_argument("--duration", type=float, help="stop after this many seconds")
    g.add_argument("--events", type=int, help="stop after this many events")
    g.add_argument("--loops", type=int,
                   help="passes over the input, 0 = forever (default: forever with --duration/--events, else 1)")
    g.add_argument("--events-per-message", type=int, default=RUN_EVENTS_PER_MESSAGE,
                   help=f"producer: most events per message (default {RUN_EVENTS_PER_MESSAGE}; below about 680 kHz "
                        "the producer's 3 ms --max-delay-ms closes messages first)")
    g.add_argument("--window", type=int, help="producer: unacknowledged batches in flight (producer default)")
    g.add_argument("--curve-keys", type=Path, metavar="DIR",
                   help="CurveZMQ key directory: encrypt and authenticate every link "
                        "(see emulator/runtime/curvezmq.py)")
    g.add_argument("--drop-on-overload", action="store_true",
                   help="trigger-emulation deadtime: drop and count events instead of waiting")
    g = parser.add_argument_group("outputs")
    g.add_argument("--out", type=Path, help="run directory (default runs/<UTC time>)")
    g.add_argument("--max-bytes", type=int, help="sink retention limit in bytes: reaching it is backpressure")
    g.add_argument("--commit-ms", type=float, help="sink group-commit interval (sink default)")
    g.add_argument("--metrics-base-port", type=int,
                   help="producer /metrics on P, sink on P+1, encoders on P+2.. (default: free ports)")
    g.add_argument("--prometheus", action="store_true", help="also start a local Prometheus scraping the stages")
    g.add_argument("--prometheus-port", type=int, default=9090,
                   help="port of that Prometheus (default 9090, or a free port when 9090 is taken)")
    g.add_argument("--status-interval", type=float, default=1.0, help="seconds between status lines (0 = none)")
    restarts.add_arguments(parser)


class _Stop:
    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self, signal_name: str) -> None:
        self.reason = self.reason or signal_name


def _plan(args: argparse.Namespace, out: Path, model: Path, inputs: list[str]) -> dict[str, Any]:
    """Addresses and ports for one start attempt."""
    from emulator.runtime.ports import free_port

    base = args.metrics_base_port
    n = args.encoders
    metrics = ([base, base + 1, *range(base + 2, base + 2 + n)] if base
               else [free_port() for _ in range(2 + n)])
    return {"data": f"tcp://127.0.0.1:{free_port()}", "acks": f"tcp://127.0.0.1:{free_port()}",
            "scored": f"tcp://127.0.0.1:{free_port()}", "metrics": metrics, "out": out, "model": model,
            "inputs": inputs}


def _stages(args: argparse.Namespace, plan: dict[str, Any]) -> list:
    from emulator.run.stage_process import StageProcess

    out: Path = plan["out"]
    logs, reports = out / "logs", out / "reports"
    m_prod, m_sink, *m_enc = plan["metrics"]
    sink_args = ["sink", "--bind", plan["scored"], "--ack-connect", plan["acks"], "--out", str(out),
                 "--metrics-port", str(m_sink), "--report", str(reports / "sink.json")]
    if args.max_bytes is not None:
        sink_args += ["--max-bytes", str(args.max_bytes)]
    if args.commit_ms is not None:
        sink_args += ["--commit-ms", str(args.commit_ms)]
    if args.latent_dtype is not None:
        sink_args += ["--latent-dtype", args.latent_dtype]
    curve = ["--curve-keys", str(args.curve_keys)] if args.curve_keys else []
    sink_args += curve
    stages = [StageProcess("sink", sink_args, logs / "sink.log", reports / "sink.json", m_sink)]
    for i in range(args.encoders):
        name = f"encoder-{i}"
        enc = ["encode", "--model", str(plan["model"]), "--connect", plan["data"], "--sink", plan["scored"],
               "--metrics-port", str(m_enc[i]), "--report", str(reports / f"{name}.json"), "--id", name,
               "--quarantine", str(out / "quarantine" / name)]
        for flag in ("fpr", "accept_rate", "threshold", "max_batch_jets", "latent_dtype"):
            if getattr(args, flag) is not None:
                enc += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        enc += curve
        stages.append(StageProcess(name, enc, logs / f"{name}.log", reports / f"{name}.json", m_enc[i]))
    loops = args.loops if args.loops is not None else (0 if args.duration or args.events else 1)
    prod = ["produce", "--input", *plan["inputs"], "--bind", plan["data"], "--ack-bind", plan["acks"],
            "--rate", repr(args.rate), "--pattern", args.pattern, "--loops", str(loops),
            "--metrics-port", str(m_prod), "--report", str(reports / "producer.json"),
            "--manifest-out", str(out / "manifest.json")]
    if args.duration:
        prod += ["--duration", repr(args.duration)]
    if args.events:
        prod += ["--max-events", str(args.events)]
    if args.events_per_message:
        prod += ["--events-per-message", str(args.events_per_message)]
    if args.window:
        prod += ["--window", str(args.window)]
    if args.drop_on_overload:
        prod += ["--drop-on-overload"]
    prod += curve
    stages.append(StageProcess("producer", prod, logs / "producer.log", reports / "producer.json", m_prod))
    return stages


def _start(stages: list, stop: _Stop) -> tuple[bool, bool]:
    """Start the stages in order (sink, encoders, producer), each once the previous is ready.

    Returns (started, retry): retry is True when a stage failed on an address already in use.
    """
    for stage in stages:
        stage.start()
        if not stage.ready(READY_TIMEOUT_S) or stop.reason:
            if stop.reason:
                return False, False
            stage.wait(2.0)
            tail = stage.log_tail()
            in_use = "in use" in tail.lower()
            print(f"aetrig run: {stage.name} did not start (exit {stage.returncode}); log {stage.log_path}:\n{tail}",
                  file=sys.stderr)
            return False, in_use
    return True, False


def _write_json(path: Path, data: Any) -> None:
    from emulator.runtime.atomic import write_json_atomic

    write_json_atomic(path, data, indent=2)


def _run_info(stages: list, plan: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"stages": [{"name": s.name, "pid": s.pid, "returncode": s.returncode, "log": str(s.log_path),
                        "report": str(s.report_path), "metrics": s.metrics_url, "args": s.args} for s in stages],
            "addresses": {"data": plan["data"], "acks": plan["acks"], "scored": plan["scored"]},
            "model": str(plan["model"]), "inputs": plan["inputs"], **(extra or {})}


def _start_prometheus(args: argparse.Namespace, stages: list, out: Path) -> Any:
    if not args.prometheus:
        return None
    try:
        from emulator.ops.prometheus_local import launch_prometheus, write_scrape_config
    except ImportError:
        print("aetrig run: --prometheus needs emulator/ops/prometheus_local.py, which is not installed yet",
              file=sys.stderr)
        return None
    from emulator.runtime.ports import free_port, port_is_free

    targets = {s.name: f"127.0.0.1:{s.metrics_port}" for s in stages}
    config = write_scrape_config(targets, out / "prometheus" / "prometheus.yml")
    port = args.prometheus_port if port_is_free(args.prometheus_port) else free_port()
    proc = launch_prometheus(config, out / "prometheus" / "data", port)
    if proc is not None:
        print(f"aetrig run: Prometheus on http://127.0.0.1:{port} (config {config})", file=sys.stderr)
    return proc


def _monitor(stages: list, stop: _Stop, args: argparse.Namespace, supervisor: restarts.Supervisor) -> list[str]:
    """Print the status line until the producer exits or a stop is requested, restarting dead stages
    (emulator/run/restarts.py); returns failure notes."""
    from emulator.run.live_status import LiveStatus

    producer = stages[-1]
    status = LiveStatus({s.name: s.metrics_url for s in stages if s.metrics_url})
    tty = sys.stdout.isatty()
    failures: list[str] = []
    interval = args.status_interval if args.status_interval > 0 else 1.0
    # a safety net in case the producer does not stop on its own
    limit = (args.duration + 120.0) if args.duration else None
    t0 = time.monotonic()
    next_line = t0 + interval
    status.line()
    while stop.reason is None:
        if producer.wait(supervisor.wait_s(next_line - time.monotonic())) is not None:
            break
        if args.status_interval > 0 and time.monotonic() >= next_line - 0.01:
            line = f"[{time.monotonic() - t0:6.1f}s] {status.line()}"
            print(("\r" + line + "\033[K") if tty else line, end="" if tty else "\n", flush=True)
        if time.monotonic() >= next_line - 0.01:
            next_line = time.monotonic() + interval
        failures += supervisor.poll(stop)
        if limit is not None and time.monotonic() - t0 > limit:
            stop.reason = "duration safety limit"
    if tty and args.status_interval > 0:
        print()
    return failures


def main(args: argparse.Namespace) -> int:
    from emulator.run.stage_process import terminate_all
    from emulator.run.summary import combine_sink_reports, merge, recording_counts
    from emulator.runtime import defaults
    from emulator.runtime.shutdown import on_stop_signals, restore_signals

    if args.encoders < 1:
        print("aetrig run: --encoders must be >= 1", file=sys.stderr)
        return 2
    try:
        model = (args.model or defaults.default_model()).resolve()
        inputs = args.input or [str(defaults.default_input())]
    except FileNotFoundError as err:
        print(f"aetrig run: {err}", file=sys.stderr)
        return 2
    out = (args.out or Path("runs") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())).resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "reports").mkdir(parents=True, exist_ok=True)
    for old in (out / "reports").glob("*.json"):
        old.unlink()  # reports of an earlier run in the same directory would be merged otherwise
    stop = _Stop()
    previous = on_stop_signals(stop)
    stages: list = []
    prometheus = None
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            plan = _plan(args, out, model, inputs)
            stages = _stages(args, plan)
            started, retry = _start(stages, stop)
            if started:
                break
            terminate_all(stages)
            if not retry or attempt == START_ATTEMPTS:
                print("aetrig run: could not start the pipeline", file=sys.stderr)
                return 1
            print(f"aetrig run: address in use, retrying with new ports (attempt {attempt + 1})", file=sys.stderr)
        _write_json(out / "run.json", _run_info(stages, plan))
        print(f"aetrig run: {len(stages)} stages up (pids "
              + ", ".join(f"{s.name}={s.pid}" for s in stages) + f"); output in {out}", file=sys.stderr)
        prometheus = _start_prometheus(args, stages, out)
        supervisor = restarts.Supervisor.from_args(args, stages[:-1], on_restart=lambda: _write_json(
            out / "run.json", _run_info(stages, plan, {"restarts": supervisor.restarts})))
        failures = _monitor(stages, stop, args, supervisor)
        awaiting_restart = supervisor.close()
        producer, sink = stages[-1], stages[0]
        codes = {producer.name: producer.stop(STAGE_STOP_TIMEOUT_S + 30.0)}
        for enc in stages[1:-1]:
            enc.signal(signal.SIGTERM)
        for enc in stages[1:-1]:
            codes[enc.name] = enc.stop(STAGE_STOP_TIMEOUT_S, already_signalled=True)
        codes[sink.name] = sink.stop(STAGE_STOP_TIMEOUT_S)
    finally:
        terminate_all(stages)
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(10)
        restore_signals(previous)
    reports = {s.name: s.report() for s in stages}
    prod_report = reports.get("producer")
    run_id = prod_report.get("run_id") if prod_report else None
    counts = recording_counts(out, run_id, prod_report.get("produced") if prod_report else None)
    summary = merge(prod_report, [r for s in stages[1:-1] for r in supervisor.reports(s.name)],
                    combine_sink_reports(supervisor.reports("sink")), counts, supervisor.restarts)
    _write_json(out / "summary.json", summary)
    failed = [f"{n} exited with code {c}" for n, c in codes.items() if c != 0 and n not in awaiting_restart] + failures
    failed += [f"{n} wrote no report" for n, r in reports.items()
               if r is None and n not in awaiting_restart and f"{n} exited" not in str(failed)]
    _write_json(out / "run.json", _run_info(stages, plan, {
        "stop_reason": stop.reason or (prod_report or {}).get("stop_reason"), "exit_codes": codes,
        "failures": failed, "run_id": run_id, "restarts": supervisor.restarts,
        "achieved_rate_hz": (prod_report or {}).get("achieved_rate_hz")}))
    ev = summary["events"]
    print(f"aetrig run: stopped ({stop.reason or (prod_report or {}).get('stop_reason')}): produced {ev['produced']}, "
          f"recorded {ev['recorded']}, flagged {ev['flagged']}, dropped {ev['dropped']}, lost {ev['lost']}, "
          f"duplicates recorded {ev['duplicates_recorded']}, throughput {summary['throughput_events_per_s']:,.0f} "
          f"events/s, decision p99 {summary['latency_seconds']['decision']['p99']}")
    if prod_report:
        bp = prod_report.get("backpressure", {})
        achieved, declared = prod_report.get("achieved_rate_hz", 0), prod_report.get("declared_rate_hz", 0)
        print(f"  producer:  achieved {achieved:,.0f} Hz of {declared:g} Hz declared; waited for a free window "
              f"slot (acknowledgements, backpressure) {bp.get('blocked_seconds', 0):.1f} s in all; resent "
              f"{prod_report.get('batches_resent', 0)} batches")
    print(f"  recording: {out}/segments   (check: aetrig verify {out})")
    print(f"  summary:   {out / 'summary.json'}")
    print(f"  run info:  {out / 'run.json'}   manifest: {out / 'manifest.json'}")
    print(f"  reports:   {out / 'reports'}/   logs: {out / 'logs'}/")
    if failed:
        print("aetrig run: FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    if ev["lost"] or ev["duplicates_recorded"]:
        unacked = (prod_report or {}).get("unacked_events", 0)
        why = f" ({unacked} never acknowledged when the producer stopped: see backpressure)" if unacked else ""
        print(f"aetrig run: INTEGRITY: {ev['lost']} events lost{why}, {ev['duplicates_recorded']} recorded twice",
              file=sys.stderr)
        return 3
    return 0
