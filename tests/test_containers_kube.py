"""deploy/k8s for real under `podman kube play`: the sink, the encoders at the Deployment's replica count and
the producer, from the manifests' own pod templates (arguments, security context, resources, volumes), with
their CurveZMQ keys and the recording volume, on a podman network the test creates. While the producer
replays the bundled sample, a third encoder pod joins (what the ReplicaSet does when KEDA raises the
replica count) and one of the first two encoders is frozen, then killed once it holds a batch (bytes of the
data link waiting unread in its socket, so the kill loses them); the producer must have resent them and the
recording must then hold every produced event once (`aetrig verify` in a container, and the recording read
here).

What podman 4.3 cannot play is substituted, and said here:
- the StatefulSet of the sink and the Job of the producer become Pods with the same pod template, named as
  their Services (``aetrig-sink``, ``aetrig-producer``), which podman's network resolves by pod name (the
  stand-in for the Services); the sink's volumeClaimTemplate becomes a persistentVolumeClaim of a podman
  volume, which the producer's claim of it (``recordings-aetrig-sink-0``, for the run manifest) names too;
- the ``secret`` volumes of the per-role CurveZMQ keys become ``hostPath`` volumes of the directories
  `aetrig keys --per-role` writes, files mode 0440 and group 10001 as the Secret with ``defaultMode: 0440``
  and ``fsGroup: 10001`` presents them;
- the containers' ``ports`` are left out: podman 4.3 publishes a containerPort on the host, where the
  replicas' ports would clash (in Kubernetes it publishes nothing; the pods reach each other directly);
- the image is the kustomization's ``images`` entry; the producer's --rate and --duration are lowered so
  that the run is short.
Not run here (tests/test_deploy_files.py checks the YAML): Services across nodes, KEDA, the Prometheus
Deployment (its pod discovery needs a Kubernetes API), Guaranteed QoS and the CPU manager.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from containers_support import REPO, Podman, assert_recorded_once, metric_total, run_line
from waiting import wait_until

K8S = REPO / "deploy" / "k8s"
RATE_HZ = 1000
DURATION_S = 60
FS_GROUP = 10001
AETRIG = str(Path(sys.executable).with_name("aetrig"))

pytestmark = [pytest.mark.slow, pytest.mark.containers]


def _manifest(name: str, kind: str) -> dict:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return copy.deepcopy(next(d for d in docs if d["kind"] == kind))


def _kustomized_image() -> str:
    """The image that `kustomize` gives the containers named ``aetrig`` (kustomization.yaml ``images``)."""
    entry = next(i for i in yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"] if i["name"] == "aetrig")
    return f"{entry.get('newName', 'aetrig')}:{entry.get('newTag', 'latest')}"


def _secret_volumes_as_host_paths(spec: dict, keys: Path) -> None:
    """Each ``secret`` volume aetrig-curve-ROLE becomes a hostPath of KEYS/ROLE (podman 4.3 mounts no Secrets)."""
    for volume in spec["volumes"]:
        if "secret" in volume:
            role = volume.pop("secret")["secretName"].removeprefix("aetrig-curve-")
            volume["hostPath"] = {"path": str(keys / role), "type": "Directory"}


def _prepare(spec: dict, keys: Path) -> dict:
    _secret_volumes_as_host_paths(spec, keys)
    for container in spec["containers"]:
        if container["image"].split(":")[0] == "aetrig":
            container["image"] = _kustomized_image()
        # podman 4.3 publishes every containerPort on the host (Kubernetes publishes none): two encoder
        # replicas would clash on the host's port 9102, and nothing should listen on the host's interfaces
        container.pop("ports", None)
    return spec


def _pod(name: str, template: dict, spec: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": template["metadata"].get("labels", {})}, "spec": spec}


def _bytes_waiting(pid: int, remote_port: int) -> int:
    """Bytes the process ``pid`` has not read yet from its TCP connections to ``remote_port``: the receive queues
    in /proc/PID/net/tcp and tcp6, which list the connections of its network namespace (the pod's)."""
    waiting = 0
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        lines = path.read_text().splitlines()[1:] if path.exists() else []
        for fields in (line.split() for line in lines):
            remote, queues = fields[2], fields[4]  # rem_address HEXIP:HEXPORT, tx_queue:rx_queue in hex
            if int(remote.rsplit(":", 1)[1], 16) == remote_port:
                waiting += int(queues.split(":")[1], 16)
    return waiting


def _held_within(pid: int, remote_port: int, seconds: float) -> int:
    """The unread bytes of ``pid``'s connections to ``remote_port`` as soon as there are any, or 0 after ``seconds``."""
    deadline = time.monotonic() + seconds
    while (held := _bytes_waiting(pid, remote_port)) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    return held


def _set_arg(args: list[str], flag: str, value: str) -> None:
    args[args.index(flag) + 1] = value


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def manifests(keys: Path, recordings_volume: str) -> dict[str, dict]:
    """The played manifests: sink Pod, encoder Deployment, producer Pod, and the third encoder's Pod."""
    sink = _manifest("sink.yaml", "StatefulSet")
    claims = [c["metadata"]["name"] for c in sink["spec"]["volumeClaimTemplates"]]
    sink_spec = _prepare(sink["spec"]["template"]["spec"], keys)
    sink_spec["volumes"] += [{"name": c, "persistentVolumeClaim": {"claimName": recordings_volume}} for c in claims]
    encoders = _manifest("encoder.yaml", "Deployment")
    _prepare(encoders["spec"]["template"]["spec"], keys)
    job = _manifest("producer.yaml", "Job")
    producer_spec = _prepare(job["spec"]["template"]["spec"], keys)
    # the producer writes the run's manifest into the sink's volume: the claim of the StatefulSet's pod 0
    sink_claims = {f"{c}-{sink['metadata']['name']}-0" for c in claims}
    for volume in producer_spec["volumes"]:
        if volume.get("persistentVolumeClaim", {}).get("claimName") in sink_claims:
            volume["persistentVolumeClaim"]["claimName"] = recordings_volume
    args = producer_spec["containers"][0]["args"]
    _set_arg(args, "--rate", str(RATE_HZ))
    _set_arg(args, "--duration", str(DURATION_S))
    third = encoders["metadata"]["name"] + f"-pod-{encoders['spec']['replicas']}"  # podman's replica naming
    return {
        "sink": _pod(sink["spec"]["serviceName"], sink["spec"]["template"], sink_spec),
        "encoders": encoders,
        "producer": _pod(job["metadata"]["name"], job["spec"]["template"], producer_spec),
        "encoder-scaled": _pod(third, encoders["spec"]["template"],
                               copy.deepcopy(encoders["spec"]["template"]["spec"])),
    }


def _keys_as_secrets(directory: Path) -> Path:
    """`aetrig keys --per-role`, then the role directories as a Secret volume shows them."""
    subprocess.run([AETRIG, "keys", str(directory), "--per-role"], check=True, capture_output=True, timeout=60)
    for role in ("producer", "encoder", "sink"):
        os.chown(directory / role, 0, FS_GROUP)
        (directory / role).chmod(0o750)
        for path in (directory / role).iterdir():
            os.chown(path, 0, FS_GROUP)
            path.chmod(0o440)
    directory.chmod(0o755)
    return directory


@pytest.mark.timeout(600)
def test_kube_play_records_every_event_through_scale_up_and_a_killed_encoder(
        podman: Podman, container_images, tmp_path: Path) -> None:
    assert _kustomized_image() == container_images.aetrig
    tag = secrets.token_hex(3)
    label = f"org.aetrig.test=kube-{tag}"
    network, volume = f"aetrig-kube-{tag}", f"aetrig-kube-{tag}-recordings"
    keys = _keys_as_secrets(tmp_path / "keys")
    played = manifests(keys, volume)
    files = {}
    for name, doc in played.items():
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(doc, sort_keys=False))
    encoder_pods = [f"{played['encoders']['metadata']['name']}-pod-{i}"
                    for i in range(played["encoders"]["spec"]["replicas"])]
    pods = [played["sink"]["metadata"]["name"], *encoder_pods, played["encoder-scaled"]["metadata"]["name"],
            played["producer"]["metadata"]["name"]]
    assert not [p for p in pods if podman.run("pod", "exists", p, check=False).returncode == 0], \
        f"pods {pods} must not exist before the test"
    containers = [f"{pods[0]}-sink", *[f"{p}-encoder" for p in pods[1:-1]], f"{pods[-1]}-producer"]

    def metrics(container: str, port: int) -> str:
        return f"http://{podman.address(container, network)}:{port}/metrics"

    t0 = time.monotonic()
    phases: dict[str, float] = {}  # seconds since the first container start, printed at the end
    try:
        podman.run("network", "create", "--label", label, network)
        podman.run("volume", "create", "--label", label, volume)
        for name in ("sink", "encoders", "producer"):
            podman.run("kube", "play", "--network", network, str(files[name]), timeout=180)
        sink_container = f"{pods[0]}-sink"
        wait_until(lambda: metric_total(metrics(sink_container, 9101), "aetrig_events_total", stage="sink") > 0, 120,
                   interval=1, what="the sink's first events")
        phases["first events"] = time.monotonic() - t0

        podman.run("kube", "play", "--network", network, str(files["encoder-scaled"]), timeout=180)
        scaled = f"{played['encoder-scaled']['metadata']['name']}-encoder"
        wait_until(lambda: metric_total(metrics(scaled, 9102), "aetrig_events_total", stage="encoder") > 0, 90,
                   interval=1, what="the third encoder scoring events")
        phases["3 encoders"] = time.monotonic() - t0

        victim = f"{encoder_pods[0]}-encoder"
        producer_container = f"{pods[-1]}-producer"
        producer_metrics = metrics(producer_container, 9100)
        data_port = int(_flag(played["encoders"]["spec"]["template"]["spec"]["containers"][0]["args"],
                              "--connect").rsplit(":", 1)[1])
        podman.run("kill", "--signal", "STOP", victim)
        frozen = int(podman.state(victim)["Pid"])
        sent = metric_total(producer_metrics, "aetrig_events_total", stage="producer")
        # the producer keeps dealing batches to the frozen encoder's connection; on a busy machine that can take
        # a while: kill it once it holds one, so that its batches must be resent. Where the producer's --duration
        # ends first (a slow start of the third pod), nothing was dealt to it: the kill then tests no resend, and
        # produced = recorded below still holds
        held = _held_within(frozen, data_port, seconds=90)
        phases["frozen encoder holds a batch"] = time.monotonic() - t0
        podman.run("kill", "--signal", "KILL", victim)
        print(f"killed the frozen encoder holding {held} unread bytes of the data link, "
              f"{metric_total(producer_metrics, 'aetrig_events_total', stage='producer') - sent:.0f} events sent "
              "while it was frozen")
        phases["encoder killed"] = time.monotonic() - t0

        code = podman.wait_exit(producer_container, DURATION_S + 120)
        assert code == 0, podman.logs(producer_container)
        phases["producer done"] = time.monotonic() - t0
        run_seconds = time.monotonic() - t0
        report_path = _flag(played["producer"]["spec"]["containers"][0]["args"], "--report")
        report = json.loads(_copy_out(podman, producer_container, report_path, tmp_path))
        for pod in [*encoder_pods, played["encoder-scaled"]["metadata"]["name"], pods[0]]:
            podman.run("pod", "stop", "-t", "60", pod, timeout=120)
        phases["stopped"] = time.monotonic() - t0

        produced = report["produced"]
        assert produced > RATE_HZ and report["unacked_events"] == 0, report
        if held:
            assert report["batches_resent"] > 0, f"the killed encoder held {held} bytes of batches: none was resent"
        else:
            print("the frozen encoder was dealt no batch before the producer's duration ended: no resend to check")
        shown = podman.run("run", "--rm", "-v", f"{volume}:/data/recordings", container_images.aetrig, "verify",
                           "/data/recordings", "--expect-events", str(produced), check=False)
        assert_recorded_once(shown, podman.volume_path(volume), report)
        print(run_line("kube play", produced, run_seconds, report, phases))
    except BaseException:
        for name in containers:
            print(podman.logs(name))
        raise
    finally:
        for pod in pods:
            podman.run("pod", "rm", "-f", "-t", "0", pod, check=False)
        leftover = podman.remove_labelled(label)
        leftover += [p for p in pods if podman.run("pod", "exists", p, check=False).returncode == 0]
        assert not leftover, leftover


def _copy_out(podman: Podman, container: str, path: str, tmp_path: Path) -> str:
    """A file's text from a (stopped) container: ``podman cp``, or, where cp cannot find the exited container's
    storage (it fails now and then just after a pod's container exits), the file through ``podman mount``."""
    target = tmp_path / Path(path).name
    if podman.run("cp", f"{container}:{path}", str(target), check=False).returncode == 0:
        return target.read_text()
    root = podman.run("mount", container).stdout.strip()
    try:
        return (Path(root) / path.lstrip("/")).read_text()
    finally:
        podman.run("unmount", container, check=False)
