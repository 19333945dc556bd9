"""A reference for study 2's goal: the bits per jet of an ideal scalar quantiser + ideal entropy coder whose
errors sit exactly at the goal's core half-widths.

A uniform quantiser of step ``d`` gives errors uniform on [-d/2, d/2], whose core half-width (half the 16-84 %
span, models/runtime/residuals.core_half_width) is ``0.34 d``; so the goal limit ``w`` sets ``d = w / 0.34``.
Quantised at that step: ln pt (a relative bound), eta, phi and ln(e / (pt cosh eta)) (e given the other three;
its error from theirs is ignored, so the reference is optimistic). The bits are the plug-in entropies of the
symbols on the sample itself (optimistic too). ``event context`` codes each non-leading jet's ln pt relative to
the previous jet's and phi relative to the leading jet's (wrapped), where that needs fewer bits: what an entropy
model that sees the event could save. Not a bound (vector quantisers can do a little better), a scale.

    python -m consumer.offline.studies.rate_floor producer/samples/qcd.root [--limit 0.01]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

#: core half-width / step of a uniform quantiser's error (0.84 - 0.16 = 0.68 of the span [-d/2, d/2])
CORE_PER_STEP = 0.34


def step_for(limit: float) -> float:
    """The uniform quantiser step whose error has core half-width ``limit``."""
    return limit / CORE_PER_STEP


def entropy_bits(values: np.ndarray, step: float) -> float:
    """Plug-in entropy (bits per value) of ``rint(values / step)``; 0 for no values."""
    if len(values) == 0:
        return 0.0
    _, counts = np.unique(np.rint(np.asarray(values, np.float64) / step), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def coded_columns(x: np.ndarray) -> dict[str, np.ndarray]:
    """The per-jet quantities of ``x`` [n, 4] (pt, eta, phi, e): ln pt, eta, phi, ln(e / (pt cosh eta))."""
    x = np.asarray(x, np.float64)
    lnpt = np.log(x[:, 0])
    e_over_p = np.log(x[:, 3]) - lnpt - np.log(np.cosh(x[:, 1]))
    return {"ln_pt": lnpt, "eta": x[:, 1], "phi": x[:, 2], "ln_e_over_p": e_over_p}


def event_context(x: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(leading-jet mask, the context-relative ln pt and phi of every jet) for jets in pT order per event."""
    counts = np.asarray(counts, np.int64)
    first = np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    index = np.arange(len(x))
    lead = index == first
    prev = np.where(lead, index, index - 1)
    cols = coded_columns(x)
    rel = {"ln_pt": cols["ln_pt"] - cols["ln_pt"][prev],
           "phi": np.angle(np.exp(1j * (cols["phi"] - cols["phi"][first])))}
    return lead, rel


def reference_bits(x: np.ndarray, counts: np.ndarray, limit: float = 0.01) -> dict[str, dict[str, float]]:
    """Bits per jet per quantity and in total, per jet alone and with the event context."""
    step = step_for(limit)
    cols = coded_columns(x)
    lead, rel = event_context(x, counts)
    f = float(lead.mean()) if len(x) else 0.0
    alone = {k: entropy_bits(v, step) for k, v in cols.items()}
    ctx = {}
    for k, v in cols.items():
        others = min([entropy_bits(v[~lead], step)] + ([entropy_bits(rel[k][~lead], step)] if k in rel else []))
        ctx[k] = f * entropy_bits(v[lead], step) + (1 - f) * others
    return {"per_jet": {**alone, "total": sum(alone.values())}, "event_context": {**ctx, "total": sum(ctx.values())},
            "step": {"value": step, "limit": limit}}


def main(argv: Sequence[str] | None = None) -> int:
    from models.runtime.data import load_jets

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--limit", type=float, default=0.01, help="core half-width of every variable (goal: 0.01)")
    args = parser.parse_args(argv)
    sample = load_jets(args.files, ["pt", "eta", "phi", "e"])
    out = reference_bits(sample.values, sample.counts, args.limit)
    out["n_jets"] = len(sample.values)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
