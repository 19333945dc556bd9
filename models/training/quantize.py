"""Post-training int8 quantisation of a model directory with ONNX Runtime (static, QDQ; VNNI kernels on x86).

Steps: fold every BatchNormalization into the Gemm before it; rescale channels across each
Gemm -> LeakyReLU -> Gemm pair so a quantised input's channels share one range (both exact in
float32); record activation ranges on real background jets (calibration); quantise the hidden
Gemms, those whose weight has both dimensions >= ``min_features`` (weights int8 per output
channel, inputs uint8 per tensor). Normalisation, the small input, latent and output layers,
the activations and the error stay float32.
The encoder and decoder graphs are cut out of the quantised scorer, so all three agree exactly.
Thresholds are recalibrated on the quantised scorer; the card says ``precision: int8`` and how.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.card import GRAPH_FILES, ModelError, load_model_dir, write_card
from models.runtime.data import load_jets
from models.runtime.evaluate import run_scorer
from models.runtime.hashing import sha256_file
from models.runtime.onnx_session import ort_session
from models.runtime.rebuild import parent_rebuild, rebuild_block
from models.runtime.residuals import residual_stats
from models.runtime.thresholds import threshold_table

PRECISION = "int8"
METHODS = ("minmax", "percentile", "entropy")
DEFAULT_MIN_FEATURES = 64
DEFAULT_PERCENTILE = 99.99
DEFAULT_ALPHA = 1.0  # channel equalisation strength: 1 = equal activation ranges, 0 = weights decide
CALIBRATION_BATCH = 4096
CHECKPOINT = "model.pt"


def _attr(node: Any, name: str, default: Any) -> Any:
    """One attribute of an onnx node, or ``default``."""
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def fold_batchnorm(model: Any) -> int:
    """Fold each inference-mode BatchNormalization that follows a Gemm with constant weights into that Gemm.

    ``y = gamma (W x + b - mean) / sqrt(var + eps) + beta`` becomes one Gemm with scaled rows of W
    and a new bias (computed in float64, stored float32). Modifies ``model`` (an onnx ModelProto)
    in place and returns the number of folded nodes.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    uses = Counter(name for node in graph.node for name in node.input)
    uses.update(o.name for o in graph.output)
    folded = []
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization"]:
        gemm = producer.get(bn.input[0])
        if gemm is None or gemm.op_type != "Gemm" or uses[gemm.output[0]] != 1 or len(bn.output) != 1:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
        bn_attrs = {a.name: helper.get_attribute_value(a) for a in bn.attribute}
        constants = [*bn.input[1:5], *gemm.input[1:]]
        if (attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0
                or bn_attrs.get("training_mode", 0) or not all(c in inits for c in constants)):
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[c]).astype(np.float64) for c in bn.input[1:5])
        s = gamma / np.sqrt(var + float(bn_attrs.get("epsilon", 1e-5)))
        w = numpy_helper.to_array(inits[gemm.input[1]]).astype(np.float64)
        w = w * s[:, None] if attrs.get("transB", 0) else w * s[None, :]
        b = numpy_helper.to_array(inits[gemm.input[2]]).astype(np.float64) if len(gemm.input) > 2 else 0.0
        bias = (b - mean) * s + beta
        w_name, b_name = f"{gemm.name or gemm.output[0]}.W_bnfold", f"{gemm.name or gemm.output[0]}.b_bnfold"
        graph.initializer.extend([numpy_helper.from_array(w.astype(np.float32), w_name),
                                  numpy_helper.from_array(bias.astype(np.float32), b_name)])
        del gemm.input[1:]
        gemm.input.extend([w_name, b_name])
        gemm.output[0] = bn.output[0]
        folded.append(bn)
    for bn in folded:
        graph.node.remove(bn)
    used = {name for node in graph.node for name in node.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    return len(folded)


def hidden_gemms(model: Any, min_features: int = DEFAULT_MIN_FEATURES) -> list[str]:
    """Names of the Gemm nodes whose constant 2-D weight has both dimensions >= ``min_features``."""
    inits = {t.name: t for t in model.graph.initializer}
    names = []
    for i, node in enumerate(model.graph.node):
        if node.op_type != "Gemm" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        dims = list(inits[node.input[1]].dims)
        if len(dims) == 2 and min(dims) >= min_features:
            if not node.name:
                node.name = f"Gemm_{i}"
            names.append(node.name)
    return names


def equalise_channels(model: Any, x: np.ndarray, nodes: list[str], alpha: float = DEFAULT_ALPHA) -> int:
    """Rescale channels across ``Gemm -> LeakyRelu/Relu -> Gemm`` pairs so the quantised Gemm's input channels
    have comparable ranges (SmoothQuant-style, exact in float32 since LeakyRelu(z / s) = LeakyRelu(z) / s, s > 0).

    For each Gemm in ``nodes`` fed by such a pair, channel j gets ``s_j = max|x_j|^alpha / max|W[:, j]|^(1-alpha)``
    (normalised to geometric mean 1, clipped to [1e-2, 1e2]); the producing Gemm's row j and bias are divided by
    s_j and the consumer's column j multiplied by it. ``max|x_j|`` comes from running the graph on ``x``.
    With one activation scale per tensor this keeps the typical channel from being resolved with the range of
    the widest one. Modifies ``model`` in place; returns the number of rescaled pairs.
    """
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    uses = Counter(name for node in graph.node for name in node.input)
    by_name = {node.name: node for node in graph.node}
    pairs = []
    for name in nodes:
        consumer = by_name[name]
        act = producer.get(consumer.input[0])
        if act is None or act.op_type not in ("LeakyRelu", "Relu") or uses[act.output[0]] != 1:
            continue
        gemm = producer.get(act.input[0])
        if (gemm is None or gemm.op_type != "Gemm" or len(gemm.input) < 3 or uses[gemm.output[0]] != 1
                or not all(c in inits for c in gemm.input[1:3])):
            continue
        if all(_attr(n, "transB", 0) == 1 and _attr(n, "transA", 0) == 0 for n in (gemm, consumer)):
            pairs.append((gemm, act, consumer))
    if not pairs:
        return 0
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.ValueInfoProto(name=act.output[0]) for _, act, _ in pairs)
    session = ort_session(probe.SerializeToString())
    activations = session.run([act.output[0] for _, act, _ in pairs], {"x": np.ascontiguousarray(x, np.float32)})
    for (gemm, _, consumer), a in zip(pairs, activations, strict=True):
        a_max = np.maximum(np.abs(a).max(axis=0), 1e-6).astype(np.float64)
        w_next = numpy_helper.to_array(inits[consumer.input[1]]).astype(np.float64)  # [out, in] (transB)
        w_max = np.maximum(np.abs(w_next).max(axis=0), 1e-6)
        scale = a_max ** alpha / w_max ** (1.0 - alpha)
        scale = np.clip(scale / np.exp(np.mean(np.log(scale))), 1e-2, 1e2)
        w_prev = numpy_helper.to_array(inits[gemm.input[1]]).astype(np.float64) / scale[:, None]
        b_prev = numpy_helper.to_array(inits[gemm.input[2]]).astype(np.float64) / scale
        for tensor, value in ((gemm.input[1], w_prev), (gemm.input[2], b_prev), (consumer.input[1], w_next * scale)):
            inits[tensor].CopyFrom(numpy_helper.from_array(value.astype(np.float32), tensor))
    return len(pairs)


def calibration_reader(x: np.ndarray, input_name: str, batch: int = CALIBRATION_BATCH):
    """An onnxruntime CalibrationDataReader over equal-size batches of ``x`` (histogram methods need equal sizes)."""
    from onnxruntime.quantization import CalibrationDataReader

    size = min(batch, len(x))
    chunks = [np.ascontiguousarray(x[i:i + size], dtype=np.float32) for i in range(0, len(x) - size + 1, size)]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(chunks)

        def get_next(self) -> dict[str, np.ndarray] | None:
            chunk = next(self._it, None)
            return None if chunk is None else {input_name: chunk}

    return _Reader()


@dataclass(frozen=True)
class Recipe:
    """How to quantise: calibration method (and percentile), weight granularity, which Gemms, channel equalisation.

    ``alpha`` None switches the channel equalisation off; ``nodes`` overrides the choice by ``min_features``.
    """

    method: str = "minmax"
    percentile: float = DEFAULT_PERCENTILE
    per_channel: bool = True
    min_features: int = DEFAULT_MIN_FEATURES
    alpha: float | None = DEFAULT_ALPHA
    nodes: tuple[str, ...] | None = None


def quantize_scorer(scorer: str | Path, out: str | Path, calibration: np.ndarray,
                    recipe: Recipe = Recipe()) -> dict[str, Any]:
    """Fold BatchNorm, equalise channels, calibrate on ``calibration`` jets [N, n_vars], write the int8 scorer.

    Only the inputs of the chosen Gemms are quantised (their outputs stay float32, so the LeakyReLU
    after them runs in float32 and the next input is quantised with its own range). Returns what was
    done, for the card.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if recipe.method not in METHODS:
        raise ModelError(f"unknown calibration method {recipe.method!r}; choose from {METHODS}")
    if len(calibration) < 2:
        raise ModelError(f"calibration needs real jets, got {len(calibration)}")
    try:
        model = onnx.load(str(scorer))
    except Exception as exc:  # onnx raises DecodeError and friends for garbage files
        raise ModelError(f"{scorer}: not a readable ONNX model: {exc}") from exc
    input_names = [i.name for i in model.graph.input]
    outputs = {o.name for o in model.graph.output}
    if input_names != ["x"] or not {"latent", "reconstruction", "error"} <= outputs:
        raise ModelError(f"{scorer}: a scorer graph needs input x and outputs latent, reconstruction, error; "
                         f"has inputs {input_names} and outputs {sorted(outputs)}")
    folded = fold_batchnorm(model)
    nodes = hidden_gemms(model, recipe.min_features) if recipe.nodes is None else list(recipe.nodes)
    if not nodes:
        raise ModelError(f"{scorer}: no Gemm with both weight dimensions >= {recipe.min_features}: nothing to quantise")
    equalised = 0 if recipe.alpha is None else equalise_channels(model, calibration, nodes, recipe.alpha)
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    with tempfile.TemporaryDirectory(prefix="aetrig-quantize-") as tmp_dir:
        tmp = Path(tmp_dir)
        prepared = tmp / "prepared.onnx"
        onnx.save(model, str(tmp / "rewritten.onnx"))
        # shape inference only (no graph optimisation, so the chosen node names stay valid)
        quant_pre_process(str(tmp / "rewritten.onnx"), str(prepared), skip_optimization=True, skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), calibration_reader(calibration, "x"),
                        quant_format=QuantFormat.QDQ, nodes_to_quantize=nodes, per_channel=recipe.per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=False,
                        calibrate_method=methods[recipe.method],
                        extra_options={"CalibPercentile": recipe.percentile,
                                       "OpTypesToExcludeOutputQuantization": ["Gemm"]})
    return {"batchnorm_folded": folded, "quantised_nodes": nodes, "calibration_method": recipe.method,
            **({"calibration_percentile": recipe.percentile} if recipe.method == "percentile" else {}),
            "channel_equalisation": ({"alpha": recipe.alpha, "pairs": equalised} if recipe.alpha is not None
                                     else None),
            "format": "QDQ (QuantizeLinear/DequantizeLinear, onnxruntime; fused to QGemm at load)",
            "weights": "int8 symmetric" + (" per output channel" if recipe.per_channel else " per tensor"),
            "activations": "uint8 asymmetric per tensor at the quantised Gemms' inputs, static calibrated ranges",
            "min_features": recipe.min_features}


def split_scorer(scorer: str | Path, out_dir: str | Path) -> None:
    """Cut ``encoder.onnx`` (x -> latent) and ``decoder.onnx`` (latent -> reconstruction) out of a scorer graph."""
    from onnx.utils import extract_model

    out_dir = Path(out_dir)
    extract_model(str(scorer), str(out_dir / "encoder.onnx"), ["x"], ["latent"])
    extract_model(str(scorer), str(out_dir / "decoder.onnx"), ["latent"], ["reconstruction"])


def agreement(fp32: tuple[np.ndarray, ...], int8: tuple[np.ndarray, ...]) -> dict[str, Any]:
    """How far the int8 scorer's latent and error are from float32 on the same jets."""
    (lat_f, _, err_f), (lat_q, _, err_q) = fp32, int8
    rel = np.abs(err_q.astype(np.float64) - err_f) / np.maximum(err_f.astype(np.float64), 1e-12)
    order_f, order_q = np.argsort(np.argsort(err_f)), np.argsort(np.argsort(err_q))
    return {"n_jets": len(err_f),
            "error_relative_difference": {f"p{q}": float(np.percentile(rel, q)) for q in (50, 90, 99)},
            "error_rank_correlation": float(np.corrcoef(order_f, order_q)[0, 1]) if len(err_f) > 1 else float("nan"),
            "latent_max_abs_difference": float(np.abs(lat_q - lat_f).max()) if len(lat_f) else 0.0,
            "latent_rms_difference": float(np.sqrt(np.mean((lat_q - lat_f) ** 2))) if len(lat_f) else 0.0}


def quantize_model(model_path: str | Path, out: str | Path, calibration: list[str | Path],
                   background: list[str | Path], calibration_events: int | None = 20000,
                   background_events: int | None = None, recipe: Recipe = Recipe(),
                   name: str | None = None, tree: str = "events", threads: int = 1,
                   command: str | None = None) -> dict[str, Any]:
    """Write an int8 copy of a float32 model directory into ``out``; return its card.

    ``calibration`` files give the activation ranges, ``background`` files the new thresholds
    (and the int8-vs-float32 agreement and residuals recorded in the card's metrics).
    """

    source = load_model_dir(model_path)
    precision = source.card.get("precision", "float32")
    if precision != "float32":
        raise ModelError(f"{source.path}: card says precision {precision!r}; quantise a float32 model")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output directory {out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    try:
        calib = load_jets(list(calibration), source.variables, tree=tree, max_events=calibration_events)
        done = quantize_scorer(source.scorer_path, out / "scorer.onnx", calib.values, recipe)
        split_scorer(out / "scorer.onnx", out)
        if (source.path / CHECKPOINT).is_file():
            shutil.copy2(source.path / CHECKPOINT, out / CHECKPOINT)
        bkg = load_jets(list(background), source.variables, tree=tree, max_events=background_events)
        fp32 = run_scorer(source.scorer_path, bkg.values, threads=threads)
        int8 = run_scorer(out / "scorer.onnx", bkg.values, threads=threads)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    files = {f: sha256_file(out / f) for f in (*GRAPH_FILES, CHECKPOINT) if (out / f).is_file()}
    sample = {"files": bkg.files, "n_events": len(bkg.counts), "n_jets": len(bkg.values)}
    card = {
        "name": name or f"{source.name}_int8", "version": 1,
        "variables": source.card["variables"], "files": files, "normalisation": source.card["normalisation"],
        "architecture": {**source.card["architecture"], "precision": PRECISION},
        "training": source.card.get("training"),
        "metrics": {"background": {**sample, "all_jets": residual_stats(source.variables, bkg.values, int8[1])},
                    "background_float32_source": {"all_jets": residual_stats(source.variables, bkg.values, fp32[1])},
                    "int8_vs_float32": agreement(fp32, int8)},
        "thresholds": threshold_table(int8[2], bkg.counts, {"files": bkg.files}),
        "source": {"model": source.name, "version": source.version, "path": str(model_path),
                   "files": source.card["files"],
                   **({"rebuild": rebuild_block(
                       "the aetrig commands that rebuild this directory: the float32 model's data and commands, "
                       "then this quantisation", [*calibration, *background], [command],
                       parent_rebuild(source.card))} if command else {})},
        "precision": PRECISION,
        "quantization": {**done, "command": command,
                         "tool": "aetrig quantize (models/training/quantize.py), "
                                 "onnxruntime.quantization quantize_static",
                         "calibration_sample": {"files": calib.files, "n_events": len(calib.counts),
                                                "n_jets": len(calib.values)},
                         "float32_parts": "normalisation, input/latent/output Gemms, every Gemm output and "
                                          "activation, the error (MSE in normalised space)",
                         "encoder_decoder": "cut out of the quantised scorer (onnx.utils.extract_model)",
                         "checkpoint": f"{CHECKPOINT} is the float32 source checkpoint" if CHECKPOINT in files
                         else "none"},
    }
    write_card(out, card)
    load_model_dir(out)
    return card
