"""Build the aetrig container image (deploy/Dockerfile) with podman or docker, on any machine.

``make image`` runs ``python3 -m emulator.ops.image``. The base image is ``python:3.11-slim`` where it
can be had (present, or pullable); otherwise a Debian bookworm root filesystem with Debian's Python 3.11,
made with ``mmdebstrap`` and imported as ``localhost/aetrig-base:bookworm`` (emulator/ops/image_base.py).
Every image carries the label ``org.aetrig.inputs``, the digest of what it was built from (its
Dockerfile, the base image's id and every file the Dockerfile copies); an image whose label matches is
reused, not rebuilt. ``--prometheus TAG`` also builds a Prometheus image from Debian's ``prometheus``
package (deploy/prometheus/Dockerfile) for hosts that cannot pull ``prom/prometheus``.

With podman the build mounts the host's CA bundle over the image's during ``RUN`` (pip reaches PyPI
through a TLS-inspecting proxy that the host trusts; nothing of it stays in the image) and gives the
build containers this shell's open-file and process limits (hosts that forbid raising them refuse
podman's defaults). Standard library only: it runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

from emulator.ops import image_base
from emulator.ops.container_engine import (
    INPUTS_LABEL,
    Engine,
    current_ulimits,
    find_engine,
    image_id,
    image_label,
    image_size_mb,
)

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
PROMETHEUS_DOCKERFILE = REPO / "deploy" / "prometheus" / "Dockerfile"
DEFAULT_TAG = "aetrig:latest"
DEFAULT_BASE = "python:3.11-slim"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: what deploy/Dockerfile.dockerignore keeps out of the build context below the copied folders
IGNORED = re.compile(r"(^|/)__pycache__(/|$)|\.pyc$")

EXAMPLES = """
python3 -m emulator.ops.image                                  # aetrig:latest, the base chosen as above
python3 -m emulator.ops.image --base localhost/aetrig-base:bookworm --tag aetrig:0.1.0
python3 -m emulator.ops.image --prometheus aetrig-prometheus:latest --runtime runc
"""


def copied_paths(dockerfile: Path) -> list[str]:
    """The sources of the Dockerfile's COPY instructions (context-relative)."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def inputs_digest(dockerfile: Path, base_id: str, context: Path = REPO) -> str:
    """sha256 over the Dockerfile, the base image id and every file the Dockerfile copies (path and bytes)."""
    digest = hashlib.sha256()
    digest.update(dockerfile.read_bytes())
    digest.update(base_id.encode())
    for source in copied_paths(dockerfile):
        root = context / source
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            relative = path.relative_to(context).as_posix()
            if IGNORED.search(relative):
                continue
            digest.update(relative.encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def choose_base(engine: Engine, base: str, announce=print, quiet: bool = True) -> str:
    """``base`` itself, or for ``auto``: python:3.11-slim when present or pullable, else the Debian base."""
    if base != "auto":
        return base
    if image_id(engine, DEFAULT_BASE) is not None:
        return DEFAULT_BASE
    pulled = engine.run("pull", "-q", DEFAULT_BASE, check=False)
    if pulled.returncode == 0:
        return DEFAULT_BASE
    reason = (pulled.stderr or "").strip().splitlines()[-1:] or ["no reason given"]
    announce(f"aetrig image: cannot pull {DEFAULT_BASE} ({reason[0][:200]}); using a local Debian bookworm base")
    return image_base.ensure_debian_base(engine, announce=announce, quiet=quiet)


def build(engine: Engine, tag: str, base: str, dockerfile: Path = DOCKERFILE, rebuild: bool = False,
          announce=print, quiet: bool = False) -> str:
    """Build ``dockerfile`` on ``base`` as ``tag`` unless an image of the same inputs is there; return its id."""
    base_id = image_id(engine, base)
    if base_id is None:
        engine.run("pull", base, quiet=quiet)
        base_id = image_id(engine, base)
    digest = inputs_digest(dockerfile, base_id or base)
    if not rebuild and image_label(engine, tag) == digest:
        announce(f"aetrig image: {tag} is up to date (inputs {digest[:12]})")
        return image_id(engine, tag) or ""
    previous = image_id(engine, tag)
    args = ["build", "-f", str(dockerfile), "-t", tag, "--build-arg", f"BASE={base}",
            "--label", f"{INPUTS_LABEL}={digest}"]
    if engine.is_podman:
        ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
        if ignore.is_file():
            args += ["--ignorefile", str(ignore)]
        if HOST_CA_BUNDLE.is_file():
            args += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        args += current_ulimits()
    announce(f"aetrig image: building {tag} from {dockerfile.relative_to(REPO)} on {base}")
    engine.run(*args, str(REPO), quiet=quiet)
    built = image_id(engine, tag) or ""
    if previous and previous != built:  # the old build, now untagged: drop it unless something still uses it
        engine.run("image", "rm", previous, check=False)
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m emulator.ops.image", description=__doc__.split("\n\n")[0],
                                     epilog="examples:" + EXAMPLES, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"image name (default {DEFAULT_TAG})")
    parser.add_argument("--base", default="auto",
                        help=f"base image; 'auto' (default): {DEFAULT_BASE} if it can be had, else a local "
                             f"Debian bookworm base ({image_base.BASE_TAG}) made with mmdebstrap")
    parser.add_argument("--prometheus", metavar="TAG", default=None,
                        help="also build a Prometheus image from Debian's package, named TAG")
    parser.add_argument("--engine", choices=["podman", "docker"], default=None,
                        help="container engine (default: podman if installed, else docker)")
    parser.add_argument("--runtime", default=None, help="podman's OCI runtime, e.g. runc where crun fails")
    parser.add_argument("--rebuild", action="store_true", help="build even when an image of the same inputs exists")
    args = parser.parse_args(argv)
    try:
        engine = find_engine(args.engine, args.runtime)
        base = choose_base(engine, args.base, quiet=False)
        build(engine, args.tag, base, rebuild=args.rebuild)
        built = [args.tag]
        if args.prometheus:
            build(engine, args.prometheus, base, PROMETHEUS_DOCKERFILE, rebuild=args.rebuild)
            built.append(args.prometheus)
    except RuntimeError as error:
        print(f"aetrig image: {error}", file=sys.stderr)
        return 1
    for tag in built:
        print(f"aetrig image: {tag}: {image_size_mb(engine, tag):.0f} MB (base {base})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
