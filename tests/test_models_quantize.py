"""`aetrig quantize`: the shipped int8 wide model against its float32 source on real jets, the exactness of the
float32 graph rewrites (BatchNorm folding, channel equalisation), card hashes, and clear errors on bad input."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from models.runtime.card import ModelError, load_model_dir
from models.runtime.hashing import sha256_file
from models.runtime.normalisation import Normalisation

REPO = Path(__file__).resolve().parent.parent
ZOO = REPO / "models" / "zoo"
FP32, INT8 = ZOO / "wide_k6", ZOO / "wide_k6_int8"
SAMPLE = REPO / "producer" / "samples" / "qcd.root"
N_JETS = 10_000


@pytest.fixture(scope="module")
def jets() -> np.ndarray:
    from models.runtime.data import load_jets

    values = load_jets([SAMPLE], load_model_dir(FP32).variables, max_events=4000).values
    assert len(values) >= N_JETS
    return values[:N_JETS]


def _run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)


def _core(values: np.ndarray) -> float:
    p16, p84 = np.percentile(values, [16, 84])
    return 0.5 * (p84 - p16)


def test_shipped_int8_scorer_agrees_with_float32_on_real_jets(jets: np.ndarray) -> None:
    model = load_model_dir(INT8)
    assert model.card["precision"] == "int8" and model.card["source"]["model"] == "wide_k6"
    lat_f, reco_f, err_f = _run(FP32 / "scorer.onnx", {"x": jets})
    lat_q, reco_q, err_q = _run(INT8 / "scorer.onnx", {"x": jets})
    # the error is still the float32 MSE in normalised space of the int8 reconstruction: recompute it in numpy
    norm = Normalisation.from_card(model.card["normalisation"])
    y, y_out = norm.forward(jets.astype(np.float64)), norm.forward(reco_q.astype(np.float64))
    np.testing.assert_allclose(err_q, np.mean((y_out - y) ** 2, axis=1), rtol=2e-3, atol=1e-6)
    # agreement with float32 (tolerances measured at 0.032 latent rms, 6.7% median / 35% p90 error difference)
    assert np.sqrt(np.mean((lat_q - lat_f) ** 2)) < 0.06
    rel = np.abs(err_q - err_f) / err_f
    assert np.median(rel) < 0.12 and np.percentile(rel, 90) < 0.6
    assert np.corrcoef(np.argsort(np.argsort(err_q)), np.argsort(np.argsort(err_f)))[0, 1] > 0.95
    # residual cores: int8 costs at most 25% per variable (measured 1-17%); pt, eta, m, e relative/absolute as usual
    for i, var in enumerate(model.variables):
        x = jets[:, i].astype(np.float64)
        if var in ("pt", "e", "m"):
            keep = x > 0
            res_f = (reco_f[keep, i] - x[keep]) / x[keep]
            res_q = (reco_q[keep, i] - x[keep]) / x[keep]
        else:
            res_f, res_q = reco_f[:, i] - x, reco_q[:, i] - x
        assert _core(res_q) < 1.25 * _core(res_f), var


def test_encoder_and_decoder_are_the_scorer_cut_in_two(jets: np.ndarray) -> None:
    latent, reco, _ = _run(INT8 / "scorer.onnx", {"x": jets})
    np.testing.assert_allclose(_run(INT8 / "encoder.onnx", {"x": jets})[0], latent, rtol=0, atol=1e-6)
    np.testing.assert_allclose(_run(INT8 / "decoder.onnx", {"latent": latent})[0], reco, rtol=1e-6, atol=1e-5)


def test_card_hashes_verify_and_a_changed_graph_is_refused(tmp_path: Path) -> None:
    model = load_model_dir(INT8)
    assert all(sha256_file(INT8 / name) == digest for name, digest in model.card["files"].items())
    assert model.card["thresholds"]["per_event_curve"]["fpr"] and model.threshold(fpr=1e-3) > 0
    copy = tmp_path / "int8"
    shutil.copytree(INT8, copy)
    data = bytearray((copy / "decoder.onnx").read_bytes())
    data[-1] ^= 0xFF
    (copy / "decoder.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"decoder\.onnx: sha256"):
        load_model_dir(copy)


def test_batchnorm_folding_and_channel_equalisation_are_exact_in_float32(jets: np.ndarray) -> None:
    import onnx

    from models.training.quantize import equalise_channels, fold_batchnorm, hidden_gemms

    model = onnx.load(str(FP32 / "scorer.onnx"))
    assert fold_batchnorm(model) == 6
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)
    nodes = hidden_gemms(model)
    assert len(nodes) == 4  # the four 200x200 Gemms; 13x200, 200x6, 6x200, 200x13 stay float32
    assert equalise_channels(model, jets[:2000], nodes) == 4
    ref = _run(FP32 / "scorer.onnx", {"x": jets})
    import onnxruntime as ort

    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": jets})
    for a, b, what in zip(got, ref, ("latent", "reconstruction", "error"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4, err_msg=what)


def test_quantize_command_writes_a_loadable_int8_model(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from models.training.quantize_command import main

    out = tmp_path / "q"
    args = argparse.Namespace(model=str(FP32), out=str(out), calibration=[str(SAMPLE)], calibration_events=1500,
                              background=[str(SAMPLE)], background_events=3000, method="minmax", percentile=99.99,
                              min_features=64, per_tensor=False, alpha=1.0, no_equalise=False, name=None,
                              tree="events", threads=1)
    typed = ["aetrig", "quantize", "--model", str(FP32), "--out", str(out)]  # the command line it records
    monkeypatch.setattr(sys, "argv", typed)
    assert main(args) == 0
    model = load_model_dir(out)
    card = json.loads((out / "card.json").read_text())
    assert card["name"] == "wide_k6_int8" and card["precision"] == "int8"
    assert card["quantization"]["calibration_sample"]["n_events"] == 1500
    assert card["thresholds"]["sample"]["n_events"] == 3000
    assert card["quantization"]["channel_equalisation"] == {"alpha": 1.0, "pairs": 4}
    parent = load_model_dir(FP32).card["source"]["rebuild"]  # the float32 model's steps, then this one
    assert card["source"]["rebuild"]["commands"][:-1] == parent["commands"]
    assert card["source"]["rebuild"]["commands"][-1] == card["quantization"]["command"] == shlex.join(typed)
    assert set(parent["data"]) <= set(card["source"]["rebuild"]["data"])
    import onnx

    graph = onnx.load(str(model.scorer_path)).graph
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2]
    assert sorted(tuple(t.dims) for t in int8_weights) == [(200, 200)] * 4
    assert "core half-width int8" in capsys.readouterr().out


def test_bad_inputs_give_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from models.training.quantize import Recipe, quantize_model
    from models.training.quantize_command import main

    with pytest.raises(ModelError, match="does not exist"):
        quantize_model(tmp_path / "nope", tmp_path / "o1", [SAMPLE], [SAMPLE])
    with pytest.raises(ModelError, match="precision 'int8'; quantise a float32 model"):
        quantize_model(INT8, tmp_path / "o2", [SAMPLE], [SAMPLE])
    # a scorer that is not ONNX (card hashes updated so that the loader accepts the directory)
    broken = tmp_path / "broken"
    shutil.copytree(FP32, broken)
    (broken / "scorer.onnx").write_bytes(b"not an onnx graph")
    card = json.loads((broken / "card.json").read_text())
    card["files"]["scorer.onnx"] = sha256_file(broken / "scorer.onnx")
    (broken / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        quantize_model(broken, tmp_path / "o3", [SAMPLE], [SAMPLE], calibration_events=200)
    assert not (tmp_path / "o3").exists()  # nothing half-written is left behind
    with pytest.raises(ModelError, match="nothing to quantise"):
        quantize_model(FP32, tmp_path / "o4", [SAMPLE], [SAMPLE], calibration_events=200,
                       recipe=Recipe(min_features=1000))
    args = argparse.Namespace(model=str(INT8), out=str(tmp_path / "o5"), calibration=[str(SAMPLE)],
                              calibration_events=200, background=[str(SAMPLE)], background_events=0, method="minmax",
                              percentile=99.99, min_features=64, per_tensor=False, alpha=1.0, no_equalise=False,
                              name=None, tree="events", threads=1)
    assert main(args) == 2  # bad input: exit 2, as every command (docs/design.md "Command-line conventions")
    assert "aetrig quantize:" in capsys.readouterr().err


def test_bench_counts_int8_macs_and_the_wide_goal_takes_the_cheapest_variant() -> None:
    from emulator.bench import goals
    from emulator.bench.flops import macs_by_precision

    # 13-200-200-200-6 and back: 4 x 200x200 int8, 13x200 + 200x6 + 6x200 + 200x13 float32
    assert macs_by_precision(FP32 / "scorer.onnx") == {"float32": 167_600, "int8": 0}
    assert macs_by_precision(INT8 / "scorer.onnx") == {"float32": 7_600, "int8": 160_000}
    int8_rows = [{"cycles_per_jet": 6_500.0, "inprocess_paired": {"cycles_per_jet": 4_700.0}},
                 {"cycles_per_jet": 5_700.0, "inprocess_paired": {"cycles_per_jet": 4_900.0}}]
    results = {"wide": {"name": "wide_k6", "by_batch": [{"cycles_per_jet": 12_000.0}, {"cycles_per_jet": 11_400.0}]},
               "wide_variants": [{"name": "wide_k6_int8", "precision": "int8", "by_batch": int8_rows}]}
    wide = goals.fill(results)["wide_cycles_per_jet_service"]
    assert wide["model"] == "wide_k6_int8" and wide["precision"] == "int8" and wide["met"] is True
    assert wide["measured"] == 5_700.0 and wide["ratio_to_38000"] == pytest.approx(0.15)
    assert wide["inprocess_cycles_per_jet"] == 4_700.0
    assert wide["by_model"]["wide_k6"]["cycles_per_jet"] == 11_400.0
    assert wide["by_model"]["wide_k6"]["precision"] == "float32"


def test_a_model_whose_error_int8_noise_reorders_gets_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from models.training.quantize_command import main

    # AE_3D_200 reconstructs pt to 0.12%: int8 noise is of the size of its error, so the ranking changes
    args = argparse.Namespace(model=str(ZOO / "AE_3D_200_ptetaphie"), out=str(tmp_path / "q"),
                              calibration=[str(SAMPLE)], calibration_events=1500, background=[str(SAMPLE)],
                              background_events=3000, method="minmax", percentile=99.99, min_features=64,
                              per_tensor=False, alpha=1.0, no_equalise=False, name=None, tree="events", threads=1)
    assert main(args) == 0
    card = json.loads((tmp_path / "q" / "card.json").read_text())
    assert card["quantization"]["quantised_nodes"] and card["quantization"]["channel_equalisation"]["pairs"] == 0
    assert card["metrics"]["int8_vs_float32"]["error_rank_correlation"] < 0.9
    assert "warning: the int8 error ranks jets unlike float32" in capsys.readouterr().err
