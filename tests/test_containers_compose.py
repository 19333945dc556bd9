"""deploy/compose.yaml for real: podman-compose starts the keys job, the sink, two encoders, the producer
and Prometheus (Debian's, built by emulator/ops/image.py where prom/prometheus cannot be pulled) from the
image that `make image` builds. The stages talk across the compose network by service name, CurveZMQ on
every link. While the producer replays the bundled sample, the encoders scale from 2 to 3 and one of the
first two is killed (SIGKILL); Prometheus must answer every dashboard and autoscaler query meanwhile. When
the producer is done the stack stops, and the recording in the shared volume must hold every produced
event once (`aetrig verify` in a container, as docs/operations.md shows it, and the recording read here).
Grafana is not started: its image cannot be had here; the dashboard stands proven by its queries.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest
from containers_support import REPO, Podman, assert_recorded_once, require_tools, run_line
from dashboard_queries import unanswered_queries
from waiting import wait_until

from emulator.ops.prometheus_local import query, targets_health

COMPOSE = REPO / "deploy" / "compose.yaml"
#: every service but grafana
SERVICES = ("keys", "sink", "encoder", "producer", "prometheus")
RATE_HZ = 1000
DURATION_S = 60

pytestmark = [pytest.mark.slow, pytest.mark.containers]


def _targets(url: str) -> dict[str, str]:
    """instance -> health of Prometheus's targets ({} while Prometheus is not up yet)."""
    try:
        return targets_health(url)
    except OSError:
        return {}


def _encoders_up(url: str) -> int:
    return sum(health == "up" for name, health in _targets(url).items() if name.startswith("encoder-"))


def _value(url: str, promql: str) -> float:
    try:
        result = query(url, promql)
    except OSError:
        return 0.0
    return float(result[0]["value"][1]) if result else 0.0


@pytest.mark.timeout(600)
def test_compose_stack_records_every_event_through_scale_up_and_a_killed_encoder(
        podman: Podman, container_images, free_port, tmp_path: Path) -> None:
    require_tools("podman-compose")
    project = f"aetrigtest{secrets.token_hex(3)}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"AETRIG_PROMETHEUS_IMAGE": container_images.prometheus, "AETRIG_PROMETHEUS_PORT": str(port),
           "AETRIG_RATE": str(RATE_HZ), "AETRIG_DURATION": str(DURATION_S)}

    def compose(*args: str, encoders: int = 3, timeout: float = 180, check: bool = True):
        return podman.run("-p", project, "-f", str(COMPOSE), *args, program="podman-compose", timeout=timeout,
                          env={**env, "AETRIG_ENCODERS": str(encoders)}, check=check)

    containers = [f"{project}_{name}" for name in ("keys_1", "sink_1", "encoder_1", "encoder_2", "encoder_3",
                                                    "producer_1", "prometheus_1")]
    t0 = time.monotonic()
    phases: dict[str, float] = {}  # seconds since the first container start, printed at the end
    try:
        # podman-compose 1.0.3 ignores `condition: service_completed_successfully`: the keys job first, to its end
        compose("up", "-d", "keys", encoders=2)
        assert podman.wait_exit(f"{project}_keys_1", 120) == 0, podman.logs(f"{project}_keys_1")
        compose("up", "-d", *SERVICES, encoders=2)
        wait_until(lambda: {"producer", "sink"} <= {n for n, h in _targets(url).items() if h == "up"}
                   and _encoders_up(url) == 2, 90, interval=1,
                   what=lambda: f"Prometheus to scrape the producer, the sink and 2 encoders: {_targets(url)}")
        wait_until(lambda: _value(url, 'sum(aetrig_events_total{stage="sink"})') > 0, 90, interval=1,
                   what="the sink's first events on Prometheus")
        phases["first events"] = time.monotonic() - t0

        # scale up: podman-compose 1.0.3 ignores --scale, so the replica count comes from AETRIG_ENCODERS
        compose("up", "-d", "encoder", encoders=3)
        wait_until(lambda: _value(url, 'count(increase(aetrig_events_total{stage="encoder"}[10s]) > 0)') >= 3, 90,
                   interval=1, what=lambda: f"three encoders scoring events: {_targets(url)}")
        phases["3 encoders"] = time.monotonic() - t0

        # one of the first two freezes, so that batches pile up in its queue, then dies: the producer must
        # resend what it held
        victim = f"{project}_encoder_1"
        podman.run("kill", "--signal", "STOP", victim)
        sent = _value(url, 'sum(aetrig_events_total{stage="producer"})')
        wait_until(lambda: _value(url, 'sum(aetrig_events_total{stage="producer"})') > sent + 500, 60, interval=1,
                   what="500 more events sent while an encoder is frozen")
        podman.run("kill", "--signal", "KILL", victim)
        phases["encoder killed"] = time.monotonic() - t0

        def every_query_answers() -> dict | None:
            empty, values = unanswered_queries(url)
            return None if empty else values

        values = wait_until(every_query_answers, 30, interval=1,
                            what=lambda: "every dashboard query to answer:\n" + "\n".join(unanswered_queries(url)[0]))
        assert _value(url, 'sum(aetrig_events_total{stage="sink"})') > 0
        assert len(values) >= 20

        code = podman.wait_exit(f"{project}_producer_1", DURATION_S + 120)
        assert code == 0, podman.logs(f"{project}_producer_1")
        phases["producer done"] = time.monotonic() - t0
        run_seconds = time.monotonic() - t0
        compose("stop", "-t", "40", timeout=300)
        phases["stopped"] = time.monotonic() - t0

        recording = podman.volume_path(f"{project}_recordings") / "compose"
        report = json.loads((recording / "reports" / "producer.json").read_text())
        produced = report["produced"]
        assert produced > RATE_HZ and report["unacked_events"] == 0, report
        assert report["batches_resent"] > 0, "the killed encoder held batches: they must have been resent"
        shown = compose("run", "--rm", "sink", "verify", "/data/recordings/compose", "--expect-events",
                        str(produced), check=False)
        assert_recorded_once(shown, recording, report)
        assert f"OK: {produced} events" in shown.stdout
        sink = json.loads((recording / "reports" / "sink.json").read_text())
        assert sink["backpressure"]["uncommitted_events_at_exit"] == 0
        print(run_line("compose", produced, run_seconds, report, phases,
                       f"image {container_images.aetrig_mb:.0f} MB; "))
    except BaseException:
        for name in containers:
            print(podman.logs(name))
        raise
    finally:
        compose("down", "-v", timeout=300, check=False)
        leftover = podman.remove_labelled(f"io.podman.compose.project={project}")
        assert not leftover, leftover
