"""The run summary: merge the stages' --report JSONs and the recording into ``summary.json``.

The keys are exactly those of docs/design.md "Run summary":

* ``events``: produced (unique events sent, resends not counted), encoded (events the encoders
  that reported scored, re-encoded resends included), recorded (unique event ids of the run in
  the recording), flagged (recorded events with flag 1), dropped (deadtime drops, every stage),
  lost (event ids the producer sent that the recording lacks), duplicates_discarded (events the
  sink discarded as already recorded), duplicates_recorded (event ids recorded more than once);
* ``batches``: sent, resent (producer);
* ``rejected``: messages by reason, summed over the stages (only non-zero reasons);
* ``throughput_events_per_s``: recorded events per second of the producer's sending time;
* ``latency_seconds``: decision and commit, each p50, p90, p99, p999 (per event, from the sink), and
  ``decision_hops``: the decision latency's hops (to_encoder, in_encoder, to_sink) the same way;
* ``restarts``: restarts of each supervised stage (sink, encoders) by `aetrig run`;
* ``anomaly``: which model scored and flagged the events, from the encoder reports: ``scoring``
  (e.g. "event-level model EVT_AE_ht", or "per-jet max error of M (fallback: stream lacks X)"),
  ``model``, ``level``, ``card_sha256``, ``threshold_source``, ``threshold``, ``domain`` (the model's
  training domain, card ``domain.jets``), ``domain_selection`` ("on", "off (--score-all-jets)" or "none
  stated") and ``out_of_domain_jets`` (summed over the encoders); ``encoders_disagree`` lists the distinct
  choices when the encoders did not all choose the same;
* ``threshold_check``: the flagged fraction against the fraction the threshold was set for, summed over
  the encoders, with the rule and warning of emulator/runtime/threshold_check.py (None without reports);
* ``recording_bytes``: the recording's bytes on disk per event and per jet, split into latents, identity,
  scores and flags, raw copies, cards and metadata, ROOT overhead, with study 2's best lossless codec on the
  same jets and the ratio (consumer/offline/recording_bytes.py); None when the recording cannot be read;
* ``jet_error``: ``computed`` (the encoders computed per-jet errors: true, false, or "mixed") and
  ``recorded`` (the sink recorded the ``jet_error`` branch), None where no stage said;
* ``input``: what the producer's input screen found and left out (producer/jet_screen.py InputCounts:
  non-finite and sentinel values, the jets dropped for them and their kept events, events cut to the jet
  cap, Cartesian pt = 0 jets), all 0 when the producer did not report.

A restarted stage leaves one report per instance (killed ones none): the encoders' are all merged,
the sink's combined by ``combine_sink_reports``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emulator.runtime import threshold_check
from emulator.runtime.latency_stats import HOP_LABELS

PERCENTILE_KEYS = ("p50", "p90", "p99", "p999")


def recording_counts(directory: str | Path, run_id: int | None, produced: int | None) -> dict[str, int]:
    """recorded, flagged, duplicates_recorded and lost for ``run_id`` from the recording itself."""
    from emulator.runtime.recording import RecordingError, open_recording

    try:
        rec = open_recording(directory)
    except RecordingError:
        return {"recorded": 0, "flagged": 0, "duplicates_recorded": 0, "lost": int(produced or 0)}
    ids, flags = [], []
    for _, arrays in rec.iter_arrays(["run_id", "event_id", "flag"]):
        mine = np.ones(len(arrays), bool) if run_id is None else np.asarray(arrays["run_id"]) == np.uint64(run_id)
        ids.append(np.asarray(arrays["event_id"])[mine])
        flags.append(np.asarray(arrays["flag"])[mine])
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.uint64)
    all_flags = np.concatenate(flags) if flags else np.zeros(0, np.uint8)
    unique, first = np.unique(all_ids, return_index=True)
    lost = 0
    if produced is not None:
        lost = int(produced - np.count_nonzero(unique < np.uint64(produced)))
    return {"recorded": len(unique), "flagged": int(np.count_nonzero(all_flags[first])),
            "duplicates_recorded": len(all_ids) - len(unique), "lost": lost}


def _percentiles(block: Mapping[str, Any] | None) -> dict[str, float | None]:
    block = block or {}
    return {k: block.get(k) for k in PERCENTILE_KEYS}


def combine_sink_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """One sink report from those of its successive instances: counts and rejections summed, latency
    percentiles from the instance that recorded the most events (percentiles do not add)."""
    if not reports:
        return None
    rejected: dict[str, int] = {}
    for r in reports:
        for reason, n in (r.get("rejected") or {}).items():
            rejected[reason] = rejected.get(reason, 0) + int(n)
    busiest = max(reports, key=lambda r: int(r.get("recorded_events", 0)))
    return {"duplicates_discarded": sum(int(r.get("duplicates_discarded", 0)) for r in reports),
            "dropped": sum(int(r.get("dropped", 0)) for r in reports), "rejected": rejected,
            "latency_seconds": busiest.get("latency_seconds") or {},
            "jet_error_recorded": agreed([r.get("jet_error_recorded") for r in reports])}


ANOMALY_KEYS = ("scoring", "model", "level", "card_sha256", "threshold_source", "threshold", "domain",
                "domain_selection")


def anomaly_summary(encoders: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``anomaly`` block: the encoders' choice (the one most of them made; all listed if they differ)."""
    choices = [{k: e["anomaly"].get(k) for k in ANOMALY_KEYS} for e in encoders if e.get("anomaly")]
    if not choices:
        return dict.fromkeys((*ANOMALY_KEYS, "out_of_domain_jets"))
    distinct = [c for i, c in enumerate(choices) if c not in choices[:i]]
    main = max(distinct, key=choices.count)
    return {**main, "out_of_domain_jets": sum(int(e.get("out_of_domain_jets") or 0) for e in encoders),
            **({"encoders_disagree": distinct} if len(distinct) > 1 else {})}


def agreed(values: Sequence[Any]) -> Any:
    """The one value every report gave (None for none, "mixed" when they differ)."""
    given = [v for v in values if v is not None]
    return None if not given else given[0] if all(v == given[0] for v in given) else "mixed"


def merge(producer: Mapping[str, Any] | None, encoders: Sequence[Mapping[str, Any]], sink: Mapping[str, Any] | None,
          recorded: Mapping[str, int], restarts: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The summary dict from the stage reports (any may be missing: a killed stage writes none)."""
    producer, sink = producer or {}, sink or {}
    rejected: dict[str, int] = {}
    for report in [producer, *encoders, sink]:
        for reason, n in (report.get("rejected") or {}).items():
            if n:
                rejected[reason] = rejected.get(reason, 0) + int(n)
    dropped = int(producer.get("dropped", 0)) + sum(int(e.get("dropped", 0)) for e in encoders) \
        + int(sink.get("dropped", 0))
    sending = float(producer.get("duration_s") or 0.0)
    latency = sink.get("latency_seconds") or {}
    return {
        "events": {
            "produced": int(producer.get("produced", 0)),
            "encoded": sum(int(e.get("events", 0)) for e in encoders),
            "recorded": int(recorded["recorded"]),
            "flagged": int(recorded["flagged"]),
            "dropped": dropped,
            "lost": int(recorded["lost"]),
            "duplicates_discarded": int(sink.get("duplicates_discarded", 0)),
            "duplicates_recorded": int(recorded["duplicates_recorded"]),
        },
        "batches": {"sent": int(producer.get("batches_sent", 0)), "resent": int(producer.get("batches_resent", 0))},
        "rejected": rejected,
        "throughput_events_per_s": recorded["recorded"] / sending if sending > 0 else 0.0,
        "latency_seconds": {"decision": _percentiles(latency.get("decision")),
                            "commit": _percentiles(latency.get("commit")),
                            "decision_hops": {hop: _percentiles(block)
                                              for hop, block in (latency.get("decision_hops") or {}).items()}},
        "restarts": {name: int(n) for name, n in (restarts or {}).items()},
        "anomaly": anomaly_summary(encoders),
        "threshold_check": threshold_check.merged([e.get("threshold_check") or {} for e in encoders]),
        "jet_error": {"computed": agreed([e.get("jet_error_computed") for e in encoders]),
                      "recorded": sink.get("jet_error_recorded")},
        "input": {k: int(v) for k, v in (producer.get("input_checks") or {}).items()},
    }


def input_text(checks: Mapping[str, int]) -> str | None:
    """The end-of-run line of the input screen, or None when it left nothing out."""
    parts = [(checks.get("jets_dropped_non_finite", 0), "with NaN/inf"), (checks.get("jets_dropped_sentinel", 0),
             "with a sentinel (<= -999)"), (checks.get("jets_dropped_over_cap", 0), "beyond the jet cap"),
             (checks.get("zero_pt_jets_dropped", 0), "with pt = 0 (Cartesian input)")]
    dropped = [f"{n} {why}" for n, why in parts if n]
    if not dropped:
        return None
    return (f"left out jets: {', '.join(dropped)}; every event kept ({checks.get('events_with_dropped_jets', 0)} "
            f"with bad values, {checks.get('events_over_jet_cap', 0)} over the cap)")


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.1f}"


def latency_text(latency: Mapping[str, Any]) -> str:
    """The end-of-run latency line: decision p50/p99, its p99 by hop (where the encoders stamp them), commit p99."""
    decision, commit = latency.get("decision") or {}, latency.get("commit") or {}
    text = f"decision p50/p99 {_ms(decision.get('p50'))}/{_ms(decision.get('p99'))} ms"
    hops = latency.get("decision_hops") or {}
    if any((hops.get(h) or {}).get("p99") is not None for h in HOP_LABELS):
        text += " (p99 by hop: " + ", ".join(f"{label} {_ms((hops.get(h) or {}).get('p99'))}"
                                             for h, label in HOP_LABELS.items()) + " ms)"
    return text + f"; commit p99 {_ms(commit.get('p99'))} ms"

