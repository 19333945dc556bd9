"""Podman for the container tests (tests/test_containers_*.py): the engine, its settings, the images, clean-up.

Every podman call of a test goes through :class:`Podman`, which points podman at a containers.conf of the
test's own (``CONTAINERS_CONF``): runc as the OCI runtime (crun fails on some cgroup layouts) and open-file
and process limits at or below this process's own (hosts that forbid raising them refuse podman's
defaults). The same file reaches podman-compose and ``podman kube play`` through the environment. What a
test creates carries a label or a name of its own, and :meth:`Podman.remove_labelled` removes it all.

The images are built once per test session (tests/conftest.py ``container_images``) by
emulator/ops/image.py, which reuses an image whose inputs are unchanged. Without podman the tests skip with
the reason, except in CI (``CI=true``), where they fail: there they must run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from emulator.ops import image
from emulator.ops.container_engine import Engine, current_ulimits

REPO = Path(__file__).resolve().parent.parent
IMAGE_TAG = image.DEFAULT_TAG
PROMETHEUS_TAG = "aetrig-prometheus:latest"
RUNTIME = "runc"
#: what the container tests need on PATH, and the Debian packages that provide it
TOOLS = {"podman": "podman", "runc": "runc", "podman-compose": "podman-compose", "mmdebstrap": "mmdebstrap"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def require_tools(*names: str) -> None:
    """Skip (outside CI) or fail (in CI) when a tool the test needs is not installed."""
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    packages = " ".join(sorted({TOOLS.get(n, n) for n in missing}))
    message = (f"{', '.join(missing)} not installed: the container tests need them "
               f"(`apt-get install {packages}`; .ci/run installs them)")
    if in_ci():
        pytest.fail(message + "; CI=true, so this test must run")
    pytest.skip(message)


def containers_conf_text() -> str:
    """containers.conf: runc, and the ulimits every container gets (emulator/ops/container_engine.py)."""
    flags = current_ulimits()
    limits = ", ".join(json.dumps(flags[i + 1]) for i in range(0, len(flags), 2))
    return f'[containers]\ndefault_ulimits = [{limits}]\n\n[engine]\nruntime = "{RUNTIME}"\n'


@dataclass
class Podman:
    """podman (and podman-compose) with the tests' containers.conf."""

    conf: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    @property
    def engine(self) -> Engine:
        return Engine(shutil.which("podman") or "podman", ("--runtime", RUNTIME), str(self.conf))

    def run(self, *args: str, check: bool = True, timeout: float = 120, program: str = "podman",
            env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
        """``podman ARGS`` (or ``podman-compose ARGS``), output captured; raise with the output when it fails."""
        argv = [program, *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**self.env, **(env or {})},
                                cwd=cwd)
        if check and result.returncode != 0:
            raise AssertionError(f"`{' '.join(argv)}` exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                                 f"{result.stderr[-3000:]}")
        return result

    def names(self, kind: str, label: str) -> list[str]:
        """Names of the containers, pods, volumes or networks carrying ``label`` (key=value)."""
        listing = {"container": ["ps", "-a"], "pod": ["pod", "ps"], "volume": ["volume", "ls"],
                   "network": ["network", "ls"]}[kind]
        out = self.run(*listing, "--filter", f"label={label}", "--format", "{{.Name}}" if kind != "container"
                       else "{{.Names}}", check=False).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def remove_labelled(self, label: str) -> list[str]:
        """Remove every container, pod, volume and network carrying ``label``; return what is still there."""
        for name in self.names("container", label):
            self.run("rm", "-f", "-t", "0", name, check=False)
        for name in self.names("pod", label):
            self.run("pod", "rm", "-f", "-t", "0", name, check=False)
        for name in self.names("volume", label):
            self.run("volume", "rm", "-f", name, check=False)
        for name in self.names("network", label):
            self.run("network", "rm", "-f", name, check=False)
        return [f"{kind} {name}" for kind in ("container", "pod", "volume", "network")
                for name in self.names(kind, label)]

    def state(self, container: str) -> dict:
        """``podman inspect``'s State of a container."""
        return json.loads(self.run("inspect", "--format", "{{json .State}}", container).stdout)

    def wait_exit(self, container: str, timeout: float) -> int:
        """Wait until ``container`` has exited; its exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(container)
            if state["Status"] in ("exited", "stopped"):
                return int(state["ExitCode"])
            time.sleep(1)
        raise AssertionError(f"{container} still running after {timeout:.0f} s:\n{self.logs(container)}")

    def logs(self, container: str, tail: int = 40) -> str:
        result = self.run("logs", "--tail", str(tail), container, check=False)
        return f"--- {container} ---\n{result.stdout}{result.stderr}"

    def volume_path(self, volume: str) -> Path:
        """Where a volume's files are on this host (podman runs as root here)."""
        return Path(self.run("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip())

    def address(self, container: str, network: str) -> str:
        """The container's IP address on ``network``."""
        fmt = f'{{{{ (index .NetworkSettings.Networks "{network}").IPAddress }}}}'
        return self.run("inspect", "--format", fmt, container).stdout.strip()


@dataclass(frozen=True)
class Images:
    """The images of one test session and what building them cost."""

    aetrig: str
    prometheus: str
    base: str
    aetrig_mb: float
    seconds: float


def build_images(podman: Podman) -> Images:
    """Build (or reuse, when their inputs are unchanged) the aetrig and Prometheus images, as `make image` does."""
    t0 = time.monotonic()
    engine = podman.engine
    base = image.choose_base(engine, "auto")
    image.build(engine, IMAGE_TAG, base, quiet=True)
    image.build(engine, PROMETHEUS_TAG, base, image.PROMETHEUS_DOCKERFILE, quiet=True)
    return Images(IMAGE_TAG, PROMETHEUS_TAG, base, image.image_size_mb(engine, IMAGE_TAG), time.monotonic() - t0)


def metric_total(url: str, name: str, timeout: float = 2.0, **labels: str) -> float:
    """Sum of the samples of ``name`` with ``labels`` on a /metrics page (0 when unreachable or absent)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def assert_recorded_once(verify: subprocess.CompletedProcess, recording: Path, report: dict) -> int:
    """The end of a container run: ``aetrig verify`` (run in a container) passed, and the recording holds every
    event the producer ``report`` says it produced, once; returns that count."""
    from emulator.run.summary import recording_counts

    produced = report["produced"]
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-3000:]
    counts = recording_counts(recording, report["run_id"], produced)
    assert counts["recorded"] == produced and counts["lost"] == 0 and counts["duplicates_recorded"] == 0, counts
    return produced


def run_line(what: str, produced: int, seconds: float, report: dict, phases: dict[str, float], extra: str = "") -> str:
    """The one line a container test prints about its run (events, time, resends, phase times)."""
    return (f"{what}: {produced} events produced and recorded once in {seconds:.0f} s (encoders 2 -> 3, one killed; "
            f"{report['batches_resent']} batches resent); {extra}seconds: "
            + ", ".join(f"{k} {v:.0f}" for k, v in phases.items()))
