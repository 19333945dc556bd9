"""Bits per jet and CPU of the recording's latent coders on held-out samples: the factorised tables against the
context model (models/runtime/latent_context.py), both on the sink's commit blocks, with the ideal coder's
reference (:mod:`consumer.offline.studies.rate_floor`: jets alone and with an event context).

For each sample: the model's encoder gives the symbols; they are coded in blocks of the sink's ``--commit-events``
(what one commit codes); the coded bytes are decoded back and compared bit for bit. CPU is process CPU time
(``time.process_time``) per event, best of ``repeats``: wall time means nothing on a loaded machine.

    python -m consumer.offline.studies.rate_coding producer/samples/qcd.root --model models/zoo/RD_AE_g23
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from models.runtime import latent_coding as lc
from models.runtime import latent_context as lx


def blocks_of(counts: np.ndarray, block_events: int) -> list[tuple[int, int, int, int]]:
    """(first event, end event, first jet, end jet) of consecutive blocks of ``block_events`` events."""
    starts = np.concatenate([[0], np.cumsum(counts)])
    return [(a, min(a + block_events, len(counts)), int(starts[a]), int(starts[min(a + block_events, len(counts))]))
            for a in range(0, len(counts), block_events)]


def _best_cpu(work: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.process_time()
        out = work()
        best = min(best, time.process_time() - t)
    return best, out


def coder_figures(q: np.ndarray, counts: np.ndarray, coder: lx.Coder, block_events: int,
                  repeats: int = 3) -> dict[str, Any]:
    """Coded bits per jet, ideal bits per jet, exact round trip and CPU µs per event of one coder."""
    blocks = blocks_of(counts, block_events)
    enc_s, data = _best_cpu(lambda: [lx.encode_block(q[j0:j1], counts[a:b], coder) for a, b, j0, j1 in blocks],
                            repeats)
    dec_s, back = _best_cpu(lambda: [lx.decode_block(d, counts[a:b], coder)
                                     for d, (a, b, _, _) in zip(data, blocks, strict=True)], repeats)
    exact = all(np.array_equal(r, q[j0:j1]) for r, (_, _, j0, j1) in zip(back, blocks, strict=True))
    ideal = (lx.ideal_bits(q, counts, coder) if isinstance(coder, lx.ContextModel) else lc.ideal_bits(q, coder))
    n_jets, n_events = max(len(q), 1), max(len(counts), 1)
    return {"coded_bits_per_jet": 8.0 * sum(len(d) for d in data) / n_jets, "ideal_bits_per_jet": ideal / n_jets,
            "round_trip_exact": bool(exact), "encode_cpu_us_per_event": 1e6 * enc_s / n_events,
            "decode_cpu_us_per_event": 1e6 * dec_s / n_events, "blocks": len(blocks)}


def sample_figures(model_dir: str, files: Sequence[str], block_events: int, repeats: int = 3,
                   max_events: int | None = None) -> dict[str, Any]:
    """Both coders and the rate floor on the jets of ``files``."""
    from consumer.offline.studies.rate_floor import reference_bits
    from models.runtime.card import read_card
    from models.runtime.data import load_jets

    card = read_card(model_dir)
    sample = load_jets(list(files), [v["name"] for v in card["variables"]], max_events=max_events)
    base = lc.load_entropy_model(model_dir)
    latent = lc.encoder_session(model_dir).run(["latent"], {"x": np.ascontiguousarray(sample.values, np.float32)})[0]
    q, counts = lc.quantise(latent, base), np.asarray(sample.counts, np.int64)
    out: dict[str, Any] = {"files": sample.files, "events": len(counts), "jets": len(q), "block_events": block_events,
                           "factorised": coder_figures(q, counts, base, block_events, repeats)}
    context = lx.context_text(card)
    if context is not None:
        out["context"] = coder_figures(q, counts, lx.coder_from_text(context), block_events, repeats)
    if card["variables"] and [v["name"] for v in card["variables"]] == ["pt", "eta", "phi", "e"]:
        floor = reference_bits(sample.values, counts)
        out["floor"] = {"per_jet_bits": floor["per_jet"]["total"],
                        "event_context_bits": floor["event_context"]["total"]}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from consumer.offline.studies.rate_distortion import BLOCK_EVENTS
    from emulator.runtime.defaults import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="held-out samples (never the context model's training files)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="rate-trained model dir (default: %(default)s)")
    parser.add_argument("--block-events", type=int, default=BLOCK_EVENTS,
                        help="events per commit (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="CPU: best of this many runs (default: %(default)s)")
    parser.add_argument("--max-events", type=int, default=None, help="first events of each file only")
    args = parser.parse_args(argv)
    if args.block_events < 1 or args.repeats < 1:
        parser.error("--block-events and --repeats must be at least 1")
    result = {f: sample_figures(args.model, [f], args.block_events, args.repeats, args.max_events) for f in args.files}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
