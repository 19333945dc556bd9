"""The image `make image` builds (deploy/Dockerfile through emulator/ops/image.py): it runs `aetrig` as the
unprivileged user the deploy files expect, holds the runtime only (no torch, no test tools), finds the
bundled sample and model zoo where the deploy files point, and is reused, not rebuilt, while its inputs
are unchanged."""

from __future__ import annotations

import pytest
from containers_support import Images, Podman

from emulator.ops import image

pytestmark = [pytest.mark.slow, pytest.mark.containers]

#: what a runtime-only image must not hold: training and test tools
NOT_IN_IMAGE = ("torch", "pytest", "hypothesis", "ruff", "matplotlib", "pythia8mc")


def _in_image(podman: Podman, images: Images, *argv: str, entrypoint: str | None = None):
    flags = ["--entrypoint", entrypoint] if entrypoint else []
    return podman.run("run", "--rm", "--network", "none", *flags, images.aetrig, *argv)


@pytest.mark.timeout(300)
def test_image_runs_aetrig_as_user_10001_with_the_runtime_only(podman: Podman, container_images: Images) -> None:
    assert "produce" in _in_image(podman, container_images, "--help").stdout
    assert _in_image(podman, container_images, "-u", entrypoint="id").stdout.strip() == "10001"
    installed = _in_image(podman, container_images, "list", "--format", "freeze", entrypoint="pip").stdout.lower()
    names = {line.split("==")[0].split(" @ ")[0] for line in installed.splitlines()}
    assert {"aetrig", "onnxruntime", "pyzmq", "uproot"} <= names, names
    assert not names & set(NOT_IN_IMAGE), names & set(NOT_IN_IMAGE)
    paths = _in_image(podman, container_images, "-c", "ls /opt/aetrig/producer/samples/qcd.root "
                      "/opt/aetrig/models/zoo/AE_3D_200_ptetaphie/card.json", entrypoint="sh")
    assert paths.returncode == 0
    print(f"image {container_images.aetrig}: {container_images.aetrig_mb:.0f} MB on {container_images.base}")


def test_an_unchanged_image_is_reused(podman: Podman, container_images: Images) -> None:
    engine = podman.engine
    before = image.image_id(engine, container_images.aetrig)
    messages: list[str] = []
    again = image.build(engine, container_images.aetrig, container_images.base, announce=messages.append, quiet=True)
    assert again == before and any("up to date" in m for m in messages), messages
