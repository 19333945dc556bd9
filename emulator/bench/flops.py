"""Arithmetic work of a model graph: multiply-accumulates per jet, from the Gemm/MatMul weights of scorer.onnx.

With cycles per jet this gives MACs per cycle, to compare with the core's fused multiply-add peak
(for example 16 float32 FMAs per cycle on a core with two 256-bit FMA pipes, 32 with two 512-bit).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from models.runtime.onnx_session import ort_session


def macs_by_precision(onnx_path: str | Path) -> dict[str, int]:
    """MACs for one input row per weight precision: ``float32`` Gemm/MatMul weights, and ``int8`` ones, i.e.
    weights that reach the node through a DequantizeLinear of an 8-bit initializer (ONNX Runtime's QDQ format,
    fused to QGemm / QLinearMatMul when the session loads)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    weights = {init.name: (tuple(init.dims), init.data_type) for init in model.graph.initializer}
    for node in model.graph.node:  # weights stored as Constant nodes instead of initializers
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    weights[node.output[0]] = (numpy_helper.to_array(attr.t).shape, attr.t.data_type)
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    dequantized = {node.output[0]: weights[node.input[0]] for node in model.graph.node
                   if node.op_type == "DequantizeLinear" and node.input[0] in weights
                   and weights[node.input[0]][1] in eight_bit}
    total = {"float32": 0, "int8": 0}
    for node in model.graph.node:
        if node.op_type in ("Gemm", "MatMul") and len(node.input) > 1:
            name = node.input[1]
            shape, precision = ((dequantized[name][0], "int8") if name in dequantized
                                else (weights[name][0], "float32") if name in weights else ((), ""))
            if len(shape) == 2:
                total[precision] += int(np.prod(shape))
    return total


def macs_per_jet(onnx_path: str | Path) -> int:
    """Sum over Gemm/MatMul nodes of the weight matrix size (K x N): MACs for one input row (any precision)."""
    return sum(macs_by_precision(onnx_path).values())


def macs_per_cycle(macs: int, cycles_per_jet: float | None) -> float | None:
    """Achieved multiply-accumulates per cycle."""
    if not cycles_per_jet or cycles_per_jet <= 0:
        return None
    return macs / cycles_per_jet


def _measured_macs_rate(nodes: list, inits: list, clock_hz: float, size: int, rows: int,
                        budget_s: float) -> dict[str, float]:
    """MACs per CPU second (and per cycle) of a one-Gemm graph ``x [N, size] -> y [N, size]`` built from
    ``nodes`` and ``inits``, run on ``rows`` random rows for ``budget_s`` (at least 3 calls), one thread."""

    from onnx import TensorProto, helper


    graph = helper.make_graph(nodes, "gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = ort_session(model.SerializeToString())
    x = np.random.default_rng(1).standard_normal((rows, size)).astype(np.float32)
    sess.run(None, {"x": x})
    n, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - wall0 < budget_s or n < 3:
        sess.run(None, {"x": x})
        n += 1
    macs_per_s = n * rows * size * size / (time.process_time() - cpu0)
    return {"macs_per_cpu_s": macs_per_s, "macs_per_cycle": macs_per_s / clock_hz}


def gemm_peak(clock_hz: float, size: int = 256, rows: int = 4096, budget_s: float = 1.0) -> dict[str, float]:
    """Measured float32 MACs per CPU second (and per cycle) of one plain Gemm in ONNX Runtime on one thread.

    A ceiling for any MLP on this core: a model of M MACs per jet cannot go below M / peak cycles per jet.
    """
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((size, size)).astype(np.float32), "w")
    rate = _measured_macs_rate([helper.make_node("Gemm", ["x", "w"], ["y"])], [w], clock_hz, size, rows, budget_s)
    return {**rate, "gemm": f"{rows}x{size}x{size}"}


def int8_gemm_peak(clock_hz: float, size: int = 256, rows: int = 4096, budget_s: float = 1.0) -> dict[str, float]:
    """Measured int8 MACs per CPU second (and per cycle) of one QDQ Gemm (uint8 input x int8 weight, float32
    output, fused to QGemm: VNNI where the CPU has it) in ONNX Runtime on one thread; the int8 ceiling."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-127, 128, (size, size)).astype(np.int8), "wq"),
             numpy_helper.from_array(np.full(size, 0.01, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(size, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
             numpy_helper.from_array(np.array(128, np.uint8), "xz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("Gemm", ["xd", "wd"], ["y"], transB=1)]
    rate = _measured_macs_rate(nodes, inits, clock_hz, size, rows, budget_s)
    return {**rate, "gemm": f"{rows}x{size}x{size} uint8 x int8 (QDQ -> QGemm, includes quantising the float32 input)"}
