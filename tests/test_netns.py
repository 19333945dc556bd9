"""Multi-host test: producer, two encoders and sink, each in its own Linux network namespace.

The test builds a private star network that touches no host interface: a hub namespace holds a
bridge, and one veth pair per stage joins the bridge to the stage's namespace, where it gets a
10.213.N.x/24 address. The stages talk over real TCP between those addresses, CurveZMQ-encrypted
and authenticated (--curve-keys), and the recording must hold every produced event exactly once.
Needs root and `ip netns`; skips with the reason otherwise. Everything is removed afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_testkit import expected_anomaly_model
from stage_keys import stage_flags

from emulator.run.summary import recording_counts
from emulator.runtime import defaults

STAGES = ("producer", "encoder-a", "encoder-b", "sink")
METRICS_PORT = 9100
EVENTS = 4000
RATE_HZ = 4000
RUN_ID = 0x5EED0213
PYTHON = sys.executable
AETRIG = str(Path(sys.executable).with_name("aetrig"))


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (run the test as root, as CI does)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        return f"`ip netns` is unavailable: {probe.stderr.strip()}"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


class StarNetwork:
    """A hub namespace with a bridge and one namespace per stage, each with its own address."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.subnet = 10 + secrets.randbelow(200)  # 10.213.<subnet>.0/24, only inside our namespaces
        self.hub = f"aetrig-{self.tag}-hub"
        self.namespaces: dict[str, str] = {}
        self.addresses: dict[str, str] = {}

    def build(self, stages: tuple[str, ...]) -> None:
        first = subprocess.run(["ip", "netns", "add", self.hub], capture_output=True, text=True, timeout=10)
        if first.returncode != 0:
            if "not permitted" in first.stderr.lower() or "permission denied" in first.stderr.lower():
                pytest.skip(f"cannot create network namespaces here (unprivileged container?): {first.stderr.strip()}")
            raise RuntimeError(f"ip netns add {self.hub}: {first.stderr.strip()}")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for i, stage in enumerate(stages, start=1):
            ns, address = f"aetrig-{self.tag}-{stage}", f"10.213.{self.subnet}.{i}"
            _ip("netns", "add", ns)
            self.namespaces[stage] = ns
            port = f"p{i}"
            # created inside the hub, the peer moved straight into the stage namespace: no host interface
            _ip("-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", self.hub, "link", "set", port, "master", "br0")
            _ip("-n", self.hub, "link", "set", port, "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            self.addresses[stage] = address

    def remove(self) -> None:
        for ns in [*self.namespaces.values(), self.hub]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)

    def popen(self, stage: str, argv: list[str], log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            return subprocess.Popen(["ip", "netns", "exec", self.namespaces[stage], *argv], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def metrics_up(self, stage: str) -> bool:
        probe = (f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}/metrics', "
                 "timeout=1).read()")
        result = subprocess.run(["ip", "netns", "exec", self.namespaces[stage], PYTHON, "-c", probe],
                                capture_output=True, timeout=10)
        return result.returncode == 0


def _wait_ready(net: StarNetwork, stage: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{stage} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if net.metrics_up(stage):
            return
        time.sleep(0.3)
    pytest.fail(f"{stage} not serving /metrics after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_stages_in_separate_namespaces_record_every_event_once(tmp_path: Path) -> None:
    t0 = time.monotonic()
    net = StarNetwork()
    procs: dict[str, subprocess.Popen] = {}
    logs = {stage: tmp_path / f"{stage}.log" for stage in STAGES}
    reports = {stage: tmp_path / f"{stage}.json" for stage in STAGES}
    rec = tmp_path / "rec"
    from producer.manifest import build_manifest, write_manifest

    manifest = write_manifest(build_manifest(RUN_ID, [defaults.default_input()], {"test": True}, 1, []),
                              tmp_path / "manifest.json")
    try:
        net.build(STAGES)
        prod, sink = net.addresses["producer"], net.addresses["sink"]
        common = ["--metrics-port", str(METRICS_PORT)]  # and each stage its role's keys (stage_keys)
        procs["sink"] = net.popen("sink", [AETRIG, "sink", "--bind", f"tcp://{sink}:5557",
                                           "--ack-connect", f"tcp://{prod}:5556", "--out", str(rec),
                                           "--commit-ms", "100", "--report", str(reports["sink"]),
                                           "--model", str(defaults.default_model(announce=False)),
                                           "--manifest", str(manifest), "--anomaly-model",
                                           expected_anomaly_model(defaults.default_model(announce=False),
                                                                  defaults.default_input()), *common,
                                           *stage_flags("sink")],
                                  logs["sink"])
        _wait_ready(net, "sink", procs["sink"], logs["sink"], 30)
        model = defaults.default_model(announce=False)
        for name in ("encoder-a", "encoder-b"):
            procs[name] = net.popen(name, [AETRIG, "encode", "--model", str(model), "--connect", f"tcp://{prod}:5555",
                                           "--sink", f"tcp://{sink}:5557", "--id", name,
                                           "--report", str(reports[name]), *common, *stage_flags("encode")],
                                    logs[name])
        for name in ("encoder-a", "encoder-b"):
            _wait_ready(net, name, procs[name], logs[name], 40)
        procs["producer"] = net.popen("producer", [
            AETRIG, "produce", "--input", str(defaults.default_input()), "--bind", f"tcp://{prod}:5555",
            "--ack-bind", f"tcp://{prod}:5556", "--rate", str(RATE_HZ), "--max-events", str(EVENTS),
            "--events-per-message", "50", "--loops", "1", "--manifest", str(manifest),
            "--report", str(reports["producer"]), *common, *stage_flags("produce")], logs["producer"])
        code = procs["producer"].wait(max(5.0, 75 - (time.monotonic() - t0)))
        assert code == 0, f"producer exit {code}:\n{logs['producer'].read_text()[-3000:]}"
        for name in ("encoder-a", "encoder-b", "sink"):
            procs[name].send_signal(signal.SIGTERM)
        for name in ("encoder-a", "encoder-b", "sink"):
            try:
                procs[name].wait(max(2.0, 80 - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} did not stop on SIGTERM:\n{logs[name].read_text()[-2000:]}")

        produced = json.loads(reports["producer"].read_text())["produced"]
        assert produced == EVENTS
        counts = recording_counts(rec, RUN_ID, produced)
        assert counts["recorded"] == produced, counts
        assert counts["lost"] == 0 and counts["duplicates_recorded"] == 0, counts
        # both encoders took part (ZeroMQ spreads batches over connected encoders) and together saw every event
        handled = [json.loads(reports[name].read_text())["events"] for name in ("encoder-a", "encoder-b")]
        assert min(handled) > 0 and sum(handled) >= produced, handled
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        net.remove()
        leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
        assert f"aetrig-{net.tag}" not in leftover, leftover
