"""A local Prometheus for watching one run live: scrape configuration, launch, readiness, queries.

Every target lands in job ``aetrig`` with ``instance`` set to its name (``producer``, ``encoder-0``,
``sink``), the same labels the compose and Kubernetes scrape configurations give, so the Grafana
dashboard's queries work everywhere.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from emulator.runtime.child_process import stop_child

JOB = "aetrig"
SCRAPE_INTERVAL = "1s"
INSTALL_HINT = ("prometheus is not installed: on Debian/Ubuntu run `apt-get install prometheus` (or put the "
                "binary from https://prometheus.io/download/ on PATH), then rerun with --prometheus")
_FALLBACK_PATHS = ("/usr/bin/prometheus", "/usr/local/bin/prometheus")


def scrape_config_text(targets: Mapping[str, str], interval: str = SCRAPE_INTERVAL) -> str:
    """Prometheus YAML scraping ``targets`` (name -> "host:port") every ``interval``."""
    if not targets:
        raise ValueError("no scrape targets")
    lines = [
        "# Written by aetrig (emulator/ops/prometheus_local.py) for one local run.",
        "global:",
        f"  scrape_interval: {interval}",
        f"  scrape_timeout: {interval}",
        f"  evaluation_interval: {interval}",
        "scrape_configs:",
        f"  - job_name: {JOB}",
        "    static_configs:",
    ]
    for name, address in targets.items():
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"scrape target {name!r}: {address!r} is not host:port")
        lines += [f"      - targets: [{json.dumps(address)}]",
                  f"        labels: {{instance: {json.dumps(name)}}}"]
    return "\n".join(lines) + "\n"


def write_scrape_config(targets: Mapping[str, str], path: str | Path) -> Path:
    """Write the scrape configuration for ``targets`` (name -> "127.0.0.1:PORT") to ``path``; return it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(scrape_config_text(targets))
    return out


def find_prometheus() -> str | None:
    """Path of the ``prometheus`` binary, or None."""
    found = shutil.which("prometheus")
    if found:
        return found
    return next((p for p in _FALLBACK_PATHS if Path(p).is_file()), None)


def launch_prometheus(config_path: str | Path, data_dir: str | Path, port: int, host: str = "127.0.0.1",
                      ready_timeout: float = 30.0) -> subprocess.Popen | None:
    """Start Prometheus on http://host:port and wait until it is ready; None (and a hint) without the binary.

    Its log goes to ``data_dir/prometheus.log``. Raises RuntimeError if it exits or is not ready in time.
    """
    binary = find_prometheus()
    if binary is None:
        print(INSTALL_HINT)
        return None
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    log_path = data / "prometheus.log"
    cmd = [binary, f"--config.file={Path(config_path).resolve()}", f"--storage.tsdb.path={data.resolve() / 'tsdb'}",
           f"--web.listen-address={host}:{port}", "--storage.tsdb.retention.time=1d", "--log.level=warn"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with code {proc.returncode}; log {log_path}:\n"
                               + log_path.read_text()[-2000:])
        if _is_ready(url):
            return proc
        time.sleep(0.2)
    stop_prometheus(proc)
    raise RuntimeError(f"prometheus not ready at {url} after {ready_timeout:.0f} s; log {log_path}")


def _is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop_prometheus(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    stop_child(proc, timeout, kill_wait=timeout)


def query(url: str, promql: str, timeout: float = 5.0) -> list[dict]:
    """Evaluate an instant query through the HTTP API (/api/v1/query); return the result vector."""
    full = f"{url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(full, timeout=timeout) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"query {promql!r} failed: {body}")
    data = body["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    return data["result"]


def targets_health(url: str, timeout: float = 5.0) -> dict[str, str]:
    """Instance label -> health ("up", "down", "unknown") of every active target."""
    with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/targets", timeout=timeout) as response:
        body = json.load(response)
    return {t["labels"].get("instance", t["scrapeUrl"]): t["health"] for t in body["data"]["activeTargets"]}
