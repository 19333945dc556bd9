"""Study 2: already-compressed inputs, latent storage, lossless codecs, bytes per event and CPU cost.

- Pre-compression of the inputs (mantissa rounding to N bits, round-to-nearest-even; float16;
  bfloat16), each fed to the AE: fidelity against the AE on raw inputs and against the
  pre-compression alone.
- Latent storage: float32, float16, bfloat16 and rounded mantissas, decoded with decoder.onnx.
- Bytes per event measured on real ROOT files written with uproot for each configuration and
  lossless codec (zlib, lzma, lz4, zstd at several levels). The payload is the per-jet columns
  plus the jet counter; AE files also carry the model card (its bytes are included).
- Pareto chart: compression ratio (raw float32, uncompressed / configuration) against residual
  core half-width, per variable.
- CPU cost per jet (process CPU time; cycles = CPU seconds x the clock in /proc/cpuinfo, since
  perf cycle counters are not available in this VM) for encode, decode and each codec at several
  batch sizes.
- Rate-distortion (:mod:`rate_distortion`): SZ3, ZFP, BitRound, Quantize, rounding + zstd/lzma and
  the lossless codecs against every per-jet AE, bytes per jet against core half-width and CPU cycles,
  on the background and on each cross sample (one the models were not trained on).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from consumer.offline import codecs
from consumer.offline.pareto import pareto_mask
from consumer.offline.studies import rate_distortion, rate_distortion_plot, rate_distortion_text
from consumer.offline.studies.common import (
    Sample,
    cpu_mhz,
    load_model,
    perf_cycles_supported,
    residual_table,
    run_model,
)
from consumer.offline.studies.timing import timed
from emulator.runtime import plotting
from emulator.runtime.progress import Progress
from models.runtime.anomaly import event_scores, threshold_at_fpr
from models.runtime.onnx_session import ort_session

INPUT_SCHEMES = ("float32", "m16", "m12", "m10", "float16", "m8", "bfloat16", "m5", "m3")
LATENT_SCHEMES = ("float32", "m16", "m12", "m10", "float16", "m8", "bfloat16", "m5")
BATCH_SIZES = (1, 16, 128, 1024, 8192)
#: rounded-mantissa configurations written to disk (m7 is bfloat16's precision)
FILE_MANTISSAS = (10, 7, 5)


def _jagged(counts: np.ndarray, cols: dict[str, np.ndarray]):
    from emulator.runtime.recording import jagged_record

    return jagged_record(counts, cols)


def fidelity(model, x: np.ndarray) -> dict[str, Any]:
    """Part A and B: pre-compressed inputs through the AE, and latent storage precision."""
    from consumer.offline.decode import Decoder

    names = model.variables
    latent, reco_raw, _ = run_model(model, x)
    out: dict[str, Any] = {"ae_on_raw": residual_table(names, x, reco_raw), "inputs": {}, "latent": {}}
    for scheme in INPUT_SCHEMES:
        xp = codecs.precompress(x, scheme)
        _, reco_p, _ = run_model(model, xp)
        out["inputs"][scheme] = {"precompression_alone": residual_table(names, x, xp),
                                 "ae_on_precompressed": residual_table(names, x, reco_p),
                                 "ae_shift_vs_ae_on_raw": residual_table(names, reco_raw, reco_p)}
    decoder = Decoder(model.decoder_path)
    for scheme in LATENT_SCHEMES:
        zp = codecs.precompress(latent, scheme)
        out["latent"][scheme] = residual_table(names, x, decoder(zp))
    return out


def _sizes(tmp: str, tag: str, branches: dict[str, Any], codec: codecs.Codec, strings: dict[str, str] | None,
           n_events: int) -> dict[str, float]:
    path = os.path.join(tmp, f"{tag}-{codec.name}.root")
    t0 = time.process_time()
    size = codecs.write_tree(path, branches, codec, strings)
    cpu = time.process_time() - t0
    os.remove(path)
    return {"bytes": size, "bytes_per_event": size / n_events, "write_cpu_s": cpu}


def disk_sizes(model, sample: Sample, x: np.ndarray, fprs: Sequence[float], codec_list: Sequence[codecs.Codec],
               progress=None) -> dict[str, Any]:
    """Part C: bytes on disk per event for every configuration and codec (real files, then deleted)."""
    names = model.variables
    counts = sample.counts
    latent, _, error = run_model(model, x)

    scores = event_scores(error, counts)
    card = codecs.card_text(model.card)
    configs: dict[str, tuple[dict[str, Any], dict[str, str] | None, str]] = {}
    configs["raw float32"] = ({"jet": _jagged(counts, codecs.storage_columns(x, names, "float32"))}, None, "float32")
    for n in FILE_MANTISSAS:
        configs[f"raw m{n}"] = ({"jet": _jagged(counts, codecs.storage_columns(x, names, f"m{n}"))}, None, f"m{n}")
    configs["raw float16"] = ({"jet": _jagged(counts, codecs.storage_columns(x, names, "float16"))}, None, "float16")
    configs["raw bfloat16"] = ({"jet": _jagged(counts, codecs.storage_columns(x, names, "bfloat16"))}, None, "bfloat16")
    lnames = [f"latent_{i}" for i in range(latent.shape[1])]
    for storage in ("float32", "float16", "m10", "bfloat16"):
        configs[f"AE latent {storage}"] = ({"jet": _jagged(counts, codecs.storage_columns(latent, lnames, storage))},
                                           {"card": card}, storage)
    flagged_info = {}
    for fpr in fprs:
        t = threshold_at_fpr(scores, fpr)
        flag = scores > t
        raw_counts = np.where(flag, counts, 0)
        raw_sel = np.repeat(flag, counts)
        branches = {"jet": _jagged(counts, codecs.storage_columns(latent, lnames, "float32")),
                    "raw_jet": _jagged(raw_counts, {n: x[raw_sel, i].copy() for i, n in enumerate(names)})}
        configs[f"AE float32 + raw fallback @FPR {fpr:g}"] = (branches, {"card": card}, "float32")
        flagged_info[f"{fpr:g}"] = {"threshold": t, "flagged_events": int(flag.sum()),
                                    "flagged_fraction": float(flag.mean())}
    out: dict[str, Any] = {"n_events": sample.n_events, "n_jets": sample.n_jets, "variables": names,
                           "payload": "per-jet columns + jet counter (event identity columns excluded: "
                                      "identical for every configuration)",
                           "card_bytes": len(card.encode()), "flagged": flagged_info, "configs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for tag, (branches, strings, storage) in configs.items():
            out["configs"][tag] = {"storage": storage, "codecs": {}}
            for codec in codec_list:
                out["configs"][tag]["codecs"][codec.name] = _sizes(tmp, tag.replace(" ", "_").replace("@", ""),
                                                                   branches, codec, strings, sample.n_events)
                if progress is not None:
                    progress.update(1, config=tag[:18], codec=codec.name)
    ref = out["configs"]["raw float32"]["codecs"]["none"]["bytes"] if "none" in {c.name for c in codec_list} \
        else None
    for row in out["configs"].values():
        for c in row["codecs"].values():
            c["compression_ratio"] = ref / c["bytes"] if ref else float("nan")
    return out


def cpu_cost(model, x: np.ndarray, batch_sizes: Sequence[int], codec_list: Sequence[codecs.Codec],
             n_jets: int = 16384) -> dict[str, Any]:
    """Part E: us and cycles per jet for encode, decode, scorer, mantissa rounding and each codec."""
    mhz, clock_source = cpu_mhz()
    x = np.ascontiguousarray(x[:n_jets], dtype=np.float32)
    n = len(x)
    sessions = {k: ort_session(p, 1)
                for k, p in (("encode", model.encoder_path), ("decode", model.decoder_path),
                             ("scorer", model.scorer_path))}
    latent = sessions["encode"].run(None, {sessions["encode"].get_inputs()[0].name: x})[0]
    feeds = {"encode": x, "decode": latent, "scorer": x}
    rows: dict[str, dict[str, Any]] = {}

    def record(name: str, batch: int, cpu: float, wall: float, jets: int) -> None:
        rows.setdefault(name, {})[str(batch)] = {
            "us_per_jet_cpu": 1e6 * cpu / jets, "us_per_jet_wall": 1e6 * wall / jets,
            "cycles_per_jet": cpu * mhz * 1e6 / jets, "jets": jets}

    for batch in batch_sizes:
        jets = min(n, max(batch * 4, 2048 if batch <= 16 else n))
        for name, sess in sessions.items():
            inp = sess.get_inputs()[0].name
            data = feeds[name][:jets]
            chunks = [data[i:i + batch] for i in range(0, jets, batch)]
            sess.run(None, {inp: chunks[0]})  # warm-up

            def go(sess=sess, inp=inp, chunks=chunks) -> None:
                for c in chunks:
                    sess.run(None, {inp: c})

            cpu, wall = timed(go)
            record(name, batch, cpu, wall, jets)
        raw = [c.tobytes() for c in (x[i:i + batch] for i in range(0, jets, batch))]
        cpu, wall = timed(lambda b=batch, j=jets: [codecs.reduce_mantissa(x[i:i + b], 10) for i in range(0, j, b)])
        record("round mantissa m10", batch, cpu, wall, jets)
        for codec in codec_list:
            if codec.algorithm == "none":
                continue
            comp = codec.uproot()
            packed = [comp.compress(b) for b in raw]
            cpu, wall = timed(lambda comp=comp, raw=raw: [comp.compress(b) for b in raw])
            record(f"{codec.name} compress", batch, cpu, wall, jets)
            cpu, wall = timed(lambda comp=comp, packed=packed, raw=raw: [comp.decompress(p, len(b))
                                                                 for p, b in zip(packed, raw, strict=True)])
            record(f"{codec.name} decompress", batch, cpu, wall, jets)
    perf = perf_cycles_supported()
    return {"clock_mhz": mhz, "clock_source": clock_source,
            "cycles_method": "process CPU seconds x nominal clock; perf stat cycle counters "
                             + ("exist here but were not used" if perf else "are not supported on this machine"),
            "perf_cycles_supported": perf,
            "threads": 1, "variables": model.variables, "rows": rows}


def pareto_points(fid: dict[str, Any], sizes: dict[str, Any], codec_names: Sequence[str]) -> dict[str, list[dict]]:
    """Per variable: (residual core half-width, best compression ratio over codecs) per configuration."""
    best_codec = {}
    for tag, row in sizes["configs"].items():
        name, c = max(((k, v) for k, v in row["codecs"].items() if k in codec_names),
                      key=lambda kv: kv[1]["compression_ratio"])
        best_codec[tag] = (name, c["compression_ratio"], c["bytes_per_event"])
    points: dict[str, list[dict]] = {}
    for var in sizes["variables"]:
        pts = []
        for tag, (codec_name, ratio, bpe) in best_codec.items():
            storage = sizes["configs"][tag]["storage"]
            key = "bfloat16" if storage == "m7" else storage  # m7 rounding is bfloat16's precision
            if tag.startswith("raw"):
                width = 0.0 if key == "float32" else fid["inputs"][key]["precompression_alone"][var]["core_half_width"]
            elif "fallback" in tag:
                width = fid["latent"]["float32"][var]["core_half_width"]
            else:
                width = fid["latent"][key][var]["core_half_width"]
            pts.append({"config": tag, "codec": codec_name, "compression_ratio": ratio, "bytes_per_event": bpe,
                        "core_half_width": width, "ae": tag.startswith("AE")})
        points[var] = pts
    return points


def pareto_front(pts: list[dict]) -> list[str]:
    """Configs not beaten by another in both width (smaller) and compression ratio (larger)."""
    mask = pareto_mask(np.array([[p["core_half_width"], -p["compression_ratio"]] for p in pts]).reshape(-1, 2))
    return [p["config"] for p, keep in zip(pts, mask, strict=True) if keep]


_AE_COLOURS = ("tab:red", "tab:orange", "tab:purple", "tab:pink", "tab:brown", "darkred", "goldenrod")
_RAW_COLOURS = ("tab:blue", "tab:cyan", "tab:green", "tab:olive", "navy", "teal", "tab:gray")


def plot_pareto(points: dict[str, list[dict]], out_dir: str, model_name: str,
                origin: plotting.Origin | None = None) -> list[str]:
    """Compression ratio against residual width per configuration, one legend entry per point (no inline text)."""
    plotting.setup()
    import matplotlib.pyplot as plt

    paths = []
    floor = 1e-8
    for var, pts in points.items():
        fig, ax = plt.subplots(figsize=(11, 5.5))
        front = set(pareto_front(pts))
        n_ae = n_raw = 0
        front_xy = []
        for p in pts:
            w = max(p["core_half_width"], floor) if p["core_half_width"] == p["core_half_width"] else floor
            if p["ae"]:  # AE: reddish stars and crosses; raw: bluish squares and circles (distinct per point)
                marker, colour = "*PXDv^<>"[n_ae % 8], _AE_COLOURS[n_ae % len(_AE_COLOURS)]
                n_ae += 1
            else:
                marker, colour = "sohpd<>^"[n_raw % 8], _RAW_COLOURS[n_raw % len(_RAW_COLOURS)]
                n_raw += 1
            on_front = p["config"] in front
            ax.scatter(w, p["compression_ratio"], marker=marker, s=130 if p["ae"] else 60, color=colour,
                       edgecolor="black" if on_front else "none", linewidth=1.2, alpha=0.9, zorder=3,
                       label=f"{p['config']} [{p['codec']}]" + (" (Pareto)" if on_front else ""))
            if on_front:
                front_xy.append((w, p["compression_ratio"]))
        front_xy.sort()
        ax.plot([x for x, _ in front_xy], [y for _, y in front_xy], ":", color="black", lw=1, zorder=2,
                label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlim(floor / 3, 10)
        ax.set_xlabel(f"jet {var} residual core half-width (lossless drawn at {floor:g})")
        ax.set_ylabel("compression ratio vs raw float32")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="configuration [best codec]",
                  title_fontsize=9)
        plotting.label(ax, extra=f"{model_name}; black edge = Pareto front", origin=origin)
        paths += plotting.save(fig, out_dir, f"s2_pareto_{var}")
    return paths


def run(sample: Sample, model_dir: str, out_dir: str, fprs: Sequence[float] = (1e-2, 1e-3),
        codec_list: Sequence[codecs.Codec] = codecs.DEFAULT_CODECS,
        batch_sizes: Sequence[int] = BATCH_SIZES, cpu_jets: int = 16384,
        others: Mapping[str, Sample] | None = None, rd_models: Sequence[str] | None = None,
        rd_quick: bool = False, log=None) -> dict[str, Any]:
    """Run study 2 for one model on one sample, and the rate-distortion comparison.

    The rate-distortion part (:mod:`rate_distortion`) runs every codec and every model of ``rd_models``
    (default: this model) on ``sample`` and on each of ``others`` (e.g. a sample the models were not
    trained on)."""

    model = load_model(model_dir)
    x = sample.take(model.variables)
    results: dict[str, Any] = {"model": model.name, "sample": sample.name, "n_jets": sample.n_jets,
                               "input_rounding": "round to nearest, ties to even (mN = N explicit mantissa bits)"}
    results["fidelity"] = fidelity(model, x)
    n_steps = (len(FILE_MANTISSAS) + 6 + len(fprs)) * len(codec_list)
    with Progress(n_steps, "study 2: ROOT files", unit="files") as bar:
        results["disk"] = disk_sizes(model, sample, x, fprs, codec_list, bar)
    results["cpu"] = cpu_cost(model, x, batch_sizes, codec_list, cpu_jets)
    codec_names = [c.name for c in codec_list]
    results["pareto"] = pareto_points(results["fidelity"], results["disk"], codec_names)
    results["pareto_front"] = {v: pareto_front(p) for v, p in results["pareto"].items()}
    origin = plotting.origin_of_files(sample.files)
    figs = plot_pareto(results["pareto"], out_dir, model.name, origin)
    figs += plot_fidelity(results["fidelity"], model.variables, out_dir, model.name, origin)
    figs += plot_bytes(results["disk"], out_dir, model.name, origin)
    figs += plot_cpu(results["cpu"], out_dir, model.name, origin)

    samples = [sample, *(others or {}).values()]
    rd = rate_distortion.run(samples, list(rd_models or [model_dir]), quick=rd_quick, log=log)
    rd["conclusion"] = rate_distortion_text.conclusion(rd)
    figs += rate_distortion_plot.plot_all(rd, out_dir, {s.name: plotting.origin_of_files(s.files) for s in samples})
    results["rate_distortion"] = rd
    results["figures"] = figs
    results["conclusion"] = conclusion(results) + " Rate-distortion (codecs against every AE): " + \
        rate_distortion_text.summary(rd)
    return results


def _width(table: dict[str, Any], var: str) -> float:
    return float(table[var]["core_half_width"])


def plot_fidelity(fid: dict[str, Any], names: list[str], out_dir: str, model_name: str,
                  origin: plotting.Origin | None = None) -> list[str]:
    paths = []
    schemes = list(fid["inputs"])
    xs = np.arange(len(schemes))
    for var in names:
        series = [
            {"x": xs, "y": [_width(fid["inputs"][s]["precompression_alone"], var) for s in schemes],
             "label": "pre-compression alone", "style": "s-"},
            {"x": xs, "y": [_width(fid["inputs"][s]["ae_on_precompressed"], var) for s in schemes],
             "label": "AE on pre-compressed input", "style": "o-"},
            {"x": np.arange(len(schemes)), "y": [_width(fid["ae_on_raw"], var)] * len(schemes),
             "label": "AE on raw float32", "style": "--"},
            {"x": np.arange(len(fid["latent"])), "y": [_width(fid["latent"][s], var) for s in fid["latent"]],
             "label": "AE, latent stored as (x axis)", "style": "^:"},
        ]
        paths += plotting.lines(series, out_dir, f"s2_fidelity_{var}", "storage precision",
                                f"jet {var} residual core half-width", logy=True, extra=model_name, xticks=schemes,
                                origin=origin)
    return paths


def plot_bytes(disk: dict[str, Any], out_dir: str, model_name: str,
               origin: plotting.Origin | None = None) -> list[str]:
    plotting.setup()
    import matplotlib.pyplot as plt

    configs = list(disk["configs"])
    codec_names = list(next(iter(disk["configs"].values()))["codecs"])
    fig, ax = plt.subplots(figsize=(11, 6))
    width = 0.8 / len(codec_names)
    for j, c in enumerate(codec_names):
        ax.bar(np.arange(len(configs)) + j * width, [disk["configs"][k]["codecs"][c]["bytes_per_event"]
                                                     for k in configs], width, label=c)
    ax.set_xticks(np.arange(len(configs)) + 0.4, configs, rotation=40, ha="right", fontsize=9)
    ax.minorticks_off()
    ax.set_ylabel("bytes / event on disk")
    ax.legend(ncol=4, fontsize=8)
    plotting.label(ax, extra=f"{model_name}, {disk['n_events']} events", origin=origin)
    return plotting.save(fig, out_dir, "s2_bytes_per_event")


def plot_cpu(cpu: dict[str, Any], out_dir: str, model_name: str,
             origin: plotting.Origin | None = None) -> list[str]:
    rows = cpu["rows"]
    keep = [k for k in rows if k in ("encode", "decode", "scorer", "round mantissa m10") or (k.endswith("compress")
            and any(s in k for s in ("zlib-6", "lz4-1", "zstd-5", "lzma-1")))]
    series = [{"x": [int(b) for b in rows[k]], "y": [v["cycles_per_jet"] for v in rows[k].values()], "label": k,
               "style": "o-" if k in ("encode", "decode", "scorer") else "s--"} for k in keep]
    return plotting.lines(series, out_dir, "s2_cpu_cycles_per_jet", "batch size [jets]", "CPU cycles / jet",
                          logx=True, logy=True, extra=f"{model_name}, 1 thread, {cpu['clock_mhz']:.0f} MHz",
                          origin=origin)


def conclusion(r: dict[str, Any]) -> str:
    fid, disk, cpu = r["fidelity"], r["disk"], r["cpu"]
    names = disk["variables"]
    v0 = "pt" if "pt" in names else names[0]
    raw = disk["configs"]["raw float32"]["codecs"]
    best_raw = min(raw.items(), key=lambda kv: kv[1]["bytes_per_event"])
    ae = disk["configs"]["AE latent float32"]["codecs"]
    best_ae = min(ae.items(), key=lambda kv: kv[1]["bytes_per_event"])
    ae16 = disk["configs"]["AE latent float16"]["codecs"]
    best_ae16 = min(ae16.items(), key=lambda kv: kv[1]["bytes_per_event"])
    fb = [k for k in disk["configs"] if "fallback" in k]
    parts = [
        f"Raw float32 {names} take {raw['none']['bytes_per_event']:.1f} B/event uncompressed and "
        f"{best_raw[1]['bytes_per_event']:.1f} B/event with the best lossless codec ({best_raw[0]}).",
        f"AE latents take {best_ae[1]['bytes_per_event']:.1f} B/event as float32 ({best_ae[0]}) and "
        f"{best_ae16[1]['bytes_per_event']:.1f} B/event as float16 ({best_ae16[0]}), card included: a compression "
        f"ratio of {best_ae16[1]['compression_ratio']:.1f} against raw float32.",
    ]
    for k in fb:
        row = min(disk["configs"][k]["codecs"].items(), key=lambda kv: kv[1]["bytes_per_event"])
        parts.append(f"With raw fallback ({k.split('@')[1].strip()}) it is {row[1]['bytes_per_event']:.1f} B/event.")
    ae_w = _width(fid["ae_on_raw"], v0)
    for scheme in ("m10", "float16", "bfloat16", "m5"):
        if scheme in fid["inputs"]:
            alone = _width(fid["inputs"][scheme]["precompression_alone"], v0)
            with_ae = _width(fid["inputs"][scheme]["ae_on_precompressed"], v0)
            parts.append(f"{scheme} inputs: {v0} width {alone:.2g} from the rounding alone, {with_ae:.3g} after the "
                         f"AE (AE on raw: {ae_w:.3g}).")
    l16 = _width(fid["latent"]["float16"], v0)
    parts.append(f"Storing the latent as float16 gives {v0} width {l16:.3g} (float32 latent: "
                 f"{_width(fid['latent']['float32'], v0):.3g}).")
    rows = cpu["rows"]
    big = max(rows["encode"], key=int)
    enc, dec = rows["encode"][big], rows["decode"][big]
    parts.append(f"CPU at batch {big}: encode {enc['us_per_jet_cpu']:.3f} us/jet "
                 f"({enc['cycles_per_jet']:.0f} cycles), decode {dec['us_per_jet_cpu']:.3f}"
                 f" us/jet, scorer {rows['scorer'][big]['us_per_jet_cpu']:.3f} us/jet; at batch 1 encode costs "
                 f"{rows['encode']['1']['us_per_jet_cpu']:.1f} us/jet." if "1" in rows["encode"] else "")
    viable = [s for s in ("m10", "float16", "bfloat16", "m8", "m5") if s in fid["inputs"] and
              _width(fid["inputs"][s]["ae_on_precompressed"], v0) <= 1.1 * ae_w]
    parts.append("Viable on already-compressed data (AE width within 10% of raw-input AE): "
                 + (", ".join(viable) if viable else "none of the tested precisions") + ".")
    return " ".join(p for p in parts if p)
