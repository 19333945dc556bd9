"""The slim event graphs (models.training.event_graphs.slim_event_graphs, shipped in models/zoo/EVT_AE_ht) against
the graphs they replace: the torch modules exported with torch.onnx (exactly how the previous scorer.onnx was made)
on every event of the bundled samples. Scores agree to float32 rounding, flags at every card threshold agree away
from the threshold, and a slim score does not depend on where the event sits in the batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.runtime.card import load_model_dir
from models.runtime.event_features import padded_jets
from models.runtime.event_scoring import EventScore

pytest.importorskip("torch")
pytest.importorskip("onnx")
REPO = Path(__file__).resolve().parents[1]
MODELS = [REPO / "models" / "zoo" / name for name in ("EVT_AE_ht", "EVT_AE_4v")
          if (REPO / "models" / "zoo" / name / "card.json").is_file()]
SAMPLES = [REPO / "producer" / "samples" / f"{n}.root" for n in ("qcd", "darkshower", "ttbar", "zprime")]


@pytest.fixture(scope="module", params=MODELS, ids=[m.name for m in MODELS])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    import onnxruntime as ort
    import torch

    from models.runtime.data import load_jets
    from models.training.event_graphs import EventScorerGraph
    from models.training.modeldir import load_checkpoint
    from models.training.onnx_export import export_graph

    model_dir = request.param
    model = load_model_dir(model_dir, level="event")
    net, norm, config = load_checkpoint(model_dir)
    spec = model.card["event_input"]
    old = tmp_path_factory.mktemp("old") / "scorer.onnx"
    export_graph(EventScorerGraph(net, norm, spec["slots"], model.variables, config["score_weights"],
                                  config["empty_slot_fill"]).eval(), torch.ones(8, spec["jets"], len(model.variables)),
                 old, ["x"], ["latent", "reconstruction", "error"])
    sample = load_jets(SAMPLES, model.variables)
    x = padded_jets(sample.values, sample.counts, spec["jets"])

    def session(path: Path) -> ort.InferenceSession:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    return {"model": model, "sample": sample, "x": x, "old": session(old), "new": session(model.scorer_path)}


def scores(setup: dict, session, x: np.ndarray) -> np.ndarray:
    latent, error = session.run(["latent", "error"], {"x": x})
    s = setup["sample"]
    names = setup["model"].variables
    return EventScore.from_card(setup["model"].card)(error, latent, s.values[:, names.index("pt")],
                                                     s.values[:, names.index("eta")], s.counts)


def test_slim_scores_and_flags_equal_the_exported_torch_graph(setup: dict) -> None:
    old, new = scores(setup, setup["old"], setup["x"]), scores(setup, setup["new"], setup["x"])
    rel = np.abs(new - old) / np.abs(old)
    # float32 rounding of the cancellations in MHT and the system mass; the old graph itself moves by up to
    # 1.7e-5 when its batch is shifted by one event (its row sums depend on the row's memory alignment)
    assert rel.max() < 5e-5 and np.mean(rel > 1e-5) < 1e-3 and np.median(rel) < 5e-7
    for row in setup["model"].card["thresholds"]["per_event"]:
        t = np.float32(row["threshold"])
        near = np.abs(old - t) <= 1e-4 * t
        assert np.array_equal((new > t)[~near], (old > t)[~near]), row["fpr"]


def test_slim_outputs_equal_the_exported_torch_graph(setup: dict) -> None:
    x = setup["x"]
    for name, atol in (("latent", 1e-4), ("reconstruction", 1e-3), ("error", 1e-5)):
        a, b = (s.run([name], {"x": x})[0] for s in (setup["old"], setup["new"]))
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=atol, err_msg=name)


def test_slim_score_does_not_depend_on_the_position_in_the_batch(setup: dict) -> None:
    x = setup["x"]
    base = setup["new"].run(["error"], {"x": x})[0]
    for shift in (1, 3):
        moved = setup["new"].run(["error"], {"x": np.concatenate([np.zeros((shift, *x.shape[1:]), x.dtype), x])})[0]
        np.testing.assert_allclose(moved[shift:], base, rtol=3e-6, atol=0)


@pytest.mark.parametrize("model_dir", MODELS, ids=[m.name for m in MODELS])
def test_slim_graph_is_small(model_dir: Path) -> None:
    import onnx

    graph = onnx.load(str(model_dir / "scorer.onnx"))
    nodes = [n.op_type for n in graph.graph.node]
    assert "BatchNormalization" not in nodes and "Where" not in nodes and len(nodes) < 125
    assert graph.ir_version == 8  # as torch.onnx writes it: ONNX Runtime 1.17 (pyproject's floor) loads it
