"""Ratios and goal verdicts of `aetrig bench` computed from known synthetic results (arithmetic only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.bench import decision, goals
from emulator.bench.latency import is_saturated
from emulator.bench.pipeline import cpu_capacity, headline, stage_of
from emulator.bench.ratescan import achieved_rate, scan_point


def _results() -> dict:
    return {
        "machine": {"cycle_method": "cpu_seconds_x_clock"},
        "inprocess": {
            "onnxruntime": [{"batch_jets": 256, "jets_per_s": 0.9e6, "jets_per_cpu_s": 1.0e6},
                            {"batch_jets": 1024, "jets_per_s": 1.2e6, "jets_per_cpu_s": 1.25e6},
                            {"batch_jets": 4096, "jets_per_s": 1.3e6, "jets_per_cpu_s": 1.4e6}],
            "torch_eager": [{"batch_jets": 256, "jets_per_s": 0.2e6, "jets_per_cpu_s": 0.25e6},
                            {"batch_jets": 1024, "jets_per_s": 0.3e6, "jets_per_cpu_s": 0.375e6}],
        },
        "service": {"by_batch": [
            {"max_batch_jets": 256, "jets_per_s": 0.5e6, "ratio_vs_inprocess": 0.5, "ratio_vs_inprocess_cpu": 0.6},
            {"max_batch_jets": 1024, "jets_per_s": 1.06e6, "ratio_vs_inprocess": 0.85, "ratio_vs_inprocess_cpu": 0.9},
            {"max_batch_jets": 4096, "jets_per_s": 1.09e6, "ratio_vs_inprocess": 0.78, "ratio_vs_inprocess_cpu": 0.95},
        ]},
        "pipeline": {"runs": [
            {"encoders": 1, "jets_per_s": 0.6e6, "events_per_s": 175_000.0, "zero_loss": True,
             "steady_state": {"jets_per_s": 0.7e6, "jets_per_cpu_s": 0.35e6}},
            {"encoders": 2, "jets_per_s": 1.0e6, "events_per_s": 260_000.0, "zero_loss": False},
        ]},
        "ratescan": [{"pattern": "constant", "requested_hz": 100_000.0, "decision_p99_s": 0.02,
                      "decision_p99_steady_s": 0.004, "commit_p99_s": 0.3, "commit_p99_steady_s": None}],
        "wide": {"by_batch": [{"cycles_per_jet": 9500.0}, {"cycles_per_jet": 7600.0}]},
        "soak": {"max_rss_growth": 0.02},
    }


def test_ratios_per_micro_batch() -> None:
    r = _results()
    ratios = goals.fill_ratios(r)
    assert ratios["service_vs_inprocess"] == {"256": 0.5, "1024": 0.85, "4096": 0.78}
    assert ratios["torch_vs_inprocess"] == {"256": 0.25, "1024": pytest.approx(0.3)}
    # steady-state pipeline jets/s over in-process jets per CPU second; CPU-normalised variant too
    assert ratios["pipeline_vs_inprocess"]["1024"] == pytest.approx(0.56)
    assert ratios["pipeline_cpu_vs_inprocess"]["256"] == pytest.approx(0.35)
    # without a steady-state window the whole-run jets/s is used
    assert ratios["pipeline2_vs_inprocess"]["4096"] == pytest.approx(1.0 / 1.4)


def test_goal_verdicts_from_synthetic_results() -> None:
    g = goals.fill(_results())
    # worst ratio at >= 1024 jets decides: 0.78 < 0.80
    assert g["service_vs_inprocess_at_1024_plus"]["measured"] == 0.78
    assert g["service_vs_inprocess_at_1024_plus"]["met"] is False
    # the 260 kHz run lost events, so only the 175 kHz zero-loss run counts
    assert g["pipeline_events_per_s_zero_loss"]["measured"] == 175_000.0
    assert g["pipeline_events_per_s_zero_loss"]["ratio_to_goal"] == pytest.approx(0.7)
    # steady-state p99 decides where present, else the whole-run figure
    assert g["decision_p99_at_100khz_s"]["measured"] == 0.004 and g["decision_p99_at_100khz_s"]["met"] is True
    assert g["decision_p99_at_100khz_s"]["whole_run_p99"] == 0.02
    assert g["commit_p99_at_100khz_s"]["measured"] == 0.3 and g["commit_p99_at_100khz_s"]["met"] is False
    wide = g["wide_cycles_per_jet_service"]
    assert wide["measured"] == 7600.0 and wide["met"] is True
    assert wide["ratio_to_38000"] == pytest.approx(0.2) and wide["speedup_vs_38000"] == pytest.approx(5.0)
    assert g["soak_rss_growth"]["met"] is True


def test_missing_sections_are_not_met() -> None:
    g = goals.fill({})
    assert all(v["met"] is False for v in g.values())
    assert "soak_rss_growth" not in g


def test_run_summary_headline_and_scan_point() -> None:
    summary = {"events": {"produced": 1000, "recorded": 1000, "lost": 0, "dropped": 0, "duplicates_recorded": 0},
               "throughput_events_per_s": 99_000.0,
               "latency_seconds": {"decision": {"p50": 0.001, "p90": 0.002, "p99": 0.003, "p999": 0.01},
                                   "commit": {"p50": 0.05, "p90": 0.08, "p99": 0.1, "p999": 0.2}}}
    h = headline(summary, duration_s=10.0)
    assert h["zero_loss"] is True and h["events_per_s_recorded_over_duration"] == 100.0
    result = {"summary": summary, "rate_hz": 100_000.0, "pattern": "constant", "command": "aetrig run",
              "cpu_seconds_by_stage": {}, **h}
    p = scan_point(result)
    assert p["achieved_hz"] == 99_000.0 and p["deviation"] == pytest.approx(-0.01)
    assert p["decision_p99_s"] == 0.003 and not is_saturated(p)
    lossy = headline({**summary, "events": {**summary["events"], "recorded": 990, "lost": 10}}, 10.0)
    assert lossy["zero_loss"] is False
    assert is_saturated({**p, "achieved_hz": 90_000.0})
    assert achieved_rate({"producer": {"achieved_rate_hz": 1234.0}, "events_per_s": 1.0}) == 1234.0
    assert achieved_rate({"producer": {}, "events_per_s": 99.0}) == 99.0


def test_stage_of_argv() -> None:
    assert stage_of(["/venv/bin/python", "-m", "emulator.cli", "encode", "--model", "m"]) == "encoder"
    assert stage_of(["/venv/bin/aetrig", "sink", "--bind", "x"]) == "sink"
    assert stage_of(["/venv/bin/aetrig", "produce"]) == "producer"
    assert stage_of(["bash", "-c", "true"]) is None


@pytest.mark.slow
def test_plots_from_synthetic_results(tmp_path: Path) -> None:
    from emulator.bench.plots import plot_all

    r = _results()
    goals.fill(r)
    r["latency_under_load"] = {"offered_hz": [1e4, 1e5], "decision_p99_s": [0.002, 0.004],
                               "commit_p99_s": [0.1, 0.3], "saturated_from_hz": None}
    r["ratescan"] = [{"pattern": "constant", "requested_hz": 1e4, "achieved_hz": 0.99e4},
                     {"pattern": "constant", "requested_hz": 1e5, "achieved_hz": 0.98e5}]
    r["soak"] = {"rate_hz": 1e5, "rss_series": {"sink-1": {"t": [0, 5], "rss_bytes": [1e8, 1.01e8]}}}
    r["decision_100khz"] = {"rate_hz": 1e5, "runs": [_decision_run(1, 0, 0.008), _decision_run(2, 0, 0.009)]}
    written = plot_all(r, tmp_path)
    assert {p.name for p in written} == {"throughput.png", "ratios.png", "ratescan.png", "latency.png",
                                         "soak_rss.png", "decision_100khz.png"}
    assert all(p.stat().st_size > 1000 for p in written)


def test_cpu_capacity_estimate() -> None:
    # 100k events cost producer 0.2 s, encoders 1.0 s, sink 0.3 s of CPU: 15 us per event -> 133 kHz on 2 cores
    c = cpu_capacity({"producer": 0.2, "encoder": 1.0, "sink": 0.3}, 100_000, cores=2)
    assert c["cpu_us_per_event_by_stage"] == pytest.approx({"producer": 2.0, "encoder": 10.0, "sink": 3.0})
    assert c["cpu_us_per_event"] == pytest.approx(15.0)
    assert c["capacity_events_per_s_estimate"] == pytest.approx(2 / 15e-6)
    assert cpu_capacity({}, 0)["capacity_events_per_s_estimate"] is None


def _decision_run(encoders: int, repeat: int, p99: float | None, zero_loss: bool = True) -> dict:
    summary = {"latency_seconds": {"decision": {"p50": 0.002, "p99": p99},
                                   "decision_hops": {"to_encoder": {"p99": 0.003}, "in_encoder": {"p99": 0.004},
                                                     "to_sink": {"p99": 0.002}}},
               "anomaly": {"scoring": "event-level model EVT_AE_ht"}}
    result = {"zero_loss": zero_loss, "events_per_s": 99_990.0, "command": "aetrig run ...",
              "steady_state": cpu_capacity({"producer": 0.1, "encoder": 0.5 + repeat / 10, "sink": 0.3}, 100_000)}
    return decision.run_record(result, summary, encoders, repeat)


def test_repeated_decision_runs_judge_the_worst_run_of_the_best_encoder_count() -> None:
    runs = [_decision_run(1, 0, 0.008), _decision_run(2, 0, 0.0092), _decision_run(1, 1, 0.030),
            _decision_run(2, 1, 0.009, zero_loss=False), _decision_run(1, 2, 0.007)]
    assert runs[0]["hop_p99_s"] == {"to_encoder": 0.003, "in_encoder": 0.004, "to_sink": 0.002}
    assert runs[0]["cpu_us_per_event_by_stage"] == pytest.approx({"producer": 1.0, "encoder": 5.0, "sink": 3.0})
    by = decision.by_encoder_count(runs)
    assert by["1"]["median_cpu_us_per_event"] == pytest.approx(10.0)  # runs of 9, 10 and 11 us per event
    assert by["1"]["decision_p99_s"] == [0.008, 0.030, 0.007] and by["1"]["median_p99_s"] == 0.008
    assert by["1"]["worst_p99_s"] == 0.030 and by["1"]["all_zero_loss"] is True
    assert by["2"]["worst_p99_s"] == 0.0092 and by["2"]["all_zero_loss"] is False
    r = _results()
    r["decision_100khz"] = {"by_encoders": by, "runs": runs}
    g = goals.fill(r)["decision_p99_at_100khz_s"]  # one encoder's 30 ms run rules it out: two encoders are judged
    assert g["measured"] == 0.0092 and g["met"] is True and g["encoders"] == 2
    assert g["median_p99"] == pytest.approx(0.0091)
    by["2"]["worst_p99_s"] = 0.040  # now one encoder's worst (30 ms) is the lowest, and it misses the goal
    g = goals.fill(r)["decision_p99_at_100khz_s"]
    assert g["encoders"] == 1 and g["measured"] == 0.030 and g["met"] is False


def test_results_name_repository_paths_relative_to_it(tmp_path: Path) -> None:
    from emulator.bench.command import repo_relative, write_results
    from emulator.runtime.defaults import REPO

    results = {"model": {"path": REPO / "models" / "zoo" / "m"}, "runs": [
        {"command": f"aetrig run --model {REPO}/models/zoo/m --input {REPO}/producer/samples/qcd.root"}],
        "elsewhere": "/data/x.root", "n": 3}
    assert repo_relative(results) == {"model": {"path": "models/zoo/m"}, "runs": [
        {"command": "aetrig run --model models/zoo/m --input producer/samples/qcd.root"}],
        "elsewhere": "/data/x.root", "n": 3}
    text = write_results(results, tmp_path).read_text()
    assert str(REPO) not in text and "models/zoo/m" in text and results["model"]["path"].is_absolute()


def test_a_goal_a_run_did_not_measure_reads_not_measured() -> None:
    from emulator.bench.stats import goal, verdict

    assert verdict(goal(None, 0.01, higher_is_better=False)) == "not measured"
    assert verdict(goal(float("nan"), 0.01, higher_is_better=False)) == "not measured"
    assert verdict(goal(0.02, 0.01, higher_is_better=False)) == "not met"
    assert verdict(goal(3e5, 2.5e5, higher_is_better=True)) == "met"
