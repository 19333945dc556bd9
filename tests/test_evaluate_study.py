"""Study 3 judges its models against the HT and leading-jet-pT triggers with the layer `aetrig evaluate` uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.offline.studies import study_anomaly
from consumer.offline.studies.common import load_sample
from emulator.runtime.defaults import SAMPLES_DIR, ZOO

JET, EVENT = ZOO / "AE_3D_200_ptetaphie", ZOO / "EVT_AE_k1"


@pytest.mark.slow
def test_study_adds_the_trigger_table_and_figures(tmp_path: Path) -> None:
    bkg = load_sample("qcd", [SAMPLES_DIR / "qcd.root"], max_events=3000)
    signals = {n: load_sample(n, [SAMPLES_DIR / f"{n}.root"], max_events=1000) for n in ("zprime", "darkshower")}
    res = study_anomaly.run(bkg, signals, [str(JET), str(EVENT)], str(tmp_path), compression_model=JET.name)
    menu = res["trigger_menu"]
    assert set(menu["models"]) == {JET.name, EVENT.name, f"{EVENT.name} latent"}
    assert set(menu["models"][EVENT.name]["signals"]["zprime"]["fpr"]) == {"0.01", "0.001", "0.0001", "1e-05"}
    # the study's own numbers and the menu agree where they overlap (same scores, same background)
    for name in (JET.name, EVENT.name):
        for sig in signals:
            assert menu["models"][name]["signals"][sig]["auc"] == pytest.approx(
                res["models"][name]["signals"][sig]["auc_event"], abs=1e-12)
            assert menu["models"][name]["signals"][sig]["fpr"]["0.01"]["tpr"] == pytest.approx(
                res["models"][name]["signals"][sig]["tpr"]["0.01"]["tpr"], abs=1e-12)
    names = {Path(f).name for f in res["figures"]}
    for sig in signals:
        assert f"s3_menu_roc_{sig}.png" in names and f"s3_menu_pure_tpr_{sig}.png" in names
    assert Path(menu["table_file"]).is_file() and "pure TPR" in Path(menu["table_file"]).read_text()
    assert "At equal rate against HT and leading-jet-pT triggers" in res["conclusion"]
    assert "s3_tradeoff_k.png" in names  # the existing outputs stay

