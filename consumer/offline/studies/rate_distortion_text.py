"""Tables (markdown, rows for HTML) and the plain-words conclusion of the rate-distortion comparison."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from consumer.offline.lossy_codecs import FAMILIES
from consumer.offline.studies import rate_distortion as rd
from consumer.offline.studies.common import write_json

HEADERS = ["sample", "variables", "configuration", "kind", "B/jet (1M ev; AE: sink)", "B/jet (1G ev)", "ratio vs raw",
           "x best lossless", "pt core", "e core", "m core", "eta core", "phi core", "compress cyc/jet",
           "decompress cyc/jet", "goal", "Pareto (all)"]


def _raw_bytes_per_jet(p: Mapping[str, Any]) -> float:
    """Uncompressed float32 columns + a uint16 jet count per event."""
    return 4.0 * len(p["variables"]) + 2.0 * p["n_events"] / p["n_jets"]


def rows(result: Mapping[str, Any], summary_only: bool = False) -> list[list[Any]]:
    """One row per point (``summary_only``: best lossless, each family's cheapest at goal, every AE and the
    codecs tuned to each AE's accuracy)."""
    out = []
    for sample, sr in result["samples"].items():
        for key, st in sr["sets"].items():
            comp = st["comparison"]
            best_ll = comp["best_lossless_bytes_per_jet"]
            keep = {comp["best_lossless"]} | {v["config"] for v in comp["families_at_goal"].values() if v}
            pts = sorted(st["points"], key=rd.bytes_per_jet)
            for p in pts:
                if summary_only and p["kind"] not in ("AE", "matched") and p["config"] not in keep:
                    continue
                b = rd.bytes_per_jet(p)
                widths = [rd.width(p, v) if v in p["variables"] else None for v in ("pt", "e", "m", "eta", "phi")]
                out.append([sample, key if len(key) < 30 else f"{len(st['variables'])} variables", p["config"],
                            p["kind"], b, rd.bytes_per_jet(p, rd.AMORTISE_EVENTS[1]), _raw_bytes_per_jet(p) / b,
                            best_ll / b, *widths, p["cpu"]["compress_cycles_per_jet"],
                            p["cpu"]["decompress_cycles_per_jet"], "yes" if p["meets_goal"] else "no",
                            "yes" if p["pareto_all"] else ""])
    return out


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown(result: Mapping[str, Any]) -> str:
    """The full table as markdown, with the conclusion above it."""
    lines = ["# Study 2: bytes per jet against residual width (every codec, every AE)", "",
             conclusion(result), "",
             f"Blocks of {result['block_events']} events ({result['block_definition']}); bounds "
             f"{result['bounds']} (relative on pt/m/e via log, absolute on the others); AE model bytes "
             f"(decoder.onnx + card; a rate-trained AE's card carries its entropy model) spread over 1 M / 1 G "
             f"events; rate-trained AEs ('ans') store their latent symbols ANS-coded; raw fallback of events "
             f"flagged at FPR {result['fallback_fpr']:g}; CPU on {result['threads']} thread at "
             f"{result['clock_mhz']:.0f} MHz "
             f"({result['clock_source']}). 'Pareto (all)': not dominated in bytes and every goal variable's width.",
             "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows(result)]
    return "\n".join(lines) + "\n"


def _fmt_ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}x"


def _lossless_verdict(ratio: float, goal: float) -> str:
    return "met" if ratio >= goal else f"short by {goal / ratio:.2f}x"


def _set_name(key: str, st: Mapping[str, Any]) -> str:
    return key if len(key) < 30 else f"{len(st['variables'])} variables"


def _set_sentences(sample: str, key: str, st: Mapping[str, Any]) -> list[str]:
    """Per sample and variable set: references, each model's smallest AE point, wins and losses by family."""
    comp = st["comparison"]
    gv = comp["goal_variables"]
    at_goal = ", ".join(f"{f} {v['bytes_per_jet']:.2f} ({v['config']})" if v else f"{f} none"
                        for f, v in comp["families_at_goal"].items() if f in rd.GOAL_FAMILIES)
    out = [f"[{sample}, {_set_name(key, st)}] Best lossless {comp['best_lossless']}: "
           f"{comp['best_lossless_bytes_per_jet']:.2f} B/jet; cheapest grid point with all of {gv} within the goal: "
           f"{at_goal} B/jet."]
    by_model: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for label, a in comp["ae"].items():
        model = label.split(" ")[0]
        if model not in by_model or a["bytes_per_jet"] < by_model[model][1]["bytes_per_jet"]:
            by_model[model] = (label, a)
    for label, a in by_model.values():
        widths = ", ".join(f"{v} {a['widths'][v]:.2g}" for v in gv)
        over = [v for v in gv if a["width_over_limit"][v] > 1.0]
        status = ("within the goal widths" if not over else "outside the goal on " + ", ".join(
            f"{v} ({a['width_over_limit'][v]:.1f}x the limit)" for v in over))
        matched = ", ".join(f"{f} {m['bytes_per_jet']:.2f} B/jet ({_fmt_ratio(m['bytes_ratio_codec_over_ae'])})"
                            if m else f"{f} none as accurate"
                            for f, m in a["matched_accuracy"].items() if f in rd.GOAL_FAMILIES)
        ratio = a["ratio_vs_best_lossless"]
        out.append(f"Smallest {label.split(' ')[0]}: {label}, {a['bytes_per_jet']:.2f} B/jet, widths {widths}: "
                   f"{status}; {ratio:.2f}x the best lossless ratio (goal "
                   f"{rd.GOAL_RATIO_VS_LOSSLESS:g}x: {_lossless_verdict(ratio, rd.GOAL_RATIO_VS_LOSSLESS)}"
                   f"); at its own accuracy (codec/AE bytes) {matched}"
                   + (f"; dominated by {len(a['dominated_by'])} codec configuration(s)" if a["dominated_by"]
                      else "; dominated by no codec") + ".")
        if "sink_bytes_per_jet" in a:  # results written before the sink's own writer counted the recording
            stream = a.get("stream_bytes_per_jet")
            out.append(f"  {label.split(' ')[0]} as the sink records it (its segment writer at its defaults, "
                       f"every byte of the files; the figure above and on the front): {a['sink_bytes_per_jet']:.2f} "
                       f"B/jet, {a['sink_ratio_vs_best_lossless']:.2f}x fewer bytes than the best lossless codec"
                       + (f"; the study's own streams alone {stream:.2f} B/jet." if stream else "."))
    for fam in lossy_codecs_families(st):
        wins = [(lab, m["bytes_ratio_codec_over_ae"]) for lab, a in comp["ae"].items()
                if (m := a["matched_accuracy"].get(fam)) and m["bytes_ratio_codec_over_ae"] > 1.0]
        n = sum(1 for a in comp["ae"].values() if a["matched_accuracy"].get(fam))
        if not n:
            continue
        best = max(wins, key=lambda w: w[1]) if wins else None
        out.append(f"Against {fam} at matched accuracy the AE wins {len(wins)} of {n} configurations"
                   + (f" (best {best[0]}: {best[1]:.2f}x fewer bytes)" if best else "") + " and loses the rest.")
    return out


def lossy_codecs_families(st: Mapping[str, Any]) -> list[str]:
    """The families present in a set's points, in the study's order."""

    present = {p["family"] for p in st["points"] if p["kind"] in ("lossy", "matched")}
    return [f for f in FAMILIES if f in present]


def headline(result: Mapping[str, Any]) -> list[str]:
    """Per sample: the goal verdict with the measured margin or shortfall."""
    out = []
    goal = rd.GOAL_RATIO_VS_LOSSLESS
    for sample, sr in result["samples"].items():
        cands = [(key, label, a) for key, st in sr["sets"].items() for label, a in st["comparison"]["ae"].items()]
        if not cands:
            continue
        met = [c for c in cands if c[2]["goal_met"]]
        if met:
            key, label, a = min(met, key=lambda c: c[2]["bytes_per_jet"])
            out.append(f"{sample}: GOAL MET by {label} [{key}]: {a['ratio_vs_best_lossless']:.2f}x the best lossless "
                       "ratio; codec/AE bytes at the goal " + ", ".join(
                           f"{f} {_fmt_ratio(a['codec_bytes_over_ae_at_goal'][f])}" for f in rd.GOAL_FAMILIES) + ".")
            continue
        in_goal = [c for c in cands if c[2]["meets_goal"]]
        if in_goal:
            key, label, a = max(in_goal, key=lambda c: c[2]["ratio_vs_best_lossless"])
            r = a["codec_bytes_over_ae_at_goal"]
            lose = [f for f in rd.GOAL_FAMILIES if r[f] is not None and r[f] <= 1.0]
            out.append(f"{sample}: goal NOT met. The best AE within the goal widths, {label} [{key}], reaches "
                       f"{a['ratio_vs_best_lossless']:.2f}x the best lossless ratio (goal {goal:g}x, shortfall "
                       f"{goal / a['ratio_vs_best_lossless']:.2f}x); codec/AE bytes at the goal: "
                       + ", ".join(f"{f} {_fmt_ratio(r[f])}" for f in rd.GOAL_FAMILIES)
                       + (f" (it loses to {', '.join(lose)} there)" if lose else " (it beats all three there)") + ".")
        else:
            key, label, a = min(cands, key=lambda c: max(c[2]["width_over_limit"].values()))
            out.append(f"{sample}: goal NOT met: no AE is within the goal widths; the closest, {label} [{key}], "
                       "has " + ", ".join(f"{v} {w:.1f}x" for v, w in a["width_over_limit"].items()) + " the limits.")
    return out


def summary(result: Mapping[str, Any]) -> str:
    """Short form for study 2's conclusion: the goal verdict, then per model (its smallest AE point) where it
    wins and where it loses against SZ3, ZFP and BitRound at its own accuracy, and its CPU cost."""
    parts = headline(result)
    for sample, sr in result["samples"].items():
        for st in sr["sets"].values():
            pts = {p["config"]: p for p in st["points"]}
            best: dict[str, tuple[str, Mapping[str, Any]]] = {}
            for label, a in st["comparison"]["ae"].items():
                m = pts[label]["model"]
                if m not in best or a["bytes_per_jet"] < best[m][1]["bytes_per_jet"]:
                    best[m] = (label, a)
            for label, a in best.values():
                win = [f"{f} {m['bytes_ratio_codec_over_ae']:.2f}x" for f in rd.GOAL_FAMILIES
                       if (m := a["matched_accuracy"].get(f)) and m["bytes_ratio_codec_over_ae"] > 1.0]
                lose = [f"{f} {1 / m['bytes_ratio_codec_over_ae']:.2f}x" for f in rd.GOAL_FAMILIES
                        if (m := a["matched_accuracy"].get(f)) and m["bytes_ratio_codec_over_ae"] <= 1.0]
                sz3 = a["matched_accuracy"].get("SZ3")
                cyc = pts[label]["cpu"]["cycles_per_jet"]
                sz3_cyc = pts[sz3["config"]]["cpu"]["cycles_per_jet"] if sz3 else None
                parts.append(
                    f"{sample}, {label} ({a['bytes_per_jet']:.2f} B/jet, "
                    + ("within" if a["meets_goal"] else "outside") + " the goal widths): at its own accuracy it wins "
                    + (f"against {', '.join(win)} (codec bytes / AE bytes)" if win else "against none of SZ3, ZFP, "
                       "BitRound") + " and loses " + (f"to {', '.join(lose)} (AE bytes / codec bytes)" if lose else
                                                      "to none") + f"; it costs {cyc:.0f} cycles/jet"
                    + (f" against SZ3's {sz3_cyc:.0f}" if sz3_cyc else "")
                    + f" (networks: scorer {pts[label]['cpu']['scorer_cycles_per_jet']:.0f} + decoder "
                    f"{pts[label]['cpu']['decoder_cycles_per_jet']:.0f}, the rest its lossless codec); "
                    f"{100 * pts[label]['flagged_fraction']:.2g} % of the events are flagged and stored raw.")
    return " ".join(parts)


def conclusion(result: Mapping[str, Any]) -> str:
    """Plain words: where the AE wins and where it loses, with the goal's margin or shortfall in numbers."""
    parts = ["Goal: an AE with pt/e/m core <= 1 % and eta/phi core <= 0.01 at once, fewer bytes than the cheapest SZ3, "
             f"ZFP and BitRound configuration within the same goal, and >= {rd.GOAL_RATIO_VS_LOSSLESS:g}x the best "
             "lossless codec's compression ratio (AE model bytes over 1 M events). 'At matched accuracy' compares "
             "with the cheapest codec at least as accurate as the AE on every goal variable, including SZ3, ZFP and "
             "BitRound with per-variable bounds tuned to that AE."]
    parts += headline(result)
    for sample, sr in result["samples"].items():
        for key, st in sr["sets"].items():
            parts += _set_sentences(sample, key, st)
    return " ".join(parts)


def write_tables(result: Mapping[str, Any], out_dir: str) -> list[str]:
    """``s2_rate_distortion.md`` (conclusion + full table) and ``s2_rate_distortion.json`` (every number)."""


    os.makedirs(out_dir, exist_ok=True)
    md, js = os.path.join(out_dir, "s2_rate_distortion.md"), os.path.join(out_dir, "s2_rate_distortion.json")
    with open(md, "w") as f:
        f.write(markdown(result))
    write_json(js, result)
    return [md, js]
