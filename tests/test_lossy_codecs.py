"""Error-bounded codecs on real jets: point-wise bounds, byte counts, and the lossless streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.offline import codecs, lossy_codecs, stream_codecs
from consumer.offline.studies.common import bundled, load_sample

BOUNDS = (1e-4, 1e-3, 1e-2, 1e-1)
VARS = ("pt", "eta", "phi", "m", "e")


@pytest.fixture(scope="module")
def jets() -> dict[str, np.ndarray]:
    s = load_sample("qcd", [bundled("qcd")], list(VARS), max_events=4000)
    cols = {v: s.column(v).copy() for v in VARS}
    full_m = load_sample("qcd", [bundled("qcd")], ["m"]).column("m")
    zeros = np.flatnonzero(full_m <= 0)
    assert len(zeros) > 0  # the bundled sample has m = 0 jets: the exception path runs on real ones
    cols["m"] = np.concatenate([cols["m"], full_m[zeros]]).astype(np.float32)
    return cols


def _check_bound(var: str, x: np.ndarray, y: np.ndarray, bound: float) -> None:
    """Independent float64 check of the bound the codec was asked for."""
    assert y.dtype == np.float32 and y.shape == x.shape
    a, b = x.astype(np.float64), y.astype(np.float64)
    if var in ("pt", "m", "e"):
        pos = a > 0
        assert np.all(np.abs(b[pos] / a[pos] - 1.0) <= bound), f"{var}: relative error above {bound}"
        assert np.array_equal(b[~pos], a[~pos]), f"{var}: x <= 0 jets must come back exactly"
    else:
        assert np.all(np.abs(b - a) <= bound), f"{var}: absolute error above {bound}"


@pytest.mark.parametrize("family", lossy_codecs.FAMILIES)
def test_bounds_respected_point_wise_on_real_jets(jets, family: str) -> None:
    for bound in BOUNDS:
        codec = lossy_codecs.make(family, bound)
        for var, x in jets.items():
            parts = codec.encode(x, var)
            assert all(isinstance(p, bytes) for p in parts)
            y = codec.decode(parts, len(x), var)
            _check_bound(var, x, y, bound)
            if bound >= 1e-2:  # a loose bound must actually lose information (fewer bytes than float32)
                assert sum(len(p) for p in parts) < 4 * len(x)


def test_relative_bound_is_not_trivially_loose(jets) -> None:
    """SZ3 uses most of the bound it is given (the log transform does not waste it)."""
    x = jets["pt"]
    y = lossy_codecs.make("SZ3", 1e-2).decode(lossy_codecs.make("SZ3", 1e-2).encode(x, "pt"), len(x), "pt")
    assert np.abs(y.astype(np.float64) / x - 1).max() > 0.009


def test_m_zero_jets_go_to_the_exception_stream(jets) -> None:
    x = jets["m"]
    n_zero = int((x <= 0).sum())
    parts = lossy_codecs.make("ZFP", 1e-2).encode(x, "m")
    index, value = lossy_codecs.decode_exceptions(parts[1])
    assert len(index) == n_zero and np.all(value == 0)
    assert lossy_codecs.encode_exceptions(np.zeros(0, np.uint32), np.zeros(0, np.float32)) == b""
    assert lossy_codecs.make("ZFP", 1e-2).encode(jets["pt"], "pt")[1] == b""


def test_bitround_is_round_to_nearest_even(jets) -> None:
    """numcodecs BitRound and our mantissa rounding are two implementations of one thing."""
    import numcodecs

    for n in (3, 7, 10, 16):
        x = jets["e"]
        np.testing.assert_array_equal(numcodecs.BitRound(keepbits=n).encode(x).view(np.float32),
                                      codecs.reduce_mantissa(x, n))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=50),
       st.floats(1e-6, 0.4), st.sampled_from(["relative", "absolute"]))
def test_keep_bits_property(values: list[float], bound: float, kind: str) -> None:
    x = np.array(values, dtype=np.float32)
    n = lossy_codecs.keep_bits(kind, bound, x)
    y = codecs.reduce_mantissa(x, n).astype(np.float64)
    if kind == "relative":
        nz = np.abs(x) >= np.finfo(np.float32).tiny  # the relative bound holds for normal numbers (no jet is subnormal)
        assert np.all(np.abs(y[nz] / x[nz] - 1) <= bound)
    else:
        assert np.all(np.abs(y - x) <= bound)


def test_transform_bound_margin() -> None:
    assert 0 < lossy_codecs.transform_bound("relative", 1e-3, 9.0) < np.log1p(1e-3)
    assert 0 < lossy_codecs.transform_bound("absolute", 1e-3, 3.2) < 1e-3
    with pytest.raises(ValueError):
        lossy_codecs.transform_bound("absolute", 1e-8, 1000.0)
    with pytest.raises(ValueError):
        lossy_codecs.make("gzip", 1e-2)


def test_empty_columns() -> None:
    for family in lossy_codecs.FAMILIES:
        c = lossy_codecs.make(family, 1e-2)
        parts = c.encode(np.zeros(0, np.float32), "pt")
        assert sum(len(p) for p in parts) == 0 and len(c.decode(parts, 0, "pt")) == 0


@pytest.mark.parametrize("name", stream_codecs.LOSSLESS)
@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.uint8])
def test_lossless_round_trip_and_length(jets, name: str, dtype) -> None:
    x = jets["pt"]
    arr = x if dtype == np.float32 else (x.view(np.uint32) >> 16).astype(dtype)
    if not stream_codecs.applicable(name, arr.dtype):
        with pytest.raises(ValueError):
            stream_codecs.encode(arr, name)
        return
    data = stream_codecs.encode(arr, name)
    assert isinstance(data, bytes) and len(data) > 0
    np.testing.assert_array_equal(stream_codecs.decode(data, name, arr.dtype, len(arr)), arr)
    if not name.startswith(("shuffle", "zfp")):  # the raw ROOT algorithm stream, compressed independently
        import uproot

        algo, _, level = name.partition("-")
        comp = {"zlib": uproot.ZLIB, "lzma": uproot.LZMA, "lz4": uproot.LZ4, "zstd": uproot.ZSTD}[algo](int(level))
        assert len(data) == len(bytes(comp.compress(arr.tobytes())))
