"""A local Debian bookworm base image for deploy/Dockerfile, where python:3.11-slim cannot be pulled.

``mmdebstrap`` (Debian's package) makes a minimal bookworm root filesystem with Debian's python3 (3.11),
python3-venv, ca-certificates and passwd, from the Debian archive and its security updates, without
documentation, manual pages or locales; the engine imports the tarball as ``localhost/aetrig-base:bookworm``.
The image's ``org.aetrig.inputs`` label is the digest of this recipe: the same recipe reuses the image.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile

from emulator.ops.container_engine import INPUTS_LABEL, Engine, image_label

BASE_TAG = "localhost/aetrig-base:bookworm"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates", "passwd")
SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
EXCLUDED_PATHS = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")


def mmdebstrap_argv() -> list[str]:
    """The mmdebstrap command line writing the root filesystem as a tarball to stdout."""
    argv = ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
            "--aptopt=APT::Install-Recommends \"false\""]
    argv += [f"--dpkgopt=path-exclude={path}" for path in EXCLUDED_PATHS]
    return [*argv, SUITE, "-", *SOURCES]


def recipe_digest() -> str:
    """sha256 of the recipe (the mmdebstrap command line): a changed recipe makes a new base."""
    return hashlib.sha256("\0".join(mmdebstrap_argv()).encode()).hexdigest()


def ensure_debian_base(engine: Engine, tag: str = BASE_TAG, announce=print, quiet: bool = True) -> str:
    """``tag``, made by mmdebstrap and imported unless an image of the same recipe is there already;
    mmdebstrap's progress lines go to the terminal unless ``quiet``."""
    digest = recipe_digest()
    if image_label(engine, tag, INPUTS_LABEL) == digest:
        return tag
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError("mmdebstrap is not installed and the base image cannot be pulled: "
                           "`apt-get install mmdebstrap` (Debian/Ubuntu), or pass --base IMAGE")
    announce(f"aetrig image: making {tag} with mmdebstrap (Debian {SUITE}, python3); a few minutes")
    with tempfile.TemporaryFile() as log, \
            subprocess.Popen(mmdebstrap_argv(), stdout=subprocess.PIPE, stderr=log if quiet else None) as strap:
        imported = subprocess.run(engine.argv("import", "--change", f"LABEL {INPUTS_LABEL}={digest}",
                                              "--change", 'CMD ["/bin/bash"]', "-", tag),
                                  stdin=strap.stdout, capture_output=True, text=True, env=engine.environ())
        strap.stdout.close()
        strap.wait()
        log.seek(0)
        messages = log.read().decode(errors="replace")
    if strap.returncode != 0:
        raise RuntimeError(f"mmdebstrap failed (exit {strap.returncode}):\n{messages[-3000:] or '(output above)'}")
    if imported.returncode != 0:
        raise RuntimeError(f"importing the base failed: {imported.stderr.strip()[-2000:]}")
    return tag
