"""Error-bounded lossy codecs for jet columns: SZ3, ZFP, numcodecs BitRound and Quantize, mantissa rounding.

Every codec is asked for one bound per column and keeps it point-wise:

- ``pt``, ``m``, ``e`` (:data:`models.runtime.residuals.RELATIVE_VARIABLES`): relative,
  ``|x' / x - 1| <= r`` for ``x > 0``; values ``x <= 0`` (m = 0 jets) come back exactly.
- every other variable (``eta``, ``phi``, substructure): absolute, ``|x' - x| <= eb``.

SZ3's REL mode is relative to the value range and ZFP's tolerance is absolute, so SZ3, ZFP and
Quantize code ``t = log(x)`` with the absolute bound ``log1p(r)`` (then ``x' / x`` lies in
``[1 / (1 + r), 1 + r]``). ``log`` is undefined at ``x <= 0``: those jets (m = 0 jets from
single-tower clusters) get a filler ``t`` (the column's smallest valid ``t``) and their exact
index and value go into a lossless exception stream that the decoder writes back; its bytes count.
The bounds handed to the compressors are shrunk by the float32 rounding of ``t`` and of the output
(:func:`transform_bound`), so the guarantee holds on the float32 values a reader gets back.

BitRound and mantissa rounding keep ``n`` mantissa bits, a relative bound ``2**-(n + 1)`` by
itself; for absolute bounds ``n`` is set by the column's largest ``|x|`` (:func:`keep_bits`).

Each codec's ``encode`` returns a tuple of byte strings (what would be written); the study counts
``len()`` of each. ``decode`` takes them and the number of values back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from consumer.offline import codecs as float_codecs
from consumer.offline import stream_codecs
from models.runtime.residuals import RELATIVE_VARIABLES

#: codec families the rate-distortion study scans (see :func:`make`)
FAMILIES = ("SZ3", "ZFP", "BitRound", "Quantize", "round+zstd-19", "round+lzma-9")


def bound_kind(var: str) -> str:
    """``relative`` for pt, m, e; ``absolute`` for every other variable."""
    return "relative" if var in RELATIVE_VARIABLES else "absolute"


def transform_bound(kind: str, bound: float, max_abs: float) -> float:
    """The absolute bound in the coded domain (``log x`` for relative, ``x`` for absolute) that keeps ``bound``.

    ``max_abs`` is the largest ``|t|`` (relative) or ``|x|`` (absolute) of the column. The margin covers
    float32 rounding: of ``t`` and of the compressors' float32 arithmetic (one float32 spacing at ``max_abs``)
    and, for relative bounds, of the float32 output (``log1p(2**-24) < 2**-23``).
    """
    if not bound > 0:
        raise ValueError(f"error bound must be positive, got {bound!r}")
    spacing = float(np.spacing(np.float32(max_abs + bound)))
    eff = (math.log1p(bound) - 2.0 ** -23 - spacing) if kind == "relative" else bound - spacing
    if not eff > 0:
        raise ValueError(f"error bound {bound:g} is below float32 precision at |value| {max_abs:g}")
    return eff


def keep_bits(kind: str, bound: float, values: np.ndarray) -> int:
    """Explicit float32 mantissa bits (0..23) that round-to-nearest needs to keep ``bound``.

    Relative bounds hold for normal float32 (subnormals, below 1.2e-38, have fewer bits)."""
    if kind == "relative":  # error <= 2**-(n+1) |x|
        n = math.ceil(-math.log2(bound) - 1.0)
    else:  # error <= 2**(E - n - 1) with 2**E <= |x| < 2**(E + 1), E at the largest |x|
        big = float(np.max(np.abs(values))) if len(values) else 0.0
        if big == 0.0:
            return 0
        exponent = math.frexp(big)[1] - 1
        n = math.ceil(exponent - 1 - math.log2(bound))
    return int(min(max(n, 0), float_codecs.FLOAT32_MANTISSA_BITS))


# ------------------------------------------------------------------ log transform with exceptions


@dataclass(frozen=True)
class Coded:
    """A column in the compressors' domain: float32 ``t`` and the exact values log could not take."""

    t: np.ndarray
    exception_index: np.ndarray  # uint32
    exception_value: np.ndarray  # float32


def to_domain(values: np.ndarray, kind: str) -> Coded:
    """``t = log(x)`` (relative; x <= 0 become exceptions, t = smallest valid t) or ``t = x`` (absolute)."""
    x = np.ascontiguousarray(values, dtype=np.float32)
    none = np.zeros(0, np.uint32)
    if kind == "absolute":
        return Coded(x, none, np.zeros(0, np.float32))
    valid = x > 0
    t = np.zeros(len(x), np.float32)
    t[valid] = np.log(x[valid].astype(np.float64)).astype(np.float32)
    bad = np.flatnonzero(~valid).astype(np.uint32)
    if len(bad):
        t[bad] = t[valid].min() if valid.any() else 0.0
    return Coded(t, bad, x[bad].copy())


def from_domain(t: np.ndarray, kind: str, exception_index: np.ndarray, exception_value: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_domain`: float32 values."""
    if kind == "absolute":
        return np.asarray(t, dtype=np.float32)
    out = np.exp(np.asarray(t, dtype=np.float64)).astype(np.float32)
    out[exception_index] = exception_value
    return out


def encode_exceptions(index: np.ndarray, value: np.ndarray) -> bytes:
    """Lossless exception stream: ``b""`` when empty, else a 4-byte count then the indices and values compressed."""
    if len(index) == 0:
        return b""
    raw = np.concatenate([np.asarray(index, np.uint32).view(np.uint8), np.asarray(value, np.float32).view(np.uint8)])
    return np.uint32(len(index)).tobytes() + stream_codecs.encode(raw, stream_codecs.BOOKKEEPING)


def decode_exceptions(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(uint32 indices, float32 values) of an :func:`encode_exceptions` stream."""
    if not data:
        return np.zeros(0, np.uint32), np.zeros(0, np.float32)
    k = int(np.frombuffer(data[:4], np.uint32)[0])
    raw = stream_codecs.decode(data[4:], stream_codecs.BOOKKEEPING, np.uint8, 8 * k)
    return raw[:4 * k].view(np.uint32).copy(), raw[4 * k:].view(np.float32).copy()


# --------------------------------------------------------------------------------------- codecs


@dataclass(frozen=True)
class BoundedCodec:
    """One family at one bound (relative on pt/m/e, absolute otherwise); ``encode``/``decode`` a column."""

    family: str
    bound: float

    @property
    def name(self) -> str:
        return f"{self.family} @{self.bound:g}"

    @property
    def transformed(self) -> bool:
        """Whether the family codes ``log x`` for relative variables (SZ3, ZFP, Quantize)."""
        return self.family in ("SZ3", "ZFP", "Quantize")

    def encode(self, values: np.ndarray, var: str) -> tuple[bytes, ...]:
        kind = bound_kind(var)
        x = np.ascontiguousarray(values, dtype=np.float32)
        if len(x) == 0:
            return (b"",) * (2 if self.transformed else 1)
        if not self.transformed:
            return (_rounded_stream(self.family, x, keep_bits(kind, self.bound, x)),)
        coded = to_domain(x, kind)
        eb = transform_bound(kind, self.bound, float(np.max(np.abs(coded.t))))
        return (_encode_transformed(self.family, coded.t, eb),
                encode_exceptions(coded.exception_index, coded.exception_value))

    def decode(self, parts: tuple[bytes, ...], n: int, var: str) -> np.ndarray:
        if n == 0:
            return np.zeros(0, np.float32)
        if not self.transformed:
            name = "shuffle+zstd-19" if self.family == "BitRound" else self.family.removeprefix("round+")
            return stream_codecs.decode(parts[0], name, np.float32, n).copy()
        t = _decode_transformed(self.family, parts[0], n)
        index, value = decode_exceptions(parts[1])
        return from_domain(t, bound_kind(var), index, value)


def _rounded_stream(family: str, x: np.ndarray, n_bits: int) -> bytes:
    """BitRound: numcodecs BitRound, byte shuffle, zstd-19 (Zarr style); round+C: our rounding, then C (ROOT style)."""
    if family == "BitRound":
        import numcodecs

        return stream_codecs.encode(numcodecs.BitRound(keepbits=n_bits).encode(x), "shuffle+zstd-19")
    return stream_codecs.encode(float_codecs.reduce_mantissa(x, n_bits), family.removeprefix("round+"))


def _encode_transformed(family: str, t: np.ndarray, eb: float) -> bytes:
    if family == "SZ3":
        from pysz import sz, szConfig, szErrorBoundMode

        cfg = szConfig(t.shape)
        cfg.errorBoundMode = szErrorBoundMode.ABS
        cfg.absErrorBound = eb
        return bytes(sz.compress(t, cfg)[0])
    if family == "ZFP":
        import zfpy

        return bytes(zfpy.compress_numpy(t, tolerance=eb))
    if family == "Quantize":
        import numcodecs

        digits = math.ceil(math.log10(0.5 / eb))  # Quantize's error <= 2**-(bits+1) <= 0.5 10**-digits
        return stream_codecs.encode(numcodecs.Quantize(digits=digits, dtype="f4").encode(t), "shuffle+zstd-19")
    raise ValueError(f"unknown codec family {family!r}")


def _decode_transformed(family: str, data: bytes, n: int) -> np.ndarray:
    if family == "SZ3":
        from pysz import sz

        return np.asarray(sz.decompress(np.frombuffer(data, np.uint8), np.float32, (n,))[0], dtype=np.float32)
    if family == "ZFP":
        import zfpy

        return np.asarray(zfpy.decompress_numpy(data), dtype=np.float32)
    if family == "Quantize":
        return stream_codecs.decode(data, "shuffle+zstd-19", np.float32, n)
    raise ValueError(f"unknown codec family {family!r}")


def make(family: str, bound: float) -> BoundedCodec:
    """The codec of ``family`` (one of :data:`FAMILIES`) at ``bound``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown codec family {family!r}; choose from {FAMILIES}")
    return BoundedCodec(family, float(bound))
