"""`aetrig evaluate` on the bundled samples: default models, the table and files, the latent score, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from consumer.offline.rootwrite import create_tree
from emulator.cli import main as cli_main
from emulator.runtime.defaults import DEFAULT_MODEL, SAMPLES_DIR, ZOO

FPR_KEYS = {"0.01", "0.001", "0.0001", "1e-05"}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("eval")
    capture = pytest.MonkeyPatch()
    import io
    import sys

    buf = io.StringIO()
    capture.setattr(sys, "stdout", buf)
    try:
        code = cli_main(["evaluate", "--max-events", "1500", "--out", str(out),
                         "--signal", f"zprime={SAMPLES_DIR / 'zprime.root'}",
                         "--signal", f"darkshower={SAMPLES_DIR / 'darkshower.root'}"])
    finally:
        capture.undo()
    assert code == 0
    return json.loads((out / "evaluate.json").read_text()), out, buf.getvalue()


@pytest.mark.slow
def test_default_models_rows_and_reliability(evaluated) -> None:
    res, _out, _text = evaluated
    compression = DEFAULT_MODEL.name  # the default compression model scores per jet too
    assert set(res["models"]) == {compression, "EVT_AE_ht", "EVT_AE_ht latent"}
    assert res["models"][compression]["kind"] == "jet"
    assert res["models"]["EVT_AE_ht latent"]["kind"] == "latent"
    for m in res["models"].values():
        assert set(m["signals"]) == {"zprime", "darkshower"}
        for sig in m["signals"].values():
            rows = sig["fpr"]
            assert set(rows) == FPR_KEYS
            assert rows["0.01"]["n_background_pass"] == 15 and rows["0.01"]["reliable"]  # 1% of 1500
            assert not rows["0.001"]["reliable"] and not rows["1e-05"]["reliable"]
            assert rows["0.01"]["rate_hz"] == {"100kHz": pytest.approx(1000), "1MHz": pytest.approx(10000)}
            for r in rows.values():
                assert 0 <= r["pure_tpr"] <= r["tpr"] <= 1
                assert r["tpr_low"] <= r["tpr"] <= r["tpr_high"]
            assert 0.5 < sig["auc"] <= 1 and sig["auc_vs_ht"]
    # the simple triggers sit at the same FPR whatever the model
    ht = {m["signals"]["zprime"]["fpr"]["0.01"]["ht_tpr"] for m in res["models"].values()}
    assert len(ht) == 1
    assert "pT-hat > 100 GeV" in res["stream_note"] and "not zero-bias" in res["stream_note"]
    assert res["selection"]["description"] == "jets pT > 30 GeV, |eta| < 2.5"


@pytest.mark.slow
def test_table_files_and_figures(evaluated) -> None:
    _res, out, text = evaluated
    md = (out / "evaluate.md").read_text()
    for words in ("| signal | model | FPR |", "pure TPR", "pure bkg rate@100kHz [Hz]", "NO (<10 bkg)",
                  "not zero-bias", "AUC in HT bins", ">= 10 background events above threshold"):
        assert words in md
    assert "<" + "table" not in md
    assert "EVT_AE_ht latent" in text and "reliable" in text and "not zero-bias" in text
    for sig in ("zprime", "darkshower"):
        for stem in (f"evaluate_roc_{sig}", f"evaluate_pure_tpr_{sig}"):
            assert (out / "figures" / f"{stem}.png").is_file() and (out / "figures" / f"{stem}.pdf").is_file()


def test_latent_score_comes_from_the_encoder_alone() -> None:
    from consumer.offline.evaluate import event_latent, latent_set
    from consumer.offline.studies.common import load_model, load_sample
    from models.runtime.event_features import padded_jets
    from models.runtime.event_scoring import run_event_scorer

    model = load_model(ZOO / "EVT_AE_k1", level=None)
    bkg = load_sample("qcd", [SAMPLES_DIR / "qcd.root"], max_events=800)
    sig = load_sample("zprime", [SAMPLES_DIR / "zprime.root"], max_events=300)
    z = event_latent(model, bkg)
    x = padded_jets(bkg.take(model.variables), bkg.counts, model.card["event_input"]["jets"])
    np.testing.assert_allclose(z, run_event_scorer(model.scorer_path, x)[0], rtol=1e-5, atol=1e-5)
    st = latent_set(model, bkg, {"zprime": sig})
    # standardised with the background's own mean and sigma: each coordinate squared averages 1 there
    assert st.background.mean() == pytest.approx(model.latent_dim, rel=1e-6)
    z_b, z_s = z.astype(np.float64), event_latent(model, sig).astype(np.float64)
    expected = (((z_s - z_b.mean(axis=0)) / z_b.std(axis=0)) ** 2).sum(axis=1)
    np.testing.assert_allclose(st.signals["zprime"], expected, rtol=1e-9, atol=1e-12)


def test_event_model_scores_are_the_streams(tmp_path: Path) -> None:
    """aetrig evaluate scores the shipped event model exactly as the encoder does (the score_transform applied
    once): against models.runtime.event_scoring, the function the stream's recorded scores are tested against."""
    from consumer.offline.evaluate_command import score_sets
    from consumer.offline.studies.common import load_model, load_sample
    from models.runtime.card import load_model_dir
    from models.runtime.event_scoring import event_anomaly_scores

    model = load_model(ZOO / "EVT_AE_ht", level=None)
    bkg = load_sample("qcd", [SAMPLES_DIR / "qcd.root"], max_events=2000)
    sig = load_sample("darkshower", [SAMPLES_DIR / "darkshower.root"], max_events=500)
    sets = {st.name: st for st in score_sets([model], bkg, {"darkshower": sig}, progress=False)}
    stream_model = load_model_dir(ZOO / "EVT_AE_ht", level="event")
    for sample, got in ((bkg, sets["EVT_AE_ht"].background), (sig, sets["EVT_AE_ht"].signals["darkshower"])):
        expected = event_anomaly_scores(stream_model, {v: sample.column(v) for v in stream_model.variables},
                                        sample.counts)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def write_jets(path: Path, variables: list[str], n: int = 200) -> None:
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 4, n)
    jets = {v: rng.uniform(30, 300, int(counts.sum())).astype(np.float32) for v in variables}
    with uproot.recreate(path) as f:
        create_tree(f, "events", {"jet": ak.zip({v: ak.unflatten(jets[v], counts) for v in variables}),
                                  "event_number": np.arange(n, dtype=np.uint64)})


def test_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.root"
    assert cli_main(["evaluate", "--background", str(missing)]) == 2
    assert f"file {missing} does not exist" in capsys.readouterr().err

    few = tmp_path / "few.root"
    write_jets(few, ["pt", "eta", "phi"])
    code = cli_main(["evaluate", "--background", str(few), "--signal", f"s={few}",
                     "--models", "AE_3D_200_ptetaphie"])
    assert code == 2
    err = capsys.readouterr().err
    assert "AE_3D_200_ptetaphie needs jet variables ['e']" in err and str(few) in err

    assert cli_main(["evaluate", "--background", str(few), "--signal", f"s={few}", "--models", "no_such_model"]) == 2
    assert "no_such_model" in capsys.readouterr().err

    qcd = str(SAMPLES_DIR / "qcd.root")
    assert cli_main(["evaluate", "--background", qcd, "--signal", f"s={qcd}", "--max-events", "50",
                     "--models", "AE_3D_200_ptetaphie", "--recording", str(tmp_path / "norec")]) == 2
    assert "no such directory" in capsys.readouterr().err
