"""Ratios against in-process ONNX Runtime and the verdict on each performance goal of the project."""

from __future__ import annotations

from emulator.bench import stats

SERVICE_RATIO_GOAL = 0.80          # service >= 80% of in-process at micro-batch >= 1024 jets
SERVICE_RATIO_MIN_BATCH = 1024
PIPELINE_EVENTS_GOAL = 250_000.0   # events/s with zero loss
DECISION_P99_GOAL_S = 0.010        # at 100 kHz offered
COMMIT_P99_GOAL_S = 0.250
LATENCY_RATE_HZ = 100_000.0
WIDE_CYCLES_GOAL = 7_600.0         # cycles per jet through the service
EARLIER_STUDY_CYCLES = 38_000.0    # the 27-variable study's cycles per jet
RSS_GROWTH_GOAL = 0.05             # over the soak


RATIO_DEFINITIONS = {
    "reference": "in-process ONNX Runtime jets per CPU second of its one thread, at each micro-batch size "
                 "(CPU seconds, not wall seconds, because other processes share the cores)",
    "service_vs_inprocess": "jets per CPU second of the encoder process (fed over ZeroMQ at that --max-batch-jets) "
                            "/ the paired in-process run just before it",
    "service_vs_inprocess_wall": "the same with wall-clock jets/s on both sides (noisy on a shared machine)",
    "pipeline_vs_inprocess": "steady-state jets/s recorded by the whole pipeline (wall clock, encoder micro-batch "
                             "cap 4096) / in-process jets per CPU second at that size: the pipeline on 2 cores "
                             "against one undisturbed core of bare ONNX Runtime",
    "pipeline_cpu_vs_inprocess": "pipeline jets per CPU second of all stages together / in-process jets per CPU second",
    "torch_vs_inprocess": "PyTorch eager jets per CPU second / ONNX Runtime in-process jets per CPU second",
}


def wide_costs(model: dict) -> dict:
    """Best service and in-process cycles per jet of one wide model's rows, with its precision and floor."""
    rows = model.get("by_batch", [])
    service = [c for r in rows if (c := r.get("cycles_per_jet"))]
    inproc = [c for r in rows if (c := stats.pick(r, "inprocess_paired", "cycles_per_jet"))]
    return {"cycles_per_jet": min(service) if service else None,
            "inprocess_cycles_per_jet": min(inproc) if inproc else None,
            "precision": model.get("precision", "float32"),
            "floor_cycles_per_jet_at_measured_gemm_peak": model.get("cycles_per_jet_floor_at_gemm_peak"),
            "accuracy_vs_source": model.get("accuracy_vs_source")}


def _by_size(rows: list[dict], key: str = "batch_jets") -> dict[int, dict]:
    return {int(r[key]): r for r in rows or []}


def fill_ratios(results: dict) -> dict:
    """``ratios.*``: per micro-batch size, keyed by the size as a string."""
    ort = _by_size(results.get("inprocess", {}).get("onnxruntime", []))
    torch = _by_size(results.get("inprocess", {}).get("torch_eager", []))
    service = _by_size(results.get("service", {}).get("by_batch", []), "max_batch_jets")
    ratios: dict[str, dict[str, float | None]] = {
        "service_vs_inprocess": {str(b): r.get("ratio_vs_inprocess") for b, r in sorted(service.items())},
        "service_vs_inprocess_wall": {str(b): r.get("ratio_vs_inprocess_wall") for b, r in sorted(service.items())},
        "torch_vs_inprocess": {str(b): stats.ratio(torch[b].get("jets_per_cpu_s"), ort[b].get("jets_per_cpu_s"))
                               for b in sorted(ort) if b in torch},
    }
    for run in results.get("pipeline", {}).get("runs", []):
        suffix = "" if run["encoders"] == 1 else str(run["encoders"])
        steady = run.get("steady_state") or {}
        jets_per_s = steady.get("jets_per_s") or run.get("jets_per_s")
        ratios[f"pipeline{suffix}_vs_inprocess"] = {
            str(b): stats.ratio(jets_per_s, ort[b].get("jets_per_cpu_s")) for b in sorted(ort)}
        ratios[f"pipeline{suffix}_cpu_vs_inprocess"] = {
            str(b): stats.ratio(steady.get("jets_per_cpu_s"), ort[b].get("jets_per_cpu_s")) for b in sorted(ort)}
    results["ratios"] = ratios
    results["ratio_definitions"] = RATIO_DEFINITIONS
    return ratios


def _scan_point(results: dict, rate: float, pattern: str = "constant") -> dict | None:
    for p in results.get("ratescan", []):
        if p.get("pattern") == pattern and p.get("requested_hz") == rate:
            return p
    return None


def repeated_decision_goal(results: dict) -> dict | None:
    """The decision-latency goal from the ``decision`` step's repeated 100 kHz runs (None without them): the
    worst run at the encoder count whose worst run is lowest, with every count's figures beside it."""
    by_encoders = (results.get("decision_100khz") or {}).get("by_encoders") or {}
    judged = [n for n in by_encoders if by_encoders[n].get("worst_p99_s") is not None]
    if not judged:
        return None
    count = min(judged, key=lambda n: by_encoders[n]["worst_p99_s"])
    chosen = by_encoders[count]
    return {**stats.goal(chosen["worst_p99_s"], DECISION_P99_GOAL_S, False),
            "median_p99": chosen.get("median_p99_s"), "runs_p99": chosen.get("decision_p99_s"),
            "encoders": int(count),
            "all_zero_loss": chosen.get("all_zero_loss"), "by_encoders": by_encoders,
            "note": "worst whole-run p99 (summary.json) of the alternated 100 kHz runs with the default models (the "
                    "event-level model flags), at the encoder count whose worst run is lowest (the one to deploy "
                    "for 100 kHz); by_encoders has every count measured (step decision)"}

def fill(results: dict) -> dict:
    """Fill ``ratios`` and ``goals`` from the measured sections (missing sections give met=False, None)."""
    fill_ratios(results)
    goals: dict[str, dict] = {}
    big = [r.get("ratio_vs_inprocess") for r in results.get("service", {}).get("by_batch", [])
           if r["max_batch_jets"] >= SERVICE_RATIO_MIN_BATCH and r.get("ratio_vs_inprocess") is not None]
    goals["service_vs_inprocess_at_1024_plus"] = {
        **stats.goal(min(big) if big else None, SERVICE_RATIO_GOAL, True),
        "note": "worst ratio over micro-batch sizes >= 1024 jets (jets per CPU second, paired in-process run)"}
    pipe = results.get("pipeline", {})
    ok_runs = [r for r in pipe.get("runs", []) + pipe.get("variants", [])
               if r.get("zero_loss") and "--plaintext" not in r.get("extra_flags", [])]
    best = max((r.get("events_per_s") or 0 for r in ok_runs), default=None)
    capacity = [stats.pick(r, "steady_state", "capacity_events_per_s_estimate") for r in ok_runs]
    capacity = [c for c in capacity if isinstance(c, (int, float))]
    goals["pipeline_events_per_s_zero_loss"] = {
        **stats.goal(best, PIPELINE_EVENTS_GOAL, True),
        "capacity_estimate_from_cpu_cost": max(capacity) if capacity else None,
        "note": "best events/s (producer-to-end throughput of summary.json) of the rate-0 pipeline runs (variants "
                "included, --plaintext ones not: the goal is for authenticated links) that recorded every produced "
                "event exactly once; capacity_estimate_from_cpu_cost is what "
                "the stages' CPU cost per event would allow on the machine's cores if nothing else ran"}
    point = _scan_point(results, LATENCY_RATE_HZ) or {}
    repeated = repeated_decision_goal(results)
    for key, target in (("decision", DECISION_P99_GOAL_S), ("commit", COMMIT_P99_GOAL_S)):
        if key == "decision" and repeated is not None:
            goals["decision_p99_at_100khz_s"] = repeated
            continue
        steady = point.get(f"{key}_p99_steady_s")
        whole = point.get(f"{key}_p99_s")
        goals[f"{key}_p99_at_100khz_s"] = {
            **stats.goal(steady if steady is not None else whole, target, False), "whole_run_p99": whole,
            "achieved_hz": point.get("achieved_hz"),
            "note": "constant pattern, 100 kHz offered; steady state (warm-up excluded) from the sink's histogram; "
                    "whole_run_p99 is summary.json's figure including start-up"}
    by_model = {m.get("name", f"wide{i}"): wide_costs(m)
                for i, m in enumerate([results.get("wide", {}), *results.get("wide_variants", [])]) if m}
    measured = {name: c for name, c in by_model.items() if c["cycles_per_jet"] is not None}
    best_name = min(measured, key=lambda name: measured[name]["cycles_per_jet"]) if measured else None
    best = by_model.get(best_name, {})
    best_wide = best.get("cycles_per_jet")
    goals["wide_cycles_per_jet_service"] = {
        **stats.goal(best_wide, WIDE_CYCLES_GOAL, False),
        "ratio_to_38000": stats.ratio(best_wide, EARLIER_STUDY_CYCLES),
        "speedup_vs_38000": stats.ratio(EARLIER_STUDY_CYCLES, best_wide),
        "method": results.get("machine", {}).get("cycle_method"),
        "floor_cycles_per_jet_at_measured_gemm_peak": best.get("floor_cycles_per_jet_at_measured_gemm_peak"),
        "inprocess_cycles_per_jet": best.get("inprocess_cycles_per_jet"),
        "model": best_name, "precision": best.get("precision"), "by_model": by_model,
        "note": "encoder process CPU per jet (encode + decode + error + service overhead), best micro-batch, best of "
                "the wide model and its variants (by_model lists each; an int8 variant's accuracy_vs_source gives "
                "its residual cores over the float32 source's)"}
    soak = results.get("soak")
    if soak:
        goals["soak_rss_growth"] = {**stats.goal(soak.get("max_rss_growth"), RSS_GROWTH_GOAL, False),
                                    "note": "worst stage process, median RSS of the last vs first window"}
    results["goals"] = goals
    return goals
