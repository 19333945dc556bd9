"""Run the benchmark steps of a plan in order, collect every figure into one results dict.

A step that fails is recorded under ``errors`` (with its message) and the remaining steps still
run, so one broken stage does not hide the others' numbers; `aetrig bench` then exits 1.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from emulator.bench import goals, stats
from emulator.bench.breakdown import breakdown
from emulator.bench.cycles import clock_hz
from emulator.bench.data import jet_variables, load_sample
from emulator.bench.decision import decision_latency_runs
from emulator.bench.flops import gemm_peak, int8_gemm_peak, macs_by_precision
from emulator.bench.inprocess import bench_onnx, bench_torch, torch_scorer
from emulator.bench.latency import latency_curve
from emulator.bench.machine import describe
from emulator.bench.pipeline import PipelineConfig, run_pipeline
from emulator.bench.ratescan import rate_scan
from emulator.bench.service import ServiceConfig, bench_service
from emulator.bench.soak import soak
from emulator.runtime import defaults

DEFAULT_WIDE = "wide_k6"
#: suffixes of a wide model's variants measured next to it (same network, other precision)
WIDE_VARIANT_SUFFIXES = ("_int8",)


def wide_variants(path: Path) -> list[Path]:
    """Model directories next to ``path`` named ``<name><suffix>`` (e.g. ``wide_k6_int8``) that exist."""
    candidates = (path.with_name(path.name + suffix) for suffix in WIDE_VARIANT_SUFFIXES)
    return [p for p in candidates if (p / "card.json").is_file()]


def accuracy_cost(card: dict[str, Any]) -> dict[str, Any] | None:
    """Residual core half-width of a quantised model over its float32 source, per variable (from its card)."""
    metrics = card.get("metrics") or {}
    mine = (metrics.get("background") or {}).get("all_jets")
    source = (metrics.get("background_float32_source") or {}).get("all_jets")
    if not mine or not source:
        return None
    ratios = {v: stats.ratio(mine[v]["core_half_width"], source[v]["core_half_width"]) for v in mine if v in source}
    return {"core_half_width_ratio": ratios, "int8_vs_float32": metrics.get("int8_vs_float32"),
            "sample_jets": (metrics.get("background") or {}).get("n_jets")}


class DeadlinePassed(Exception):
    """A step or run not started because the plan's deadline had passed (listed under ``skipped``)."""


class Bench:
    """One benchmark run: the plan, the model and sample it uses, and the results it fills in."""

    def __init__(self, plan: Any, steps: set[str], out: Path, model: Path | None, wide_model: Path | None,
                 sample: Path | None, quick: bool):
        from models.runtime.card import ModelError, load_model_dir

        self.plan, self.steps, self.out, self.quick = plan, steps, Path(out), quick
        self.sample_path = Path(sample) if sample else defaults.default_input()
        try:
            self.model = load_model_dir(model or defaults.default_model())
        except ModelError as exc:
            raise ValueError(str(exc)) from exc
        self.wide_path = Path(wide_model) if wide_model else defaults.ZOO / DEFAULT_WIDE
        self.hz, _ = clock_hz()
        self.results: dict[str, Any] = {"errors": [], "ratios": {}, "goals": {}, "step_load": {}, "skipped": []}
        self.t_start = time.monotonic()
        self._sample_cache: dict[tuple[str, ...], Any] = {}

    # ---- helpers ---------------------------------------------------------------------------
    def log(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def error(self, step: str, exc: BaseException) -> None:
        if isinstance(exc, DeadlinePassed):
            return  # already listed under "skipped"
        self.log(f"{step} FAILED: {exc!r}")
        self.results["errors"].append({"step": step, "error": f"{type(exc).__name__}: {exc}",
                                       "traceback": traceback.format_exc(limit=4)})

    def sample(self, variables: list[str]):
        key = tuple(variables)
        if key not in self._sample_cache:
            self._sample_cache[key] = load_sample(self.sample_path, variables)
        return self._sample_cache[key]

    def out_of_time(self, what: str) -> bool:
        """True (and ``what`` listed as skipped) once the plan's deadline has passed."""
        deadline = self.plan.deadline_s
        if deadline is not None and time.monotonic() - self.t_start > deadline:
            self.results["skipped"].append(what)
            self.log(f"{what}: skipped, past the {deadline:g} s deadline of this plan")
            return True
        return False

    def step(self, name: str, fn) -> None:
        if name not in self.steps or self.out_of_time(name):
            return
        self.log(f"{name} ...")
        t0, load0 = time.monotonic(), os.getloadavg()[0]
        try:
            fn()
        except Exception as exc:  # record and go on with the other steps
            self.error(name, exc)
        self.results["step_load"][name] = {"seconds": time.monotonic() - t0, "loadavg_1min_start": load0,
                                           "loadavg_1min_end": os.getloadavg()[0]}
        self.log(f"{name} done in {time.monotonic() - t0:.1f} s")

    def pipeline_config(self, out_dir: Path, rate_hz: float = 0.0, pattern: str | None = None,
                        encoders: int = 2, duration_s: float | None = None) -> PipelineConfig:
        if self.out_of_time(f"pipeline run {out_dir.name}"):
            raise DeadlinePassed(out_dir.name)
        duration = duration_s or self.plan.scan_duration_s
        return PipelineConfig(out_dir=out_dir, duration_s=duration, rate_hz=rate_hz, warmup_s=min(2.0, duration / 3),
                              encoders=encoders, pattern=pattern, model=self.model.path, input=self.sample_path)

    # ---- steps -----------------------------------------------------------------------------
    def run(self, command: str) -> dict[str, Any]:
        r = self.results
        r["command"] = command
        r["quick"] = self.quick
        r["machine"] = describe()
        r["machine"]["gemm_peak"] = gemm_peak(self.hz, budget_s=0.5 if self.quick else 2.0)
        r["model"] = self.describe_model(self.model)
        s = self.sample(self.model.variables)
        r["sample"] = {"path": str(self.sample_path), "events": s.n_events, "jets": s.n_jets,
                       "jets_per_event": s.jets_per_event}
        r["inprocess"] = {}
        self.step("inprocess", self.run_inprocess)
        self.step("torch", self.run_torch)
        self.step("breakdown", self.run_breakdown)
        self.step("service", self.run_service)
        self.step("messages", self.run_messages)
        self.step("wide", self.run_wide)
        self.step("links", self.run_links)
        self.step("pipeline", self.run_pipeline_max)
        self.step("ratescan", self.run_ratescan)
        self.step("decision", self.run_decision)
        self.step("latency", self.run_latency)
        self.step("soak", self.run_soak)
        self.step("profile", self.run_profile)
        goals.fill(r)
        return r

    def describe_model(self, model) -> dict[str, Any]:
        """Name, variables and the arithmetic floor: MACs per jet over the measured Gemm peak of their precision."""
        macs = macs_by_precision(model.scorer_path)
        floor = macs["float32"] / self.results["machine"]["gemm_peak"]["macs_per_cycle"]
        if macs["int8"]:
            if "int8_gemm_peak" not in self.results["machine"]:
                self.results["machine"]["int8_gemm_peak"] = int8_gemm_peak(self.hz, budget_s=0.5 if self.quick else 2.0)
            floor += macs["int8"] / self.results["machine"]["int8_gemm_peak"]["macs_per_cycle"]
        return {"name": model.name, "path": str(model.path), "variables": model.variables,
                "latent_dim": model.latent_dim, "version": model.version, "macs_per_jet": sum(macs.values()),
                "macs_per_jet_by_precision": macs, "precision": model.card.get("precision", "float32"),
                "cycles_per_jet_floor_at_gemm_peak": floor}

    def run_inprocess(self) -> None:
        x = self.sample(self.model.variables).matrix(self.model.variables)
        self.results["inprocess"]["onnxruntime"] = bench_onnx(self.model.scorer_path, x, self.plan.inprocess_sizes,
                                                              self.plan.budget_s, self.hz)
        self.results["inprocess"]["onnxruntime_outputs"] = "latent, error (what the service fetches)"

    def run_torch(self) -> None:
        x = self.sample(self.model.variables).matrix(self.model.variables)
        module = torch_scorer(self.model.path)
        self.results["inprocess"]["torch_eager"] = bench_torch(module, x, self.plan.inprocess_sizes,
                                                               self.plan.budget_s, self.hz)

    def run_breakdown(self) -> None:

        s = self.sample(jet_variables(self.sample_path))  # every jet variable, as the producer sends them
        budget = 1.0 if self.quick else 3.0
        # 300 events: one message at 100 kHz (3 ms); 100 and 1024 events: shorter and the longest default messages;
        # 4 x 300: a micro-batch of four queued messages
        self.results["encoder_breakdown"] = [breakdown(self.model.path, s, events, per_batch, budget)
                                             for events, per_batch in ((300, 1), (100, 1), (1024, 1), (300, 4))]

    def _service(self, model, size: int, events_per_message: int, tag: str, profile: bool = False) -> dict:
        """In-process at ``size`` measured right before the service at ``size``: a paired comparison."""

        s = self.sample(model.variables)
        paired = bench_onnx(model.scorer_path, s.matrix(model.variables), (size,), self.plan.budget_s, self.hz)[0]
        cfg = ServiceConfig(model_dir=model.path, max_batch_jets=size, events_per_message=events_per_message,
                            duration_s=self.plan.service_duration_s, warmup_s=self.plan.service_warmup_s,
                            log_dir=self.out / "logs" / tag, clock_hz=self.hz, profile=profile,
                            use_perf=self.results["machine"]["cycle_method"] == "perf stat")
        row = bench_service(cfg, s, model.variables)
        row["inprocess_paired"] = {k: paired[k] for k in ("jets_per_s", "jets_per_cpu_s", "cycles_per_jet",
                                                          "jets_per_s_median_call")}
        row["ratio_vs_inprocess"] = stats.ratio(row["jets_per_encoder_cpu_s"], paired["jets_per_cpu_s"])
        row["ratio_vs_inprocess_wall"] = stats.ratio(row["jets_per_s"], paired["jets_per_s"])
        row["encoder_busy_fraction"] = stats.ratio(row["encoder_cpu_s"], row["wall_s"])
        self.log(f"  {tag} batch {size} x {events_per_message} ev/msg: {row['jets_per_s']:,.0f} jets/s, "
                 f"{row['jets_per_encoder_cpu_s'] or 0:,.0f} jets per encoder CPU s, ratio "
                 f"{row['ratio_vs_inprocess'] or 0:.3f} (wall {row['ratio_vs_inprocess_wall'] or 0:.3f}), "
                 f"lost {row['lost_events']}")
        return row

    def run_service(self) -> None:
        s = self.sample(self.model.variables)
        rows = []
        for size in self.plan.service_sizes:
            epm = max(1, round(size / s.jets_per_event))
            try:
                rows.append(self._service(self.model, size, epm, "service"))
            except Exception as exc:
                self.error(f"service batch {size}", exc)
        self.results["service"] = {"by_batch": rows, "events_per_message_rule": "round(batch / mean jets per event)"}

    def run_messages(self) -> None:
        rows = []
        for epm in self.plan.message_scan:
            try:
                rows.append(self._service(self.model, self.plan.message_scan_batch, epm, "messages"))
            except Exception as exc:
                self.error(f"messages {epm}", exc)
        self.results.setdefault("service", {})["by_events_per_message"] = rows

    def run_wide(self) -> None:
        from models.runtime.card import load_model_dir

        wide = load_model_dir(self.wide_path)
        s = self.sample(wide.variables)
        rows = [self._service(wide, size, max(1, round(size / s.jets_per_event)), "wide") for size in
                self.plan.wide_sizes]
        self.results["wide"] = {**self.describe_model(wide), "by_batch": rows}
        self.results["wide_variants"] = []
        for path in wide_variants(self.wide_path):  # e.g. wide_k6_int8 next to wide_k6, measured on the same jets
            try:
                model = load_model_dir(path)
                rows = [self._service(model, size, max(1, round(size / s.jets_per_event)), f"wide-{model.name}")
                        for size in self.plan.wide_sizes]
                self.results["wide_variants"].append({**self.describe_model(model), "by_batch": rows,
                                                      "accuracy_vs_source": accuracy_cost(model.card)})
            except Exception as exc:
                self.error(f"wide variant {path.name}", exc)

    def run_links(self) -> None:
        """Plaintext against CurveZMQ (the default links) on one loopback link: CPU per MB, one-way latency."""
        from emulator.bench.links import link_cost

        res = self.results["links"] = link_cost(repeats=2 if self.quick else 3)
        for mode in ("plaintext", "curve"):
            self.log(f"  link {mode}: " + ", ".join(f"{v:.2f}" for v in res[mode]["cpu_ms_per_mb"])
                     + " ms CPU per MB; one-way p50 " + ", ".join(f"{v:.2f}" for v in res[mode]["latency_p50_ms"])
                     + " ms")

    def run_pipeline_max(self) -> None:
        runs, variants = [], []
        jpe = self.sample(self.model.variables).jets_per_event
        plan = [(n, ()) for n in self.plan.pipeline_encoders] + list(self.plan.pipeline_extra)
        for n, extra in plan:
            tag = f"max-{n}enc" + "".join(e.strip("-") for e in extra)
            try:
                cfg = self.pipeline_config(self.out / "runs" / tag, rate_hz=0.0, encoders=n,
                                           duration_s=self.plan.pipeline_duration_s)
                cfg.extra = list(extra)
                res = run_pipeline(cfg)
                res.pop("process_series", None)
                res["extra_flags"] = list(extra)
                (variants if extra else runs).append(res)
                steady = res.get("steady_state") or {}
                self.log(f"  pipeline {tag}: {res['events_per_s'] or 0:,.0f} events/s (steady "
                         f"{steady.get('events_per_s') or 0:,.0f}), resent {res['producer'].get('batches_resent')} of "
                         f"{res['producer'].get('batches_sent')} batches, zero loss {res['zero_loss']}, capacity "
                         f"estimate {steady.get('capacity_events_per_s_estimate') or 0:,.0f} events/s")
            except Exception as exc:
                self.error(f"pipeline {tag}", exc)
        self.results["pipeline"] = {"runs": runs, "variants": variants, "jets_per_event": jpe,
                                    "encoder_max_batch_jets": 4096}

    def run_ratescan(self) -> None:

        points = []
        for pattern in self.plan.scan_patterns:
            points += rate_scan(self.pipeline_config, self.out / "runs" / "scan", [pattern],
                                self.plan.scan_rates.get(pattern, ()), self.error)
        self.results["ratescan"] = points

    def run_decision(self) -> None:

        self.results["decision_100khz"] = decision_latency_runs(
            self.pipeline_config, self.out / "runs" / "decision", goals.LATENCY_RATE_HZ, (1, 2),
            self.plan.decision_repeats, self.plan.decision_duration_s, self.error)
        for n, block in self.results["decision_100khz"]["by_encoders"].items():
            self.log(f"  decision p99 at 100 kHz, {n} encoder(s), default models: "
                     + ", ".join(f"{p * 1e3:.1f}" for p in block["decision_p99_s"]) + " ms")

    def run_latency(self) -> None:

        self.results["latency_under_load"] = latency_curve(self.pipeline_config, self.out / "runs" / "load",
                                                           self.plan.latency_rates, self.results.get("ratescan", []),
                                                           self.error)

    def run_soak(self) -> None:

        self.results["soak"] = soak(self.pipeline_config, self.out / "runs" / "soak", self.plan.soak_seconds,
                                    self.plan.soak_rate_hz)

    def run_profile(self) -> None:
        """py-spy profiles, separate from the measured runs (sampling costs CPU): service and pipeline."""
        s = self.sample(self.model.variables)
        out: dict[str, Any] = {}
        for size, epm, name in ((1024, max(1, round(1024 / s.jets_per_event)), "service_batch_1024"),
                                (4096, 4, "service_4_events_per_message")):
            row = self._service(self.model, size, epm, "profile", profile=True)
            out[name] = {"jets_per_s": row["jets_per_s"], "jets_per_encoder_cpu_s": row["jets_per_encoder_cpu_s"],
                         "events_per_message": epm, **(row.get("profile_encoder") or {})}
        n = max(self.plan.pipeline_encoders)
        cfg = self.pipeline_config(self.out / "runs" / "profile", rate_hz=0.0, encoders=n,
                                   duration_s=max(8.0, self.plan.pipeline_duration_s))
        cfg.profile = True
        res = run_pipeline(cfg)
        out["pipeline_rate0"] = {"encoders": n, "events_per_s": res["events_per_s"],
                                 "cpu_seconds_by_stage": res["cpu_seconds_by_stage"],
                                 "producer": res.get("producer"), "stages": res.get("profiles", {})}
        self.results["profiles"] = out
