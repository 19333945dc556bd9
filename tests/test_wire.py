"""Wire format: round trips (property-based) and one rejection reason per structural defect."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from wire_support import join, split

from emulator.runtime import wire

HASHES = dict.fromkeys(wire.HASH_FIELDS, "0" * 64)


def _events(counts: list[int], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_events, n_jets = len(counts), int(sum(counts))
    return {
        "n_jets": np.asarray(counts, dtype="<u4"),
        "event_id": np.arange(n_events, dtype="<u8"),
        "file_index": np.zeros(n_events, dtype="<u4"),
        "entry": np.arange(n_events, dtype="<u8") + 7,
        "event_number": np.full(n_events, 42, dtype="<u8"),
        "jet_pt": rng.uniform(20, 500, n_jets).astype("<f4"),
        "jet_eta": rng.uniform(-4.5, 4.5, n_jets).astype("<f4"),
    }


def _frames(columns: dict[str, np.ndarray], **header: object) -> list[bytes]:
    header = {"manifest_sha256": "a" * 64, **header}
    frames = wire.encode("events", 99, 3, columns, t_send=time.time(), rate_hz=1e5, **header)
    return [bytes(f) for f in frames]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=80), min_size=0, max_size=40))
def test_round_trip_keeps_every_column_bit_exact(counts: list[int]) -> None:
    columns = _events(counts)
    batch = wire.validate(wire.decode(_frames(columns)))
    assert batch.n_events == len(counts) and batch.n_jets == sum(counts)
    assert batch.run_id == 99 and batch.seq == 3 and batch.kind == "events"
    for name, array in columns.items():
        np.testing.assert_array_equal(batch.columns[name], array)
    assert batch.jet_variables() == ["pt", "eta"]
    assert batch.header["manifest_sha256"] == "a" * 64


def test_one_body_frame_holds_every_column_aligned() -> None:
    columns = _events([3, 0, 2])  # 5 jets: the float32 jet columns take 20 bytes, padded to 24
    frames = _frames(columns)
    assert len(frames) == 2
    offsets, offset = [], 0
    for array in columns.values():
        offsets.append(offset)
        offset += -(-array.nbytes // wire.ALIGN) * wire.ALIGN
    assert len(frames[1]) == offset
    for (name, array), start in zip(columns.items(), offsets, strict=True):
        assert frames[1][start:start + array.nbytes] == array.tobytes(), name


def test_big_endian_input_is_sent_little_endian() -> None:
    columns = _events([2, 1])
    columns["jet_pt"] = columns["jet_pt"].astype(">f4")
    batch = wire.decode(_frames(columns))
    assert batch.columns["jet_pt"].dtype.str == "<f4"
    np.testing.assert_array_equal(batch.columns["jet_pt"], columns["jet_pt"].astype("<f4"))


def _header(frames: list[bytes]) -> dict:
    return msgpack.unpackb(frames[0])


def _with_header(frames: list[bytes], **changes: object) -> list[bytes]:
    header = _header(frames)
    header.update(changes)
    return [msgpack.packb(header), *frames[1:]]


def _reason(frames: list[bytes], limits: wire.Limits | None = None) -> str:
    limits = limits or wire.Limits()
    with pytest.raises(wire.WireError) as info:
        wire.validate(wire.decode(frames, limits), limits)
    return info.value.reason


GOOD = _frames(_events([3, 0, 2]))


def test_each_structural_defect_has_its_reason() -> None:
    cols = _header(GOOD)["cols"]
    assert _reason([]) == "frame_count"
    assert _reason([b"\xc1garbage", b""]) == "bad_header"
    assert _reason([msgpack.packb([1, 2]), *GOOD[1:]]) == "bad_header"
    assert _reason(_with_header(GOOD, v=1)) == "schema_version"
    assert _reason(_with_header(GOOD, kind="gossip")) == "unknown_kind"
    assert _reason(_with_header(GOOD, seq="three")) == "bad_header"
    assert _reason(_with_header(GOOD, run_id=-1)) == "bad_header"
    assert _reason(GOOD[:-1]) == "frame_count"
    assert _reason([*GOOD, b""]) == "frame_count"
    assert _reason([GOOD[0], GOOD[1][:-3]]) == "size_mismatch"
    assert _reason([GOOD[0], GOOD[1] + bytes(wire.ALIGN)]) == "size_mismatch"
    assert _reason(_with_header(GOOD, cols=[["n_jets", "<c8", [3]], *cols[1:]])) == "unknown_dtype"
    assert _reason(_with_header(GOOD, cols=[cols[0], cols[0], *cols[2:]])) == "bad_column"
    assert _reason(_with_header(GOOD, cols=[["n_jets", "<u4", [3, 1, 1]], *cols[1:]])) == "bad_column"
    assert _reason(_with_header(GOOD, n_jets=6)) == "count_mismatch"


def test_semantic_defects_have_their_reasons() -> None:
    columns = _events([3, 0, 2])
    del columns["event_id"]
    assert _reason(_frames(columns)) == "missing_column"

    columns = _events([3, 0, 2])
    columns["jet_pt"][1] = np.nan
    assert _reason(_frames(columns)) == "non_finite"
    columns["jet_pt"][1] = np.inf
    assert _reason(_frames(columns)) == "non_finite"

    columns = _events([3, 0, 2])
    columns["jet_eta"] = columns["jet_eta"][:-1]
    assert _reason(_frames(columns)) == "count_mismatch"

    columns = _events([3, 0, 2])
    columns["manifest_json"] = np.frombuffer(b'{"run": 1}', dtype="|u1")  # schema 2's blob: no longer on the wire
    assert _reason(_frames(columns)) == "bad_column"

    assert _reason(_frames(_events([3, 0, 2]), manifest_sha256="A" * 64)) == "bad_header"
    header, parts = split(GOOD)
    del header["manifest_sha256"]
    assert _reason(join(header, parts)) == "bad_header"

    columns = _events([3, 0, 2])
    columns["mystery"] = np.zeros(3, dtype="<f4")
    assert _reason(_frames(columns)) == "bad_column"


def test_limits_protect_memory_but_many_jets_pass() -> None:
    many = _frames(_events([0, 150, 1]))
    assert wire.validate(wire.decode(many)).n_jets == 151
    assert _reason(many, wire.Limits(max_jets_per_event=100)) == "limit_exceeded"
    assert _reason(many, wire.Limits(max_bytes=256)) == "limit_exceeded"
    assert _reason(many, wire.Limits(max_events=2)) == "limit_exceeded"


def _scored(flag: list[int], counts: list[int]) -> dict[str, np.ndarray]:
    columns = _events(counts)
    n_jets = sum(counts)
    flagged = np.repeat(np.asarray(flag, bool), counts)
    columns.update({
        "jet_latent": np.zeros((n_jets, 3), dtype="<f4"),
        "jet_error": np.zeros(n_jets, dtype="<f4"),
        "event_score": np.zeros(len(counts), dtype="<f4"),
        "flag": np.asarray(flag, dtype="|u1"),
        "raw_jet_pt": columns["jet_pt"][flagged],
    })
    del columns["jet_pt"], columns["jet_eta"]
    return columns


def test_scored_raw_columns_must_match_the_flagged_jets() -> None:
    good = _scored([1, 0, 1], [3, 0, 2])
    frames = [bytes(f) for f in wire.encode("scored", 1, 1, good, t_send=0.0, rate_hz=0.0, threshold=1.0, **HASHES)]
    assert wire.validate(wire.decode(frames)).columns["raw_jet_pt"].shape == (5,)
    bad = _scored([1, 0, 0], [3, 0, 2])
    bad["raw_jet_pt"] = np.zeros(5, dtype="<f4")
    frames = [bytes(f) for f in wire.encode("scored", 1, 1, bad, t_send=0.0, rate_hz=0.0, threshold=1.0, **HASHES)]
    assert _reason(frames) == "count_mismatch"


def test_ack_round_trip_and_garbage() -> None:
    assert wire.decode_ack(wire.encode_ack(5, [1, 2, 3], full=True)) == (5, [1, 2, 3], True)
    with pytest.raises(wire.WireError):
        wire.decode_ack(b"\x00\x01")
    with pytest.raises(wire.WireError):
        wire.decode_ack(msgpack.packb({"v": 1, "kind": "ack", "run_id": 1, "seqs": ["x"]}))


def _reference_column_reason(cols: list, body: bytes) -> str | None:
    """The per-column checks of decode written plainly (the rejection reason, or None when all pass): each
    column's descriptor, then its bytes at the next multiple of wire.ALIGN, the body ending with the last."""
    seen, offset = set(), 0
    for desc in cols:
        if (not isinstance(desc, list) or len(desc) != 3 or not isinstance(desc[0], str) or not desc[0]
                or not isinstance(desc[1], str) or not isinstance(desc[2], list)
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in desc[2])):
            return "bad_column"
        name, dtype, shape = desc
        if name in seen:
            return "bad_column"
        seen.add(name)
        if dtype not in wire.ALLOWED_DTYPES:
            return "unknown_dtype"
        if len(shape) not in (1, 2):
            return "bad_column"
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if offset + nbytes > len(body):
            return "size_mismatch"
        offset += -(-nbytes // wire.ALIGN) * wire.ALIGN
    return None if offset == len(body) else "size_mismatch"


_descriptor = st.one_of(
    st.tuples(st.sampled_from(["jet_a", "jet_b", "", "jet_a"]), st.sampled_from(["<f4", "<u8", "|u1", "<c8", ">f4"]),
              st.lists(st.one_of(st.integers(-1, 4), st.booleans()), max_size=3)).map(list),
    st.sampled_from([None, "x", ["jet_c", "<f4"], ["jet_d", "<f4", 3], [7, "<f4", [1]]]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_descriptor, st.integers(0, 40)), min_size=1, max_size=4))
@example([(["jet_a", "|u1", [3]], 3), (["jet_b", "<f4", [2, 1]], 8), (["jet_c", "<u8", [0]], 0)])
def test_decode_column_checks_equal_the_plain_rules(spec: list) -> None:
    counts = np.array([1], "<u4")
    header, parts = split(_frames(_events([1])))
    extra_cols = [desc for desc, _ in spec]
    extra_frames = [bytes(range(n)) for _, n in spec]
    header["cols"] = header["cols"] + extra_cols
    frames = join(header, parts + extra_frames)
    want = _reference_column_reason(header["cols"], frames[1])
    try:
        batch = wire.decode(frames)
    except wire.WireError as exc:
        assert exc.reason == want
        return
    assert want is None
    assert batch.columns["n_jets"].tolist() == counts.tolist()
    offset = 0
    for desc in header["cols"]:  # each column reads its declared bytes where the layout puts them
        col, nbytes = batch.columns[desc[0]], int(np.prod(desc[2])) * np.dtype(desc[1]).itemsize
        assert col.shape == tuple(desc[2]) and col.dtype == np.dtype(desc[1])
        assert col.tobytes() == frames[1][offset:offset + nbytes]
        offset += -(-nbytes // wire.ALIGN) * wire.ALIGN
