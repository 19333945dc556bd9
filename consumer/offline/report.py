"""Run the three studies and write ``index.html`` (plots, tables, conclusions) and ``results.json``."""

from __future__ import annotations

import html
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumer.offline.studies.common import (
    Sample,
    bundled,
    clean,
    load_sample,
    model_level,
    write_json,
    zoo_models,
)
from emulator.runtime.defaults import resolve_model
from models.runtime.card import Level
from producer.reader import ReaderSpec

DEFAULT_SIGNALS = ("zprime", "darkshower", "ttbar")
COMPRESSION_MODELS = ("AE_3D_200_ptetaphie", "AE_3D_200_mptphieta", "TLA_4D_leading")
PUBLISHED = "TLA_4D_leading"


@dataclass
class ReportConfig:
    """What the report runs on; defaults = bundled samples and every model in models/zoo.

    Larger samples (cross samples, the large background) are used only when given explicitly.
    """

    out: str = "report"
    background: list[str] = field(default_factory=lambda: [str(bundled("qcd"))])
    signals: dict[str, list[str]] = field(default_factory=dict)
    cross: dict[str, list[str]] = field(default_factory=dict)
    large_background: list[str] | None = None
    models: list[str] | None = None
    compression_model: str | None = None
    options: ReaderSpec = field(default_factory=ReaderSpec)  # how every sample is read (the producer's reader)
    max_events: int | None = None
    max_events_large: int | None = None
    studies: tuple[int, ...] = (1, 2, 3)
    quick: bool = False
    generate_large: int = 0  # events of QCD background to generate for TPR at 1e-4 (0 = no)
    generate_seed: int = 931

    def resolve_defaults(self) -> None:
        if not self.signals:
            self.signals = {n: [str(bundled(n))] for n in DEFAULT_SIGNALS if bundled(n).is_file()}
        if not self.cross and "ttbar" in self.signals:
            self.cross = {"ttbar": self.signals["ttbar"]}


def model_dirs(names: Sequence[str] | None) -> list[str]:
    """Model directories: names under models/zoo, or paths (each by ``resolve_model``); default every zoo model."""
    if names is None:
        return [str(p) for p in zoo_models()]
    out = [str(resolve_model(n)) for n in names]
    for p in out:
        if not (Path(p) / "card.json").is_file():
            raise FileNotFoundError(f"model {p} not found (neither a directory nor a name under models/zoo)")
    return out


def pick_compression_model(dirs: Sequence[str], wanted: str | None) -> str:
    if wanted:
        return model_dirs([wanted])[0]
    by_name = {Path(d).name: d for d in dirs}
    for name in COMPRESSION_MODELS:
        if name in by_name:
            return by_name[name]
    return dirs[0]


def generate_background(n_events: int, seed: int, out_dir: str, jobs: int = 2) -> str:
    """Generate a QCD background with `aetrig generate` (reused when it already exists); return its path."""

    path = os.path.join(out_dir, "samples", f"qcd_{n_events}_seed{seed}.root")
    if os.path.isfile(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cmd = [sys.executable, "-m", "emulator.cli", "generate", "--process", "qcd", "--events", str(n_events),
           "--seed", str(seed), "--jobs", str(jobs), "--out", path]
    print("report: generating the large background: " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    return path


def run_report(cfg: ReportConfig) -> dict[str, Any]:
    """Run the selected studies, write the report, return the results dict."""
    from consumer.offline.studies import (
        rate_distortion_text,
        study_anomaly,
        study_generalisation,
        study_precompression,
    )

    os.makedirs(cfg.out, exist_ok=True)
    if cfg.generate_large:
        cfg.large_background = [generate_background(cfg.generate_large, cfg.generate_seed, cfg.out)]
    cfg.resolve_defaults()
    fig_dir = os.path.join(cfg.out, "figures")
    t0 = time.perf_counter()
    dirs = model_dirs(cfg.models)
    if not dirs:
        raise FileNotFoundError("no models found under models/zoo; give --models DIR")
    log = _logger()
    log(f"report: models {[Path(d).name for d in dirs]}")
    background = _load("qcd", cfg.background, cfg, cfg.max_events, log)
    results: dict[str, Any] = {"config": _config_dict(cfg, dirs), "studies": {}}
    jet_dirs = [d for d in dirs if model_level(d) == Level.JET]  # studies 1 and 2 reconstruct jets
    if (1 in cfg.studies or 2 in cfg.studies) and not jet_dirs:
        raise FileNotFoundError("studies 1 and 2 need at least one per-jet model; give --models DIR")
    if 1 in cfg.studies:
        others = {n: _load(n, f, cfg, cfg.max_events, log) for n, f in cfg.cross.items()}
        log("study 1: published vs retrained, cross-sample")
        results["studies"]["generalisation"] = study_generalisation.run(background, others, jet_dirs, fig_dir,
                                                                        PUBLISHED)
    if 2 in cfg.studies:
        cm = pick_compression_model(jet_dirs, cfg.compression_model)
        log(f"study 2: pre-compression, codecs and CPU with {Path(cm).name}")
        kwargs: dict[str, Any] = {}
        if cfg.quick:
            from consumer.offline.codecs import parse_codec

            kwargs = {
                "codec_list": [parse_codec(c) for c in ("none", "zlib-6", "lz4-1", "zstd-5")],
                "batch_sizes": (16, 1024),
                "cpu_jets": 4096,
                "rd_quick": True,
            }
        others = {n: _load(n, f, cfg, cfg.max_events, log) for n, f in cfg.cross.items()}  # not trained on
        results["studies"]["precompression"] = study_precompression.run(background, cm, fig_dir, others=others,
                                                                        rd_models=jet_dirs, log=log, **kwargs)
        rate_distortion_text.write_tables(results["studies"]["precompression"]["rate_distortion"], cfg.out)
    if 3 in cfg.studies:
        signals = {n: _load(n, f, cfg, cfg.max_events, log) for n, f in cfg.signals.items()}
        large = (
            _load("large background", cfg.large_background, cfg, cfg.max_events_large, log)
            if cfg.large_background
            else None
        )
        log("study 3: anomaly detection")
        cm = Path(pick_compression_model(jet_dirs or dirs, cfg.compression_model)).name
        results["studies"]["anomaly"] = study_anomaly.run(
            background, signals, dirs, fig_dir, large, compression_model=cm
        )
    results["runtime_s"] = time.perf_counter() - t0
    results["figures"] = {
        k: [os.path.relpath(p, cfg.out) for p in v.get("figures", [])] for k, v in results["studies"].items()
    }
    write_json(os.path.join(cfg.out, "results.json"), results)
    write_html(os.path.join(cfg.out, "index.html"), results, cfg.out)
    log(f"report: wrote {cfg.out}/index.html and results.json in {results['runtime_s']:.0f} s")
    return clean(results)


def _logger():
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    return log


def _load(name: str, files: Sequence[str], cfg: ReportConfig, max_events: int | None, log) -> Sample:
    t = time.perf_counter()
    s = load_sample(name, files, None, cfg.options, max_events)
    log(f"  read {name}: {s.n_events} events, {s.n_jets} jets in {time.perf_counter() - t:.1f} s")
    return s


def _config_dict(cfg: ReportConfig, dirs: Sequence[str]) -> dict[str, Any]:
    return {
        "background": cfg.background,
        "signals": cfg.signals,
        "cross_samples": cfg.cross,
        "large_background": cfg.large_background,
        "models": [str(d) for d in dirs],
        "read_options": {"input_format": cfg.options.input_format, "tree": cfg.options.tree,
                         "branch_map": dict(cfg.options.branch_map), "unit": cfg.options.unit,
                         "derive_e": cfg.options.derive_e, "max_jets_per_event": cfg.options.max_jets},
        "max_events": cfg.max_events,
        "quick": cfg.quick,
        "studies": list(cfg.studies),
        "python": platform.python_version(),
        "host": platform.node(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# ------------------------------------------------------------------------------------------- HTML

CSS = """body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:90%}td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}img{max-width:48%;margin:4px;border:1px solid #ddd}
.concl{background:#f3f7ff;border-left:4px solid #36c;padding:.6em 1em}"""


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.4g}"
    return html.escape(str(v))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def residual_rows(tab: Mapping[str, Any]) -> list[list[Any]]:
    return [[v, s["kind"], s["n"], s["mean"], s["core_half_width"], s["rms"]] for v, s in tab.items()]


RES_HEAD = ["variable", "kind", "jets", "mean", "core half-width", "RMS"]


def _figures(paths: Sequence[str], root: str) -> str:
    out = []
    for p in paths:
        if p.endswith(".png"):
            rel = os.path.relpath(p, root)
            pdf = rel[:-4] + ".pdf"
            out.append(f'<a href="{html.escape(pdf)}"><img src="{html.escape(rel)}" alt="{html.escape(rel)}"></a>')
    return "<div>" + "".join(out) + "</div>"


def section_generalisation(r: Mapping[str, Any], root: str) -> str:
    parts = [
        "<h2>Study 1: the published network on a different sample</h2>"
        f"<p class=concl>{html.escape(r['conclusion'])}</p>"
    ]
    for model, tabs in r["same_jets"].items():
        parts.append(
            f"<h3>{html.escape(model)} on the reference jets ({html.escape(r['reference_sample']['name'])})</h3>"
        )
        parts.append("<p>all jets</p>" + table(RES_HEAD, residual_rows(tabs["all_jets"])))
        parts.append("<p>leading jets</p>" + table(RES_HEAD, residual_rows(tabs["leading_jets"])))
    for model, per in r["cross_sample"].items():
        rows = []
        for sample, row in per.items():
            if "core_half_width" in row:
                rows += [
                    [sample, v, row["core_half_width"][v], row["ratio_to_reference"][v], row["median_error"]]
                    for v in row["core_half_width"]
                ]
        parts.append(
            f"<h3>cross-sample: {html.escape(model)}</h3>"
            + table(["sample", "variable", "core half-width", "ratio to reference", "median jet error"], rows)
        )
    parts.append(_figures(r["figures"], root))
    return "\n".join(parts)


def section_precompression(r: Mapping[str, Any], root: str) -> str:
    parts = [
        f"<h2>Study 2: already-compressed inputs, codecs and CPU cost ({html.escape(r['model'])})</h2>"
        f"<p class=concl>{html.escape(r['conclusion'])}</p><p>Input rounding: {html.escape(r['input_rounding'])}</p>"
    ]
    fid = r["fidelity"]
    variables = list(fid["ae_on_raw"])
    rows = [["AE on raw float32"] + [fid["ae_on_raw"][v]["core_half_width"] for v in variables]]
    for s, row in fid["inputs"].items():
        rows.append([f"{s}: rounding alone"] + [row["precompression_alone"][v]["core_half_width"] for v in variables])
        rows.append(
            [f"{s}: AE on rounded input"] + [row["ae_on_precompressed"][v]["core_half_width"] for v in variables]
        )
    for s, tab in fid["latent"].items():
        rows.append([f"latent stored as {s}"] + [tab[v]["core_half_width"] for v in variables])
    parts.append(
        "<h3>residual core half-width (relative for pt/e/m, absolute otherwise)</h3>"
        + table(["configuration", *variables], rows)
    )
    disk = r["disk"]
    codec_names = list(next(iter(disk["configs"].values()))["codecs"])
    rows = [[k] + [v["codecs"][c]["bytes_per_event"] for c in codec_names] for k, v in disk["configs"].items()]
    parts.append(
        f"<h3>bytes per event on disk ({disk['n_events']} events, {disk['n_jets']} jets; "
        f"{html.escape(disk['payload'])};"
        f" model card {disk['card_bytes']} B included in AE files)</h3>" + table(["configuration", *codec_names], rows)
    )
    rows = [[k] + [v["codecs"][c]["compression_ratio"] for c in codec_names] for k, v in disk["configs"].items()]
    parts.append(
        "<h3>compression ratio vs raw float32 uncompressed</h3>" + table(["configuration", *codec_names], rows)
    )
    cpu = r["cpu"]
    batches = sorted({b for row in cpu["rows"].values() for b in row}, key=int)
    rows = [
        [k]
        + [
            f"{row[b]['us_per_jet_cpu']:.3g} us / {row[b]['cycles_per_jet']:.0f} cyc" if b in row else ""
            for b in batches
        ]
        for k, row in cpu["rows"].items()
    ]
    parts.append(
        f"<h3>CPU per jet (1 thread; cycles = {html.escape(cpu['cycles_method'])}, "
        f"{cpu['clock_mhz']:.0f} MHz from {html.escape(cpu['clock_source'])})</h3>"
        + table(["step \\ batch size", *batches], rows)
    )
    parts.append(section_rate_distortion(r["rate_distortion"]))
    parts.append(_figures(r["figures"], root))
    return "\n".join(parts)


def section_rate_distortion(rd: Mapping[str, Any]) -> str:
    """Study 2's codec-vs-AE comparison: conclusion and the summary table (full table in the .md/.json)."""
    from consumer.offline.studies import rate_distortion_text

    return (
        "<h3>bytes per jet against residual width: every codec, every AE "
        f"(blocks of {rd['block_events']} events = {html.escape(rd['block_definition'])}; "
        '<a href="s2_rate_distortion.md">full table</a>, <a href="s2_rate_distortion.json">JSON</a>)</h3>'
        f"<p class=concl>{html.escape(rd['conclusion'])}</p>"
        + table(rate_distortion_text.HEADERS, rate_distortion_text.rows(rd, summary_only=True))
    )


def section_anomaly(r: Mapping[str, Any], root: str) -> str:
    parts = [f"<h2>Study 3: anomalous signals</h2><p class=concl>{html.escape(r['conclusion'])}</p>"]
    rows = []
    for m, mr in r["models"].items():
        for s, row in mr["signals"].items():
            t2, t3 = row["tpr"]["0.01"], row["tpr"]["0.001"]
            t4 = row.get("tpr_large_background", {}).get("0.0001")
            rows.append(
                [
                    m,
                    mr.get("level", Level.JET),
                    mr["latent_dim"],
                    s,
                    f"{row['auc_event']:.3f} ± {row['auc_event_err']:.3f}",
                    "-" if row["auc_jet"] != row["auc_jet"] else f"{row['auc_jet']:.3f}",  # NaN: event-level model
                    f"{t2['tpr']:.3f} ± {t2['tpr_err']:.3f}",
                    f"{t3['tpr']:.3f} ± {t3['tpr_err']:.3f}" + ("" if t3["reliable"] else " *"),
                    (f"{t4['tpr']:.3f} ± {t4['tpr_err']:.3f}" + ("" if t4["reliable"] else " *")) if t4 else "-",
                ]
            )
    parts.append(
        table(
            ["model", "level", "k", "signal", "AUC (event)", "AUC (jet)", "TPR@1e-2", "TPR@1e-3",
             "TPR@1e-4 (large bkg)"], rows
        )
        + "<p>* fewer than 10 background events above the threshold.</p>"
    )
    menu = r.get("trigger_menu")
    if menu:
        from consumer.offline.evaluate import menu_rows

        headers, rows = menu_rows(menu)
        parts.append("<h3>at equal rate against the HT and leading-jet-pT triggers (pure TPR: taken by the model "
                     "and by neither simple trigger)</h3>" + table(headers, rows))
    base = r.get("baseline_leading_pt", {})
    if base:
        rows = [[sig, b["auc_event"], b["tpr"]["0.01"]["tpr"], b["tpr"]["0.001"]["tpr"]] for sig, b in base.items()]
        parts.append("<h3>baseline: leading-jet pT alone as the event score</h3>" +
                     table(["signal", "AUC", "TPR@1e-2", "TPR@1e-3"], rows))
    ev = r.get("event_variable_auc", {})
    if ev:
        rows = [[sig, b["ht"], b["mht"], b["leading_pt"]] for sig, b in ev.items()]
        parts.append("<h3>baseline: one event variable alone as the event score (AUC)</h3>" +
                     table(["signal", "HT", "missing HT", "leading-jet pT"], rows))
    lv = r.get("leading_jet_variable_auc", {})
    if lv:
        names = list(next(iter(lv.values())))
        parts.append("<h3>diagnostic: AUC of each leading-jet variable alone (&lt;0.5: signal lower)</h3>" +
                     table(["signal", *names], [[sig, *[row.get(v) for v in names]] for sig, row in lv.items()]))
    rec = r.get("recommendation", {})
    if rec.get("model"):
        best = r["models"][rec["model"]]
        rows = []
        for s, row in best["signals"].items():
            rows += [
                [s, f"{b['low']:.0f}-{b['high']:.0f}", b["n_background"], b["n_signal"], b["auc"], b["auc_err"]]
                for b in row["auc_vs_leading_pt"]
            ]
        parts.append(
            f"<h3>AUC in leading-jet pT bins ({html.escape(rec['model'])})</h3>"
            + table(["signal", "pT [GeV]", "bkg events", "signal events", "AUC", "error"], rows)
        )
        rows = [[s, f"{b['low']:.0f}-{b['high']:.0f}", b["n_background"], b["n_signal"], b["auc"], b["auc_err"]]
                for s, row in best["signals"].items() for b in row.get("auc_vs_ht", [])]
        if rows:
            parts.append(f"<h3>AUC in HT bins ({html.escape(rec['model'])})</h3>"
                         + table(["signal", "HT [GeV]", "bkg events", "signal events", "AUC", "error"], rows))
        rows = [[a["fpr"], a["threshold"], a["accept_rate_hz_at_100khz"]] for a in best["accept_rate_table"]]
        parts.append(
            "<h3>thresholds and accept rates at 100 kHz</h3>"
            + table(["FPR", "event-score threshold", "accept rate [Hz]"], rows)
        )
        for s, row in best["signals"].items():
            parts.append(
                f"<h3>residuals on {html.escape(s)} {'events' if best.get('level') == Level.EVENT else 'jets'} "
                f"({html.escape(rec['model'])})</h3>"
                + table(RES_HEAD, residual_rows(row["signal_residuals"]))
            )
    parts.append(_figures(r["figures"], root))
    return "\n".join(parts)


def write_html(path: str, results: Mapping[str, Any], root: str) -> None:
    studies = results["studies"]
    body = [
        f"<h1>aetrig report</h1><p>created {html.escape(results['config']['created_utc'])}, runtime "
        f"{results['runtime_s']:.0f} s; every number is in <a href=results.json>results.json</a>.</p>",
        "<pre>"
        + html.escape(
            json.dumps(
                {
                    k: results["config"][k]
                    for k in ("background", "signals", "cross_samples", "large_background", "models")
                    if k in results["config"]
                },
                indent=1,
            )
        )
        + "</pre>",
    ]
    if "generalisation" in studies:
        body.append(section_generalisation(studies["generalisation"], root))
    if "precompression" in studies:
        body.append(section_precompression(studies["precompression"], root))
    if "anomaly" in studies:
        body.append(section_anomaly(studies["anomaly"], root))
    with open(path, "w") as f:
        f.write(
            f"<!doctype html><html><head><meta charset=utf-8><title>aetrig report</title><style>{CSS}</style>"
            f"</head><body>{''.join(body)}</body></html>"
        )
