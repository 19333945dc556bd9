"""Format 3's compact per-event columns (emulator/runtime/compact_columns.py): identity deltas round-trip modulo
2**64, scores rounded away from the threshold keep every flag and stay within 2**-bits, the event block gives
njet and the score codes back exactly (escapes, NaN and negative scores included), packed raw copies unpack."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from emulator.runtime import compact_columns as cc
from emulator.runtime.recording import jagged_record

UINT64 = hnp.arrays(np.uint64, st.integers(0, 300), elements=st.integers(0, 2**64 - 1))


@given(UINT64, st.integers(0, 2**64 - 1))
@settings(max_examples=60, deadline=None)
def test_deltas_round_trip_modulo_2_64(values: np.ndarray, previous: int) -> None:
    deltas = cc.to_deltas(values, previous)
    back = cc.from_deltas(np.concatenate([np.array([previous], np.uint64), deltas]))[1:]
    assert np.array_equal(back, values)
    if previous == 0:
        assert np.array_equal(cc.from_deltas(deltas), values)


def test_consecutive_ids_are_ones() -> None:
    ids = np.arange(1000, 3000, dtype=np.uint64)
    assert np.array_equal(cc.to_deltas(ids, 999), np.ones(2000, np.uint64))


FINITE = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@given(hnp.arrays(np.float32, st.integers(1, 200), elements=FINITE), FINITE, st.integers(0, 22))
@settings(max_examples=150, deadline=None)
def test_rounded_scores_keep_every_flag(score: np.ndarray, threshold: float, bits: int) -> None:
    thr = np.float32(threshold)
    flag = score > thr
    stored = cc.round_scores(score, flag, bits)
    assert np.array_equal(stored > thr, flag)
    # within a relative 2**-bits of the encoder's score (subnormals: the smallest normal), on the far side of the
    # threshold
    s64, r64 = score.astype(np.float64), stored.astype(np.float64)
    assert np.all(np.abs(r64 - s64) <= np.abs(s64) * 2.0 ** -bits + float(np.finfo(np.float32).tiny))
    assert np.all(r64[flag] >= s64[flag]) and np.all(r64[~flag] <= s64[~flag])
    # exactly representable with ``bits`` mantissa bits: the codes give the stored values back
    assert np.array_equal(cc.scores_from_codes(cc.score_codes(stored, bits), bits), stored)


def test_special_scores_pass_and_23_bits_is_identity() -> None:
    s = np.array([np.nan, np.inf, -np.inf, 1.2345678], np.float32)
    flag = np.array([0, 1, 0, 0], np.uint8)
    out = cc.round_scores(s, flag, 3)
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf and out[3] == np.float32(1.125)
    assert np.array_equal(cc.round_scores(s[1:], flag[1:], 23), s[1:])
    with pytest.raises(ValueError, match=r"0\.\.23"):
        cc.round_scores(s, flag, 24)


def test_event_block_round_trip_with_escapes() -> None:
    rng = np.random.default_rng(2)
    n = 5000
    njet = rng.poisson(3.5, n)
    njet[7] = 900  # far outside the fitted range would be an escape if the table were capped
    score = rng.lognormal(0.0, 0.6, n).astype(np.float32)
    score[[3, 11, 12]] = [np.nan, -2.5, 3e30]
    flag = score > np.float32(5.0)
    stored = cc.round_scores(score, flag, 3)
    codes = cc.score_codes(stored, 3)
    data = cc.encode_event_block(njet, codes)
    back_njet, back_codes = cc.decode_event_block(data, n)
    assert np.array_equal(back_njet, njet) and np.array_equal(back_codes, codes)
    back = cc.scores_from_codes(back_codes, 3)
    assert np.array_equal(back[~np.isnan(stored)], stored[~np.isnan(stored)]) and np.isnan(back[3])
    # close to the ideal: well under 2 bytes per event for ~2.3 bits of jet count and ~5 bits of score
    assert len(data) < 1.2 * n
    assert cc.decode_event_block(b"", 0)[0].shape == (0,)
    with pytest.raises(cc.CompactColumnsError):
        cc.decode_event_block(np.array([3, 0, 2, 1, 1], "<i4").tobytes(), 4)


def test_block_column_and_raw_packing_unpack() -> None:
    blocks = [b"abc", b"", b"defg"]
    column = cc.block_column(blocks, [2, 3, 1])
    assert [(a, b, d) for a, b, d in cc.split_blocks(column)] == [(0, 5, b"abc"), (5, 6, b"defg")]
    counts = np.array([2, 0, 1])
    cols = {"pt": np.array([1.0, 2.0, 3.0], np.float32), "eta": np.array([0.1, 0.2, 0.3], np.float32)}
    packed = cc.pack_raw(counts, cols)
    arrays = cc.expand(__import__("awkward").zip({"raw_values": packed, "flag": np.array([1, 0, 1], np.uint8)},
                                                 depth_limit=1), {"raw_vars": ["pt", "eta"]})
    assert arrays["nraw_jet"].tolist() == [2, 0, 1]
    assert arrays["raw_jet_eta"].tolist() == [[np.float32(0.1), np.float32(0.2)], [], [np.float32(0.3)]]
    assert set(arrays.fields) == {"flag", "nraw_jet", "raw_jet_pt", "raw_jet_eta"}
    assert jagged_record(counts, cols).type.length == 3
