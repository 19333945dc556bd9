"""Measured rate and distortion of a rate-trained model directory on a ROOT sample (numpy + ONNX, no torch).

Bits per jet are the ANS-coded bytes × 8 / jets with the sample coded in blocks of ``block_jets``; core
half-widths are those of models/runtime/residuals.py, plus the jet mass rebuilt from the decoded (pt, eta, e)
when the model has no m. CPU is process time of encoder.onnx + quantise + ANS per jet (one thread), also as
cycles at the nominal clock.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime import latent_coding as lc
from models.runtime.card import load_model_dir
from models.runtime.data import load_jets
from models.runtime.onnx_session import ort_session
from models.runtime.residuals import residual_stats


def nominal_hz() -> float | None:
    """The CPU clock from /proc/cpuinfo (first ``cpu MHz``), None when unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) * 1e6
    except OSError:
        pass
    return None


def jet_mass(pt: np.ndarray, eta: np.ndarray, e: np.ndarray) -> np.ndarray:
    """m = sqrt(max(e^2 - (pt cosh eta)^2, 0))."""
    p = pt.astype(np.float64) * np.cosh(eta.astype(np.float64))
    return np.sqrt(np.maximum(e.astype(np.float64) ** 2 - p ** 2, 0.0))


def measure(model_dir: str | Path, sample_path: str | Path, block_jets: int = 4096) -> dict[str, Any]:
    """Bits per jet, core half-widths (with m), round-trip exactness and CPU per jet on one sample."""
    model = load_model_dir(model_dir)
    entropy = lc.load_entropy_model(model_dir)
    extra = [v for v in ("m",) if v not in model.variables]
    sample = load_jets([sample_path], model.variables + extra)
    x = np.ascontiguousarray(sample.values[:, :len(model.variables)], dtype=np.float32)
    encoder = ort_session(Path(model_dir) / "encoder.onnx")
    decoder = ort_session(Path(model_dir) / "decoder.onnx")
    n_bytes, ideal, exact, cpu, recos = 0, 0.0, True, 0.0, []
    for start in range(0, len(x), block_jets):
        block = x[start:start + block_jets]
        c0 = time.process_time()
        q = lc.quantise(encoder.run(["latent"], {"x": block})[0], entropy)
        data = lc.encode(q, entropy)
        cpu += time.process_time() - c0
        back = lc.decode(data, len(block), entropy)
        exact &= bool(np.array_equal(back, q))
        n_bytes += len(data)
        ideal += lc.ideal_bits(q, entropy)
        recos.append(decoder.run(["reconstruction"], {"latent": lc.dequantise(back, entropy)})[0])
    reco = np.concatenate(recos)
    names, truth, out = list(model.variables), x.astype(np.float64), reco.astype(np.float64)
    if extra and {"pt", "eta", "e"} <= set(names):
        i = {v: names.index(v) for v in ("pt", "eta", "e")}
        names.append("m")
        truth = np.column_stack([truth, sample.values[:, -1]])
        out = np.column_stack([out, jet_mass(out[:, i["pt"]], out[:, i["eta"]], out[:, i["e"]])])
    stats = residual_stats(names, truth, out)
    hz = nominal_hz()
    ns = cpu / max(len(x), 1) * 1e9
    return {"sample": Path(sample_path).name, "n_jets": len(x), "block_jets": block_jets,
            "coded_bytes": n_bytes, "bits_per_jet": 8.0 * n_bytes / max(len(x), 1),
            "ideal_bits_per_jet": ideal / max(len(x), 1), "round_trip_exact": exact,
            "core_half_width": {v: s["core_half_width"] for v, s in stats.items()},
            "cpu_ns_per_jet_encode_and_code": ns, "cpu_cycles_per_jet": ns * hz / 1e9 if hz else None,
            "residuals": stats}
