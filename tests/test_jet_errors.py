"""jet_error is optional (it costs the decoder per jet, and nothing flags with it under an event model): when an
event-level model flags, the encoder runs the compression model's encoder.onnx alone (no decoder, no per-jet
error) unless --jet-errors always; the wire accepts a scored message without jet_error only for event-level
scoring; the sink records such segments without the branch and says so in the layout, and refuses a stream that
mixes the two; verify checks what is there, decode writes jet_error only when recorded; recordings made before
(jet_error always there, no layout key) still verify and decode.

Real ONNX Runtime sessions on the shipped models, real ZeroMQ sockets (the sink in a thread), real ROOT files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from encsink_support import (
    LATENT_DIM,
    ROOT,
    VARIABLES,
    card_sha256,
    events_frames,
    make_tiny_model,
    scored_frames,
    segment_texts,
    tiny_forward,
    tiny_weights,
)

from consumer.offline.decode import decode_recording
from consumer.offline.verify import verify_recording
from consumer.sink.scored_chunk import batch_layout, chunk_from_batches
from consumer.sink.segment_writer import SegmentWriter
from emulator.encoder.microbatch import scored_columns, scored_hashes
from emulator.encoder.service import EncoderConfig, EncoderService
from emulator.runtime import wire
from emulator.runtime.defaults import DEFAULT_ANOMALY_MODEL, DEFAULT_MODEL
from emulator.runtime.onnx_scorer import LATENT_ONLY, OnnxScorer
from emulator.runtime.recording import Layout, RecordingError, open_recording, segment_name
from models.runtime import latent_coding as lc
from models.runtime.card import load_model_dir

SAMPLE = ROOT / "producer/samples/darkshower.root"  # carries every variable of the default event model
ALL_VARS = ("pt", "eta", "phi", "m", "e", "width", "tau21", "tau32")
EVENT_CARD = {"name": "evt_test", "level": "event", "version": 1, "files": {"scorer.onnx": "0" * 64}}
RUN = 0x5A
LATENT_RTOL = 1e-5


# ---- shared inputs ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def jets() -> dict[str, np.ndarray]:
    """The first 2000 dark-shower events: per-event counts and flat jet columns."""
    with uproot.open(SAMPLE) as f:
        arrays = f["events"].arrays([f"jet_{v}" for v in ALL_VARS], entry_stop=2000)
    out = {v: np.asarray(ak.flatten(arrays[f"jet_{v}"]), np.float32) for v in ALL_VARS}
    out["counts"] = np.asarray(ak.num(arrays["jet_pt"]), np.int64)
    return out


@pytest.fixture(scope="module")
def compression() -> dict[str, OnnxScorer]:
    """The default compression model's scorer.onnx (latent + error) and encoder.onnx (latent only) sessions."""
    model = load_model_dir(DEFAULT_MODEL)
    return {"scorer": OnnxScorer(model.scorer_path, model.latent_dim, max_rows=700),
            "encoder": OnnxScorer(model.encoder_path, model.latent_dim, max_rows=700, outputs=LATENT_ONLY)}


@pytest.fixture(scope="module")
def tiny_dir(card: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model2"))


def model_input(jets: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([jets[v] for v in load_model_dir(DEFAULT_MODEL).variables], axis=1)


# ---- ONNX Runtime: encoder.onnx gives scorer.onnx's latents --------------------------------------------------------
def test_encoder_graph_latents_equal_scorer_latents(jets, compression) -> None:
    x = model_input(jets)
    assert len(x) > 1400  # several chunks of 700 rows: the chunked path is exercised
    latent_s, error = compression["scorer"].score(x)
    latent_e = compression["encoder"].latents(x)
    assert latent_e.shape == latent_s.shape == (len(x), 3) and error.shape == (len(x),)
    np.testing.assert_allclose(latent_e, latent_s, rtol=LATENT_RTOL, atol=1e-7)
    assert compression["encoder"].latents(x[:0]).shape == (0, 3)
    with pytest.raises(ValueError, match="not the error"):
        compression["encoder"].score(x)


# ---- the encoder service in process (real sessions; the push socket replaced by a list) ------------------------
def events_message(jets: dict[str, np.ndarray], seq: int, lo: int, hi: int, variables=ALL_VARS) -> list[memoryview]:
    starts = np.concatenate([[0], np.cumsum(jets["counts"])])
    n = hi - lo
    cols = {"n_jets": jets["counts"][lo:hi].astype(np.uint32), "event_id": np.arange(lo, hi, dtype=np.uint64),
            "file_index": np.zeros(n, np.uint32), "entry": np.arange(lo, hi, dtype=np.uint64),
            "event_number": np.arange(lo, hi, dtype=np.uint64)}
    for v in variables:
        cols[f"jet_{v}"] = jets[v][starts[lo]:starts[hi]]
    return [memoryview(bytes(f)) for f in wire.encode(wire.KIND_EVENTS, 1, seq, cols, t_send=0.0, rate_hz=1e5,
                                                      manifest_sha256="0" * 64)]


def encode_all(jets: dict[str, np.ndarray], variables=ALL_VARS, **config: object) -> tuple[EncoderService,
                                                                                           list[wire.Batch]]:
    """Score the 2000 events in messages of 500 through a real EncoderService; the scored messages it sent."""
    svc = EncoderService(EncoderConfig(model=DEFAULT_MODEL, connect="tcp://127.0.0.1:1", sink="tcp://127.0.0.1:1",
                                       **config))
    sent: list[wire.Batch] = []
    svc.send = lambda push, fr: sent.append(wire.validate(wire.decode([bytes(f) for f in fr]))) or True
    for seq, lo in enumerate(range(0, 2000, 500)):
        svc.accept(events_message(jets, seq, lo, lo + 500, variables))
        svc.run_micro_batch(None)
    assert sum(b.n_events for b in sent) == 2000
    return svc, sent


def column(sent: list[wire.Batch], name: str) -> np.ndarray:
    return np.concatenate([b.columns[name] for b in sent])


def test_event_model_encoder_sends_latents_without_jet_error(jets, compression) -> None:
    svc, sent = encode_all(jets)
    assert all("jet_error" not in b.columns for b in sent)
    event_card = svc.anomaly.active.sha256  # the event model's card, named by sha256 in every scored header
    assert svc.anomaly.active.level == "event"
    assert all(b.header["anomaly_card_sha256"] == event_card != b.header["card_sha256"] for b in sent)
    latent_s, _ = compression["scorer"].score(model_input(jets))
    np.testing.assert_allclose(column(sent, "jet_latent"), latent_s, rtol=LATENT_RTOL, atol=1e-7)
    report = svc.report()
    assert report["jet_errors"] == "auto" and report["jet_error_computed"] is False
    assert report["compression_graph"] == "encoder.onnx" and report["anomaly"]["level"] == "event"
    assert 0 < column(sent, "flag").sum() < 2000
    assert "latents from encoder.onnx without jet_error if the event-level model flags" in svc.jet_errors_text()


def test_explicit_event_model_loads_no_scorer_session() -> None:
    svc = EncoderService(EncoderConfig(model=DEFAULT_MODEL, connect="tcp://127.0.0.1:1", sink="tcp://127.0.0.1:1",
                                       anomaly_model=str(DEFAULT_ANOMALY_MODEL)))
    assert svc.scorer is None and svc.latent_encoder is not None  # the decoder half is never loaded
    assert svc.jet_errors_text().startswith("latents from encoder.onnx, no jet_error")


def test_jet_errors_always_keeps_jet_error_with_the_event_model(jets, compression) -> None:
    _, auto = encode_all(jets)
    svc, sent = encode_all(jets, jet_errors="always")
    assert svc.latent_encoder is None and svc.report()["compression_graph"] == "scorer.onnx"
    _, error_s = compression["scorer"].score(model_input(jets))
    np.testing.assert_allclose(column(sent, "jet_error"), error_s, rtol=1e-5, atol=0)
    np.testing.assert_allclose(column(sent, "jet_latent"), column(auto, "jet_latent"), rtol=LATENT_RTOL, atol=1e-7)
    # the event model still flags: the scores are the auto run's, not the per-jet max error
    assert np.array_equal(column(sent, "event_score"), column(auto, "event_score"))
    assert np.array_equal(column(sent, "flag"), column(auto, "flag"))


@pytest.mark.parametrize("how", ["none", "fallback"])
def test_per_jet_scoring_always_computes_jet_error(jets, compression, how: str) -> None:
    # fallback: a stream without m has neither EVT_AE_ht's nor EVT_AE_4v's variables
    kw = {"anomaly_model": "none"} if how == "none" else {"variables": ("pt", "eta", "phi", "e")}
    svc, sent = encode_all(jets, **kw)
    assert svc.report()["anomaly"]["level"] == "jet" and svc.report()["jet_error_computed"] is True
    if how == "none":
        assert svc.latent_encoder is None  # per-jet scoring only: no encoder.onnx session
    _, error_s = compression["scorer"].score(model_input(jets))
    np.testing.assert_allclose(column(sent, "jet_error"), error_s, rtol=1e-5, atol=0)
    counts = column(sent, "n_jets").astype(np.int64)
    want = np.zeros(len(counts), np.float32)
    nonempty = counts > 0
    want[nonempty] = np.maximum.reduceat(column(sent, "jet_error"), (np.cumsum(counts) - counts)[nonempty])
    assert np.array_equal(column(sent, "event_score"), want)


# ---- the wire ------------------------------------------------------------------------------------------------------
def event_scored_frames(run_id: int, seq: int, counts: np.ndarray, rng: np.random.Generator, card: dict,
                        first_event_id: int = 0, with_error: bool = False, threshold: float = 0.8) -> list[bytes]:
    """A scored message flagged by an (imaginary) event-level model, with or without jet_error."""
    batch = wire.decode(events_frames(run_id, seq, counts, rng, first_event_id))
    x = np.stack([batch.columns[f"jet_{v}"] for v in VARIABLES], axis=1)
    latent, error = tiny_forward(x, tiny_weights())
    cols = scored_columns(batch, latent.astype(np.float32).reshape(-1, LATENT_DIM),
                          error.astype(np.float32) if with_error else None, threshold, "<f4",
                          event_score=rng.uniform(0, 1, batch.n_events).astype(np.float32))
    frames = wire.encode(wire.KIND_SCORED, run_id, seq, cols, t_send=time.time(), rate_hz=1000.0,
                         t_encoded=time.time(), threshold=threshold, model=card["name"],
                         anomaly_model=EVENT_CARD["name"], encoder="test",
                         **scored_hashes(batch, card_sha256(card), card_sha256(EVENT_CARD)))
    return [bytes(f) for f in frames]


def without(frames: list[bytes], name: str) -> list[bytes]:
    """The same message without one column."""
    batch = wire.decode(frames)
    cols = {k: v for k, v in batch.columns.items() if k != name}
    extra = {k: v for k, v in batch.header.items() if k not in ("v", "kind", "run_id", "seq", "n_events", "n_jets",
                                                                "t_send", "rate_hz", "cols")}
    return [bytes(f) for f in wire.encode(batch.kind, batch.run_id, batch.seq, cols, t_send=batch.header["t_send"],
                                          rate_hz=batch.header["rate_hz"], **extra)]


def test_the_sink_refuses_a_per_jet_message_without_jet_error(tmp_path: Path, card: dict, sink_in_thread) -> None:
    rng = np.random.default_rng(31)
    with sink_in_thread(tmp_path / "rec", card=card, run_ids=[RUN], commit_ms=10) as sink:
        sink.push.send_multipart(without(scored_frames(RUN, 0, rng.integers(1, 5, 30), rng, card), "jet_error"))
        sink.push.send_multipart(scored_frames(RUN, 1, rng.integers(1, 5, 30), rng, card, 30))
        assert sink.acks.wait_for({1}, 10) and 0 not in sink.acks.acked
    assert sink.report["rejected"] == {"missing_column": 1}


# ---- the sink (real ZeroMQ), verify and decode -----------------------------------------------------------------------
def test_event_level_stream_without_jet_error_records_verifies_and_decodes(tmp_path: Path, card: dict, tiny_dir: Path,
                                                                           sink_in_thread) -> None:
    rng = np.random.default_rng(4)
    out = tmp_path / "rec"
    messages = [event_scored_frames(RUN, s, rng.integers(0, 5, 40), rng, card, 40 * s) for s in range(3)]
    with sink_in_thread(out, card=card, run_ids=[RUN], anomaly_card=EVENT_CARD, commit_ms=10) as sink:
        for frames in messages:
            sink.push.send_multipart(frames)
        assert sink.acks.wait_for({0, 1, 2}, 10)
        sink.push.send_multipart(event_scored_frames(RUN, 3, np.array([2, 1]), rng, card, 120, with_error=True))
        time.sleep(0.5)
        sink.acks.poll(100)
        assert 3 not in sink.acks.acked  # refused: this recording holds no jet_error
    assert sink.report["rejected"]["bad_column"] == 1 and sink.report["jet_error_recorded"] is False
    rec = open_recording(out)
    assert all(s.layout["jet_error"] is False and "jet_error" not in s.branches for s in rec.segments)
    assert not rec.has_jet_error and len(rec) == 120
    with pytest.raises(RecordingError, match="hold no jet_error"):
        rec.jet_error()
    latent = np.concatenate([wire.decode(f).columns["jet_latent"] for f in messages])
    assert np.array_equal(rec.latent(), latent)
    result = verify_recording(out, expect_events=120, expect_batches=3)
    assert result.ok, result.problems
    assert result.stats["jet_error_recorded"] is False and result.stats["flags_checked_against_threshold"]
    decoded = tmp_path / "decoded.root"
    summary = decode_recording(out, decoded, model_dir=tiny_dir, progress=False)
    assert summary.n_events == 120
    with uproot.open(decoded) as f:
        branches = set(f["events"].keys())
        assert "jet_error" not in branches and "jet_pt" in branches
        assert json.loads(str(f["metadata"]))["jet_error"] == "not recorded"


def test_resumed_sink_keeps_the_recordings_choice(tmp_path: Path, card: dict, sink_in_thread) -> None:
    """A recording with jet_error (--jet-errors always) refuses a message without it, also after a sink restart;
    a sink started on it with the other layout refuses to start (the recording stays one layout)."""
    rng = np.random.default_rng(8)
    out = tmp_path / "rec"
    with sink_in_thread(out, card=card, run_ids=[RUN], anomaly_card=EVENT_CARD, commit_ms=10,
                        jet_errors="always") as sink:
        sink.push.send_multipart(event_scored_frames(RUN, 0, rng.integers(0, 5, 20), rng, card, 0, with_error=True))
        assert sink.acks.wait_for({0}, 10)
    assert sink.report["jet_error_recorded"] is True
    refused = r"holds segments with jet_error; this sink was started to record without \(event-level model " \
              r"'evt_test' with the sink's --jet-errors auto\)"
    with pytest.raises(ValueError, match=refused), sink_in_thread(out, card=card, run_ids=[RUN],
                                                                  anomaly_card=EVENT_CARD, commit_ms=10):
        pass
    with sink_in_thread(out, card=card, run_ids=[RUN], anomaly_card=EVENT_CARD, commit_ms=10,
                        jet_errors="always") as sink:
        sink.push.send_multipart(event_scored_frames(RUN, 1, rng.integers(0, 5, 20), rng, card, 20))
        sink.push.send_multipart(event_scored_frames(RUN, 2, rng.integers(0, 5, 20), rng, card, 40, with_error=True))
        assert sink.acks.wait_for({2}, 10)
        sink.acks.poll(100)
        assert 1 not in sink.acks.acked
    assert sink.report["rejected"]["missing_column"] == 1
    rec = open_recording(out)
    assert rec.has_jet_error and len(rec.jet_error()) == sum(int(n) for n in rec.events()["n_jets"])
    result = verify_recording(out, expect_events=40)  # the refused batch is missing, and verify says so
    assert result.problems == [f"run {RUN:016x}: 1 missing seqs out of 0..2: 1"]
    assert result.stats["jet_error_recorded"] is True


@pytest.mark.parametrize("jet_errors", ["auto", "always"])
def test_a_first_keyed_message_with_the_other_layout_does_not_decide(tmp_path: Path, card: dict, sink_in_thread,
                                                                     jet_errors: str) -> None:
    """The first message does not decide the layout: on an empty recording a key holder sends first, with the layout
    the sink was not started for. It is a counted rejection, and every genuine batch after it is recorded."""
    rng = np.random.default_rng(23)
    genuine_error = jet_errors == "always"
    out = tmp_path / "rec"
    genuine = [event_scored_frames(RUN, s, rng.integers(0, 6, 30), rng, card, 30 * s, with_error=genuine_error)
               for s in range(1, 6)]
    with sink_in_thread(out, card=card, run_ids=[RUN], anomaly_card=EVENT_CARD, commit_ms=10,
                        jet_errors=jet_errors) as sink:
        sink.push.send_multipart(event_scored_frames(RUN, 0, np.array([3, 1]), rng, card, 1 << 40,
                                                     with_error=not genuine_error))
        for frames in genuine:
            sink.push.send_multipart(frames)
        assert sink.acks.wait_for(set(range(1, 6)), 10)
        sink.acks.poll(100)
        assert 0 not in sink.acks.acked
    reason = "missing_column" if genuine_error else "bad_column"
    assert sink.report["rejected"] == {reason: 1}
    assert sink.report["jet_error_recorded"] is genuine_error
    assert sink.report["recorded_events"] == 150 and sink.report["batches"] == 5
    rec = open_recording(out)
    assert len(rec) == 150 and rec.has_jet_error is genuine_error
    latent = np.concatenate([wire.decode(f).columns["jet_latent"] for f in genuine])
    assert np.array_equal(rec.latent(), latent)
    if genuine_error:
        errors = np.concatenate([wire.decode(f).columns["jet_error"] for f in genuine])
        assert np.array_equal(rec.jet_error(), errors)


def test_the_sinks_layout_follows_the_encoders_rule(tmp_path: Path, card: dict) -> None:
    """The sink expects jet_error by the encoders' rule: per-jet scoring always, an event model only with always."""
    from consumer.sink.expectations import Expectations
    from emulator.runtime.jet_errors import JET_ERRORS, computes_jet_errors

    model, event = tmp_path / "model.json", tmp_path / "event.json"
    model.write_text(json.dumps(card))
    event.write_text(json.dumps(EVENT_CARD))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"run_id": RUN}))
    seen = {}
    for anomaly, level in ((None, "jet"), (event, "event")):
        for setting in JET_ERRORS:
            seen[level, setting] = Expectations.load(model, anomaly, manifest, setting).jet_error
            assert seen[level, setting] is computes_jet_errors(level, setting)
    assert seen == {("jet", "auto"): True, ("jet", "always"): True, ("event", "auto"): False,
                    ("event", "always"): True}
    from consumer.sink.config import SinkConfig, check

    with pytest.raises(ValueError, match="--jet-errors must be one of"):
        check(SinkConfig(bind="tcp://127.0.0.1:1", out=tmp_path, model=model, manifest=str(manifest),
                         jet_errors="never"))


class OldLayout(Layout):
    """The layout JSON sinks wrote before jet_error was optional: no ``jet_error`` key (the branch always there)."""

    def to_json(self) -> str:
        data = json.loads(super().to_json())
        del data["jet_error"]
        return json.dumps(data, sort_keys=True)


def write_segment(out: Path, index: int, batches: list[wire.Batch], layout: Layout, card: dict,
                  anomaly_card: dict | None = None) -> None:
    writer = SegmentWriter(out / "segments" / segment_name(RUN, index), layout=layout,
                           **segment_texts(card, RUN, anomaly_card))
    writer.commit(chunk_from_batches(batches, layout))
    writer.close()


@pytest.mark.parametrize("level", ["jet", "event"])
def test_old_style_recording_with_jet_error_still_verifies_and_decodes(tmp_path: Path, card: dict, tiny_dir: Path,
                                                                       level: str) -> None:
    rng = np.random.default_rng(9)
    make = scored_frames if level == "jet" else (lambda *a: event_scored_frames(*a, with_error=True))
    batches = [wire.validate(wire.decode(make(RUN, s, rng.integers(0, 5, 25), rng, card, 25 * s)))
               for s in range(2)]
    out = tmp_path / "rec"
    new = batch_layout(batches[0], "float32")
    write_segment(out, 0, batches, OldLayout(new.latent_dim, new.latent_storage, new.raw_vars), card,
                  EVENT_CARD if level == "event" else None)
    rec = open_recording(out)
    assert "jet_error" not in rec.segments[0].layout and rec.has_jet_error
    error = np.concatenate([b.columns["jet_error"] for b in batches])
    assert np.array_equal(rec.jet_error(), error)
    result = verify_recording(out, expect_events=50)
    assert result.ok, result.problems
    assert result.stats["jet_error_recorded"] is True
    decoded = tmp_path / "decoded.root"
    decode_recording(out, decoded, model_dir=tiny_dir, progress=False)
    with uproot.open(decoded) as f:
        assert np.array_equal(ak.to_numpy(ak.flatten(f["events"]["jet_error"].array())), error)
        assert json.loads(str(f["metadata"]))["jet_error"] == "copied from the recording"


def test_verify_reports_missing_or_mixed_jet_error(tmp_path: Path, card: dict) -> None:
    rng = np.random.default_rng(10)
    per_jet = [wire.validate(wire.decode(scored_frames(RUN, 0, rng.integers(1, 5, 20), rng, card)))]
    layout = batch_layout(per_jet[0], "float32")
    # a per-jet-scored segment whose layout claims no jet_error: its scores cannot be checked
    write_segment(tmp_path / "bad", 0, per_jet, Layout(layout.latent_dim, layout.latent_storage, layout.raw_vars,
                                                       jet_error=False), card)
    problems = verify_recording(tmp_path / "bad").problems
    assert any("no jet_error recorded, but its events were flagged by per-jet scoring" in p for p in problems)
    # an event-level recording holding jet_error in one segment and not in the other
    for seq, with_error in enumerate((True, False)):
        batch = wire.validate(wire.decode(event_scored_frames(RUN, seq, rng.integers(0, 5, 20), rng, card, 20 * seq,
                                                              with_error=with_error)))
        write_segment(tmp_path / "mixed", seq, [batch], batch_layout(batch, "float32"), card, EVENT_CARD)
    result = verify_recording(tmp_path / "mixed")
    assert any("1 of 2 segments hold jet_error" in p for p in result.problems), result.problems
    assert result.stats["jet_error_recorded"] == "mixed"


# ---- end to end: real `aetrig run` processes -------------------------------------------------------------------------
def aetrig_run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emulator.cli", "run", "--input", str(SAMPLE), "--events", "2000",
                           "--rate", "0", "--encoders", "1", "--out", str(out), "--status-interval", "0", *extra],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)


def check_recorded_run(out: Path, run: subprocess.CompletedProcess, jets: dict[str, np.ndarray],
                       compression: dict[str, OnnxScorer], with_error: bool) -> None:
    """The run recorded every event, verifies, and its latents (and jet_error, when kept) are scorer.onnx's."""
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "reports" / "encoder-0.json").read_text())
    assert report["anomaly"]["level"] == "event" and report["jet_error_computed"] is with_error
    rec = open_recording(out)
    assert rec.has_jet_error is with_error
    assert all(("jet_error" in s.branches) is with_error and s.layout["jet_error"] is with_error
               for s in rec.segments)
    result = verify_recording(out)
    assert result.ok, result.problems
    ev = rec.events()
    assert len(ev["entry"]) == 2000 and result.stats["jet_error_recorded"] is with_error
    starts = np.concatenate([[0], np.cumsum(jets["counts"])])
    rows = np.concatenate([np.arange(starts[e], starts[e + 1]) for e in ev["entry"].astype(np.int64)])
    latent_s, error_s = compression["scorer"].score(model_input(jets)[rows])
    if rec.segments[0].layout.get("latent_codec") == "ans":  # a rate-trained default: symbols x delta recorded
        entropy = rec.segments[0].latent_coder().base  # factorised tables, or a context model's
        want = lc.dequantise(lc.quantise(latent_s, entropy), entropy)
        off = np.abs(rec.latent() - want)
        # the encoder graph's latents equal the scorer's to LATENT_RTOL: a symbol may flip at a rounding edge
        assert (off <= entropy.deltas * 1.0001).all() and np.count_nonzero(off) <= 1e-3 * off.size
    else:
        np.testing.assert_allclose(rec.latent(), latent_s, rtol=LATENT_RTOL, atol=1e-7)
    if with_error:
        np.testing.assert_allclose(rec.jet_error(), error_s, rtol=1e-5, atol=0)


@pytest.mark.timeout(200)
def test_run_with_the_event_model_records_no_jet_error(tmp_path: Path, jets, compression) -> None:
    out = tmp_path / "run"
    check_recorded_run(out, aetrig_run(out), jets, compression, with_error=False)
    decoded = tmp_path / "decoded.root"
    decode_recording(out, decoded, progress=False)
    with uproot.open(decoded) as f:
        assert "jet_error" not in set(f["events"].keys()) and f["events"].num_entries == 2000


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_run_with_jet_errors_always_records_jet_error(tmp_path: Path, jets, compression) -> None:
    out = tmp_path / "run"
    check_recorded_run(out, aetrig_run(out, "--jet-errors", "always"), jets, compression, with_error=True)
    decoded = tmp_path / "decoded.root"
    decode_recording(out, decoded, progress=False)
    with uproot.open(decoded) as f:
        assert "jet_error" in set(f["events"].keys())
