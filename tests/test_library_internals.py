"""The few places that reach a library's internals (no public API exists) fail here first when the library
changes them: one isolating function per library, each checked against the installed library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import zmq

from emulator.runtime.zmq_frames import compiled_send


def test_pyzmq_compiled_send_is_the_backend_method_below_the_public_wrapper() -> None:
    from zmq.backend import Socket as CompiledSocket

    send = compiled_send()
    assert issubclass(zmq.Socket, CompiledSocket)
    assert send is CompiledSocket.send and zmq.Socket.send is not send  # the public one wraps it
    assert zmq.Socket.recv is CompiledSocket.recv and zmq.Socket.get is CompiledSocket.get  # public and compiled
    # send_frames/recv_frames against pyzmq's own multipart calls over real sockets: tests/test_encoder_batching.py


def test_fastjet_banner_switch_is_where_silence_fastjet_banner_reaches_it() -> None:
    fastjet_swig = pytest.importorskip("fastjet._swig")
    from producer.generate.jets import silence_fastjet_banner

    assert callable(fastjet_swig.ClusterSequence.set_fastjet_banner_stream)
    silence_fastjet_banner()


PACKAGES = ("emulator", "consumer", "producer", "models")
#: the isolating functions: file -> the library internals it alone may reach
ISOLATED = {"emulator/runtime/zmq_frames.py": {"zmq.backend"}, "producer/generate/jets.py": {"fastjet._swig"}}


def _private_library_uses(path: Path) -> set[str]:
    """Modules and attributes of other libraries a file reaches that are internal: an import of ``lib._x`` or
    ``zmq.backend``, or ``alias._x`` on a library module it imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    libraries: set[str] = set()
    found: set[str] = set()
    for node in ast.walk(tree):
        names = ([(a.name, a.asname or a.name.split(".")[0]) for a in node.names] if isinstance(node, ast.Import)
                 else [(node.module or "", None)] if isinstance(node, ast.ImportFrom) and not node.level else [])
        for module, alias in names:
            if module.split(".")[0] in PACKAGES or module == "__future__":
                continue
            if alias:
                libraries.add(alias)
            if module == "zmq.backend" or any(p.startswith("_") for p in module.split(".")):
                found.add(module)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in libraries):
            found.add(f"{node.value.id}.{node.attr}")
    return found


def test_library_internals_are_reached_only_by_the_isolating_functions() -> None:
    root = Path(__file__).resolve().parent.parent
    uses = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found = _private_library_uses(path)
            if found:
                uses[path.relative_to(root).as_posix()] = found
    assert uses == ISOLATED
