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


def _by_size(rows: list[dict], key: str = "batch_jets") -> dict[int, dict]:
    return {int(r[key]): r for r in rows or []}


def fill_ratios(results: dict) -> dict:
    """``ratios.*``: per micro-batch size, keyed by the size as a string."""
    ort = _by_size(results.get("inprocess", {}).get("onnxruntime", []))
    torch = _by_size(results.get("inprocess", {}).get("torch_eager", []))
    service = _by_size(results.get("service", {}).get("by_batch", []), "max_batch_jets")
    ratios: dict[str, dict[str, float | None]] = {
        "service_vs_inprocess": {str(b): r.get("ratio_vs_inprocess") for b, r in sorted(service.items())},
        "service_vs_inprocess_cpu": {str(b): r.get("ratio_vs_inprocess_cpu") for b, r in sorted(service.items())},
        "torch_vs_inprocess": {str(b): stats.ratio(torch[b]["jets_per_s"], ort[b]["jets_per_s"])
                               for b in sorted(ort) if b in torch},
    }
    for run in results.get("pipeline", {}).get("runs", []):
        key = "pipeline_vs_inprocess" if run["encoders"] == 1 else f"pipeline{run['encoders']}_vs_inprocess"
        ratios[key] = {str(b): stats.ratio(run.get("jets_per_s"), ort[b]["jets_per_s"]) for b in sorted(ort)}
    results["ratios"] = ratios
    return ratios


def _scan_point(results: dict, rate: float, pattern: str = "constant") -> dict | None:
    for p in results.get("ratescan", []):
        if p.get("pattern") == pattern and p.get("requested_hz") == rate:
            return p
    return None


def fill(results: dict) -> dict:
    """Fill ``ratios`` and ``goals`` from the measured sections (missing sections give met=False, None)."""
    fill_ratios(results)
    goals: dict[str, dict] = {}
    big = [r.get("ratio_vs_inprocess") for r in results.get("service", {}).get("by_batch", [])
           if r["max_batch_jets"] >= SERVICE_RATIO_MIN_BATCH and r.get("ratio_vs_inprocess") is not None]
    goals["service_vs_inprocess_at_1024_plus"] = {
        **stats.goal(min(big) if big else None, SERVICE_RATIO_GOAL, True),
        "note": "worst ratio over micro-batch sizes >= 1024 jets (wall-clock jets/s, paired in-process run)"}
    ok_runs = [r for r in results.get("pipeline", {}).get("runs", []) if r.get("zero_loss")]
    best = max((r.get("events_per_s") or 0 for r in ok_runs), default=None)
    goals["pipeline_events_per_s_zero_loss"] = {
        **stats.goal(best, PIPELINE_EVENTS_GOAL, True),
        "note": "best events/s of the rate-0 pipeline runs that recorded every produced event"}
    point = _scan_point(results, LATENCY_RATE_HZ)
    goals["decision_p99_at_100khz_s"] = {**stats.goal(point and point.get("decision_p99_s"), DECISION_P99_GOAL_S,
                                                      False), "note": "constant pattern, 100 kHz offered"}
    goals["commit_p99_at_100khz_s"] = {**stats.goal(point and point.get("commit_p99_s"), COMMIT_P99_GOAL_S, False),
                                       "note": "constant pattern, 100 kHz offered"}
    wide = [r.get("cycles_per_jet") for r in results.get("wide", {}).get("by_batch", []) if r.get("cycles_per_jet")]
    best_wide = min(wide) if wide else None
    goals["wide_cycles_per_jet_service"] = {
        **stats.goal(best_wide, WIDE_CYCLES_GOAL, False),
        "ratio_to_38000": stats.ratio(best_wide, EARLIER_STUDY_CYCLES),
        "speedup_vs_38000": stats.ratio(EARLIER_STUDY_CYCLES, best_wide),
        "method": results.get("machine", {}).get("cycle_method"),
        "note": "encoder process CPU per jet (encode + decode + error + service overhead), best micro-batch"}
    soak = results.get("soak")
    if soak:
        goals["soak_rss_growth"] = {**stats.goal(soak.get("max_rss_growth"), RSS_GROWTH_GOAL, False),
                                    "note": "worst stage process, median RSS of the last vs first window"}
    results["goals"] = goals
    return goals
