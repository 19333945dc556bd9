"""deploy/ cannot drift from the code: YAML parses, every `aetrig` invocation parses with the real CLI,
addresses, ports and volumes line up, and the committed dashboard is the generated one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from docs_commands import aetrig_commands, check_aetrig, section

from emulator import cli
from emulator.ops import dashboard
from emulator.runtime.metrics import METRICS_HOST_ENV

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
IMAGE_ROOT = "/opt/aetrig/"  # WORKDIR of deploy/Dockerfile, where the source tree is copied
INTERPOLATION = re.compile(r"\$\{(\w+):-([^}]*)\}")
CONTRACT_METRICS = {"aetrig_events_total", "aetrig_jets_total", "aetrig_anomalies_total",
                    "aetrig_rejected_messages_total", "aetrig_dropped_events_total", "aetrig_lost_events_total",
                    "aetrig_duplicate_events_total", "aetrig_inference_seconds", "aetrig_decision_latency_seconds",
                    "aetrig_decision_hop_seconds",
                    "aetrig_commit_latency_seconds", "aetrig_batch_jets", "aetrig_inflight_batches",
                    "aetrig_sink_bytes_per_jet"}


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _k8s_docs() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _k8s_containers() -> list[tuple[dict, dict, dict]]:
    """(workload doc, pod template, container) for every container of every k8s workload."""
    found = []
    for doc in _k8s_docs():
        template = (doc.get("spec") or {}).get("template")
        if template:
            found += [(doc, template, c) for c in template["spec"]["containers"]]
    return found


def _invocations() -> list[tuple[str, list[str], dict[str, str]]]:
    """(where, argv after `aetrig`, environment) of every aetrig invocation in compose and k8s."""
    calls = []
    for name, service in _compose()["services"].items():
        if service.get("image", "").startswith("aetrig"):
            argv = [INTERPOLATION.sub(lambda m: m.group(2), str(a)) for a in service["command"]]
            calls.append((f"compose service {name}", argv, service.get("environment") or {}))
    for doc, _, container in _k8s_containers():
        if container["image"].split(":")[0].endswith("aetrig"):
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            calls.append((f"k8s {doc['kind']} {doc['metadata']['name']}", list(container["args"]), env))
    return calls


def _flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_every_yaml_file_parses() -> None:
    files = _yaml_files()
    assert len(files) >= 10, files
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path} is empty"
        assert all(isinstance(d, dict) for d in docs), path


def test_there_are_invocations_for_every_stage() -> None:
    subcommands = [argv[0] for _, argv, _ in _invocations()]
    for stage in ("produce", "encode", "sink"):
        assert subcommands.count(stage) >= 2, f"{stage} not in both compose and k8s"


@pytest.mark.parametrize("where,argv,env", _invocations(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_aetrig_invocation_parses(where: str, argv: list[str], env: dict[str, str]) -> None:
    check_aetrig(argv, where)
    # paths inside the image point at files of this repository
    for token in argv:
        if token.startswith(IMAGE_ROOT):
            assert (REPO / token[len(IMAGE_ROOT):]).exists(), f"{where}: {token} is not in the repository"
    # listening on every interface only with CurveZMQ, and /metrics reachable from Prometheus
    binds = [_flag(argv, f) for f in ("--bind", "--ack-bind")]
    if any(b and "0.0.0.0" in b for b in binds):
        assert _flag(argv, "--curve-keys"), f"{where}: binds 0.0.0.0 without --curve-keys"
    if "--metrics-port" in argv:
        assert env.get(METRICS_HOST_ENV) == "0.0.0.0", f"{where}: /metrics only on 127.0.0.1 in a container"


def test_each_compose_stage_mounts_only_its_roles_keys() -> None:
    """One CurveZMQ identity per role: a stage's key directory holds its own secret, never another role's."""
    services = _compose()["services"]
    roles = {"produce": "producer", "encode": "encoder", "sink": "sink"}
    for name, service in services.items():
        argv = [str(a) for a in service.get("command", [])]
        if argv and argv[0] in roles:
            keys_dir = _flag(argv, "--curve-keys")
            assert keys_dir, f"compose service {name}: no --curve-keys"
            mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
            assert mounts[keys_dir] == f"curve-{roles[argv[0]]}", (name, mounts)
    keys = services["keys"]
    assert keys["command"][:1] == ["keys"] and "--per-role" in keys["command"]
    made = {m.split(":")[1]: m.split(":")[0] for m in keys["volumes"]}
    root = keys["command"][1]
    assert all(made[f"{root}/{role}"] == f"curve-{role}" for role in roles.values()), made


def test_dockerfile_installs_the_package_and_runs_aetrig() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["aetrig"\]$', text, re.M)
    assert "pip install" in text and "WORKDIR " + IMAGE_ROOT.rstrip("/") in text
    for copied in re.findall(r"^COPY (\S+)", text, re.M):
        assert (REPO / copied).exists(), f"Dockerfile copies {copied}, which is not in the repository"
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert cli.main(cmd) == 0
    for service in _compose()["services"].values():
        if "build" in service:
            assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}


def test_committed_dashboard_is_the_generated_one() -> None:
    committed = (DEPLOY / "grafana" / "dashboards" / "aetrig.json").read_text()
    assert committed == dashboard.dashboard_text(), \
        "regenerate: python -m emulator.ops.dashboard deploy/grafana/dashboards/aetrig.json"


def test_dashboard_uses_the_provisioned_datasource_and_contract_metrics() -> None:
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "aetrig.json").read_text())
    sources = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "aetrig.yaml").read_text())
    uids = {d["uid"] for d in sources["datasources"]}
    assert uids == {dashboard.DATASOURCE_UID}
    titles = [p["title"] for p in board["panels"]]
    assert len(titles) == len(set(titles)) >= 12
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] in uids
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids
            names = set(re.findall(r"\b(aetrig_\w+|process_\w+)", target["expr"]))
            stripped = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
            assert stripped <= CONTRACT_METRICS | {"process_cpu_seconds_total", "process_resident_memory_bytes"}, \
                (panel["title"], names)
    # the panel list, each present
    for needed in ("Events/s", "Jets/s", "Decision latency", "Commit latency", "Inference latency", "Batch size",
                   "CPU cores", "Resident memory", "Anomaly rate", "Flagged fraction", "Rejected", "Dropped",
                   "In-flight", "bytes per jet"):
        assert any(needed in t for t in titles), needed


def test_grafana_provisioning_matches_compose() -> None:
    providers = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "aetrig.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == "${AETRIG_DASHBOARDS_DIR}"
    grafana = _compose()["services"]["grafana"]
    env = grafana["environment"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana["volumes"]}
    assert mounts[env["AETRIG_DASHBOARDS_DIR"]] == "./grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    assert env["AETRIG_PROMETHEUS_URL"] == "http://prometheus:9090"
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].endswith("/aetrig.json")


def test_compose_wires_stages_scaling_and_shared_recordings() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"producer", "encoder", "sink", "prometheus", "grafana"} <= set(services)
    # the replica count is ${AETRIG_ENCODERS:-2}: podman-compose 1.0.3 ignores --scale
    assert int(INTERPOLATION.sub(lambda m: m.group(2), str(services["encoder"]["deploy"]["replicas"]))) >= 2
    assert "recordings" in compose["volumes"]
    for name in ("producer", "encoder", "sink"):
        assert "recordings:/data/recordings" in services[name]["volumes"], name
    sink_out = _flag(services["sink"]["command"], "--out")
    assert sink_out.startswith("/data/recordings")
    produce, encode, sink = (services[n]["command"] for n in ("producer", "encoder", "sink"))
    port = lambda addr: addr.rsplit(":", 1)[1]  # noqa: E731
    assert _flag(encode, "--connect") == f"tcp://producer:{port(_flag(produce, '--bind'))}"
    assert _flag(encode, "--sink") == f"tcp://sink:{port(_flag(sink, '--bind'))}"
    assert _flag(sink, "--ack-connect") == f"tcp://producer:{port(_flag(produce, '--ack-bind'))}"
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["job_name"] == "aetrig"
    static = {t for c in scrape["static_configs"] for t in c["targets"]}
    assert static == {f"producer:{_flag(produce, '--metrics-port')}", f"sink:{_flag(sink, '--metrics-port')}"}
    assert scrape["dns_sd_configs"][0]["port"] == int(_flag(encode, "--metrics-port"))


def test_k8s_has_encoder_deployment_autoscaler_sink_volume_producer_job_and_services() -> None:
    docs = _k8s_docs()
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    encoder = by_kind["Deployment"]["aetrig-encoder"]
    assert encoder["spec"]["replicas"] >= 2
    scaled = by_kind["ScaledObject"]["aetrig-encoder"]
    assert scaled["apiVersion"].startswith("keda.sh/")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "aetrig-encoder"
    triggers = scaled["spec"]["triggers"]
    assert triggers and all(t["type"] == "prometheus" for t in triggers)
    prometheus_svc = by_kind["Service"]["aetrig-prometheus"]
    for trigger in triggers:
        meta = trigger["metadata"]
        assert meta["serverAddress"] == f"http://aetrig-prometheus.aetrig.svc:{prometheus_svc['spec']['ports'][0]['port']}"
        float(meta["threshold"])
        names = {re.sub(r"_bucket$", "", n) for n in re.findall(r"\baetrig_\w+", meta["query"])}
        assert names and names <= CONTRACT_METRICS, meta["query"]
    sink = by_kind["StatefulSet"]["aetrig-sink"]
    claims = {c["metadata"]["name"] for c in sink["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in sink["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    sink_args = sink["spec"]["template"]["spec"]["containers"][0]["args"]
    assert any(_flag(sink_args, "--out").startswith(mounts[c]) for c in claims), "sink --out not on its volume"
    job = by_kind["Job"]["aetrig-producer"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # every tcp://SERVICE:PORT an aetrig container connects to is a Service port selecting the right pods
    services = by_kind["Service"]
    for doc, template, container in _k8s_containers():
        for flag in ("--connect", "--sink", "--ack-connect"):
            addr = _flag(container.get("args", []), flag)
            if addr is None:
                continue
            host, port = addr.removeprefix("tcp://").rsplit(":", 1)
            assert host in services, f"{doc['metadata']['name']} {flag} {addr}: no Service {host}"
            svc = services[host]["spec"]
            assert int(port) in {p["port"] for p in svc["ports"]}, (host, port)
            targets = [d for d, t, _ in _k8s_containers()
                       if all(t["metadata"]["labels"].get(k) == v for k, v in svc["selector"].items())]
            assert targets, f"Service {host} selects no pods"
        annotations = template["metadata"].get("annotations", {})
        if "--metrics-port" in container.get("args", []):
            assert annotations.get("prometheus.io/scrape") == "true"
            assert annotations.get("prometheus.io/port") == _flag(container["args"], "--metrics-port")
        if "--curve-keys" in container.get("args", []):
            volumes = {v["name"]: v for v in template["spec"]["volumes"]}
            keys_dir = _flag(container["args"], "--curve-keys")
            mount = next(m for m in container["volumeMounts"] if m["mountPath"] == keys_dir)
            role = {"produce": "producer", "encode": "encoder", "sink": "sink"}[container["args"][0]]
            assert volumes[mount["name"]]["secret"]["secretName"] == f"aetrig-curve-{role}"  # its role's key only
    config = yaml.safe_load(by_kind["ConfigMap"]["aetrig-prometheus-config"]["data"]["prometheus.yml"])
    job_cfg = config["scrape_configs"][0]
    assert job_cfg["job_name"] == "aetrig"
    relabel_targets = {r.get("target_label") for r in job_cfg["relabel_configs"]}
    assert "instance" in relabel_targets and "stage" not in relabel_targets  # would clash with metric labels
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}


def test_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not installed: it comes with Debian's prometheus package, which `make test` installs")
    result = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_operations_live_and_scale_commands_parse() -> None:
    """The live-metrics and scale-out commands of docs/operations.md run as written."""
    text = (REPO / "docs" / "operations.md").read_text()
    commands = [argv for name in ("live", "scale") for argv in aetrig_commands(section(text, name))]
    assert {c[0] for c in commands} >= {"run", "keys"}, commands
    for argv in commands:
        args = check_aetrig(argv, "docs/operations.md")
        if argv[0] == "run":
            assert args.prometheus


def test_image_inputs_digest_follows_what_the_dockerfile_copies(tmp_path: Path) -> None:
    """emulator/ops/image.py reuses an image while this digest is unchanged: it must change with every copied
    file and the base image, and not with what the build context ignores or the Dockerfile does not copy."""
    from emulator.ops.image import DOCKERFILE, copied_paths, inputs_digest

    assert set(copied_paths(DOCKERFILE)) >= {"pyproject.toml", "emulator", "producer", "consumer", "models"}
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM base\nCOPY top.txt ./\nCOPY src ./src\n")
    (tmp_path / "top.txt").write_text("a")
    (tmp_path / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    first = inputs_digest(dockerfile, "base-id-1", context=tmp_path)
    assert inputs_digest(dockerfile, "base-id-1", context=tmp_path) == first
    (tmp_path / "src" / "pkg" / "__pycache__").mkdir()
    (tmp_path / "src" / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "not-copied.txt").write_text("b")
    assert inputs_digest(dockerfile, "base-id-1", context=tmp_path) == first
    assert inputs_digest(dockerfile, "base-id-2", context=tmp_path) != first
    (tmp_path / "src" / "pkg" / "mod.py").write_text("x = 2\n")
    assert inputs_digest(dockerfile, "base-id-1", context=tmp_path) != first


def test_the_producer_writes_its_manifest_where_the_sink_reads_manifests() -> None:
    """The sink records only runs whose manifest it has (--manifest DIR/): in compose and in k8s the producer's
    --manifest-out lands in that directory, through a volume both mount (k8s: the sink's own claim)."""
    services = _compose()["services"]
    produce, sink = services["producer"]["command"], services["sink"]["command"]
    assert Path(_flag(produce, "--manifest-out")).parent == Path(_flag(sink, "--manifest"))
    assert "recordings:/data/recordings" in services["producer"]["volumes"]
    by_kind: dict[str, dict[str, dict]] = {}
    for d in _k8s_docs():
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    sts = by_kind["StatefulSet"]["aetrig-sink"]
    job = by_kind["Job"]["aetrig-producer"]["spec"]["template"]["spec"]
    sink_container, producer = sts["spec"]["template"]["spec"]["containers"][0], job["containers"][0]
    manifest_dir = Path(_flag(sink_container["args"], "--manifest"))
    manifest_out = Path(_flag(producer["args"], "--manifest-out"))
    assert manifest_out.parent == manifest_dir

    def volume_of(container: dict, path: Path) -> str:
        mounts = [m for m in container["volumeMounts"] if path.is_relative_to(m["mountPath"])]
        return max(mounts, key=lambda m: len(m["mountPath"]))["name"]

    claim = volume_of(sink_container, manifest_dir)
    assert claim in {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    volumes = {v["name"]: v for v in job["volumes"]}
    assert volumes[volume_of(producer, manifest_out)]["persistentVolumeClaim"]["claimName"] == \
        f"{claim}-{sts['metadata']['name']}-0"
    # a ReadWriteOnce claim: the producer runs on the sink's node
    term = job["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["labelSelector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
