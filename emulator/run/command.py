"""Start sink, N encoders and the producer together on loopback, watch them, and summarise the run.

Each stage is its own `aetrig sink|encode|produce` process (see them with `ps`), on 127.0.0.1
with free ports, on the bundled sample and the default model unless told otherwise. A status
line once a second shows events/s, decision latency, anomaly rate (and anomaly model), in-flight batches and CPU,
read from the stages' /metrics. The run stops after --duration, --events, the end of the input,
or Ctrl-C/SIGTERM: the producer is stopped first (it drains its window of unacknowledged
batches), then the encoders and the sink. The stage reports and the recording are merged into
OUT/summary.json; logs are in OUT/logs/, stage reports in OUT/reports/, the recording in
OUT/segments/. An encoder or the sink that dies is started again (emulator/run/restarts.py).
Every stage setting the run does not set itself is a flag here, derived from the stage's config,
and a key of the stage's table in --config FILE (emulator/run/settings.py); without --columns the
producer sends every per-jet variable of the input plus any model variable it can derive, and an input
that lacks one of the model's variables fails before any stage starts. Events are scored and flagged by
the default event-level model (--anomaly-model) when the input has its variables, else by the per-jet
max error; which one is printed at start-up and written to summary.json ("anomaly").
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
from emulator.run import settings as run_settings

EXAMPLES = """
aetrig run --duration 20 --rate 50000 --encoders 2 --out runs/demo
aetrig run --events 100000 --rate 0 --out runs/fast
aetrig run --input 'data/*.root' --model models/zoo/TLA_4D_leading --pattern trains --accept-rate 100 --duration 60
aetrig run --duration 30 --max-bytes 20000000 --drop-on-overload --prometheus --out runs/deadtime
aetrig run --input producer/samples/nanoaod_example.root --input-format nanoaod --events 300 --rate 0
aetrig run --config run.toml --duration 30
""" + "\n" + run_settings.CONFIG_EXAMPLE

START_ATTEMPTS = 3
MANIFEST_NAME = "manifest.json"
READY_TIMEOUT_S = 90.0
STAGE_STOP_TIMEOUT_S = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's own flags and every stage setting it passes on (emulator/run/settings.py)."""
    run_settings.add_arguments(parser)
    restarts.add_arguments(parser)


class _Stop:
    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self, signal_name: str) -> None:
        self.reason = self.reason or signal_name


def _plan(settings: run_settings.RunSettings, out: Path, model: Path, inputs: list[str]) -> dict[str, Any]:
    """Addresses and ports for one start attempt (and the models the sink is to expect)."""
    from emulator.runtime.ports import free_port

    base = settings.run.metrics_base_port
    n = settings.run.encoders
    metrics = ([base, base + 1, *range(base + 2, base + 2 + n)] if base
               else [free_port() for _ in range(2 + n)])
    return {"data": f"tcp://127.0.0.1:{free_port()}", "acks": f"tcp://127.0.0.1:{free_port()}",
            "scored": f"tcp://127.0.0.1:{free_port()}", "metrics": metrics, "out": out, "model": model,
            "inputs": inputs, "curve_keys": settings.stages["producer"].get("curve_keys"),
            "anomaly_model": sink_anomaly_model(settings, model)}


def _make_keys(keys: Path | None, fresh: bool) -> str:
    """Make fresh CurveZMQ keys for the run in ``keys`` (not for --curve-keys DIR: the stages read DIR's);
    describe the links."""
    if keys is None:
        return "PLAINTEXT (--plaintext): unauthenticated and unencrypted; any local process may connect"
    if fresh:
        from emulator.runtime.curvezmq import generate_keys

        generate_keys(keys, overwrite=True)
    made = "made for this run" if fresh else "from --curve-keys"
    return (f"CurveZMQ, keys {made} in {keys} (producer, encoder, sink): only encoders pull events and push "
            "scored messages, only the sink acknowledges")


def sink_anomaly_model(settings: run_settings.RunSettings, model: Path) -> str:
    """What the sink is told flags the events: the event-level model the encoders will choose, or ``none``
    (the compression model's per-jet max error), by the same rule (``settings.anomaly``)."""
    from emulator.runtime.defaults import default_anomaly_model

    if settings.anomaly.get("model") in (None, model.name):
        return "none"
    explicit = settings.stages["encoder"].get("anomaly_model")
    if explicit is not None and str(explicit).lower() != "none":
        return str(explicit)
    return str(settings.anomaly.get("path") or default_anomaly_model())  # the default the encoders will choose


def run_manifest(settings: run_settings.RunSettings, out: Path) -> dict[str, Any]:
    """The run's manifest, built before any stage starts (the sink records it; every producer of the run, a
    restarted one too, sends it). A run id that the recording in ``out`` already holds is refused (ValueError):
    its batches would be discarded as duplicates."""
    from emulator.runtime.recording import parse_segment_name, segment_paths
    from producer.inputs import open_inputs
    from producer.manifest import build_manifest, manifest_settings, new_run_id

    cfg = settings.config("producer")
    inputs = open_inputs(cfg)  # the producer's start-up check: files, tree, branches
    run_id = cfg.run_id if cfg.run_id is not None else new_run_id()
    if any(parse_segment_name(p)[0] == run_id for p in segment_paths(out)):
        raise ValueError(f"run id {run_id:016x} is already recorded in {out}: give another --run-id or --out")
    return build_manifest(run_id, inputs.files, manifest_settings(cfg, inputs.files), cfg.seed, inputs.variables,
                          plans=inputs.plans)


def _stages(settings: run_settings.RunSettings, plan: dict[str, Any]) -> list:
    """The stage processes of one start attempt; each command line is checked by its stage's validator."""
    from emulator.run.cpu_plan import plan_cpus
    from emulator.run.stage_process import StageProcess

    out: Path = plan["out"]
    logs, reports = out / "logs", out / "reports"
    m_prod, m_sink, *m_enc = plan["metrics"]
    sink = settings.argv("sink", bind=plan["scored"], ack_connect=plan["acks"], out=out, metrics_port=m_sink,
                         report=reports / "sink.json", model=plan["model"], anomaly_model=plan["anomaly_model"],
                         manifest=out / MANIFEST_NAME)
    stages = [StageProcess("sink", sink, logs / "sink.log", reports / "sink.json", m_sink)]
    for i in range(settings.run.encoders):
        name = f"encoder-{i}"
        enc = settings.argv("encoder", model=plan["model"], connect=plan["data"], sink=plan["scored"],
                            metrics_port=m_enc[i], report=reports / f"{name}.json", id=name,
                            quarantine=out / "quarantine" / name)
        stages.append(StageProcess(name, enc, logs / f"{name}.log", reports / f"{name}.json", m_enc[i]))
    prod = settings.argv("producer", input=plan["inputs"], bind=plan["data"], ack_bind=plan["acks"],
                         metrics_port=m_prod, report=reports / "producer.json", manifest=out / MANIFEST_NAME)
    stages.append(StageProcess("producer", prod, logs / "producer.log", reports / "producer.json", m_prod))
    cores = plan_cpus([s.name for s in stages], settings.run.pin_cpus)
    for stage in stages:
        stage.cpus = cores.get(stage.name)
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
                        "report": str(s.report_path), "metrics": s.metrics_url, "args": s.args,
                        "cpus": sorted(s.cpus) if s.cpus else None} for s in stages],
            "addresses": {"data": plan["data"], "acks": plan["acks"], "scored": plan["scored"]},
            "curve_keys": str(plan["curve_keys"]) if plan["curve_keys"] else None,
            "model": str(plan["model"]), "inputs": plan["inputs"], **(extra or {})}


def _start_prometheus(args: run_settings.RunConfig, stages: list, out: Path) -> Any:
    if not args.prometheus:
        return None
    from emulator.ops.prometheus_local import launch_prometheus, write_scrape_config
    from emulator.runtime.ports import free_port, port_is_free

    targets = {s.name: f"127.0.0.1:{s.metrics_port}" for s in stages}
    config = write_scrape_config(targets, out / "prometheus" / "prometheus.yml")
    port = args.prometheus_port if port_is_free(args.prometheus_port) else free_port()
    proc = launch_prometheus(config, out / "prometheus" / "data", port)
    if proc is not None:
        print(f"aetrig run: Prometheus on http://127.0.0.1:{port} (config {config})", file=sys.stderr)
    return proc


def _monitor(stages: list, stop: _Stop, settings: run_settings.RunSettings,
             supervisor: restarts.Supervisor) -> list[str]:
    """Print the status line until the producer exits or a stop is requested, restarting dead stages
    (emulator/run/restarts.py); returns failure notes."""
    from emulator.run.live_status import LiveStatus

    producer = stages[-1]
    status = LiveStatus({s.name: s.metrics_url for s in stages if s.metrics_url},
                        anomaly_model=settings.anomaly.get("model"), anomaly_path=settings.anomaly.get("path"))
    tty = sys.stdout.isatty()
    failures: list[str] = []
    show = settings.run.status_interval > 0
    interval = settings.run.status_interval if show else 1.0
    # a safety net in case the producer does not stop on its own
    limit = (settings.duration + 120.0) if settings.duration else None
    t0 = time.monotonic()
    next_line = t0 + interval
    status.line()
    while stop.reason is None:
        code = producer.wait(supervisor.wait_s(next_line - time.monotonic()))
        if code is not None:
            if code == 0:
                break
            failures += supervisor.poll(stop)  # a producer that died is restarted (emulator/run/restarts.py)
            if not supervisor.restarting(producer.name):
                break
            time.sleep(supervisor.wait_s(next_line - time.monotonic()))
        if show and time.monotonic() >= next_line - 0.01:
            line = f"[{time.monotonic() - t0:6.1f}s] {status.line()}"
            print(("\r" + line + "\033[K") if tty else line, end="" if tty else "\n", flush=True)
        if time.monotonic() >= next_line - 0.01:
            next_line = time.monotonic() + interval
        failures += supervisor.poll(stop)
        if limit is not None and time.monotonic() - t0 > limit:
            stop.reason = "duration safety limit"
    if tty and show:
        print()
    return failures


def main(args: argparse.Namespace) -> int:
    from consumer.offline.recording_bytes import byte_text, recording_byte_report
    from emulator.run.cpu_plan import describe_plan
    from emulator.run.stage_process import terminate_all
    from emulator.run.summary import combine_sink_reports, input_text, latency_text, merge, recording_counts
    from emulator.runtime.shutdown import on_stop_signals, restore_signals
    from producer.manifest import write_manifest

    try:
        settings = run_settings.resolve(args)
        model, inputs = settings.complete()
        out = (settings.run.out or Path("runs") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())).resolve()
        keys = settings.secure_links(out)
        plan = _plan(settings, out, model, inputs)
        stages = _stages(settings, plan)  # every stage's settings checked before any process starts
        manifest = run_manifest(settings, out)
    except (ValueError, OSError) as err:
        print(f"aetrig run: error: {err}", file=sys.stderr)
        return 2
    try:
        links = _make_keys(keys, fresh=not settings.given_keys)
    except (RuntimeError, OSError) as err:  # CurveError: no CURVE in libzmq; or an unwritable directory
        print(f"aetrig run: error: {err}", file=sys.stderr)
        return 2
    print(f"aetrig run: links: {links}", file=sys.stderr)
    print(f"aetrig run: anomaly scoring: {settings.anomaly['scoring']}", file=sys.stderr)
    print(f"aetrig run: {describe_plan({s.name: s.cpus for s in stages if s.cpus}, settings.run.pin_cpus)}",
          file=sys.stderr)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "reports").mkdir(parents=True, exist_ok=True)
    write_manifest(manifest, out / MANIFEST_NAME)
    for old in (out / "reports").glob("*.json"):
        old.unlink()  # reports of an earlier run in the same directory would be merged otherwise
    stop = _Stop()
    previous = on_stop_signals(stop)
    prometheus = None
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            if attempt > 1:
                plan = _plan(settings, out, model, inputs)
                stages = _stages(settings, plan)
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
        prometheus = _start_prometheus(settings.run, stages, out)
        supervisor = restarts.Supervisor.from_args(args, stages, on_restart=lambda: _write_json(
            out / "run.json", _run_info(stages, plan, {"restarts": supervisor.restarts})),
            on_restart_args={"producer": ["--resume-from", str(out)]})
        failures = _monitor(stages, stop, settings, supervisor)
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
    summary["recording_bytes"] = recording_byte_report(out, settings.run.lossless_events)
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
          "events/s")
    print(f"  latency:   {latency_text(summary['latency_seconds'])}")
    check = summary.get("threshold_check") or {}
    if check.get("out_of_domain_jets"):
        print(f"  domain:    {check['out_of_domain_jets']} of {check['jets']} jets "
              f"({100 * (check.get('out_of_domain_share') or 0):.1f}%) outside the anomaly model's training domain, "
              f"selection {summary['anomaly'].get('domain_selection')}")
    if check.get("warning"):
        print(f"aetrig run: WARNING: {check['warning']}", file=sys.stderr)
    if summary["recording_bytes"]:
        print(f"  bytes:     {byte_text(summary['recording_bytes'])}")
    if prod_report:
        bp = prod_report.get("backpressure", {})
        achieved, declared = prod_report.get("achieved_rate_hz", 0), prod_report.get("declared_rate_hz", 0)
        print(f"  producer:  achieved {achieved:,.0f} Hz of {declared:g} Hz declared; waited for a free window "
              f"slot (acknowledgements, backpressure) {bp.get('blocked_seconds', 0):.1f} s in all; resent "
              f"{prod_report.get('batches_resent', 0)} batches")
        refused = {link: n for link, n in (prod_report.get("auth_refused") or {}).items() if n}
        if refused:
            print("  links:     the producer refused " + ", ".join(f"{n} handshakes on {link}" for link, n in
                                                             refused.items()) + " (peers without the role's key)")
        screened = input_text(summary["input"])
        if screened:
            print(f"  input:     {screened}")
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
