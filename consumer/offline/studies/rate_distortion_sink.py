"""Study 2's all-in bytes per jet of an AE, counted on segments the sink's own code writes.

The study's jets, scored by the model (the encoder stage's ``scored_columns``: latents, event score = max jet
error, flag above the threshold, raw copies of flagged events' input variables), go in messages of
:data:`MESSAGE_EVENTS` events (``aetrig run``'s producer framing) through the sink's ``batch_layout`` and
``chunk_from_batches`` into a :class:`~consumer.sink.segment_writer.SegmentWriter` at the sink's defaults
(``--compression``, ``--latent-codec auto``, ``--score-bits``; no ``jet_error``, as with an event-level anomaly
model), one commit per ``commit_events`` events (the sink's ``--commit-events`` default; a live run commits that
many events when ``--commit-ms`` does not cut the commit first). The temporary recording is then counted by
:func:`consumer.offline.recording_bytes.recording_bytes`: every byte of the files, cards and ROOT overhead included.

Typical use::

    split = model_sink_bytes(sample, "models/zoo/RD_AE_g23", fpr=1e-3, events=1_000_000)
    split["per_jet"]["total"]

or from the shell (prints the split as JSON)::

    python -m consumer.offline.studies.rate_distortion_sink producer/samples/qcd.root --events 1000000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from emulator.runtime import wire
from emulator.runtime.wire import Batch

#: events per message of the study's stream (``aetrig run``'s producer framing)
MESSAGE_EVENTS = 2048
RUN_ID = 1


def sink_defaults() -> dict[str, Any]:
    """The sink's default recording settings (consumer/sink/config.py), as a user gets them."""
    from consumer.sink.service import SinkConfig

    fields = {f.name: f.default for f in dataclasses.fields(SinkConfig)}
    keys = ("compression", "latent_codec", "latent_storage_dtype", "score_bits", "commit_events")
    return {k: fields[k] for k in keys}


def scored_batches(x_all: np.ndarray, counts: np.ndarray, variables: Sequence[str], latent: np.ndarray,
             event_score: np.ndarray, threshold: float, latent_dtype: str, message_events: int) -> list[Batch]:
    """Scored messages as the encoder stage builds them (``scored_columns``), ``message_events`` events each."""
    from emulator.encoder.microbatch import scored_columns

    starts = np.concatenate([[0], np.cumsum(counts)])
    out = []
    for seq, lo in enumerate(range(0, len(counts), message_events)):
        hi = min(lo + message_events, len(counts))
        jl, jh = int(starts[lo]), int(starts[hi])
        ids = np.arange(lo, hi, dtype=np.uint64)
        columns: dict[str, np.ndarray] = {"n_jets": counts[lo:hi].astype(np.uint32), "event_id": ids,
                                          "file_index": np.zeros(hi - lo, np.uint32), "entry": ids,
                                          "event_number": ids}
        columns.update({wire.jet_column(v): x_all[jl:jh, i] for i, v in enumerate(variables)})
        header = {"kind": "events", "run_id": RUN_ID, "seq": seq, "n_events": hi - lo, "n_jets": jh - jl,
                  "threshold": float(np.float32(threshold))}
        events = Batch(header, columns)
        scored = scored_columns(events, latent[jl:jh], None, threshold, latent_dtype,
                                event_score=event_score[lo:hi])
        out.append(Batch({**header, "kind": "scored"}, {**scored, "n_jets": columns["n_jets"]}))
    return out


def sink_bytes(model: Any, x_all: np.ndarray, counts: np.ndarray, variables: Sequence[str], latent: np.ndarray,
               event_score: np.ndarray, threshold: float, commit_events: int | None = None,
               message_events: int = MESSAGE_EVENTS, context: bool = True,
               anomaly_card_text: str | None = None) -> dict[str, Any]:
    """Write the scored jets as the sink does, at its defaults, into a temporary recording and count its bytes.

    ``x_all`` [n_jets, len(variables)]: every input variable (the raw copies carry them all); ``latent`` the
    model's latents per jet; ``event_score`` per event; ``context`` False: code the latents with the model's
    factorised tables even when its card has a context model (the sink before format 4); ``anomaly_card_text``: the
    anomaly card the segments store (default: the model's own card, whose per-jet error scores the events; another
    card changes only the stored metadata, e.g. to compare with a live run flagged by an event model). Returns
    :func:`recording_bytes`'s split plus the settings."""
    from consumer.offline.recording_bytes import recording_bytes
    from consumer.sink.scored_chunk import batch_layout, chunk_from_batches
    from consumer.sink.segment_writer import SegmentWriter
    from emulator.runtime.recording import SEGMENT_DIR, segment_name
    from models.runtime.latent_coding import is_rate_card
    from models.runtime.latent_context import recording_model_text

    settings = sink_defaults()
    commit = commit_events or settings["commit_events"]
    batches = scored_batches(x_all, np.asarray(counts, np.int64), variables, latent, event_score, threshold,
                             settings["latent_storage_dtype"], message_events)
    codec = settings["latent_codec"]
    ans = codec == "ans" or (codec == "auto" and is_rate_card(model.card))
    entropy = recording_model_text(model.card, [model.path.parent], context) if ans else ""
    layout = batch_layout(batches[0], settings["latent_storage_dtype"], "ans" if ans else "none", entropy,
                          settings["score_bits"])
    manifest = json.dumps({"run_id": RUN_ID, "files": [], "note": "study 2: the sample's jets"})
    with tempfile.TemporaryDirectory(prefix="aetrig-study2-") as tmp:
        writer = SegmentWriter(f"{tmp}/{SEGMENT_DIR}/{segment_name(RUN_ID, 0)}", model.card_json, manifest, layout,
                               settings["compression"], anomaly_card_text=anomaly_card_text or model.card_json)
        pending: list[Batch] = []
        for batch in batches:
            pending.append(batch)
            if sum(b.n_events for b in pending) >= commit:
                writer.commit(chunk_from_batches(pending, layout))
                pending = []
        if pending:
            writer.commit(chunk_from_batches(pending, layout))
        writer.close()
        split = recording_bytes(tmp)
    return {**split, "settings": {**settings, "commit_events": commit, "message_events": message_events,
                                  "latent_codec_used": "ans" if ans else "none",
                                  "latent_coder": json.loads(entropy)["format"] if ans else "none"}}


def model_sink_bytes(sample: Any, model_dir: str, fpr: float, commit_events: int | None = None,
                     events: int | None = None, context: bool = True,
                     anomaly_card_text: str | None = None) -> dict[str, Any]:
    """:func:`sink_bytes` for the model in ``model_dir`` on ``sample`` (every variable it has), the model's own
    per-jet max error scoring and flagging at ``fpr`` (the encoder stage's scorer, ONNX Runtime).

    ``events`` more than the sample has: the sample looped (as ``aetrig run --loops`` does: the same jets
    again, with new event ids) up to that many events, so that what a segment holds once (cards, manifest,
    TTree metadata) is spread as over a long run; None: the sample once. Looped, a commit holds at most the
    sample's events, so that no basket holds the same jets twice (zstd would find the repeats: float latents
    would look twice as small)."""
    from consumer.offline.studies.common import load_model
    from emulator.runtime.onnx_scorer import OnnxScorer
    from models.runtime.anomaly import event_scores

    model = load_model(model_dir)
    threshold = model.threshold(fpr=fpr)
    latent, error = OnnxScorer(model.scorer_path, model.latent_dim, 1, 2048).score(sample.take(model.variables))
    score = event_scores(error, sample.counts)
    values, counts = sample.values, np.asarray(sample.counts, np.int64)
    message_events = MESSAGE_EVENTS
    if events is not None and events > len(counts):
        loops = -(-events // len(counts))
        n_jets = int(np.cumsum(np.tile(counts, loops))[events - 1])
        values, latent = np.tile(values, (loops, 1))[:n_jets], np.tile(latent, (loops, 1))[:n_jets]
        commit_events = min(commit_events or sink_defaults()["commit_events"], len(counts))
        # messages that tile the sample, so that a commit ends where the sample does
        message_events = max(d for d in range(1, MESSAGE_EVENTS + 1) if len(counts) % d == 0)
        counts, score = np.tile(counts, loops)[:events], np.tile(score, loops)[:events]
    return sink_bytes(model, values, counts, sample.variables, latent, score, threshold, commit_events,
                      message_events, context, anomaly_card_text)


def sink_summary(split: dict[str, Any]) -> dict[str, Any]:
    """The part of :func:`sink_bytes`'s answer a study point keeps: bytes per jet (total and by category)."""
    return {"bytes_per_jet": split["per_jet"]["total"],
            "per_jet": {k: v for k, v in split["per_jet"].items() if k != "total"},
            "bytes": split["bytes"], "events": split["events"], "jets": split["jets"], "segments": split["segments"],
            "settings": split["settings"]}


def main(argv: Sequence[str] | None = None) -> int:
    from consumer.offline.studies.common import load_sample
    from consumer.offline.studies.rate_distortion import FALLBACK_FPR, HEADLINE_EVENTS
    from emulator.runtime.defaults import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="input ROOT files (the study's sample)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="compression model dir (default: %(default)s)")
    parser.add_argument("--events", type=int, default=HEADLINE_EVENTS,
                        help="events to record, the sample looped (default: %(default)s)")
    parser.add_argument("--fpr", type=float, default=FALLBACK_FPR, help="flag rate (default: %(default)s)")
    parser.add_argument("--no-context", action="store_true",
                        help="code the latents with the factorised tables, not the card's context model")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    sample = load_sample("sample", args.files)
    split = model_sink_bytes(sample, args.model, args.fpr, events=args.events, context=not args.no_context)
    print(json.dumps(split, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
