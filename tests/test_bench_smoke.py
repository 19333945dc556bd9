"""Smoke test of the `aetrig bench --quick` pieces on a tiny budget: real model, real sample, real encoder
process over real ZeroMQ. Checks that the figures are produced and consistent, not how fast they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.bench.command import QUICK, write_results
from emulator.runtime import defaults

pytestmark = pytest.mark.timeout(120)


@pytest.mark.slow
def test_quick_pieces_on_a_tiny_budget(tmp_path: Path) -> None:
    from dataclasses import replace

    from emulator.bench.runner import Bench

    model = defaults.ZOO / "TLA_4D_leading"  # the shipped imported network (small and quick)
    plan = replace(QUICK, inprocess_sizes=(1, 64, 1024), budget_s=0.05, service_sizes=(1024,),
                   service_duration_s=1.0, service_warmup_s=0.5, message_scan=(), wide_sizes=())
    bench = Bench(plan, {"inprocess", "torch", "service"}, tmp_path, model, None, None, quick=True)
    results = bench.run(command="test")
    write_results(results, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["errors"] == [], saved["errors"]
    ort = {r["batch_jets"]: r for r in saved["inprocess"]["onnxruntime"]}
    assert sorted(ort) == [1, 64, 1024]
    for r in ort.values():
        assert r["jets"] == r["calls"] * r["batch_jets"]
        assert r["jets_per_s"] == pytest.approx(r["jets"] / r["wall_s"])
        assert r["cycles_per_jet"] > 0
    assert len(saved["inprocess"]["torch_eager"]) == 3
    (svc,) = saved["service"]["by_batch"]
    assert svc["lost_events"] == 0 and svc["received_events"] == svc["sent_events"] > 0
    assert svc["rejected_messages"] == 0
    assert svc["jets"] > 0 and svc["jets_per_s"] == pytest.approx(svc["jets"] / svc["wall_s"])
    assert svc["jets_per_encoder_cpu_s"] == pytest.approx(svc["jets"] / svc["encoder_cpu_s"])
    assert svc["ratio_vs_inprocess"] == pytest.approx(
        svc["jets_per_encoder_cpu_s"] / svc["inprocess_paired"]["jets_per_cpu_s"])
    assert svc["ratio_vs_inprocess_wall"] == pytest.approx(svc["jets_per_s"] / svc["inprocess_paired"]["jets_per_s"])
    assert saved["ratios"]["service_vs_inprocess"]["1024"] == svc["ratio_vs_inprocess"]
    assert saved["machine"]["cycle_method"] in ("perf stat", "cpu_seconds_x_clock")
    assert saved["model"]["macs_per_jet"] == 89720  # 4-200-200-20-3 and back: 2 x (800+40000+4000+60)
    assert set(saved["goals"]) >= {"service_vs_inprocess_at_1024_plus", "pipeline_events_per_s_zero_loss"}


def test_encoder_breakdown_follows_the_service_path() -> None:
    """The breakdown's steps are those of the service's default scoring (the shipped event model on a sample with
    every jet variable) and add up to at least what the service itself spent on the same micro-batches."""
    from emulator.bench.breakdown import INFERENCE_STEPS, STEPS, breakdown
    from emulator.bench.data import jet_variables, load_sample

    path = defaults.default_input()
    sample = load_sample(path, jet_variables(path), max_events=2000)
    r = breakdown(defaults.default_model(), sample, 300, 2, budget_s=0.05)
    assert r["anomaly_scoring"] == f"event-level model {defaults.DEFAULT_ANOMALY_MODEL.name}"
    assert list(r["us_per_message"]) == list(STEPS) and all(v >= 0 for v in r["us_per_message"].values())
    assert r["messages"] % 2 == 0 and r["jets_per_batch"] == pytest.approx(2 * r["jets"] / r["messages"])
    parts = sum(v for k, v in r["us_per_message"].items() if k != "bookkeeping")
    assert sum(r["us_per_message"].values()) == pytest.approx(max(parts, r["service_us_per_message"]))
    assert r["us_per_event"]["parse"] == pytest.approx(r["us_per_message"]["parse"] / 300)
    inference = sum(r["share"][k] for k in INFERENCE_STEPS)
    assert 0 < inference < 1 and r["non_inference_share"] == pytest.approx(1 - inference)
    assert sum(r["share"].values()) == pytest.approx(1.0)
