"""A run id the recording already holds, sent again with another manifest (a reused --run-id in a deployment
whose producers drop their manifests in the sink's manifest directory), is refused as wrong_run: counted and
never acknowledged, so the new run's producer reports its events unacknowledged instead of the sink
discarding them silently as duplicates. Also across a sink restart (from the segments' manifest)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from encsink_support import make_tiny_model, manifest_for, replace_header, scored_frames

from emulator.runtime import wire
from models.runtime.card import load_model_dir

RUN = 0x7E5E


def test_a_reused_run_id_with_another_manifest_is_refused(tmp_path: Path, sink_in_thread) -> None:
    card = load_model_dir(make_tiny_model(tmp_path / "model")).card
    rng = np.random.default_rng(4)
    other = {**manifest_for(RUN), "start_time": 123.0}  # the same run id, another run
    other_sha = wire.sha256_hex(wire.canonical_json(other))
    out = tmp_path / "rec"
    with sink_in_thread(out, card=card, run_ids=[RUN], commit_ms=10) as h:
        h.push.send_multipart(scored_frames(RUN, 0, np.array([2, 1]), rng, card))
        assert h.acks.wait_for({0}, 10)
        manifests = Path(h.sink.config.manifest)
        (manifests / "another-run.json").write_text(json.dumps(other))
        time.sleep(1.1)  # the manifest directory is re-read at most once a second
        h.push.send_multipart(replace_header(scored_frames(RUN, 1, np.array([1]), rng, card, 3),
                                             manifest_sha256=other_sha))
        h.push.send_multipart(scored_frames(RUN, 2, np.array([1]), rng, card, 4))
        assert h.acks.wait_for({2}, 10) and 1 not in h.acks.acked
    assert h.report["rejected"] == {"wrong_run": 1}
    with sink_in_thread(out, card=card, run_ids=[RUN], commit_ms=10) as h:  # a restarted sink knows it too
        (Path(h.sink.config.manifest) / "another-run.json").write_text(json.dumps(other))
        time.sleep(1.1)
        h.push.send_multipart(replace_header(scored_frames(RUN, 3, np.array([1]), rng, card, 5),
                                             manifest_sha256=other_sha))
        h.push.send_multipart(scored_frames(RUN, 4, np.array([1]), rng, card, 6))
        assert h.acks.wait_for({4}, 10) and 3 not in h.acks.acked
    assert h.report["rejected"] == {"wrong_run": 1}
