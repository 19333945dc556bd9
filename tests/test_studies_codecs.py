"""Codecs against independent computations: frexp-based rounding, torch bfloat16, numpy float16."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.offline import codecs


def relative_error_bound(n_bits: int, mode: str = "round") -> float:
    """Upper bound of |x' - x| / |x| for normal float32 x after ``reduce_mantissa``."""
    return 2.0 ** -(n_bits + 1) if mode == "round" else 2.0 ** -n_bits


def reference_reduce(x: np.ndarray, n_bits: int, mode: str) -> np.ndarray:
    """Float64 reference: x = m 2^e (m in [0.5, 1)), keep n_bits + 1 significant bits of m. A tie goes to the
    neighbour whose last kept bit of the float32 pattern is 0 (IEEE's ties-to-even; with n_bits = 0 that bit
    is the exponent's lowest, since every 0-bit significand is 1)."""
    m, e = np.frexp(x.astype(np.float64))
    scale = 2.0 ** (n_bits + 1)
    lo = np.trunc(m * scale)
    if mode == "truncate":
        return np.ldexp(lo / scale, e).astype(np.float32)
    down, up = (np.ldexp(q / scale, e).astype(np.float32) for q in (lo, lo + np.sign(m)))
    frac = np.abs(m * scale - lo)
    kept_lsb_of_down = (down.view(np.uint32) >> np.uint32(23 - n_bits)) & np.uint32(1)
    take_up = (frac > 0.5) | ((frac == 0.5) & (kept_lsb_of_down == 1))
    return np.where(take_up, up, down)


normal_floats = st.floats(min_value=2.0**-100, max_value=2.0**100, allow_nan=False, width=32)


@pytest.mark.parametrize("mode", ["round", "truncate"])
@pytest.mark.parametrize("n_bits", [0, 1, 3, 7, 10, 15, 22, 23])
def test_reduce_matches_reference_and_bound(n_bits: int, mode: str) -> None:
    rng = np.random.default_rng(n_bits)
    x = (rng.standard_normal(20000) * 10.0 ** rng.uniform(-5, 5, 20000)).astype(np.float32)
    # include exact ties at the rounding boundary
    half_ulp = 2.0 ** -(n_bits + 1)
    ties = np.array([1.0 + half_ulp, 1.0 + 3 * half_ulp], dtype=np.float32) if n_bits < 23 else []
    x = np.concatenate([x, np.asarray(ties, dtype=np.float32)])
    got = codecs.reduce_mantissa(x, n_bits, mode)
    ref = reference_reduce(x, n_bits, mode)
    np.testing.assert_array_equal(got, ref)
    rel = np.abs(got.astype(np.float64) - x) / np.abs(x)
    bound = relative_error_bound(n_bits, mode)
    assert rel.max() <= bound
    if mode == "truncate":
        assert np.all(np.abs(got) <= np.abs(x))
    # the dropped bits are zero
    drop = 23 - n_bits
    assert np.all(got.view(np.uint32) & np.uint32((1 << drop) - 1) == 0)


@settings(max_examples=300, deadline=None)
@given(st.lists(normal_floats, min_size=1, max_size=20), st.integers(0, 23))
def test_reduce_property(values: list[float], n_bits: int) -> None:
    x = np.array(values, dtype=np.float32)
    x = x[x != 0]
    for mode in ("round", "truncate"):
        got = codecs.reduce_mantissa(x, n_bits, mode)
        np.testing.assert_array_equal(got, reference_reduce(x, n_bits, mode))
        # idempotent
        np.testing.assert_array_equal(codecs.reduce_mantissa(got, n_bits, mode), got)


def test_specials_pass_through() -> None:
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=np.float32)
    got = codecs.reduce_mantissa(x, 5)
    assert np.isnan(got[0]) and got[1] == np.inf and got[2] == -np.inf and got[3] == 0
    big = np.array([np.finfo(np.float32).max], dtype=np.float32)
    assert codecs.reduce_mantissa(big, 3)[0] == np.inf  # IEEE overflow on rounding up


def test_bfloat16_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(50000) * 10.0 ** rng.uniform(-8, 8, 50000)).astype(np.float32)
    ref = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(codecs.to_bfloat16(x), ref)


def test_float16_round_trip() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(-60000, 60000, 10000).astype(np.float32)
    y = codecs.to_float16(x)
    assert y.dtype == np.float32
    rel = np.abs(y - x) / np.maximum(np.abs(x), 2.0**-14)
    assert rel.max() <= 2.0**-11 * 1.0001
    # values already representable survive unchanged
    np.testing.assert_array_equal(codecs.to_float16(y), y)
    # float16 equals 10-bit mantissa rounding in the normal half range
    z = rng.uniform(1.0, 1000.0, 10000).astype(np.float32)
    np.testing.assert_array_equal(codecs.to_float16(z), codecs.reduce_mantissa(z, 10))


def test_precompress_names() -> None:
    x = np.linspace(1, 2, 11, dtype=np.float32)
    np.testing.assert_array_equal(codecs.precompress(x, "m5"), codecs.reduce_mantissa(x, 5, "round"))
    np.testing.assert_array_equal(codecs.precompress(x, "m5-trunc"), codecs.reduce_mantissa(x, 5, "truncate"))
    with pytest.raises(ValueError):
        codecs.precompress(x, "fp8")
    with pytest.raises(ValueError):
        codecs.reduce_mantissa(x, 24)


def test_file_bytes_real_root_files(tmp_path) -> None:
    import uproot

    rng = np.random.default_rng(3)
    data = {"x": rng.standard_normal(20000).astype(np.float32)}
    sizes = {}
    for name in ("none", "zlib-6", "lzma-6", "lz4-4", "zstd-5"):
        path = str(tmp_path / f"{name}.root")
        sizes[name] = codecs.write_tree(path, data, codecs.parse_codec(name), strings={"card": "{}"})
        with uproot.open(path) as f:
            np.testing.assert_array_equal(f["events"]["x"].array(library="np"), data["x"])
    assert sizes["none"] > 80000  # 20000 float32 = 80 kB at least
    truncated = {"x": codecs.reduce_mantissa(data["x"], 7)}
    t_size = codecs.write_tree(str(tmp_path / "t.root"), truncated, codecs.parse_codec("zlib-6"))
    assert t_size < 0.8 * sizes["zlib-6"]
    with pytest.raises(ValueError):
        codecs.parse_codec("gzip-3")
