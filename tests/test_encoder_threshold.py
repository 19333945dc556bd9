"""Thresholds of the encoder service: --fpr from the card, --accept-rate at the declared input rate
(per rate, and a counted `no_threshold` rejection when the rate gives none), --threshold as given;
a bad choice at start-up is a clear error with exit code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zmq
from encsink_support import events_frames, make_tiny_model, manifest_sha256
from stage_keys import stage_flags

from emulator.cli import build_parser
from emulator.encoder.service import EncoderConfig, EncoderService
from emulator.runtime.defaults import DEFAULT_ANOMALY_MODEL
from models.runtime.card import load_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model"))


def service(model_dir: Path, **kw: object) -> EncoderService:
    return EncoderService(EncoderConfig(model=model_dir, connect="tcp://127.0.0.1:1", sink="tcp://127.0.0.1:1", **kw))


def test_fpr_default_and_explicit(model_dir: Path) -> None:
    card = load_model_dir(model_dir)
    assert service(model_dir, anomaly_model="none").policy.fixed == pytest.approx(card.threshold(fpr=1e-3))
    assert service(model_dir, anomaly_model="none", fpr=1e-2).policy.fixed == pytest.approx(card.threshold(fpr=1e-2))
    assert service(model_dir, threshold=3.5).policy.fixed == 3.5


def test_thresholds_come_from_the_anomaly_models_card(model_dir: Path) -> None:
    """--fpr reads the event model's per-event curve; rounded to float32, the precision of the scores."""
    event = load_model_dir(DEFAULT_ANOMALY_MODEL, level="event")  # the default, or given explicitly
    for kw in ({}, {"anomaly_model": str(event.path)}):
        svc = service(model_dir, fpr=1e-2, **kw)
        assert svc.policy.fixed == float(np.float32(event.threshold(fpr=1e-2)))
        assert svc.policy.model.name == event.name


def test_accept_rate_uses_each_messages_declared_rate(model_dir: Path) -> None:
    card = load_model_dir(model_dir)
    svc = service(model_dir, anomaly_model="none", accept_rate=10.0)  # the per-jet model's own card thresholds
    rng = np.random.default_rng(0)
    for seq, rate in enumerate([1000.0, 10000.0, 1000.0]):
        svc.accept([memoryview(f) for f in events_frames(1, seq, np.array([2, 1]), rng, 3 * seq, rate_hz=rate)])
    assert [p.threshold for p in svc.pending] == pytest.approx([card.threshold(fpr=1e-2), card.threshold(fpr=1e-3),
                                                                card.threshold(fpr=1e-2)])
    # a producer declaring no rate (as fast as possible) gives no threshold: counted, quarantined, not flagged blindly
    svc.accept([memoryview(f) for f in events_frames(1, 9, np.array([1]), rng, 50, rate_hz=0.0)])
    svc.accept([memoryview(f) for f in events_frames(1, 10, np.array([1]), rng, 51, rate_hz=5.0)])  # fpr 2 > 1
    assert svc.rejections.by_reason["no_threshold"] == 2 and len(svc.pending) == 3
    assert svc.rejections.quarantine.messages == 2


def test_start_up_errors_are_clear(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser, module = build_parser("encode")
    base = ["--model", str(model_dir), "--connect", "tcp://127.0.0.1:1", "--sink", "tcp://127.0.0.1:2",
            *stage_flags("encode")]
    assert module.main(parser.parse_args([*base, "--fpr", "1e-7"])) == 2
    assert "outside the calibrated range" in capsys.readouterr().err
    assert module.main(parser.parse_args([*base[:1], str(tmp_path / "nope"), *base[2:]])) == 2
    assert "does not exist" in capsys.readouterr().err
    assert module.main(parser.parse_args([*base, "--max-batch-jets", "0"])) == 2
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--fpr", "1e-3", "--threshold", "2"])  # one threshold choice only


def test_inference_failure_rejects_only_the_culprit(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = service(model_dir, anomaly_model="none", threshold=8.0)  # per-jet scoring: the scorer is the culprit
    real_score = svc.scorer.score

    def score(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # the fault: ORT refuses rows with pt == 123
        if (x[:, 0] == 123.0).any():
            raise RuntimeError("simulated ONNX Runtime failure")
        return real_score(x)

    monkeypatch.setattr(svc.scorer, "score", score)
    ctx = zmq.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    pull.bind("inproc://scored")
    push.connect("inproc://scored")
    rng = np.random.default_rng(2)
    for seq in range(4):
        frames = events_frames(1, seq, np.array([2, 1]), rng, 2 * seq)
        if seq == 2:
            from emulator.runtime import wire

            cols = dict(wire.decode(frames).columns)
            cols["jet_pt"] = np.full(3, 123.0, np.float32)
            frames = [bytes(f) for f in wire.encode("events", 1, 2, cols, t_send=1.0, rate_hz=1.0,
                                                    manifest_sha256=manifest_sha256(1))]
        svc.accept([memoryview(f) for f in frames])
    svc.run_micro_batch(push)
    sent = []
    while pull.poll(200):
        sent.append(pull.recv_multipart())
    push.close(0)
    pull.close(0)
    ctx.term()
    assert len(sent) == 3 and svc.rejections.by_reason["internal_error"] == 1 and svc.counts["messages"] == 3
