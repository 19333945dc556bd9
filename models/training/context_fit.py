"""Fit a rate-trained model's context model (models/runtime/latent_context.py) on training jets and put it in the
model's card, where the sink finds it (``entropy_coding.context_model``).

The features are chosen on the training sample alone: fitted on its first ``1 - validation`` of events, the bits per
jet are measured on the rest (:func:`held_out_bits`); the shipped tables are then fitted on every training event.
The card records the command, the training files (with sha256) and the held-out figures. Never fit on a sample
the coder is reported on.

    aetrig context-fit --model models/zoo/RD_AE_g23 --input data/qcd_train_50k_seed931.root

The command is appended to the card's ``source.rebuild.commands`` (after the training that made the model).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime import latent_coding as lc
from models.runtime import latent_context as lx
from models.runtime.card import read_card, write_card
from models.runtime.data import load_jets
from models.runtime.rebuild import parent_rebuild

#: coded order of RD_AE_* latents: eta-like (1), phi-like (2), then the energy-like latent (0) given the jet's eta
DEFAULT_ORDER = (1, 2, 0)
RANK = {"of": "rank", "edges": [1, 2, 3]}
#: a ``prev_shift`` feature with ``"map": "pt"`` gets the map :func:`pt_shift_map` fits on the training jets' pT
PT_MAP = "pt"
#: per coded latent: eta given the jet's rank; phi given rank and the leading jet's phi (dijets are back to back);
#: energy given rank, the previous jet's pT seen at this jet's eta (jets come in pT order) and the jet's own eta.
#: Chosen on seed 931's held-out fifth (bits per jet: rank and lead phi 21.12, the pT shift instead of the previous
#: jet's energy latent 20.93, smoothing 0.25 rather than 0.5, 1 or 2 by 0.01-0.12)
DEFAULT_FEATURES: list[list[dict[str, Any]]] = [
    [RANK],
    [RANK, {"of": "lead", "latent": 2, "bins": 16}],
    [RANK, {"of": "prev_shift", "latent": 0, "via": 1, "map": PT_MAP, "bins": 8},
     {"of": "self", "latent": 1, "bins": 8}],
]
DEFAULT_SMOOTHING = 0.25
DEFAULT_VALIDATION = 0.2
EXAMPLES = """
aetrig generate --process qcd --events 50000 --seed 931 --jobs 1 --out data/qcd_train_50k_seed931.root
aetrig context-fit --model models/zoo/RD_AE_g23 --input data/qcd_train_50k_seed931.root
"""


def sample_symbols(model_dir: str | Path, files: Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray, Any]:
    """(symbols [jets, k], jets per event, the sample) of the model's encoder on ``files``."""
    card = read_card(model_dir)
    sample = load_jets(list(files), [v["name"] for v in card["variables"]])
    base = lc.load_entropy_model(model_dir)
    latent = lc.encoder_session(model_dir).run(["latent"], {"x": np.ascontiguousarray(sample.values, np.float32)})[0]
    return lc.quantise(latent, base), np.asarray(sample.counts, np.int64), sample


def pt_shift_map(q: np.ndarray, pt: np.ndarray, latent: int, via: int, iterations: int = 4) -> tuple[int, list[int]]:
    """(offset, map) over the symbols of latent ``via`` such that ``q[:, latent] - map[q[:, via]]`` is linear in
    ln pT: the eta-dependent part of an energy-like latent, fitted by alternating the per-symbol means and the
    slope. Symbols never seen take the nearest seen symbol's value (interpolated)."""
    s = q[:, via].astype(np.int64)
    lo, size = int(s.min()), int(s.max() - s.min() + 1)
    ln_pt = np.log(np.asarray(pt, np.float64))
    target = q[:, latent].astype(np.float64)
    slope = float(np.polyfit(ln_pt, target, 1)[0])
    seen = np.bincount(s - lo, minlength=size) > 0
    table = np.zeros(size)
    for _ in range(iterations):
        means = np.bincount(s - lo, target - slope * ln_pt, size) / np.maximum(np.bincount(s - lo, None, size), 1)
        table = np.interp(np.arange(size), np.flatnonzero(seen), means[seen])
        slope = float(np.polyfit(ln_pt, target - table[s - lo], 1)[0])
    return lo, np.rint(table).astype(np.int64).tolist()


def resolve_maps(features: list[list[dict[str, Any]]], q: np.ndarray, pt: np.ndarray) -> list[list[dict[str, Any]]]:
    """The features with every ``"map": "pt"`` replaced by :func:`pt_shift_map` on jets ``q`` of pT ``pt``."""
    out = []
    for spec in features:
        resolved = []
        for f in spec:
            if f.get("map") == PT_MAP:
                offset, table = pt_shift_map(q, pt, int(f["latent"]), int(f["via"]))
                f = {**f, "map_offset": offset, "map": table}
            resolved.append(f)
        out.append(resolved)
    return out


def held_out_bits(q: np.ndarray, counts: np.ndarray, pt: np.ndarray, base: lc.EntropyModel,
                  features: list[list[dict[str, Any]]], order: Sequence[int] = DEFAULT_ORDER,
                  smoothing: float = DEFAULT_SMOOTHING, validation: float = DEFAULT_VALIDATION) -> dict[str, Any]:
    """Ideal bits per jet on the last ``validation`` of events, with tables (and pT maps) fitted on the others:
    context model and factorised tables."""
    n_fit = round(len(counts) * (1.0 - validation))
    jets = int(counts[:n_fit].sum())
    fitted = resolve_maps(features, q[:jets], pt[:jets])
    model = lx.fit(q[:jets], counts[:n_fit], base, tuple(order), fitted, smoothing)
    rest_q, rest_counts = q[jets:], counts[n_fit:]
    n = max(len(rest_q), 1)
    return {"events": len(rest_counts), "jets": len(rest_q), "fit_events": n_fit,
            "context_bits_per_jet": lx.ideal_bits(rest_q, rest_counts, model) / n,
            "factorised_bits_per_jet": lc.ideal_bits(rest_q, base) / n}


def fit_model_dir(model_dir: str | Path, files: Sequence[str | Path], features: list[list[dict[str, Any]]],
                  order: Sequence[int] = DEFAULT_ORDER, smoothing: float = DEFAULT_SMOOTHING,
                  validation: float = DEFAULT_VALIDATION, command: str = "") -> dict[str, Any]:
    """Fit on every event of ``files``, embed the model in the card of ``model_dir`` (written), and return the
    card's ``context_fit`` record (training files, held-out figures)."""
    q, counts, sample = sample_symbols(model_dir, files)
    base = lc.load_entropy_model(model_dir)
    pt = sample.values[:, sample.variables.index("pt")] if "pt" in sample.variables else np.ones(len(q))
    resolved = resolve_maps(features, q, pt)
    record = {"command": command, "data": sample.sample_info(), "order": list(order), "features": features,
              "smoothing": smoothing, "held_out": held_out_bits(q, counts, pt, base, features, order, smoothing,
                                                                validation)}
    model = lx.fit(q, counts, base, tuple(order), resolved, smoothing)
    card = lx.embed_context(read_card(model_dir), model)
    record["training_bits_per_jet"] = lx.ideal_bits(q, counts, model) / max(len(q), 1)
    card["entropy_coding"]["context_fit"] = record
    rebuild = parent_rebuild(card)
    if command and isinstance(rebuild, dict):  # after the training that made the model, once
        rebuild["commands"] = [c for c in rebuild.get("commands", []) if not c.startswith("aetrig context-fit")]
        rebuild["commands"].append(command)
    write_card(model_dir, card)
    return record


def _shown(path: str | Path) -> str:
    """A path as the card records it: relative to the repository when inside it."""
    from emulator.runtime.defaults import REPO

    resolved = Path(path).resolve()
    return resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else str(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from emulator.runtime.defaults import resolve_model

    parser.add_argument("--model", type=resolve_model, required=True, metavar="NAME_OR_DIR",
                        help="rate-trained model directory (its card is rewritten)")
    parser.add_argument("--input", nargs="+", required=True, help="training ROOT files (never a reported sample)")
    parser.add_argument("--features", default=None,
                        help="JSON list (per coded latent) of feature lists (default: DEFAULT_FEATURES)")
    parser.add_argument("--smoothing", type=float, default=DEFAULT_SMOOTHING, help="default: %(default)s")
    parser.add_argument("--validation", type=float, default=DEFAULT_VALIDATION,
                        help="fraction of training events held out to report the fit (default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    features = json.loads(args.features) if args.features else DEFAULT_FEATURES
    if not 0.0 < args.validation < 1.0:
        print("aetrig context-fit: error: --validation must be in (0, 1)", file=sys.stderr)
        return 2
    command = " ".join(["aetrig context-fit", "--model", _shown(args.model), "--input", *map(_shown, args.input)]
                       + ([] if args.features is None else ["--features", shlex.quote(args.features)])
                       + ([] if args.smoothing == DEFAULT_SMOOTHING else ["--smoothing", str(args.smoothing)]))
    try:
        record = fit_model_dir(args.model, args.input, features, DEFAULT_ORDER, args.smoothing, args.validation,
                               command)
    except (lc.LatentCodingError, OSError, ValueError) as exc:
        print(f"aetrig context-fit: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in record.items() if k not in ("data", "features")}, indent=1))
    return 0
