"""aetrig report end to end on small inputs: index.html + results.json with the expected keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.cli import main as cli_main
from emulator.runtime.defaults import SAMPLES_DIR, ZOO

MODEL = ZOO / "TLA_4D_leading"


@pytest.mark.slow
def test_report_smoke(tmp_path) -> None:
    out = tmp_path / "rep"
    code = cli_main(["report", "--out", str(out), "--quick", "--max-events", "600", "--models", str(MODEL),
                     "--background", str(SAMPLES_DIR / "qcd.root"),
                     "--signal", f"zprime={SAMPLES_DIR / 'zprime.root'}",
                     "--signal", f"darkshower={SAMPLES_DIR / 'darkshower.root'}",
                     "--cross-sample", f"ttbar={SAMPLES_DIR / 'ttbar.root'}",
                     "--large-background", str(SAMPLES_DIR / "qcd.root"), "--max-events-large", "3000"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    studies = results["studies"]
    assert set(studies) == {"generalisation", "precompression", "anomaly"}
    gen = studies["generalisation"]
    assert {"same_jets", "cross_sample", "conclusion", "figures"} <= set(gen)
    assert gen["same_jets"]["TLA_4D_leading"]["all_jets"]["pt"]["core_half_width"] > 0
    assert "ttbar" in gen["cross_sample"]["TLA_4D_leading"]
    pre = studies["precompression"]
    assert {"fidelity", "disk", "cpu", "pareto", "pareto_front", "conclusion"} <= set(pre)
    disk = pre["disk"]["configs"]
    assert disk["raw float32"]["codecs"]["none"]["bytes_per_event"] > 4 * 4  # >= 4 floats x 1 jet per event
    assert any(p["ae"] for p in pre["pareto"]["pt"])  # the Pareto chart carries an AE configuration
    assert pre["cpu"]["rows"]["encode"]["1024"]["cycles_per_jet"] > 0
    ano = studies["anomaly"]
    row = ano["models"]["TLA_4D_leading"]["signals"]["zprime"]
    assert 0.0 <= row["auc_event"] <= 1.0 and row["auc_event_err"] > 0
    assert set(row["tpr"]) == {"0.01", "0.001"} and "0.0001" in row["tpr_large_background"]
    assert row["auc_vs_leading_pt"] and ano["recommendation"]["model"] == "TLA_4D_leading"
    assert ano["models"]["TLA_4D_leading"]["accept_rate_table"][0]["accept_rate_hz_at_100khz"] == pytest.approx(1000)
    html = (out / "index.html").read_text()
    for name in ("Study 1", "Study 2", "Study 3", "results.json", "against the HT and leading-jet-pT triggers"):
        assert name in html
    for rel in [p for paths in results["figures"].values() for p in paths]:
        assert (out / rel).is_file()
        if rel.endswith(".png"):
            assert rel in html


def test_report_defaults_are_the_bundled_samples_only() -> None:
    """Without flags the report uses what ships: no cross samples or large background from elsewhere."""
    from consumer.offline.report import ReportConfig

    cfg = ReportConfig()
    cfg.resolve_defaults()
    shipped = [cfg.background, *cfg.signals.values(), *cfg.cross.values()]
    assert all(Path(f).parent == SAMPLES_DIR for files in shipped for f in files)
    assert set(cfg.cross) == {"ttbar"} and cfg.large_background is None
