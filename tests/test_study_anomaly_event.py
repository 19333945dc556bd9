"""Study 3 evaluates event-level models next to per-jet ones: same outputs, HT-binned AUCs, a trade-off point
per family, the recommendation over both, and `aetrig report` keeps event models out of studies 1 and 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from consumer.offline.studies import study_anomaly
from consumer.offline.studies.common import load_sample
from models.runtime import anomaly

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "producer" / "samples"
ZOO = REPO / "models" / "zoo"
EVENT_MODELS = sorted(p for p in ZOO.glob("EVT_AE_k*") if (p / "card.json").is_file())
JET_MODEL = ZOO / "AE_3D_200_ptetaphie"

pytestmark = pytest.mark.slow  # the study and `aetrig report` run on the bundled samples


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    assert EVENT_MODELS, "no event-level model shipped under models/zoo/EVT_AE_k*"
    bkg = load_sample("qcd", [SAMPLES / "qcd.root"], max_events=4000)
    signals = {n: load_sample(n, [SAMPLES / f"{n}.root"], max_events=1500) for n in ("zprime", "darkshower")}
    out = tmp_path_factory.mktemp("s3")
    dirs = [str(JET_MODEL), *(str(p) for p in EVENT_MODELS[:2])]
    res = study_anomaly.run(bkg, signals, dirs, str(out), large_background=None)
    return res, {"bkg": bkg, "signals": signals, "out": out}


def test_event_models_are_evaluated_like_jet_models(study: tuple[dict, dict]) -> None:
    res, _ctx = study
    name = EVENT_MODELS[0].name
    row = res["models"][name]
    assert row["level"] == "event" and res["models"][JET_MODEL.name]["level"] == "jet"
    assert row["fidelity"]["variable"] == "ht" and 0 < row["fidelity"]["core_half_width"] < 1
    assert res["models"][JET_MODEL.name]["fidelity"]["variable"] == "pt"
    for sig in ("zprime", "darkshower"):
        s = row["signals"][sig]
        assert 0.5 < s["auc_event"] <= 1 and s["auc_event_err"] > 0 and s["auc_jet"] != s["auc_jet"]  # NaN: no jets
        assert set(s["tpr"]) == {"0.01", "0.001"} and s["auc_vs_leading_pt"] and s["auc_vs_ht"]
        assert "ht" in s["signal_residuals"] and "log_mht" in s["signal_residuals"]
    assert len(row["flag_rate"]["threshold"]) > 10


def test_event_scores_match_the_scorer_run_independently(study: tuple[dict, dict]) -> None:
    """The study's AUC equals one recomputed from the ONNX scorer on padded jets of the same events."""
    from models.runtime.card import load_model_dir
    from models.runtime.event_features import padded_jets
    from models.runtime.event_scoring import run_event_scorer

    res, ctx = study
    model = load_model_dir(EVENT_MODELS[0], level="event")
    def errors(sample) -> np.ndarray:
        x = padded_jets(sample.take(model.variables), sample.counts, model.card["event_input"]["jets"])
        return run_event_scorer(model.scorer_path, x)[2]
    b = errors(ctx["bkg"])
    for sig, s in ctx["signals"].items():
        expected = anomaly.auc(b, errors(s))
        assert res["models"][model.name]["signals"][sig]["auc_event"] == pytest.approx(expected, abs=1e-9)


def test_recommendation_conclusion_and_figures(study: tuple[dict, dict]) -> None:
    res, _ctx = study
    rec = res["recommendation"]
    worst = {m: min(r["signals"][s]["auc_event"] for s in ("zprime", "darkshower")) for m, r in res["models"].items()}
    assert rec["model"] == max(worst, key=worst.get)
    assert "event_variable_auc" in res and 0.5 < res["event_variable_auc"]["zprime"]["ht"] <= 1
    text = res["conclusion"]
    assert "AUC in HT bins" in text and "AUC in leading-jet pT bins" in text and "event-level models" in text
    assert rec["model"] in text
    names = [Path(f).name for f in res["figures"]]
    assert "s3_tradeoff_k.png" in names and any(n.startswith("s3_auc_vs_ht_") for n in names)
    for f in res["figures"]:
        assert Path(f).is_file()


def test_report_keeps_event_models_out_of_jet_studies(tmp_path: Path) -> None:
    from emulator.cli import main as cli_main

    out = tmp_path / "rep"
    code = cli_main(["report", "--out", str(out), "--quick", "--max-events", "500", "--studies", "1,3",
                     "--models", str(JET_MODEL), str(EVENT_MODELS[0]),
                     "--background", str(SAMPLES / "qcd.root"),
                     "--signal", f"zprime={SAMPLES / 'zprime.root'}",
                     "--signal", f"darkshower={SAMPLES / 'darkshower.root'}",
                     "--cross-sample", f"ttbar={SAMPLES / 'ttbar.root'}"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["studies"]["generalisation"]["same_jets"]) == {JET_MODEL.name}
    assert EVENT_MODELS[0].name in results["studies"]["anomaly"]["models"]
    assert "AUC in HT bins" in (out / "index.html").read_text()
