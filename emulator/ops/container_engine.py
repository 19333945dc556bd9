"""The container engine on the command line: podman (or docker), and what the image tools ask it.

Only the standard library: ``make image`` uses this before any virtual environment exists.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INPUTS_LABEL = "org.aetrig.inputs"
#: open files and processes a stage container gets at most (plenty for ZeroMQ, ONNX Runtime and uproot)
ULIMIT_CAP = 16384


@dataclass(frozen=True)
class Engine:
    """A container engine command line: ``podman`` (with optional global flags) or ``docker``."""

    program: str
    global_flags: tuple[str, ...] = ()
    #: a containers.conf for podman (CONTAINERS_CONF), or None for the engine's own configuration
    conf: str | None = None

    def environ(self) -> dict[str, str]:
        """The environment for the engine's commands."""
        return {**os.environ, "CONTAINERS_CONF": self.conf} if self.conf else dict(os.environ)

    @property
    def is_podman(self) -> bool:
        return Path(self.program).name == "podman"

    def argv(self, *args: str) -> list[str]:
        return [self.program, *self.global_flags, *args]

    def run(self, *args: str, check: bool = True, quiet: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run ``ENGINE ARGS``; output captured when ``quiet``, streamed to the terminal otherwise."""
        capture = {"capture_output": True, "text": True} if quiet else {}
        result = subprocess.run(self.argv(*args), **capture, env=self.environ(), **kwargs)
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout or "").strip()[-2000:] if quiet else "(output above)"
            raise RuntimeError(f"`{' '.join(self.argv(*args))}` failed with exit code {result.returncode}: {detail}")
        return result


def find_engine(name: str | None = None, runtime: str | None = None) -> Engine:
    """podman if installed, else docker (or the one named); ``runtime`` = podman's OCI runtime (e.g. runc)."""
    for candidate in [name] if name else ["podman", "docker"]:
        program = shutil.which(candidate)
        if program:
            engine = Engine(program)
            if runtime and engine.is_podman:
                engine = Engine(program, ("--runtime", runtime))
            return engine
    wanted = name or "podman or docker"
    raise RuntimeError(f"no container engine: install {wanted} (Debian: `apt-get install podman runc`)")


def current_ulimits(cap: int = ULIMIT_CAP) -> list[str]:
    """``--ulimit`` flags for open files and processes: this process's soft limits, at most ``cap``.

    Some hosts forbid a container to raise a limit (runc: "error setting rlimits ... operation not
    permitted"), so podman's defaults fail there; values at or below the caller's own, and no higher than
    the stages need, start everywhere.
    """
    flags = []
    for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        soft, _ = resource.getrlimit(which)
        value = cap if soft == resource.RLIM_INFINITY else min(soft, cap)
        flags += ["--ulimit", f"{name}={value}:{value}"]
    return flags


def image_id(engine: Engine, ref: str) -> str | None:
    """The id of local image ``ref``, or None when there is none."""
    result = engine.run("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return (result.stdout.strip() or None) if result.returncode == 0 else None


def image_label(engine: Engine, ref: str, label: str = INPUTS_LABEL) -> str | None:
    """The value of ``label`` on local image ``ref`` (None when the image or the label is missing)."""
    result = engine.run("image", "inspect", "--format", f'{{{{ index .Config.Labels "{label}" }}}}', ref,
                        check=False)
    value = result.stdout.strip()
    return value if result.returncode == 0 and value and value != "<no value>" else None


def image_size_mb(engine: Engine, ref: str) -> float:
    """The image's size in MB (10^6 bytes), as the engine reports it."""
    return int(engine.run("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip()) / 1e6
