"""Torch modules of the event-level models: the event vector in the graph, and the three exported graphs.

``EventFeatures`` computes the numbers of ``models.runtime.event_features.event_features`` (float32) from
the padded jets ``x`` [N, J, V] (GeV), empty slots taking the fitted fill values. The event AE
standardises that vector with the training-set mean and standard deviation
(``models.training.torch_normalisation``), so every graph takes physical units:

- scorer: ``x`` -> ``latent`` [N, k], ``reconstruction`` [N, n_features] (event vector), ``error``
  [N] = mean over features of w_i (out_i - y_i)^2 in the standardised space, the event's anomaly
  score. w_i = 1 / (variance of feature i's residual on background validation events), so each
  feature's error counts in units of its typical background error (a chi^2 per feature) and no
  feature dominates merely because the AE reconstructs it poorly on background too;
- encoder: ``x`` -> ``latent``;  decoder: ``latent`` -> ``reconstruction`` (event vector): the per-jet
  models' ``models.training.graphs.DecoderGraph``, since it only undoes the standardisation.

The torch modules are the reference; the files are written by :func:`export_event_graphs` as slim graphs
(:func:`slim_event_graphs`, the same arithmetic in fewer, cheaper nodes, BatchNorm folded).
``python -m models.training.event_graphs MODEL_DIR`` rewrites a model directory's graphs from its
``model.pt`` and updates the card's sha256 (:func:`reexport`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.runtime.event_features import DEFAULT_SLOTS, EVENT_VARIABLES, SUBSTRUCTURE, feature_set, slot_features
from models.runtime.normalisation import Normalisation
from models.training.torch_normalisation import Denormalise, Normalise


class EventFeatures(nn.Module):
    """[N, J, V] jets (GeV, zero-padded, pt = 0 marks a missing jet) -> [N, n_features] event vector."""

    def __init__(self, slots: int = DEFAULT_SLOTS, variables: Sequence[str] = EVENT_VARIABLES,
                 fill: Any = None):
        super().__init__()
        self.slots = slots
        self.index = {v: list(variables).index(v) for v in feature_set(variables)}
        n_slot = len(slot_features(variables))
        fill_t = torch.zeros(slots, n_slot) if fill is None else torch.tensor(
            [list(map(float, row)) for row in fill], dtype=torch.float32)
        if fill_t.shape != (slots, n_slot):
            raise ValueError(f"fill must be [{slots}, {n_slot}], got {tuple(fill_t.shape)}")
        self.register_buffer("fill", fill_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        col = {v: x[:, :, i] for v, i in self.index.items()}
        mask = (col["pt"] > 0).to(x.dtype)
        pt, m = col["pt"] * mask, col["m"] * mask
        eta, phi = col["eta"] * mask, col["phi"] * mask
        px, py = pt * torch.cos(phi), pt * torch.sin(phi)
        e_eta, e_neg = torch.exp(eta), torch.exp(-eta)  # sinh/cosh via exp: ONNX opset 17 export lacks aten::sinh
        pz = pt * 0.5 * (e_eta - e_neg)
        energy = torch.sqrt((pt * 0.5 * (e_eta + e_neg)) ** 2 + m ** 2) * mask
        ht = pt.sum(dim=1)
        mhx, mhy = -px.sum(dim=1), -py.sum(dim=1)
        mht = torch.sqrt(mhx ** 2 + mhy ** 2)
        m2 = energy.sum(dim=1) ** 2 - px.sum(dim=1) ** 2 - py.sum(dim=1) ** 2 - pz.sum(dim=1) ** 2
        m_all = torch.sqrt(torch.clamp(m2, min=0.0))
        cos = (px * mhx[:, None] + py * mhy[:, None]) / torch.clamp(pt * mht[:, None], min=1e-6)
        n_jets = mask.sum(dim=1)
        max_cos = torch.amax(torch.where(mask > 0, cos, -torch.ones_like(cos)), dim=1) * (n_jets > 0).to(x.dtype)
        glob = [torch.log10(ht + 1), torch.log10(mht + 1), mht / torch.clamp(ht, min=1.0), n_jets,
                torch.log10(m.sum(dim=1) + 1), torch.log10(m_all + 1), max_cos]
        per_slot = [torch.log10(pt + 1), torch.log10(m + 1), m / torch.clamp(pt, min=1.0),
                    *(col[v] * mask for v in SUBSTRUCTURE if v in col), cos]
        block = torch.stack([f[:, :self.slots] for f in per_slot], dim=2)
        block = torch.where(mask[:, :self.slots, None] > 0, block, self.fill[None])
        return torch.cat([torch.stack(glob, dim=1), block.reshape(x.shape[0], -1)], dim=1)


class EventScorerGraph(nn.Module):
    """``x`` [N, J, V] -> ``latent``, ``reconstruction`` (event vector), ``error`` (weighted per-event MSE)."""

    def __init__(self, net: nn.Module, norm: Normalisation, slots: int, variables: Sequence[str],
                 weights: Sequence[float] | None = None, fill: Any = None):
        super().__init__()
        self.features = EventFeatures(slots, variables, fill)
        self.net, self.normalise, self.denormalise = net, Normalise(norm), Denormalise(norm)
        n = len(norm.transforms)
        w = torch.ones(n) if weights is None else torch.tensor(list(weights), dtype=torch.float32)
        if w.shape != (n,):
            raise ValueError(f"score weights must be {n} numbers, got {tuple(w.shape)}")
        self.register_buffer("weights", w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = self.normalise(self.features(x))
        latent = self.net.encode(y)
        out = self.net.decode(latent)
        return latent, self.denormalise(out), torch.mean(self.weights * (out - y) ** 2, dim=1)


class EventEncoderGraph(nn.Module):
    """``x`` [N, J, V] -> ``latent``."""

    def __init__(self, net: nn.Module, norm: Normalisation, slots: int, variables: Sequence[str], fill: Any = None):
        super().__init__()
        self.features, self.net, self.normalise = EventFeatures(slots, variables, fill), net, Normalise(norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.encode(self.normalise(self.features(x)))


def residual_weights(net: nn.Module, y: torch.Tensor, floor: float = 1e-6) -> list[float]:
    """1 / variance of each standardised feature's residual on (background) events ``y``."""
    with torch.no_grad():
        var = torch.var(net.eval()(y) - y, dim=0)
    return [float(1.0 / max(v, floor)) for v in var.tolist()]



# ---------------------------------------------------------------------------------------------------------------
# The exported graphs: written node by node (onnx.helper), the same float32 arithmetic as the torch modules above
# with fewer, smaller nodes. Events run along the last axis; BatchNorm is folded into the Gemm before it (_folded);
# slot features are computed for the L slots only, an empty slot's fill is added (its computed features are exact
# zeros) instead of a broadcast Where; reductions keep their axis so globals concatenate without Unsqueeze.


#: the IR version torch.onnx writes for opset 17: older ONNX Runtimes (pyproject allows 1.17) load it
IR_VERSION = 8


class _Graph:
    """Minimal ONNX graph builder: one node per call, generated tensor names, constants as initializers."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        name = f"c{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None, **attrs: Any) -> Any:
        from onnx import helper

        outs = [name] if name is not None else [f"t{len(self.nodes)}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=f"n{len(self.nodes)}_{op_type}",
                                           **attrs))
        return outs[0] if outputs == 1 else outs


def _log10p1(g: _Graph, v: str) -> str:
    """log10(v + 1) as torch exports it (Log, then Div by float32 ln 10)."""
    return g.op("Div", g.op("Log", g.op("Add", v, g.const(1.0))), g.const([math.log(10.0)]))


def _feature_nodes(g: _Graph, x: str, x_shape: Sequence[int], slots: int, variables: Sequence[str],
                   fill: np.ndarray) -> str:
    """Nodes of ``EventFeatures`` on ``x`` [N, J, V] (``x_shape`` = (J, V)): the event vector transposed,
    [n_features, N].

    Events run along the last axis of every tensor ([J, V, N], [J, N], [1, N]), so each broadcast and
    reduction works on spans of N numbers (ONNX Runtime is slow on short innermost spans, and its reduction
    of a short last axis depends on the row's memory alignment); the sums over jets are sequential."""
    index = {v: list(variables).index(v) for v in feature_set(variables)}
    subs = "width" in index
    if subs and [index[v] for v in SUBSTRUCTURE] != list(range(index["width"], index["width"] + 3)):
        raise ValueError(f"the event graph needs width, tau21, tau32 adjacent in the input (have {list(variables)})")
    i64 = np.int64
    n_jets, n_vars = int(x_shape[0]), int(x_shape[1])
    flat_x = g.op("Transpose", g.op("Reshape", x, g.const([0, n_jets * n_vars], i64)), perm=[1, 0])  # [J*V, N]
    xt = g.op("Reshape", flat_x, g.const([n_jets, n_vars, -1], i64))  # [J, V, N]
    maskf = g.op("Cast", g.op("Greater", g.op("Gather", xt, g.const(index["pt"], i64), axis=1), g.const(0.0)),
                 to=1)  # [J, N]
    xm = g.op("Mul", xt, g.op("Unsqueeze", maskf, g.const([1], i64)))  # every variable of a missing jet -> 0
    pt, eta, phi, m = (g.op("Gather", xm, g.const(index[v], i64), axis=1) for v in ("pt", "eta", "phi", "m"))
    px, py = g.op("Mul", pt, g.op("Cos", phi)), g.op("Mul", pt, g.op("Sin", phi))
    e_eta, e_neg = g.op("Exp", eta), g.op("Exp", g.op("Neg", eta))
    half_pt = g.op("Mul", pt, g.const(0.5))
    pz = g.op("Mul", half_pt, g.op("Sub", e_eta, e_neg))
    pe = g.op("Mul", half_pt, g.op("Add", e_eta, e_neg))
    energy = g.op("Sqrt", g.op("Add", g.op("Mul", pe, pe), g.op("Mul", m, m)))  # 0 for a missing jet
    jets_axis = g.const([0], i64)

    def total(v: str) -> str:
        return g.op("ReduceSum", v, jets_axis, keepdims=1)  # [1, N]

    ht, sx, sy = total(pt), total(px), total(py)
    sx2, sy2 = g.op("Mul", sx, sx), g.op("Mul", sy, sy)  # = MHT_x^2, MHT_y^2 (MHT = -sum p_T)
    mht = g.op("Sqrt", g.op("Add", sx2, sy2))
    se, spz = total(energy), total(pz)
    m2 = g.op("Sub", g.op("Sub", g.op("Sub", g.op("Mul", se, se), sx2), sy2), g.op("Mul", spz, spz))
    m_all = g.op("Sqrt", g.op("Max", m2, g.const(0.0)))
    cos = g.op("Neg", g.op("Div", g.op("Add", g.op("Mul", px, sx), g.op("Mul", py, sy)),
                              g.op("Max", g.op("Mul", pt, mht), g.const(1e-6))))  # [J, N]; 0 for a missing jet
    n_jets = total(maskf)
    not_jet = g.op("Sub", g.const(1.0), maskf)
    max_cos = g.op("Mul", g.op("ReduceMax", g.op("Sub", cos, not_jet), axes=[0], keepdims=1),
                   g.op("ReduceMax", maskf, axes=[0], keepdims=1))  # a missing jet's cos - 1 = -1; 0 if no jet
    logs = g.op("Split", _log10p1(g, g.op("Concat", ht, mht, total(m), m_all, axis=0)), axis=0, outputs=4)
    glob = g.op("Concat", logs[0], logs[1], g.op("Div", mht, g.op("Max", ht, g.const(1.0))), n_jets, logs[2],
                logs[3], max_cos, axis=0)  # [7, N]

    def rows(v: str, lo: int, hi: int, axis: int, step: int = 1) -> str:
        return g.op("Slice", v, g.const([lo], i64), g.const([hi], i64), g.const([axis], i64), g.const([step], i64))

    lead = rows(xm, 0, slots, 0)  # [L, V, N]
    pt_l, m_l = rows(lead, index["pt"], index["pt"] + 1, 1), rows(lead, index["m"], index["m"] + 1, 1)
    step = index["m"] - index["pt"]
    slot_logs = _log10p1(g, rows(lead, index["pt"], index["m"] + 1, 1, step)) if step > 0 else g.op(
        "Concat", _log10p1(g, pt_l), _log10p1(g, m_l), axis=1)  # [L, 2, N]: log10(pt + 1), log10(m + 1)
    cos_l = g.op("Unsqueeze", rows(cos, 0, slots, 0), g.const([1], i64))
    substructure = [rows(lead, index["width"], index["width"] + 3, 1)] if subs else []
    block = g.op("Concat", slot_logs, g.op("Div", m_l, g.op("Max", pt_l, g.const(1.0))), *substructure, cos_l,
                 axis=1)  # [L, 7 (4 without substructure), N]; 0 for no jet
    empty = g.op("Unsqueeze", rows(not_jet, 0, slots, 0), g.const([1], i64))  # [L, 1, N]
    fill_t = g.const(np.asarray(fill, np.float32)[:, :, None])  # [L, n_slot, 1]
    block = g.op("Add", block, g.op("Mul", empty, fill_t))
    flat = g.op("Flatten", block, axis=2)  # [L * n_slot, N], slot-major as the event vector
    return g.op("Concat", glob, flat, axis=0)


def _folded(linear: nn.Linear, bn: nn.BatchNorm1d | None) -> tuple[np.ndarray, np.ndarray]:
    """Weight [out, in] and bias of ``linear`` with the eval-mode ``bn`` after it folded in (float64 -> float32)."""
    w = linear.weight.detach().double().cpu().numpy()
    b = linear.bias.detach().double().cpu().numpy()
    if bn is not None:
        s = bn.weight.detach().double().cpu().numpy() / np.sqrt(bn.running_var.detach().double().cpu().numpy()
                                                                 + bn.eps)
        w, b = w * s[:, None], (b - bn.running_mean.detach().double().cpu().numpy()) * s + \
            bn.bias.detach().double().cpu().numpy()
    return w.astype(np.float32), b.astype(np.float32)


def _dense_nodes(g: _Graph, h: str, stack: nn.Sequential, name: str | None = None, rows_in: bool = False,
                 rows_out: bool = False) -> str:
    """Gemm (BatchNorm folded) and LeakyRelu nodes of a Linear-BatchNorm1d-LeakyReLU stack (eval mode).

    ``rows_in``: ``h`` is [n_in, N] (transposed); ``rows_out``: the last Gemm writes [n_out, N]."""
    layers = list(stack)
    linears = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear)]
    for i in linears:
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        w, b = _folded(layers[i], nxt if isinstance(nxt, nn.BatchNorm1d) else None)
        last = i == linears[-1]
        out = name if last else None
        if last and rows_out:  # out^T = W h^T + b
            h = g.op("Gemm", g.const(w), h, g.const(b[:, None]), transB=1, name=out)
        else:
            h = g.op("Gemm", h, g.const(w), g.const(b), transA=int(rows_in and i == linears[0]), transB=1, name=out)
        after = layers[i + 1:i + 3] if isinstance(nxt, nn.BatchNorm1d) else layers[i + 1:i + 2]
        act = next((layer for layer in after if isinstance(layer, nn.LeakyReLU)), None)
        if act is not None:
            h = g.op("LeakyRelu", h, alpha=float(act.negative_slope))
    unknown = [type(layer).__name__ for layer in layers if not isinstance(layer, (nn.Linear, nn.BatchNorm1d,
                                                                                   nn.LeakyReLU))]
    if unknown:
        raise ValueError(f"cannot write layers {unknown} into the event graph")
    return h


def _linear_norm(norm: Normalisation) -> dict[str, np.ndarray]:
    """The normalisation's shift, scale and input_scale (float32); the slim graph has no log transforms."""
    p = norm.arrays()
    if p["log"].any():
        raise ValueError("the slim event graph takes a standardised event vector (no log transforms)")
    return {k: p[k].astype(np.float32) for k in ("shift", "scale", "input_scale")}


def _normalise_nodes(g: _Graph, f: str, norm: Normalisation) -> str:
    """(f * input_scale - shift) / scale of the transposed event vector ``f`` [n_features, N]."""
    p = {k: v[:, None] for k, v in _linear_norm(norm).items()}
    u = f if np.all(p["input_scale"] == 1) else g.op("Mul", f, g.const(p["input_scale"]))
    return g.op("Div", g.op("Sub", u, g.const(p["shift"])), g.const(p["scale"]))


def _denormalise_nodes(g: _Graph, out: str, norm: Normalisation, name: str, rows: bool = False) -> str:
    """(out * scale + shift) / input_scale, [N, n_features]; ``rows``: ``out`` is [n_features, N]."""
    p = {k: v[:, None] if rows else v for k, v in _linear_norm(norm).items()}
    plain = np.all(p["input_scale"] == 1)
    named = None if rows or not plain else name
    u = g.op("Add", g.op("Mul", out, g.const(p["scale"])), g.const(p["shift"]), name=named)
    if not plain:
        u = g.op("Div", u, g.const(p["input_scale"]), name=None if rows else name)
    return g.op("Transpose", u, perm=[1, 0], name=name) if rows else u


def _model(g: _Graph, inputs: dict[str, list], outputs: dict[str, list]) -> Any:
    """The checked ModelProto of ``g`` (opset of onnx_export)."""
    from onnx import TensorProto, checker, helper

    from models.training.onnx_export import OPSET

    def info(name: str, shape: list) -> Any:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    graph = helper.make_graph(g.nodes, "event_model", [info(k, s) for k, s in inputs.items()],
                              [info(k, s) for k, s in outputs.items()], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="aetrig",
                              ir_version=IR_VERSION)
    checker.check_model(model, full_check=True)
    return model


def slim_event_graphs(net: nn.Module, norm: Normalisation, n_jets: int, slots: int, variables: Sequence[str],
                      weights: Sequence[float] | None = None, fill: Any = None) -> dict[str, Any]:
    """{"scorer.onnx", "encoder.onnx", "decoder.onnx": ModelProto}: the functions of ``EventScorerGraph``,
    ``EventEncoderGraph`` and ``DecoderGraph`` (batch axis N) as slim graphs."""
    net = net.eval()
    n_feat, k, n_vars = len(norm.transforms), int(net.sizes[-1]), len(variables)
    fill_a = np.zeros((slots, len(slot_features(variables)))) if fill is None else np.asarray(fill, dtype=np.float64)
    w = np.ones(n_feat) if weights is None else np.asarray(list(weights), dtype=np.float64)
    if w.shape != (n_feat,):
        raise ValueError(f"score weights must be {n_feat} numbers, got {w.shape}")
    x_in = {"x": ["N", n_jets, n_vars]}
    graphs = {}
    for filename in ("scorer.onnx", "encoder.onnx"):
        g = _Graph()
        features = _feature_nodes(g, "x", (n_jets, n_vars), slots, variables, fill_a)  # [n_features, N]
        y = _normalise_nodes(g, features, norm)
        latent = _dense_nodes(g, y, net.encoder, name="latent", rows_in=True)
        outs = {"latent": ["N", k]}
        if filename == "scorer.onnx":
            out = _dense_nodes(g, latent, net.decoder, rows_out=True)  # [n_features, N]
            _denormalise_nodes(g, out, norm, "reconstruction", rows=True)
            d = g.op("Sub", out, y)
            g.op("ReduceMean", g.op("Mul", g.const(w[:, None]), g.op("Mul", d, d)), axes=[0], keepdims=0,
                 name="error")
            outs |= {"reconstruction": ["N", n_feat], "error": ["N"]}
        graphs[filename] = _model(g, x_in, outs)
    g = _Graph()
    _denormalise_nodes(g, _dense_nodes(g, "latent", net.decoder), norm, "reconstruction")
    graphs["decoder.onnx"] = _model(g, {"latent": ["N", k]}, {"reconstruction": ["N", n_feat]})
    return graphs


def export_event_graphs(net: nn.Module, norm: Normalisation, out_dir: str | Path, n_jets: int, slots: int,
                        variables: Sequence[str], weights: Sequence[float] | None = None,
                        fill: Any = None) -> list[Path]:
    """Write the slim ``scorer.onnx``, ``encoder.onnx`` and ``decoder.onnx`` (:func:`slim_event_graphs`)."""
    import onnx

    paths = []
    for filename, model in slim_event_graphs(net, norm, n_jets, slots, variables, weights, fill).items():
        onnx.save(model, str(Path(out_dir) / filename))
        paths.append(Path(out_dir) / filename)
    return paths


def reexport(model_dir: str | Path) -> dict[str, str]:
    """Write the graphs of an event model directory again from its ``model.pt`` with :func:`export_event_graphs`
    and record their sha256 in its card (the network, score weights and fill are the checkpoint's)."""
    from models.runtime.card import Level, load_model_dir, read_card, write_card
    from models.runtime.hashing import sha256_file
    from models.training.modeldir import load_checkpoint

    model_dir = Path(model_dir)
    model = load_model_dir(model_dir, level=Level.EVENT)
    net, norm, config = load_checkpoint(model_dir)
    spec = model.card["event_input"]
    paths = export_event_graphs(net, norm, model_dir, int(spec["jets"]), int(spec["slots"]), model.variables,
                                config["score_weights"], config["empty_slot_fill"])
    card = read_card(model_dir)
    card["files"].update({p.name: sha256_file(p) for p in paths})
    card["graphs"] = {"exported_by": "models.training.event_graphs.export_event_graphs (slim graphs, BatchNorm "
                                     "folded into the Gemms)",
                      "rewritten_by": f"python -m models.training.event_graphs {model_dir.as_posix()}"}
    write_card(model_dir, card)
    load_model_dir(model_dir, level=Level.EVENT)
    return {p.name: card["files"][p.name] for p in paths}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.training.event_graphs MODEL_DIR...``: :func:`reexport` each event model directory."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model_dirs", nargs="+", help="event-level model directories (card level 'event')")
    for path in parser.parse_args(argv).model_dirs:
        print(path, reexport(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
