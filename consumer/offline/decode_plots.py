"""The standard plots of a decoded recording, joined to its input files by (file_index, entry).

For each model variable: input vs decoded with a ratio panel, residual and response histograms
(mean, RMS, core half-width printed); the residual correlation matrix; latent pairs. The raw
columns of flagged events are compared bit for bit with the joined inputs. Statistics go to
``summary.json`` in the plot directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from emulator.runtime import plotting
from emulator.runtime.atomic import write_json_atomic
from emulator.runtime.defaults import REPO
from emulator.runtime.wire import jet_column, raw_column, raw_column_variable
from models.runtime.residuals import RELATIVE_VARIABLES, residual_summary

if TYPE_CHECKING:
    from emulator.runtime.plotting import Origin


def read_decoded(path: str | Path, max_events: int | None = None) -> tuple[ak.Array, dict[str, Any], dict[str, Any]]:
    """(events, card, {run hex: manifest}) of a decoded file."""
    import uproot

    with uproot.open(path) as f:
        card = json.loads(str(f["card"]))
        manifests = json.loads(str(f["manifests"])) if "manifests" in f else {}
        if "events" not in f:
            return ak.Array([]), card, manifests
        events = f["events"].arrays(entry_stop=max_events, library="ak")
    return events, card, manifests


def join_decoded(events: ak.Array, manifests: dict[str, Any], variables: list[str],
                 search_dirs: list[str]) -> ak.Array:
    """Input jets of every decoded event (per run, via that run's manifest), aligned with ``events``."""
    from consumer.offline.join import JoinError, join_inputs

    run_ids = np.asarray(events["run_id"]).astype(np.uint64)
    parts, where = [], []
    for run in np.unique(run_ids):
        manifest = manifests.get(f"{int(run):016x}")
        if manifest is None:
            raise JoinError(f"no manifest for run {int(run):016x} in the decoded file")
        sel = np.nonzero(run_ids == run)[0]
        parts.append(join_inputs(np.asarray(events["file_index"])[sel], np.asarray(events["entry"])[sel], manifest,
                                 variables, search_dirs=search_dirs))
        where.append(sel)
    joined = ak.concatenate(parts) if len(parts) > 1 else parts[0]
    return joined[np.argsort(np.concatenate(where), kind="stable")]


def input_origin(manifests: dict[str, Any], search_dirs: list[str]) -> Origin | None:
    """Generator and √s of the runs' input files (their ROOT metadata) for the plot label; None if unknown."""
    from consumer.offline.join import JoinError, manifest_inputs, resolve_path

    try:
        paths = [resolve_path(f.path, search_dirs) for m in manifests.values() for f in manifest_inputs(m)]
    except JoinError:
        return None
    return plotting.origin_of_files(paths)


def make_plots(decoded_path: str | Path, out_dir: str | Path, recording_dir: str | Path | None = None,
               max_events: int | None = 200_000) -> dict[str, Any]:
    """Make the standard plots; return {"plots": [...], "stats": {...}, "raw_passthrough": {...}}."""

    out_dir = str(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    events, card, manifests = read_decoded(decoded_path, max_events)
    variables = [str(v["name"]) for v in card["variables"]]
    units = {str(v["name"]): str(v.get("unit", "")) for v in card["variables"]}
    if len(events) == 0:
        raise ValueError(f"{decoded_path}: no events to plot")
    search = [os.getcwd(), str(REPO)]
    if recording_dir is not None:
        search += [str(recording_dir), str(Path(recording_dir).parent)]
    raw_vars = [v for f in events.fields if (v := raw_column_variable(f))]
    joined = join_decoded(events, manifests, list(dict.fromkeys([*variables, *raw_vars, "pt", "eta"])), search)
    n_dec = ak.to_numpy(ak.num(events[jet_column(variables[0])], axis=1))
    n_in = ak.to_numpy(ak.num(joined[variables[0]], axis=1))
    if not np.array_equal(n_dec, n_in):
        bad = int(np.nonzero(n_dec != n_in)[0][0])
        raise ValueError(f"jet counts differ between recording and input at decoded event {bad} "
                         f"({n_dec[bad]} vs {n_in[bad]}): the input files changed or the join is wrong")
    model = str(card.get("name", "model"))
    extra = f"{model}, {len(events)} events, {int(n_dec.sum())} jets"
    origin = input_origin(manifests, search)
    plots: list[str] = []
    stats: dict[str, Any] = {}
    residual_cols: dict[str, np.ndarray] = {}
    positive = np.ones(int(n_dec.sum()), dtype=bool)
    inputs = {v: ak.to_numpy(ak.flatten(joined[v])).astype(np.float64) for v in variables}
    decoded = {v: ak.to_numpy(ak.flatten(events[jet_column(v)])).astype(np.float64) for v in variables}
    for v in variables:
        plots += plotting.input_vs_decoded(inputs[v], decoded[v], v, units[v], out_dir, extra=extra, origin=origin)
        paths, _ = plotting.residual_histograms(inputs[v], decoded[v], v, units[v], out_dir, extra=extra,
                                                origin=origin)
        plots += paths
        kind = "relative" if v in RELATIVE_VARIABLES else "absolute"
        if kind == "relative":
            positive &= inputs[v] > 0
            res = np.where(inputs[v] > 0, (decoded[v] - inputs[v]) / np.where(inputs[v] > 0, inputs[v], 1), np.nan)
        else:
            res = decoded[v] - inputs[v]
        residual_cols[v] = res
        stats[v] = {"kind": kind, **residual_summary(res[np.isfinite(res)])}
    paths, matrix = plotting.correlation_matrix({v: r[positive] for v, r in residual_cols.items()}, out_dir,
                                                extra=extra, origin=origin)
    plots += paths
    latent_names = sorted((f for f in events.fields if f.startswith("jet_latent_")),
                          key=lambda s: int(s.rsplit("_", 1)[1]))
    if latent_names:
        latent = np.stack([ak.to_numpy(ak.flatten(events[n])) for n in latent_names], axis=1)
        plots += plotting.latent_pairs(latent, out_dir, extra=extra, origin=origin)
    raw_check = raw_passthrough(events, joined, raw_vars)
    by_domain = domain_fidelity(card, joined, n_dec, residual_cols)
    result = {"decoded": str(decoded_path), "model": model, "n_events": len(events), "n_jets": int(n_dec.sum()),
              "stats": stats, "residual_correlation": {"variables": variables, "matrix": matrix.tolist()},
              "by_domain": by_domain, "raw_passthrough": raw_check, "plots": plots}
    write_json_atomic(os.path.join(out_dir, "summary.json"), result)
    return result


def domain_fidelity(card: dict[str, Any], joined: ak.Array, counts: np.ndarray,
                    residuals: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The residual summaries of the jets inside and outside the model's training domain (card ``domain``,
    models/runtime/domain.py, on the input jets' pt and eta), or None when the card states no domain."""
    from models.runtime.domain import Domain

    domain = Domain.from_card(card)
    if domain is None:
        return None
    pt = ak.to_numpy(ak.flatten(joined["pt"])).astype(np.float64)
    eta = ak.to_numpy(ak.flatten(joined["eta"])).astype(np.float64)
    inside = domain.mask(pt, eta, counts)
    out: dict[str, Any] = {"domain": domain.card_block("card")["jets"]}
    for name, keep in (("inside", inside), ("outside", ~inside)):
        out[name] = {"n_jets": int(keep.sum()), "stats": {
            v: residual_summary(r[keep & np.isfinite(r)]) if (keep & np.isfinite(r)).any() else None
            for v, r in residuals.items()}}
    return out


def raw_passthrough(events: ak.Array, joined: ak.Array, variables: list[str]) -> dict[str, Any]:
    """Compare the raw columns ``variables`` of flagged events with the joined inputs bit for bit."""
    flagged = np.asarray(events["flag"]).astype(bool)
    out: dict[str, Any] = {"flagged_events": int(flagged.sum()), "variables": {}}
    for v in variables:
        name = raw_column(v)
        if name not in events.fields:
            continue
        raw = ak.to_numpy(ak.flatten(events[name][flagged])).astype(np.float32)
        ref = ak.to_numpy(ak.flatten(joined[v][flagged])).astype(np.float32)
        same = raw.shape == ref.shape and bool(np.array_equal(raw.view(np.uint32), ref.view(np.uint32)))
        out["variables"][v] = {"jets": int(raw.size), "bit_exact": same}
    return out
