"""Every parser of the wire takes any bytes: a message is parsed, or rejected with a WireError (a counted
reason), never anything else. Property tests feed arbitrary msgpack maps and frames, and mutations of
valid messages (so that the checks behind the header are reached too), to the events, scored and ack
parsers, and to the sink's whole accept path."""

from __future__ import annotations

import math
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
from encsink_support import events_frames, expectations, scored_frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.runtime import wire

HEADER_KEYS = ["v", "kind", "run_id", "seq", "n_events", "n_jets", "t_send", "rate_hz", "cols", "threshold",
               "t_received", "t_encoded", "model", "anomaly_model", "encoder", "seqs", "full", "manifest_sha256",
               "card_sha256", "anomaly_card_sha256"]
CARD = {"name": "tiny_test", "files": {"scorer.onnx": "0" * 64}, "variables": ["pt", "eta", "phi", "m"]}

scalars = (st.none() | st.booleans() | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | st.binary(max_size=24))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
headers = st.dictionaries(st.sampled_from(HEADER_KEYS) | st.text(max_size=8), values, max_size=12)
frames_after = st.lists(st.binary(max_size=64), max_size=6)


def _packed(header: object) -> bytes:
    return msgpack.packb(header, use_bin_type=True)


def _only_wire_errors(parse, frames) -> None:
    try:
        parse(frames)
    except wire.WireError as exc:
        assert exc.reason in wire.REJECT_REASONS


@settings(max_examples=300, deadline=None)
@given(headers, frames_after)
def test_arbitrary_maps_and_frames_are_parsed_or_rejected(header: dict, rest: list[bytes]) -> None:
    frames = [_packed(header), *rest]
    for parse in (wire.parse_events, wire.parse_scored):
        _only_wire_errors(parse, frames)
    _only_wire_errors(wire.decode_ack, frames[0])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_parsed_or_rejected(raw: bytes) -> None:
    _only_wire_errors(wire.parse_scored, [raw])
    _only_wire_errors(wire.decode_ack, raw)


def _valid_scored(seq: int = 0) -> list[bytes]:
    return scored_frames(7, seq, np.array([2, 0, 3], np.uint32), np.random.default_rng(seq), CARD)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(HEADER_KEYS), values, st.booleans())
def test_one_field_changed_in_a_valid_message_is_parsed_or_rejected(key: str, value: object, scored: bool) -> None:
    frames = _valid_scored() if scored else events_frames(7, 0, np.array([2, 0, 3], np.uint32),
                                                          np.random.default_rng(0))
    header = msgpack.unpackb(frames[0])
    header[key] = value
    mutated = [_packed(header), *frames[1:]]
    _only_wire_errors(wire.parse_scored if scored else wire.parse_events, mutated)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=20), st.binary(max_size=40))
def test_one_frame_replaced_in_a_valid_message_is_parsed_or_rejected(index: int, raw: bytes) -> None:
    frames = _valid_scored()
    frames[index % len(frames)] = raw
    _only_wire_errors(wire.parse_scored, frames)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "kind", "run_id", "seqs", "full"]), values, max_size=5))
def test_arbitrary_acks_are_parsed_or_rejected(fields: dict) -> None:
    ack = {"v": wire.SCHEMA_VERSION, "kind": "ack", "run_id": 1, "seqs": [1], "full": False, **fields}
    _only_wire_errors(wire.decode_ack, _packed(ack))


@pytest.mark.parametrize("ack, reason", [
    ({"v": wire.SCHEMA_VERSION, "kind": "ack", "seqs": []}, "bad_header"),  # the ack that killed the producer
    ({"v": wire.SCHEMA_VERSION, "kind": "ack", "run_id": "7", "seqs": []}, "bad_header"),
    ({"v": wire.SCHEMA_VERSION, "kind": "ack", "run_id": 7.5, "seqs": []}, "bad_header"),
    ({"v": wire.SCHEMA_VERSION, "kind": "ack", "run_id": -1, "seqs": []}, "bad_header"),
    ({"v": wire.SCHEMA_VERSION, "kind": "ack", "run_id": 7, "seqs": [True]}, "bad_header"),
    ({"v": wire.SCHEMA_VERSION, "kind": "ack", "run_id": 7, "seqs": [], "full": "yes"}, "bad_header"),
    ({"v": wire.SCHEMA_VERSION, "kind": "events", "run_id": 7, "seqs": []}, "unknown_kind"),
    ({"v": 0, "kind": "ack", "run_id": 7, "seqs": []}, "schema_version"),
    ([1, 2], "bad_header"),
])
def test_malformed_acks_are_rejected_with_a_reason(ack: object, reason: str) -> None:
    with pytest.raises(wire.WireError) as info:
        wire.decode_ack(_packed(ack))
    assert info.value.reason == reason


@pytest.mark.parametrize("field, value", [("t_send", math.nan), ("t_send", -math.inf), ("t_send", math.inf),
                                          ("rate_hz", math.nan), ("threshold", math.inf),
                                          ("t_received", math.nan), ("t_encoded", -math.inf)])
def test_non_finite_header_numbers_are_rejected(field: str, value: float) -> None:
    frames = _valid_scored()
    header = msgpack.unpackb(frames[0])
    header[field] = value
    with pytest.raises(wire.WireError) as info:
        wire.parse_scored([_packed(header), *frames[1:]])
    assert info.value.reason == "non_finite"


def test_a_latent_of_a_million_dimensions_is_rejected() -> None:
    frames = _valid_scored()
    header = msgpack.unpackb(frames[0])
    names = [c[0] for c in header["cols"]]
    i = names.index("jet_latent")
    header["cols"][i][2] = [0, 10**6]
    header["n_jets"], header["n_events"] = 0, 0
    for col in header["cols"]:
        col[2] = [0] if len(col[2]) == 1 else col[2]
    out = [_packed(header), b""]
    with pytest.raises(wire.WireError) as info:
        wire.parse_scored(out)
    assert info.value.reason == "limit_exceeded"


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory):
    from consumer.sink.service import Sink, SinkConfig
    from emulator.runtime.metrics import make_metrics

    out = tmp_path_factory.mktemp("rec")
    expected = expectations(tmp_path_factory.mktemp("expected"), CARD, [7])
    sink = Sink(SinkConfig(bind="tcp://127.0.0.1:1", out=out, quarantine=Path(out) / "q", **expected),
                metrics=make_metrics())
    yield sink
    from emulator.runtime.recording import unlock_recording

    unlock_recording(sink.lock_fd)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(HEADER_KEYS), values)
def test_the_sink_accepts_or_counts_any_mutated_message_without_internal_errors(sink, key: str,
                                                                                value: object) -> None:
    frames = _valid_scored(seq=1 + int(time.monotonic_ns() % (1 << 40)))
    header = msgpack.unpackb(frames[0])
    header[key] = value
    before = sink.rejections.report()["rejected"].get("internal_error", 0)
    sink.accept([_packed(header), *frames[1:]], None)  # never raises
    assert sink.rejections.report()["rejected"].get("internal_error", 0) == before
