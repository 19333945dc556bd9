"""The local Prometheus helpers: scrape configuration, the missing-binary hint, a failing start."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from emulator.ops import prometheus_local
from emulator.ops.prometheus_local import launch_prometheus, write_scrape_config

TARGETS = {"producer": "127.0.0.1:9100", "encoder-0": "127.0.0.1:9102", "sink": "127.0.0.1:9101"}


def test_scrape_config_lists_every_target_once_per_second(tmp_path: Path) -> None:
    path = write_scrape_config(TARGETS, tmp_path / "sub" / "prometheus.yml")
    config = yaml.safe_load(path.read_text())
    assert config["global"]["scrape_interval"] == "1s"
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "aetrig"
    got = {c["labels"]["instance"]: c["targets"][0] for c in job["static_configs"]}
    assert got == TARGETS
    promtool = shutil.which("promtool")
    assert promtool, "promtool not installed: it comes with Debian's prometheus package, which `make test` installs"
    check = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("bad", [{}, {"sink": "127.0.0.1"}, {"sink": "127.0.0.1:port"}])
def test_bad_targets_are_a_clear_error(tmp_path: Path, bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="target"):
        write_scrape_config(bad, tmp_path / "p.yml")


def test_missing_binary_gives_the_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(prometheus_local.shutil, "which", lambda name: None)
    monkeypatch.setattr(prometheus_local, "_FALLBACK_PATHS", ())
    config = write_scrape_config(TARGETS, tmp_path / "p.yml")
    assert launch_prometheus(config, tmp_path / "data", 1) is None
    assert "apt-get install prometheus" in capsys.readouterr().out


def test_a_prometheus_that_cannot_start_is_an_error_with_its_log(tmp_path: Path) -> None:
    if prometheus_local.find_prometheus() is None:
        pytest.fail(prometheus_local.INSTALL_HINT + " (`make test` installs it; this test must run)")
    config = tmp_path / "broken.yml"
    config.write_text("scrape_configs: [{job_name: x, static_configs: [{targets: 7}]}]\n")
    with pytest.raises(RuntimeError, match="prometheus exited"):
        launch_prometheus(config, tmp_path / "data", 1, ready_timeout=20)
