"""Anomaly scores against an HT and a leading-jet-pT trigger at the same rate: the numbers and their tables.

A :class:`ScoreSet` is one row family of the comparison: per-event scores of the background and of
each signal (NaN where an event has no score, e.g. not in a recording; such events are left out
of that row, triggers included). :func:`compare` runs ``models.runtime.trigger_menu.judge`` per
score set and signal; the trigger variables come from the samples' jets with one
:class:`~models.runtime.trigger_menu.JetSelection`. Used by `aetrig evaluate` and study 3.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from consumer.offline.studies.common import Sample, write_json
from emulator.runtime.plotting import file_metadata
from emulator.runtime.tables import markdown_table, text_table
from models.runtime import anomaly
from models.runtime import trigger_menu as tm
from models.runtime.card import Level
from models.runtime.domain import Domain, select
from models.runtime.event_features import padded_jets
from models.runtime.event_scoring import anomaly_score
from models.runtime.onnx_session import ort_session

#: what each kind of score set is, in words
KINDS = {
    Level.JET: "per-jet AE: event score = max per-jet error",
    Level.EVENT: "event AE: reconstruction error of the event vector",
    "latent": "AXOL1TL-style: sum of squared latent coordinates of the event AE encoder, standardised with the "
              "background's mean and sigma (encoder.onnx only, no decoder)",
    "recording": "event_score recorded by the encoder service, joined to the inputs by (file_index, entry)",
}
LATENT_NOTE = ("latent score only for event-level models (per-jet models would need a per-event aggregate of "
               "per-jet latents, not done)")


@dataclass
class ScoreSet:
    """Per-event scores of one anomaly model on the background and on each signal."""

    name: str
    kind: str
    model: str
    background: np.ndarray
    signals: dict[str, np.ndarray]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def trigger_scores(sample: Sample, selection: tm.JetSelection) -> tuple[np.ndarray, np.ndarray]:
    """(HT, leading-jet pT) per event of a sample over the selected jets."""
    return tm.trigger_variables(sample.column("pt"), sample.column("eta"), sample.counts, selection)


def in_domain(model, sample: Sample, select_domain: bool = True) -> tuple[Sample, int]:
    """The sample with only the jets inside the model's training domain (card ``domain``), as the encoder gives
    them to the anomaly model (models/runtime/domain.py; events are kept, an event with none scores as an empty
    one), and the number of jets left out. ``select_domain`` False (--score-all-jets), or a card that states no
    domain: the sample as it is."""
    domain = Domain.from_card(model.card) if select_domain else None
    if domain is None:
        return sample, 0
    inside = domain.mask(sample.column("pt"), sample.column("eta"), sample.counts, limit_jets=model.level == Level.JET)
    return (replace(sample, values=sample.values[inside], counts=select(inside, sample.counts)),
            int(inside.size - inside.sum()))


def event_latent(model, sample: Sample, batch: int = 32768) -> np.ndarray:
    """[n_events, k] latent of an event-level model's encoder.onnx on the padded leading jets."""

    x = padded_jets(sample.take(model.variables), sample.counts, int(model.card["event_input"]["jets"]))
    session = ort_session(model.encoder_path)
    parts = [session.run(["latent"], {"x": x[i:i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, model.latent_dim), np.float32)


def model_score(model, sample: Sample, raw: np.ndarray) -> np.ndarray:
    """A model's anomaly score: ``raw`` (its per-event error), or the card's ``score_transform`` of its outputs
    and the event HT when it has one, computed by the encoder's own function (event_scoring.anomaly_score)."""
    block = model.card.get("score_transform")
    if block is None:
        return raw
    latent = event_latent(model, sample) if any(t["raw"] == "latent" for t in block["terms"]) else None
    return anomaly_score(model.card, raw, latent, sample.column("pt"), sample.column("eta"), sample.counts)


def latent_set(model, background: Sample, signals: Mapping[str, Sample]) -> ScoreSet:
    """The AXOL1TL-style latent score of an event-level model, standardised on ``background``."""
    z_b = event_latent(model, background)
    mean, std = tm.standardisation(z_b)
    return ScoreSet(f"{model.name} latent", "latent", model.name, tm.latent_score(z_b, mean, std),
                    {n: tm.latent_score(event_latent(model, s), mean, std) for n, s in signals.items()},
                    extra={"latent_mean": mean.tolist(), "latent_std": std.tolist(),
                           "standardised_on": "the evaluation background"})


def menu_inputs(sets: Sequence[ScoreSet], background: Sample, signals: Mapping[str, Sample],
                selection: tm.JetSelection) -> dict[str, dict[str, Any]]:
    """{set name: {"background": TriggerScores, "signals": {name: TriggerScores}}}, unscored events dropped."""
    trig_b = trigger_scores(background, selection)
    trig_s = {n: trigger_scores(s, selection) for n, s in signals.items()}
    return {st.name: {"background": _scored(st.background, trig_b),
                      "signals": {n: _scored(st.signals[n], trig_s[n]) for n in signals if n in st.signals}}
            for st in sets}


def _scored(scores: np.ndarray, trig: tuple[np.ndarray, np.ndarray]) -> tm.TriggerScores:
    return tm.TriggerScores(scores, *trig).subset(np.isfinite(scores))


def stream_note(background: Sample) -> str:
    """What the background stream is (from its `aetrig generate` metadata) and what rates in Hz mean."""

    meta = file_metadata(background.files[0]) if background.files else None
    if meta and meta.get("process"):
        cut = meta.get("pthat_min_gev")
        what = f"{meta['process']}" + (f" with pT-hat > {cut:g} GeV" if isinstance(cut, (int, float)) else "")
    else:
        what = "an external sample (no aetrig metadata)"
    return (f"background = {what} ({', '.join(os.path.basename(f) for f in background.files)}), not zero-bias: a "
            "rate in Hz is FPR x input rate, i.e. a fraction of this stream at that input rate, not of all collisions")


def compare(sets: Sequence[ScoreSet], inputs: Mapping[str, Mapping[str, Any]], background: Sample,
            signals: Mapping[str, Sample], selection: tm.JetSelection, fprs: Sequence[float] = tm.FPRS,
            input_rates: Sequence[float] = tm.INPUT_RATES_HZ,
            min_background: int = tm.MIN_BACKGROUND) -> dict[str, Any]:
    """Every score set against the HT and leading-jet-pT triggers, per signal and FPR (see module doc)."""
    trig_b = trigger_scores(background, selection)
    out: dict[str, Any] = {
        "stream_note": stream_note(background),
        "selection": {"min_pt_gev": selection.min_pt, "max_abs_eta": selection.max_abs_eta,
                      "description": selection.describe(),
                      "ht": f"scalar sum of the pT of {selection.describe()}",
                      "lead_pt": f"largest pT among {selection.describe()} (0 if none)"},
        "rule": "flag if score > threshold; each trigger's threshold from the background at the FPR; pure = "
                "flagged by the model and by neither the HT nor the leading-jet-pT trigger (pure bkg rate: the same on "
                "the background, the rate the model adds to the two); TPR intervals are 68% Wilson from the signal "
                "count (the background-count spread of the threshold is tpr_err_background in the JSON); "
                f"reliable = each trigger has >= {min_background} background events above threshold",
        "fprs": list(fprs), "input_rates_hz": list(input_rates), "min_background": min_background,
        "background": {"name": background.name, "files": background.files, "n_events": background.n_events},
        "signals": {n: {"files": s.files, "n_events": s.n_events} for n, s in signals.items()},
        "triggers": {}, "models": {}, "skipped": {}, "notes": [LATENT_NOTE],
    }
    for n, s in signals.items():
        ht_s, lead_s = trigger_scores(s, selection)
        out["triggers"][n] = {"auc": {"ht": anomaly.auc(trig_b[0], ht_s), "lead_pt": anomaly.auc(trig_b[1], lead_s)}}
    for st in sets:
        arr = inputs[st.name]
        entry: dict[str, Any] = {"kind": st.kind, "what": KINDS.get(st.kind, st.kind), "model": st.model,
                                 "note": st.note, "n_background": len(arr["background"].model), "signals": {},
                                 **st.extra}
        for n in signals:
            ts = arr["signals"].get(n)
            if ts is None or len(ts.model) == 0 or len(arr["background"].model) == 0:
                out["skipped"].setdefault(st.name, {})[n] = "no scored events of this sample"
                continue
            entry["signals"][n] = tm.judge(arr["background"], ts, fprs, input_rates, min_background)
        out["models"][st.name] = entry
    return out


# ------------------------------------------------------------------------------------------- tables

def _tpr(row: Mapping[str, Any], prefix: str = "") -> str:
    return f"{row[prefix + 'tpr']:.3f} [{row[prefix + 'tpr_low']:.3f},{row[prefix + 'tpr_high']:.3f}]"


def _hz(value: float) -> str:
    return f"{value:,.0f}" if value >= 1 else f"{value:.2g}"


def menu_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the main table: signal x model x FPR."""
    rates = [tm.rate_key(r) for r in results["input_rates_hz"]]
    headers = ["signal", "model", "FPR", *(f"rate@{k} [Hz]" for k in rates), "bkg pass", "TPR [68% CI]",
               "HT TPR", "lead-pT TPR", "pure TPR [68% CI]", f"pure bkg rate@{rates[0]} [Hz]", "reliable"]
    rows = []
    for sig in results["signals"]:
        for name, m in results["models"].items():
            for fkey, r in m["signals"].get(sig, {}).get("fpr", {}).items():
                rows.append([sig, name, fkey, *(_hz(r["rate_hz"][k]) for k in rates),
                             f"{r['n_background_pass']}/{r['n_background']}", _tpr(r), f"{r['ht_tpr']:.3f}",
                             f"{r['lead_pt_tpr']:.3f}", _tpr(r, "pure_"), _hz(r["pure_rate_hz"][rates[0]]),
                             "yes" if r["reliable"] else f"NO (<{results['min_background']} bkg)"])
    return headers, rows


def auc_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """AUC overall and inside HT bins per signal and model (and of the trigger variables alone)."""
    headers = ["signal", "model", "AUC", "AUC in HT bins [GeV] (bins with >= 20 events of each class)"]
    rows = []
    for sig in results["signals"]:
        t = results["triggers"][sig]["auc"]
        rows.append([sig, "HT alone", f"{t['ht']:.3f}", "-"])
        rows.append([sig, "leading-jet pT alone", f"{t['lead_pt']:.3f}", "-"])
        for name, m in results["models"].items():
            r = m["signals"].get(sig)
            if r is None:
                continue
            bins = ", ".join(f"{b['low']:.0f}-{b['high']:.0f}: {b['auc']:.2f}" for b in r["auc_vs_ht"]
                             if b["auc"] == b["auc"] and b["auc"] is not None) or "none populated"
            rows.append([sig, name, f"{r['auc']:.3f} ± {r['auc_err']:.3f}", bins])
    return headers, rows


def threshold_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The thresholds each trigger uses at each FPR (from the background; the same for every signal)."""
    first = {name: next(iter(m["signals"].values()))["fpr"] for name, m in results["models"].items() if m["signals"]}
    if not first:
        return [], []
    any_rows = next(iter(first.values()))
    headers = ["FPR", "HT > [GeV]", "lead pT > [GeV]", *(f"{n} >" for n in first)]
    rows = [[f, f"{any_rows[f]['ht_threshold']:.1f}", f"{any_rows[f]['lead_pt_threshold']:.1f}",
             *(f"{first[n][f]['threshold']:.4g}" for n in first)] for f in any_rows]
    return headers, rows


def header_lines(results: Mapping[str, Any]) -> list[str]:
    """The notes every output of the comparison starts with."""
    sel = results["selection"]
    lines = [results["stream_note"] + ".",
             f"HT = {sel['ht']}; leading-jet pT = {sel['lead_pt']}.",
             results["rule"] + f"; FPR f needs >= {results['min_background']}/f background events "
             f"(this background: {results['background']['n_events']} events).",
             *results["notes"]]
    for name, m in results["models"].items():
        lines.append(f"{name}: {m['what']}" + (f"; {m['note']}" if m.get("note") else ""))
    for name, skipped in results["skipped"].items():
        lines.append(f"{name}: not evaluated on " + ", ".join(f"{s} ({why})" for s, why in skipped.items()))
    return lines


def render(results: Mapping[str, Any], markdown: bool = False) -> str:
    """The whole comparison as text (terminal) or markdown (evaluate.md)."""
    fmt = markdown_table if markdown else text_table
    parts = [("# " if markdown else "") + "Anomaly models against HT and leading-jet-pT triggers at the same rate"]
    parts += [("- " if markdown else "  ") + line for line in header_lines(results)]
    for title, (headers, rows) in (("TPR at equal FPR", menu_rows(results)),
                                   ("AUC, overall and inside HT bins", auc_rows(results)),
                                   ("thresholds at each FPR (from the background)", threshold_rows(results))):
        if rows:
            parts += ["", ("## " if markdown else "") + title, "", fmt(headers, rows)]
    return "\n".join(parts) + "\n"


def write_outputs(results: Mapping[str, Any], out_dir: str, stem: str = "evaluate") -> list[str]:
    """``stem``.json (every number) and ``stem``.md (the tables) under ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"{stem}.json"), os.path.join(out_dir, f"{stem}.md")]
    write_json(paths[0], results)
    with open(paths[1], "w") as f:
        f.write(render(results, markdown=True))
    return paths
