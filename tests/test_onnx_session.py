"""One ONNX Runtime session wrapper (models/runtime/onnx_session.py), used by every stage, tool and study."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from models.runtime.onnx_session import ort_session, session_options

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("emulator", "producer", "consumer", "models")
ENCODER = REPO / "models" / "zoo" / "AE_3D_200_ptetaphie" / "encoder.onnx"


def test_options_are_explicit_and_do_not_spin() -> None:
    options = session_options(3)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"


def test_path_and_bytes_give_the_same_session() -> None:
    x = np.random.default_rng(1).uniform([20, -2, -3, 20], [500, 2, 3, 900], (64, 4)).astype(np.float32)
    from_path = ort_session(ENCODER).run(["latent"], {"x": x})[0]
    from_bytes = ort_session(ENCODER.read_bytes()).run(["latent"], {"x": x})[0]
    np.testing.assert_array_equal(from_path, from_bytes)
    assert ort_session(ENCODER).get_providers() == ["CPUExecutionProvider"]


def test_no_other_module_builds_a_session() -> None:
    """Outside the tests, only onnx_session.py calls ``InferenceSession``: every other session shares its options."""
    offenders = []
    for path in (p for package in PACKAGES for p in (REPO / package).rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel == "models/runtime/onnx_session.py":
            continue
        if re.search(r"\bInferenceSession\s*\(", path.read_text()):
            offenders.append(rel)
    assert offenders == []
