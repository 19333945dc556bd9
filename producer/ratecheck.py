"""Producer rate accuracy on its own: `aetrig produce` against a consumer that acknowledges everything.

The full pipeline's rate is bounded by the encoders and the sink; this isolates the producer's
pacing. For each rate and pattern it runs `aetrig produce` as a process, authenticated as by default (keys
made for the check), receives every message on a PULL socket as the encoder (header only), acknowledges it
at once as the sink, and records the achieved rate from the producer's report. Usage::

    python -m producer.ratecheck --rates 1000 10000 100000 --patterns constant poisson trains \\
        --duration 10 --out ratecheck.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

from emulator.runtime import wire
from emulator.runtime.atomic import write_json_atomic
from emulator.runtime.child_process import aetrig_command
from emulator.runtime.curvezmq import generate_keys, secure_client
from emulator.runtime.ports import free_port


def check_rate(rate: float, pattern: str, duration: float, inputs: list[str]) -> dict[str, Any]:
    """Run one producer at ``rate`` for ``duration`` s against an acknowledging consumer; its figures."""
    data, acks = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context()
    with tempfile.TemporaryDirectory() as tmp:
        keys = generate_keys(Path(tmp) / "keys")
        pull = secure_client(ctx.socket(zmq.PULL), keys, "data")
        push = secure_client(ctx.socket(zmq.PUSH), keys, "acks")
        pull.connect(data)
        push.connect(acks)
        report_path = Path(tmp) / "producer.json"
        cmd = [*aetrig_command("produce"), "--rate", f"{rate:g}", "--pattern", pattern, "--duration", f"{duration:g}",
               "--loops", "0", "--bind", data, "--ack-bind", acks, "--report", str(report_path),
               "--curve-keys", str(keys)]
        if inputs:
            cmd += ["--input", *inputs]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        received = 0
        deadline = time.monotonic() + duration + 60
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if pull.poll(50):
                    frames = pull.recv_multipart(copy=False)
                    header = msgpack.unpackb(frames[0].bytes)
                    received += header["n_events"]
                    push.send(wire.encode_ack(header["run_id"], [header["seq"]]))
        finally:
            if proc.poll() is None:
                proc.kill()
            stderr = proc.communicate(timeout=30)[1]
            ctx.destroy(0)
        if proc.returncode != 0 or not report_path.exists():
            raise RuntimeError(f"aetrig produce failed (exit {proc.returncode}):\n{stderr[-2000:]}")
        report = json.loads(report_path.read_text())
    achieved = report["achieved_rate_hz"]
    return {"declared_hz": rate, "pattern": pattern, "achieved_hz": achieved,
            "relative_error": achieved / rate - 1 if rate else None, "produced": report["produced"],
            "received": received, "batches": report["batches_sent"], "schedule_lag_s": report["schedule_lag_s"],
            "duration_s": report["send_duration_s"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m producer.ratecheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 10000.0, 100000.0])
    parser.add_argument("--patterns", nargs="+", default=["constant"], choices=("constant", "poisson", "trains"))
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--input", nargs="+", default=[], help="ROOT input (default: the bundled sample)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    results = []
    for pattern in args.patterns:
        for rate in args.rates:
            r = check_rate(rate, pattern, args.duration, args.input)
            results.append(r)
            err = f"{100 * r['relative_error']:+.3f} %" if r["relative_error"] is not None else "-"
            print(f"{pattern:>8} {rate:>10,.0f} Hz declared: achieved {r['achieved_hz']:>12,.1f} Hz ({err}), "
                  f"{r['produced']} events, max schedule lag {r['schedule_lag_s']['max'] * 1e3:.1f} ms", flush=True)
    if args.out:
        write_json_atomic(args.out, results, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
