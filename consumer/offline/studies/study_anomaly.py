"""Study 3: anomalous signals against the QCD background, for every model and latent size.

Two model families: per-jet AEs (ONNX scorer, per-jet error = normalised MSE; event score = max
over jets, 0 for a zero-jet event) and event-level AEs (card level "event": the scorer takes the
event's leading J jets, padded, and returns one error per event = the event score; see
models/runtime/event_features.py). Per model: error distributions, ROC and AUC (Hanley-McNeil error),
TPR at FPR 1e-2 and 1e-3 on the background (1e-4 on a large background when given; errors from
both sample sizes), AUC in bins of leading-jet pT and of HT (is the model more than a pT or HT
tagger?), flag rate and accept rate at 100 kHz against threshold, residuals on signal jets (event
vector for event models), and the fidelity/sensitivity trade-off against latent size k: the
residual width is the pt core half-width for per-jet AEs and the HT core half-width for event AEs.
Last, every model (and the AXOL1TL-style latent score of each event model) against an HT and a
leading-jet-pT trigger at the same rate, at FPR 1e-2 .. 1e-5 (consumer/offline/evaluate.py, the
layer `aetrig evaluate` uses; on the large background when given): ``trigger_menu`` in the results,
a table file and two figures per signal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from consumer.offline import evaluate, evaluate_plots
from consumer.offline.evaluate import model_score
from consumer.offline.studies.common import Sample, load_model, residual_table, residual_values, run_model
from emulator.runtime import plotting
from emulator.runtime.progress import Progress
from models.runtime import anomaly, trigger_menu
from models.runtime.card import Level
from models.runtime.event_features import event_features, padded_jets
from models.runtime.event_scoring import run_event_scorer

FPRS = (1e-2, 1e-3)
LARGE_FPRS = (1e-2, 1e-3, 1e-4)
PT_EDGES = (0.0, 150.0, 250.0, 400.0, 600.0, 900.0, 1400.0, 1.0e5)
HT_EDGES = trigger_menu.HT_EDGES
INPUT_RATE_HZ = 100e3


def scores(model, sample: Sample) -> dict[str, Any]:
    """Per-jet (``Level.JET``, None for event models) and per-event (``Level.EVENT``) scores, with the inputs
    (``x``) and reconstructions (``reco``)."""
    if model.level == Level.EVENT:
        return event_model_scores(model, sample)
    x = sample.take(model.variables)
    _, reco, err = run_model(model, x)
    return {"x": x, "reco": reco, Level.JET: err.astype(np.float64),
            Level.EVENT: anomaly.event_scores(err, sample.counts)}


def event_model_scores(model, sample: Sample) -> dict[str, Any]:
    """An event-level model on the padded leading jets: ``x``/``reco`` are the event vector in and out; the
    event score is the model's anomaly score (its card's score_transform of the outputs, when it has one)."""

    spec = model.card["event_input"]
    x = padded_jets(sample.take(model.variables), sample.counts, int(spec["jets"]))
    _, reco, err = run_event_scorer(model.scorer_path, x)
    fill = spec.get("empty_slot_fill")
    return {"x": event_features(x, int(spec["slots"]), model.variables, None if fill is None else np.asarray(fill)),
            "reco": reco.astype(np.float64),
            Level.JET: None, Level.EVENT: model_score(model, sample, err).astype(np.float64)}


def residual_names(model) -> list[str]:
    """What a model reconstructs: its jet variables, or the event vector's features."""
    return list(model.card["event_input"]["features"]) if model.level == Level.EVENT else list(model.variables)


def reconstruction_table(model, x: np.ndarray, reco: np.ndarray) -> dict[str, Any]:
    """Residual statistics of the reconstruction; event models add ``ht`` (relative, from log10(HT + 1))."""
    names = residual_names(model)
    table = residual_table(names, x, reco)
    if model.level == Level.EVENT and "log_ht" in names:
        from models.runtime.residuals import residual_summary

        i = names.index("log_ht")
        ht_in, ht_out = 10 ** x[:, i] - 1, 10 ** reco[:, i] - 1
        keep = ht_in > 0
        table["ht"] = {"kind": "relative", **residual_summary((ht_out[keep] - ht_in[keep]) / ht_in[keep])}
    return table


def fidelity_width(model, table: Mapping[str, Any]) -> dict[str, Any]:
    """The residual width on the trade-off plot: pt (per-jet AEs) or HT (event AEs) core half-width."""
    var = "ht" if model.level == Level.EVENT else "pt"
    return {"variable": var, "core_half_width": table.get(var, {}).get("core_half_width", float("nan"))}


def evaluate_model(model, background: Sample, signals: Mapping[str, Sample], large: Sample | None,
                   pt_edges: Sequence[float]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Numbers for one model, and the raw score arrays (for plots)."""
    b = scores(model, background)
    arrays: dict[str, Any] = {"background": b, "signals": {}}
    arch = model.card.get("architecture", {})
    family = (f"event AE, {model.card['event_input']['jets']} jets, {len(residual_names(model))} features"
              if model.level == Level.EVENT else f"{arch.get('kind', 'ae')} on {len(model.variables)} variables")
    table = reconstruction_table(model, b["x"], b["reco"])
    res: dict[str, Any] = {"latent_dim": model.latent_dim, "variables": model.variables, "level": model.level,
                           "residual_variables": residual_names(model), "family": family,
                           "background_residuals": table, "fidelity": fidelity_width(model, table),
                           "signals": {}}
    ht_b = background.ht()
    lb = scores(model, large) if large is not None else None
    for name, s in signals.items():
        sg = scores(model, s)
        arrays["signals"][name] = sg
        row: dict[str, Any] = {}
        for level in (Level.EVENT, Level.JET):
            if b[level] is None:  # event-level models have no per-jet score
                row[f"auc_{level}"], row[f"auc_{level}_err"] = float("nan"), float("nan")
                continue
            a = anomaly.auc(b[level], sg[level])
            row[f"auc_{level}"] = a
            row[f"auc_{level}_err"] = anomaly.auc_uncertainty(a, len(b[level]), len(sg[level]))
        row["tpr"] = {f"{f:g}": anomaly.tpr_at_fpr(b[Level.EVENT], sg[Level.EVENT], f) for f in FPRS}
        if lb is not None:
            row["tpr_large_background"] = {f"{f:g}": anomaly.tpr_at_fpr(lb[Level.EVENT], sg[Level.EVENT], f)
                                           for f in LARGE_FPRS}
            row["auc_event_large_background"] = anomaly.auc(lb[Level.EVENT], sg[Level.EVENT])
        row["auc_vs_leading_pt"] = anomaly.binned_auc(b[Level.EVENT], sg[Level.EVENT], background.leading_pt(),
                                                      s.leading_pt(), list(pt_edges))
        row["auc_vs_ht"] = anomaly.binned_auc(b[Level.EVENT], sg[Level.EVENT], ht_b, s.ht(), list(HT_EDGES))
        row["signal_residuals"] = reconstruction_table(model, sg["x"], sg["reco"])
        row["n_events"] = s.n_events
        res["signals"][name] = row
    # flag rate against threshold on the background, with signal efficiencies
    positive = b[Level.EVENT][b[Level.EVENT] > 0]
    grid = np.quantile(positive, 1 - np.logspace(-4, -0.05, 60)) if positive.size else np.array([0.0])
    grid = np.unique(grid)
    curve = anomaly.flag_rate_curve(b[Level.EVENT], grid, INPUT_RATE_HZ)
    res["flag_rate"] = {"threshold": curve["threshold"], "flag_fraction": curve["flag_fraction"],
                        "accept_rate_hz_at_100khz": curve["accept_rate_hz"],
                        "signal_efficiency": {n: anomaly.flag_rate_curve(sg[Level.EVENT], grid)["flag_fraction"]
                                              for n, sg in arrays["signals"].items()}}
    res["accept_rate_table"] = [{"fpr": f, "threshold": anomaly.threshold_at_fpr(b[Level.EVENT], f),
                                 "accept_rate_hz_at_100khz": f * INPUT_RATE_HZ} for f in FPRS]
    if lb is not None:
        res["large_background"] = {"files": large.files, "n_events": large.n_events}
        arrays["large"] = lb
    return res, arrays


def event_variable_aucs(background: Sample, signals: Mapping[str, Sample]) -> dict[str, dict[str, float]]:
    """AUC of HT, missing HT and leading-jet pT used alone as the event score (the taggers to beat)."""
    ht_b, mht_b, lead_b = background.ht(), background.mht(), background.leading_pt()
    out: dict[str, dict[str, float]] = {}
    for name, s in signals.items():
        out[name] = {"ht": anomaly.auc(ht_b, s.ht()), "mht": anomaly.auc(mht_b, s.mht()),
                     "leading_pt": anomaly.auc(lead_b, s.leading_pt())}
    return out


def leading_variable_aucs(background: Sample, signals: Mapping[str, Sample]) -> dict[str, dict[str, float]]:
    """AUC of each leading-jet variable used alone as the event score (events with >= 1 jet).

    Values below 0.5 mean the signal sits lower; max(AUC, 1 - AUC) is the separation power. A
    diagnostic of where the separation lies, not a trigger.
    """
    out: dict[str, dict[str, float]] = {}
    lead_b = background.leading_mask
    for name, s in signals.items():
        lead_s = s.leading_mask
        out[name] = {v: anomaly.auc(background.column(v)[lead_b], s.column(v)[lead_s])
                     for v in background.variables if v in s.variables}
    return out


def recommend(per_model: Mapping[str, Any], signals: Sequence[str] = ("zprime", "darkshower")) -> dict[str, Any]:
    """The model with the largest worst-case per-event AUC over the given signals."""
    have = [s for s in signals if all(s in r["signals"] for r in per_model.values())]
    if not have or not per_model:
        return {"model": None, "reason": "no zprime/darkshower signal evaluated"}
    ranked = sorted(per_model, key=lambda m: min(per_model[m]["signals"][s]["auc_event"] for s in have), reverse=True)
    best = ranked[0]
    aucs = {s: per_model[best]["signals"][s]["auc_event"] for s in have}
    return {"model": best, "signals": have, "auc_event": aucs, "goal": 0.95,
            "meets_goal": all(a >= 0.95 for a in aucs.values()), "ranking": ranked}


def run(background: Sample, signals: Mapping[str, Sample], model_dirs: Sequence[str], out_dir: str,
        large_background: Sample | None = None, pt_edges: Sequence[float] = PT_EDGES,
        compression_model: str | None = None) -> dict[str, Any]:
    """Run study 3; return results with figure paths and a conclusion."""

    results: dict[str, Any] = {"background": {"files": background.files, "n_events": background.n_events,
                                              "n_jets": background.n_jets},
                               "signals_info": {k: {"files": s.files, "n_events": s.n_events, "n_jets": s.n_jets}
                                                for k, s in signals.items()},
                               "input_rate_hz": INPUT_RATE_HZ, "models": {}, "skipped_models": {}, "figures": []}
    arrays: dict[str, Any] = {}
    loaded: dict[str, Any] = {}
    with Progress(len(model_dirs), "study 3: models", unit="models") as bar:
        for d in model_dirs:
            model = load_model(d, level=None)
            missing = [v for v in model.variables if v not in background.variables
                       or any(v not in s.variables for s in signals.values())]
            if missing:
                results["skipped_models"][model.name] = f"samples lack variables {missing}"
                bar.update(1)
                continue
            results["models"][model.name], arrays[model.name] = evaluate_model(
                model, background, signals, large_background, pt_edges)
            loaded[model.name] = model
            bar.update(1, model=model.name)
    if not results["models"]:
        results["conclusion"] = "No model could be evaluated: " + str(results["skipped_models"])
        return results
    results["baseline_leading_pt"] = {
        n: {"auc_event": anomaly.auc(background.leading_pt(), s.leading_pt()),
            "tpr": {f"{f:g}": anomaly.tpr_at_fpr(background.leading_pt(), s.leading_pt(), f) for f in FPRS}}
        for n, s in signals.items()}
    results["leading_jet_variable_auc"] = leading_variable_aucs(background, signals)
    if all("phi" in smp.variables for smp in (background, *signals.values())):
        results["event_variable_auc"] = event_variable_aucs(background, signals)
    results["recommendation"] = recommend(results["models"])
    best = results["recommendation"]["model"] or next(iter(results["models"]))
    origin = plotting.merge_origins(*(plotting.origin_of_files(smp.files) for smp in (background, *signals.values())))
    results["figures"] += plots(results, arrays, best, compression_model, out_dir,
                                {n: (background.leading_pt(), s.leading_pt()) for n, s in signals.items()},
                                {n: (background.ht(), s.ht()) for n, s in signals.items()}, origin=origin)
    menu, figures = trigger_comparison(loaded, arrays, large_background or background, signals, out_dir,
                                       [best, compression_model or best], origin)
    results["trigger_menu"] = menu
    results["figures"] += figures
    results["conclusion"] = conclusion(results)
    return results


def trigger_comparison(models: Mapping[str, Any], arrays: Mapping[str, Any], background: Sample,
                       signals: Mapping[str, Sample], out_dir: str, plotted: Sequence[str],
                       origin: plotting.Origin | None = None) -> tuple[dict[str, Any], list[str]]:
    """Every model, and each event model's latent score, against the HT and leading-jet-pT triggers at equal
    rate on ``background`` (the large one when given); the ``plotted`` models (and their latent scores) are
    drawn. Writes s3_trigger_menu.md next to the figures; returns the numbers and the figure paths."""

    sets = []
    for name, model in models.items():
        a = arrays[name]
        b = a["large"] if "large" in a else a["background"]
        sets.append(evaluate.ScoreSet(name, model.level, name, b[Level.EVENT],
                                      {n: s[Level.EVENT] for n, s in a["signals"].items()}))
        if model.level == Level.EVENT:
            sets.append(evaluate.latent_set(model, background, signals))
    selection = trigger_menu.JetSelection()
    inputs = evaluate.menu_inputs(sets, background, signals, selection)
    menu = evaluate.compare(sets, inputs, background, signals, selection)
    names = [n for p in dict.fromkeys(plotted) for n in (p, f"{p} latent") if n in menu["models"]]
    menu["table_file"] = evaluate.write_outputs(menu, out_dir, "s3_trigger_menu")[1]
    figures = evaluate_plots.roc_figures(inputs, menu, out_dir, "s3_menu", names, origin)
    figures += evaluate_plots.pure_figures(inputs, menu, out_dir, "s3_menu", names, origin=origin)
    return menu, figures


def menu_text(menu: Mapping[str, Any], names: Sequence[str], fprs: Sequence[str] = ("0.01", "0.001")) -> str:
    """One sentence per model: TPR vs HT / leading-jet-pT TPR and pure TPR at equal FPR, per signal."""
    parts = []
    for name in names:
        m = menu["models"].get(name)
        if not m:
            continue
        bits = [f"{sig} " + ", ".join(f"@{f}: {r['tpr']:.3f} vs HT {r['ht_tpr']:.3f} / lead-pT "
                                      f"{r['lead_pt_tpr']:.3f}, pure {r['pure_tpr']:.3f}"
                                      + ("" if r["reliable"] else " (unreliable)")
                                      for f in fprs if (r := row["fpr"].get(f)))
                for sig, row in m["signals"].items()]
        parts.append(f"{name}: " + "; ".join(bits))
    return ("At equal rate against HT and leading-jet-pT triggers (" + menu["selection"]["description"]
            + f"; TPR vs HT TPR / lead-pT TPR, pure = model only; {menu['stream_note']}): " + ". ".join(parts) + ".")


def plots(results: dict[str, Any], arrays: dict[str, Any], best: str, compression_model: str | None,
          out_dir: str, pt_baseline: Mapping[str, tuple[np.ndarray, np.ndarray]],
          ht_baseline: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
          origin: plotting.Origin | None = None) -> list[str]:
    """Every study-3 figure; ``origin`` (generator, √s of the samples) goes into each figure's label."""
    figs: list[str] = []
    ht_baseline = (ht_baseline or {}) if "event_variable_auc" in results else {}
    models = results["models"]
    signal_names = list(next(iter(models.values()))["signals"])
    a = arrays[best]
    for level in (Level.JET, Level.EVENT):
        if a["background"][level] is None:
            continue
        samples = {"QCD background": a["background"][level]}
        samples.update({n: s[level] for n, s in a["signals"].items()})
        samples = {k: np.maximum(v, 1e-9) for k, v in samples.items()}
        figs += plotting.histograms(samples, out_dir, f"s3_error_{level}_{best}",
                                    "per-jet error" if level == Level.JET else "event score"
                                    + (" (event AE error)" if models[best].get("level") == Level.EVENT
                                       else " (max jet error)"),
                                    logx=True, extra=best, origin=origin)
    for sig in signal_names:
        series = []
        for name, m_arr in arrays.items():
            roc = anomaly.roc_curve(m_arr["background"][Level.EVENT], m_arr["signals"][sig][Level.EVENT])
            keep = roc["fpr"] > 0
            series.append({"x": roc["fpr"][keep], "y": roc["tpr"][keep],
                           "label": f"{name} (AUC {models[name]['signals'][sig]['auc_event']:.3f})"})
        if sig in ht_baseline:
            roc = anomaly.roc_curve(*ht_baseline[sig])
            keep = roc["fpr"] > 0
            series.append({"x": roc["fpr"][keep], "y": roc["tpr"][keep], "style": "k:", "label":
                           f"HT alone (AUC {results['event_variable_auc'][sig]['ht']:.3f})"})
        if sig in pt_baseline:
            roc = anomaly.roc_curve(*pt_baseline[sig])
            keep = roc["fpr"] > 0
            series.append({"x": roc["fpr"][keep], "y": roc["tpr"][keep], "style": "k--", "label":
                           f"leading-jet pT alone (AUC {results['baseline_leading_pt'][sig]['auc_event']:.3f})"})
        figs += plotting.lines(series, out_dir, f"s3_roc_{sig}", "background efficiency (FPR, per event)",
                               f"{sig} efficiency (TPR)", logx=True, extra=f"{sig} vs QCD, event score",
                               ylim=(0, 1.05), legend_loc="lower right", origin=origin)
    for key, stem, xlabel in (("auc_vs_leading_pt", "leading_pt", "leading-jet pT [GeV]"),
                              ("auc_vs_ht", "ht", "HT (scalar sum of jet pT) [GeV]")):
        series = []
        for sig in signal_names:
            rows = models[best]["signals"][sig].get(key, [])
            ok = [r for r in rows if r["auc"] == r["auc"]]
            if ok:
                series.append({"x": [0.5 * (r["low"] + min(r["high"], 3000)) for r in ok],
                               "y": [r["auc"] for r in ok], "yerr": [r["auc_err"] for r in ok],
                               "label": f"{sig} (inclusive {models[best]['signals'][sig]['auc_event']:.3f})",
                               "style": "o"})
        if series:
            figs += plotting.lines(series, out_dir, f"s3_auc_vs_{stem}_{best}", xlabel, "AUC in bin", logx=True,
                                   extra=best, hlines=(0.5,), origin=origin)
    fr = models[best]["flag_rate"]
    series = [{"x": fr["threshold"], "y": fr["accept_rate_hz_at_100khz"], "label": "QCD accept rate [Hz] at 100 kHz"}]
    series += [{"x": fr["threshold"], "y": np.asarray(eff) * 1e5, "label": f"{n} efficiency x 1e5", "style": "--"}
               for n, eff in fr["signal_efficiency"].items()]
    figs += plotting.lines(series, out_dir, f"s3_flag_rate_{best}", "threshold on event score",
                           "rate [Hz] / efficiency x 1e5", logx=True, logy=True, extra=best, origin=origin)
    for name in dict.fromkeys([best, compression_model]):
        if name is None or name not in arrays:
            continue
        m_arr = arrays[name]
        variables = models[name].get("residual_variables", models[name]["variables"])
        var = next((v for v in ("pt", "log_ht") if v in variables), variables[0])
        i = variables.index(var)
        samples = {"QCD background": residual_values(var, m_arr["background"]["x"][:, i],
                                                     m_arr["background"]["reco"][:, i])}
        samples.update({n: residual_values(var, s["x"][:, i], s["reco"][:, i]) for n, s in m_arr["signals"].items()})
        width = max(plotting.core_half_width(v) for v in samples.values())
        what = f"jet {var}" if models[name].get("level", Level.JET) == Level.JET else f"event {var}"
        figs += plotting.histograms(samples, out_dir, f"s3_residual_{var}_signals_{name}",
                                    f"{what} residual ({'relative' if var in ('pt', 'e', 'm') else 'absolute'})",
                                    span=(-5 * width, 5 * width), extra=name, origin=origin)
    figs += tradeoff_plot(models, out_dir, origin)
    return figs


def tradeoff_plot(models: Mapping[str, Any], out_dir: str, origin: plotting.Origin | None = None) -> list[str]:
    """AUC and TPR@1e-2 against latent size k per model family (zprime and darkshower when present), with the
    residual width (pt core half-width per jet, HT per event) on a second y axis of the same plot."""
    plotting.setup()
    import matplotlib.pyplot as plt

    names = sorted(models, key=lambda n: (models[n]["latent_dim"], n))
    fig, ax = plt.subplots(figsize=(10, 7))
    available = list(models[names[0]]["signals"])
    signal_names = [s for s in ("zprime", "darkshower") if s in available] or available
    families: dict[str, list[str]] = {}
    for n in names:
        families.setdefault(models[n].get("family", n), []).append(n)
    colours = {"zprime": "tab:blue", "darkshower": "tab:red"}
    markers = "osD^vP*X"
    ax2 = ax.twinx()
    for fi, (fam, members) in enumerate(families.items()):
        ks = [models[n]["latent_dim"] for n in members]
        marker = markers[fi % len(markers)]
        for si, sig in enumerate(signal_names):
            colour = colours.get(sig, f"C{si + 2}")
            ax.plot(ks, [models[n]["signals"][sig]["auc_event"] for n in members], marker=marker, linestyle="-",
                    color=colour, label=f"AUC {sig} ({fam})")
            ax.plot(ks, [models[n]["signals"][sig]["tpr"]["0.01"]["tpr"] for n in members], marker=marker,
                    linestyle=":", color=colour, fillstyle="none", label=f"TPR@FPR 1e-2 {sig} ({fam})")
        widths = [models[n].get("fidelity", {}).get("core_half_width", np.nan) for n in members]
        var = models[members[0]].get("fidelity", {}).get("variable", "pt")
        ax2.plot(ks, widths, marker=marker, linestyle="--", color="black", alpha=0.6,
                 label=f"{'HT' if var == 'ht' else var} core half-width ({fam})")
    ax.axhline(0.95, color="grey", linestyle="-.", lw=1, label="AUC goal 0.95")
    ax.set_xlabel("latent size k")
    ax.set_ylabel("AUC / TPR at FPR 1e-2 (per event)")
    ax.set_ylim(0, 1.05)
    ax2.set_yscale("log")
    ax2.set_ylabel("residual core half-width (pt per jet / HT per event)")
    handles = ax.get_legend_handles_labels()
    handles2 = ax2.get_legend_handles_labels()
    fig.legend(handles[0] + handles2[0], handles[1] + handles2[1], loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=2, fontsize=8)
    plotting.label(ax, extra="fidelity vs sensitivity, per-jet and event-level AEs", origin=origin)
    return plotting.save(fig, out_dir, "s3_tradeoff_k")


def _binned_text(rows: Sequence[Mapping[str, Any]]) -> str:
    ok = [r for r in rows if r["auc"] == r["auc"]]
    return ", ".join(f"{r['low']:.0f}-{r['high']:.0f} GeV: {r['auc']:.2f}±{r['auc_err']:.2f}" for r in ok) or "none"


def tagger_verdict(best: Mapping[str, Any], signals: Sequence[str]) -> str:
    """Plain words on whether the model separates inside bins of leading-jet pT and of HT."""
    words = []
    for key, what in (("auc_vs_leading_pt", "leading-jet pT"), ("auc_vs_ht", "HT")):
        values = [r["auc"] for s in signals for r in best["signals"][s].get(key, []) if r["auc"] == r["auc"]]
        if not values:
            continue
        lo, hi = min(values), max(values)
        if lo >= 0.6:
            verdict = (f"it separates inside every populated {what} bin (AUC {lo:.2f}-{hi:.2f}): more than a "
                       f"{what} tagger")
        elif hi < 0.6:
            verdict = f"inside {what} bins its AUC is only {lo:.2f}-{hi:.2f}: mostly a {what} tagger"
        else:
            verdict = f"inside {what} bins its AUC ranges {lo:.2f}-{hi:.2f}: partly more than a {what} tagger"
        words.append(verdict)
    return "; ".join(words)


def conclusion(results: Mapping[str, Any]) -> str:
    models = results["models"]
    rec = results["recommendation"]
    parts = []
    for name, r in models.items():
        bits = []
        for sig, row in r["signals"].items():
            t2 = row["tpr"]["0.01"]
            t3 = row["tpr"]["0.001"]
            bits.append(f"{sig} AUC {row['auc_event']:.3f}±{row['auc_event_err']:.3f}, TPR@1e-2 "
                        f"{t2['tpr']:.3f}±{t2['tpr_err']:.3f}, TPR@1e-3 {t3['tpr']:.3f}±{t3['tpr_err']:.3f}"
                        + ("" if t3["reliable"] else " (1e-3 rests on <10 background events)"))
            if "tpr_large_background" in row:
                t4 = row["tpr_large_background"]["0.0001"]
                bits[-1] += (f", TPR@1e-4 {t4['tpr']:.3f}±{t4['tpr_err']:.3f} on {t4['n_background']} background "
                             f"events" + ("" if t4["reliable"] else " (unreliable: <10 background events above)"))
        fid = r.get("fidelity", {})
        width = fid.get("core_half_width")
        label = "HT" if fid.get("variable") == "ht" else "pt"
        parts.append(f"{name} ({r.get('level', Level.JET)}-level, k={r['latent_dim']}"
                     + (f", {label} width {width:.3g}" if width is not None and width == width else "")
                     + "): " + "; ".join(bits) + ".")
    if rec.get("model"):
        best = models[rec["model"]]
        aucs = ", ".join(f"{s} {a:.3f}±{best['signals'][s]['auc_event_err']:.3f}" for s, a in rec["auc_event"].items())
        verdict = ("meets the goal of per-event AUC >= 0.95 for both" if rec["meets_goal"] else
                   "does NOT reach the goal of per-event AUC >= 0.95 for both; it is the closest of the evaluated "
                   "models")
        parts.append(f"Recommended anomaly model: {rec['model']} ({best.get('level', Level.JET)}-level, k="
                     f"{best['latent_dim']}; largest worst-case AUC: {aucs}); it {verdict}. It was picked among the "
                     "evaluated models by this AUC on the signal samples themselves.")
        parts.append("AUC in leading-jet pT bins: " + "; ".join(
            f"{s} {_binned_text(best['signals'][s]['auc_vs_leading_pt'])}" for s in rec["signals"]) + ".")
        if all("auc_vs_ht" in best["signals"][s] for s in rec["signals"]):
            parts.append("AUC in HT bins: " + "; ".join(
                f"{s} {_binned_text(best['signals'][s]['auc_vs_ht'])}" for s in rec["signals"]) + ".")
        words = tagger_verdict(best, rec["signals"])
        if words:
            parts.append(f"So {words} (bins need >= 20 events of each class; the QCD sample has few events at "
                         "high pT/HT, so the highest bins are empty).")
        base = results.get("event_variable_auc") or {}
        if base:
            parts.append("Single event variables as the score, for comparison: " + "; ".join(
                f"{s}: HT {b['ht']:.3f}, missing HT {b['mht']:.3f}, leading-jet pT {b['leading_pt']:.3f}"
                for s, b in base.items()) + ".")
            if all(s in base for s in rec["signals"]):
                worst_var = {v: min(base[s][v] for s in rec["signals"]) for v in ("ht", "mht", "leading_pt")}
                v = max(worst_var, key=worst_var.get)
                pretty = {"ht": "HT", "mht": "missing HT", "leading_pt": "leading-jet pT"}[v]
                parts.append(f"The best single variable over both signals is {pretty} with worst-case AUC "
                             f"{worst_var[v]:.3f}, against {min(rec['auc_event'].values()):.3f} for {rec['model']}.")
        else:
            parts.append("For comparison, the leading-jet pT alone gives AUC " + ", ".join(
                f"{s} {b['auc_event']:.3f}" for s, b in results.get("baseline_leading_pt", {}).items()) + ".")
        fams: dict[Level, list[str]] = {}
        for n, r in models.items():
            fams.setdefault(Level(r.get("level", Level.JET)), []).append(n)
        for level, names in fams.items():
            worst = {n: min(models[n]["signals"][s]["auc_event"] for s in rec["signals"]) for n in names}
            ranked = sorted(names, key=lambda n: models[n]["latent_dim"])
            var = "HT" if level == Level.EVENT else "pt"
            parts.append(f"{level}-level models, worst-case AUC ({var} residual core half-width) against k: "
                         + ", ".join(f"{n} k={models[n]['latent_dim']}: {worst[n]:.3f} "
                                     f"({models[n].get('fidelity', {}).get('core_half_width', float('nan')):.3g})"
                                     for n in ranked) + ".")
        if best.get("level") == Level.EVENT:
            parts.append("The event-level model was designed with these signal samples in view: its event features, "
                         "its residual-weighted score and the filling of empty jet slots were settled while comparing "
                         "prototypes by their AUC on these same zprime and darkshower samples (training used QCD "
                         "only); an independent signal sample would give an unbiased figure.")
    lv = results.get("leading_jet_variable_auc", {})
    if lv:
        best_vars = []
        for sig, row in lv.items():
            v = max(row, key=lambda k: abs(row[k] - 0.5) if row[k] == row[k] else -1)
            best_vars.append(f"{sig} {v} ({max(row[v], 1 - row[v]):.3f})")
        parts.append("Best single leading-jet variable (separation max(AUC, 1-AUC)): " + ", ".join(best_vars) + ".")
    menu = results.get("trigger_menu")
    if menu and rec.get("model"):
        shown = [n for p in (rec["model"],) for n in (p, f"{p} latent")]
        parts.append(menu_text(menu, shown))
    if results["skipped_models"]:
        parts.append(f"Skipped: {results['skipped_models']}.")
    return " ".join(parts)
