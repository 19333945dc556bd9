"""Every figure the project makes carries the one neutral label (emulator.runtime.plotting.label), never ATLAS's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from emulator.runtime import plotting
from emulator.runtime.defaults import SAMPLES_DIR

LABEL = "aetrig · Pythia 8 + toy detector"


@pytest.fixture
def figure_texts(monkeypatch) -> list[list[str]]:
    """Every text of every figure saved during the test (one list per savefig call)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    saved: list[list[str]] = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        saved.append([t.get_text() for t in self.findobj(Text)])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def _check(saved: list[list[str]], ecm: str | None = "√s = 13 TeV") -> None:
    assert saved, "no figure was saved"
    for texts in saved:
        joined = "\n".join(texts)
        assert LABEL in joined
        if ecm:
            assert ecm in joined
        assert "atlas" not in joined.lower()


def test_label_text() -> None:
    assert plotting.label_text() == LABEL
    assert plotting.label_text(plotting.Origin(True, (13000.0,))) == f"{LABEL}, √s = 13 TeV"
    assert plotting.label_text(plotting.Origin(True, (8000.0, 13000.0))) == f"{LABEL}, √s = 8, 13 TeV"
    assert plotting.label_text(plotting.Origin(False, ())) == "aetrig · external sample"


def test_origin_of_files(tmp_path: Path) -> None:
    import uproot

    qcd = SAMPLES_DIR / "qcd.root"
    assert plotting.origin_of_files([qcd]) == plotting.Origin(True, (13000.0,))
    assert plotting.origin_of_files([tmp_path / "missing.root"]) is None
    foreign = tmp_path / "foreign.root"
    with uproot.recreate(foreign) as f:
        f["events"] = {"x": np.arange(3, dtype=np.float32)}
    assert plotting.origin_of_files([foreign]) == plotting.Origin(False, ())
    assert plotting.merge_origins(plotting.origin_of_files([qcd]), plotting.Origin(True, (8000.0,))) == \
        plotting.Origin(True, (8000.0, 13000.0))
    assert plotting.merge_origins(plotting.origin_of_files([qcd]), None) is None


@pytest.mark.slow
def test_decode_and_study_figures_carry_the_label(tmp_path: Path, figure_texts) -> None:
    rng = np.random.default_rng(1)
    origin = plotting.origin_of_files([SAMPLES_DIR / "qcd.root"])
    inp = rng.exponential(50, 5000) + 20
    dec = inp * (1 + rng.normal(0, 1e-3, inp.size))
    plotting.input_vs_decoded(inp, dec, "pt", "GeV", str(tmp_path), extra="m", origin=origin)
    plotting.residual_histograms(inp, dec, "pt", "GeV", str(tmp_path), extra="m", origin=origin)
    plotting.correlation_matrix({"pt": dec - inp, "e": rng.normal(size=inp.size)}, str(tmp_path), origin=origin)
    plotting.latent_pairs(rng.normal(size=(5000, 3)), str(tmp_path), origin=origin)
    plotting.lines([{"x": [1, 2], "y": [1, 2], "label": "a"}], str(tmp_path), "l", "x", "y", origin=origin)
    plotting.histograms({"a": rng.normal(size=100)}, str(tmp_path), "h", "x", origin=origin)
    _check(figure_texts)
    residual, histogram = "\n".join(figure_texts[2]), "\n".join(figure_texts[-2])  # PNG of each (PNG, PDF)
    assert plotting.OVERFLOW_NOTE in residual and plotting.OVERFLOW_NOTE in histogram


def test_pareto_has_no_inline_point_labels(tmp_path: Path, figure_texts) -> None:
    from consumer.offline.studies.study_precompression import plot_pareto

    pts = [{"config": f"cfg{i}", "codec": "zlib-6", "compression_ratio": 1.4 + 0.01 * i, "core_half_width": 1e-3,
            "ae": i % 2 == 0, "bytes_per_event": 10.0} for i in range(6)]
    plot_pareto({"pt": pts}, str(tmp_path), "model", plotting.Origin(True, (13000.0,)))
    _check(figure_texts)
    texts = figure_texts[0]  # each point named once, in the legend (no inline annotations to overlap)
    assert sum("cfg0 [zlib-6]" in t for t in texts) == 1


@pytest.mark.slow
def test_bench_and_kscan_figures_carry_the_label(tmp_path: Path, figure_texts) -> None:
    from emulator.bench.plots import plot_all
    from models.training.kscan import plot

    results = {"sample": {"path": str(SAMPLES_DIR / "qcd.root")},
               "ratescan": [{"pattern": "constant", "requested_hz": 1e3, "achieved_hz": 990.0},
                            {"pattern": "constant", "requested_hz": 1e4, "achieved_hz": 9900.0}],
               "soak": {"rate_hz": 1000, "rss_series": {"sink": {"t": [0, 1], "rss_bytes": [2**20, 2**21]}}}}
    assert len(plot_all(results, tmp_path)) == 2
    _check(figure_texts)
    figure_texts.clear()
    summary = {"epochs": 1, "variables": ["pt"],
               "scan": [{"k": k, "core_half_width": {"pt": {"kind": "relative", "value": 0.1 / k}}} for k in (2, 3)]}
    plot(summary, tmp_path / "kscan.png")
    _check(figure_texts, ecm=None)
