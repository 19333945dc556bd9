"""Study 1: the published network against retrained models on the same test jets, and cross-sample degradation.

Every model is run with ONNX Runtime (its scorer graph, normalisation inside) on the same jets of
the reference background. Residuals follow models.runtime.residuals: relative (out - in) / in for pt, e, m;
absolute out - in for the others. The cross-sample part evaluates each model on other samples
(other pT-hat or energy, SM ttbar) and reports the core half-width ratio to the reference sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from consumer.offline.studies.common import Sample, load_model, residual_table, residual_values, run_model
from emulator.runtime import plotting

#: variables shown in the overlay plots when a model has them
SHOWN = ("pt", "eta", "phi", "m", "e")


def _model_rows(model, sample: Sample) -> dict[str, Any]:
    x = sample.take(model.variables)
    _, reco, error = run_model(model, x)
    lead = sample.leading_mask
    return {"x": x, "reco": reco, "error": error,
            "all_jets": residual_table(model.variables, x, reco),
            "leading_jets": residual_table(model.variables, x[lead], reco[lead]),
            "median_error": float(np.median(error)) if len(error) else float("nan"),
            "n_jets": len(x), "n_leading": int(lead.sum())}


def run(reference: Sample, others: Mapping[str, Sample], model_dirs: Sequence[str], out_dir: str,
        published: str = "TLA_4D_leading") -> dict[str, Any]:
    """Run study 1; return {"same_jets", "cross_sample", "figures", "conclusion", ...}."""
    models = [load_model(d) for d in model_dirs]
    results: dict[str, Any] = {"reference_sample": {"name": reference.name, "files": reference.files,
                                                    "n_events": reference.n_events, "n_jets": reference.n_jets},
                               "other_samples": {k: {"files": s.files, "n_events": s.n_events, "n_jets": s.n_jets}
                                                 for k, s in others.items()},
                               "models": {}, "same_jets": {}, "cross_sample": {}, "figures": []}
    evaluated: dict[str, dict[str, Any]] = {}
    ref_origin = plotting.origin_of_files(reference.files)
    for m in models:
        results["models"][m.name] = {"variables": m.variables, "latent_dim": m.latent_dim,
                                     "training": {k: m.card.get("training", {}).get(k) for k in
                                                  ("imported", "files", "n_events", "command", "sample")
                                                  if k in m.card.get("training", {})}}
        ev = _model_rows(m, reference)
        evaluated[m.name] = ev
        results["same_jets"][m.name] = {"all_jets": ev["all_jets"], "leading_jets": ev["leading_jets"],
                                        "median_error": ev["median_error"]}
    # overlay residuals of every model on the same reference jets
    for var in SHOWN:
        having = [m for m in models if var in m.variables]
        if not having:
            continue
        values = {m.name: residual_values(var, evaluated[m.name]["x"][:, m.variables.index(var)],
                                          evaluated[m.name]["reco"][:, m.variables.index(var)]) for m in having}
        kind = results["same_jets"][having[0].name]["all_jets"][var]["kind"]
        xlabel = f"jet {var}: " + ("|out - in| / in" if kind == "relative" else "|out - in|")
        results["figures"] += plotting.histograms({k: np.abs(v) for k, v in values.items()}, out_dir,
                                                  f"s1_residual_{var}", xlabel, bins=80, logx=True, logy=False,
                                                  span=(1e-6, 10.0), origin=ref_origin,
                                                  extra=f"{reference.name}: same {reference.n_jets} jets")
    # cross-sample degradation
    samples = {reference.name: reference, **others}
    all_origin = plotting.merge_origins(ref_origin, *(plotting.origin_of_files(s.files) for s in others.values()))
    for m in models:
        per_sample: dict[str, Any] = {}
        for name, s in samples.items():
            try:
                ev = evaluated[m.name] if name == reference.name else _model_rows(m, s)
            except KeyError as exc:  # the sample lacks a variable of this model
                per_sample[name] = {"error": str(exc)}
                continue
            ref_tab = evaluated[m.name]["all_jets"]
            per_sample[name] = {
                "core_half_width": {v: ev["all_jets"][v]["core_half_width"] for v in m.variables},
                "ratio_to_reference": {v: ev["all_jets"][v]["core_half_width"] / ref_tab[v]["core_half_width"]
                                       if ref_tab[v]["core_half_width"] else float("nan") for v in m.variables},
                "median_error": ev["median_error"], "n_jets": ev["n_jets"]}
        results["cross_sample"][m.name] = per_sample
        names = [n for n in samples if "core_half_width" in per_sample[n]]
        series = [{"x": np.arange(len(names)), "y": [per_sample[n]["core_half_width"][v] for n in names],
                   "label": v, "style": "o-"} for v in m.variables if v in SHOWN]
        fig = plotting.lines(series, out_dir, f"s1_cross_sample_{m.name}", "evaluation sample",
                             "residual core half-width", logy=True, extra=f"{m.name} (trained on QCD)",
                             xticks=names, origin=all_origin)
        results["figures"] += fig
    results["conclusion"] = conclusion(results, reference.name, published)
    return results


def conclusion(results: Mapping[str, Any], ref: str, published: str) -> str:
    """Plain words with the measured numbers."""
    same = results["same_jets"]
    parts = []
    pub = same.get(published)
    if pub and "pt" in pub["all_jets"]:
        parts.append(f"The published network ({published}) on the {ref} jets: relative pt core half-width "
                     f"{pub['leading_jets']['pt']['core_half_width']:.3g} on leading jets and "
                     f"{pub['all_jets']['pt']['core_half_width']:.3g} on all jets.")
    best = None
    for name, tab in same.items():
        if name == published or "pt" not in tab["all_jets"]:
            continue
        w = tab["all_jets"]["pt"]["core_half_width"]
        parts.append(f"{name}: pt core half-width {w:.3g}" +
                     (f", e {tab['all_jets']['e']['core_half_width']:.3g}" if "e" in tab["all_jets"] else "") +
                     (f", m {tab['all_jets']['m']['core_half_width']:.3g}" if "m" in tab["all_jets"] else "") + ".")
        if best is None or w < best[1]:
            best = (name, w)
    if pub and best and "pt" in pub["all_jets"]:
        parts.append(f"On the same jets the best retrained model ({best[0]}) is "
                     f"{pub['all_jets']['pt']['core_half_width'] / best[1]:.0f}x narrower in pt than the "
                     "published network.")
    for name, per in results["cross_sample"].items():
        worst = []
        for sample, row in per.items():
            if sample == ref or "ratio_to_reference" not in row:
                continue
            r = row["ratio_to_reference"]
            v = max(r, key=lambda k: r[k] if r[k] == r[k] else -1)
            worst.append(f"{sample}: worst {v} x{r[v]:.2g}, pt x{r.get('pt', float('nan')):.2g}")
        if worst:
            parts.append(f"Cross-sample ({name}, ratio of core half-width to {ref}): " + "; ".join(worst) + ".")
    return " ".join(parts)
