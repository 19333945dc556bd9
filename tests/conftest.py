"""Shared fixtures: free ports, a sink in a thread, a pipeline of real stage processes.

The logic lives in the helper modules (emulator.runtime.ports, encsink_support, pipeline_testkit,
producer_testdata, waiting); this file only hands it to tests as fixtures, with the clean-up.
Long integration tests carry ``@pytest.mark.slow``: ``make test-fast`` (``pytest -m "not slow"``) skips them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from emulator.runtime import ports

if TYPE_CHECKING:  # imported where used: a run of light tests does not pay for uproot, zmq and onnx
    from containers_support import Images, Podman
    from encsink_support import SinkHarness
    from pipeline_testkit import Pipeline


@pytest.fixture
def free_port() -> Callable[[], int]:
    """``free_port()``: a free loopback TCP port, never the same twice in the session (emulator.runtime.ports)."""
    return ports.free_port


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The card of a real tiny model directory (encsink_support.make_tiny_model), made once per test module."""
    from encsink_support import make_tiny_model

    from models.runtime.card import load_model_dir

    return load_model_dir(make_tiny_model(tmp_path_factory.mktemp("model"))).card


@pytest.fixture
def sink_in_thread(tmp_path: Path) -> Callable[..., contextlib.AbstractContextManager[SinkHarness]]:
    """``with sink_in_thread(out=tmp_path / "rec", card=, run_ids=, **sink_config) as h``:
    encsink_support.sink_in_thread, a real Sink in a thread on free ports, told to expect ``card`` and the runs
    ``run_ids``; stopped and joined when the block ends, ``h.report`` filled then."""

    def start(out: Path | None = None, **options: Any) -> contextlib.AbstractContextManager[SinkHarness]:
        import encsink_support

        return encsink_support.sink_in_thread(tmp_path / "rec" if out is None else out, **options)

    return start


@pytest.fixture
def running_pipeline(tmp_path: Path) -> Iterator[Callable[..., Pipeline]]:
    """``running_pipeline(input_file | events=, seed=, work=, model=, input_flags=)``: a pipeline_testkit.Pipeline
    in ``work`` (default tmp_path) reading ``input_file`` (with the producer's ``input_flags``) or a fresh
    ``events``-event ntuple written there; its stages are
    started by the test (``.sink()``, ``.encoder(name)``, ``.producer(...)``) and killed at teardown."""
    from pipeline_testkit import Pipeline
    from producer_testdata import make_ntuple

    made: list[Pipeline] = []

    def make(input_file: Path | None = None, *, events: int = 6000, seed: int = 101, work: Path | None = None,
             model: Path | None = None, input_flags: tuple[str, ...] = ()) -> Pipeline:
        work = tmp_path if work is None else work
        if input_file is None:
            input_file = work / "in.root"
            make_ntuple(input_file, events, seed=seed)
        made.append(Pipeline(work, input_file, model, input_flags=input_flags))
        return made[-1]

    yield make
    for pipeline in made:
        pipeline.close()


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    """containers_support.Podman with the session's containers.conf (runc, ulimits); skips without podman
    (fails in CI)."""
    from containers_support import Podman, containers_conf_text, require_tools

    require_tools("podman", "runc")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(containers_conf_text())
    return Podman(conf)


@pytest.fixture(scope="session")
def container_images(podman: Podman) -> Images:
    """The aetrig and Prometheus images, built once per session (reused when their inputs are unchanged)."""
    from containers_support import build_images

    return build_images(podman)
