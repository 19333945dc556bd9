"""Lossy float pre-compression (mantissa truncation, float16, bfloat16) and ROOT lossless codecs.

Mantissa reduction works on the IEEE-754 float32 bit pattern and keeps ``n_bits`` of the 23
explicit mantissa bits. Two modes:

- ``"round"`` (default): round to nearest, ties to even (what ATLAS's float compressor and
  bfloat16 conversions do). Relative error <= 2**-(n_bits + 1) for normal numbers.
- ``"truncate"``: drop the low bits (round toward zero). Relative error < 2**-n_bits.

NaN and +-inf pass through unchanged; a finite value that rounds past the largest float32 of
its precision becomes +-inf, as IEEE rounding does.

The lossless codecs are the ones ROOT (and uproot when writing) offers: zlib, lzma, lz4, zstd.
``file_bytes`` measures what they give on real ROOT files written with uproot.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# the one implementation lives in the shared runtime (the NanoAOD example files use it too); the studies use it here
from emulator.runtime.float_bits import FLOAT32_MANTISSA_BITS, reduce_mantissa  # noqa: F401

#: lossy pre-compressions studied: name -> description
PRECISIONS = ("float32", "float16", "bfloat16")


def to_float16(values: np.ndarray) -> np.ndarray:
    """Round-trip through IEEE half precision (numpy, round to nearest even), back to float32."""
    return np.asarray(values, dtype=np.float32).astype(np.float16).astype(np.float32)


def to_bfloat16(values: np.ndarray) -> np.ndarray:
    """Round-trip through bfloat16 (float32 with 7 mantissa bits, round to nearest even)."""
    return reduce_mantissa(values, 7, "round")


def precompress(values: np.ndarray, scheme: str) -> np.ndarray:
    """Apply a named lossy scheme: ``float32`` (identity), ``float16``, ``bfloat16``, ``mN`` / ``mN-trunc``."""
    if scheme == "float32":
        return np.asarray(values, dtype=np.float32).copy()
    if scheme == "float16":
        return to_float16(values)
    if scheme == "bfloat16":
        return to_bfloat16(values)
    if scheme.startswith("m"):
        body, _, suffix = scheme[1:].partition("-")
        mode = "truncate" if suffix == "trunc" else "round"
        return reduce_mantissa(values, int(body), mode)
    raise ValueError(f"unknown pre-compression scheme {scheme!r}")


# ----------------------------------------------------------------------------- lossless codecs


@dataclass(frozen=True)
class Codec:
    """A ROOT compression algorithm and level; ``name`` like ``zlib-6``, ``none``."""

    algorithm: str
    level: int

    @property
    def name(self) -> str:
        return "none" if self.algorithm == "none" else f"{self.algorithm}-{self.level}"

    def uproot(self):  # -> uproot.compression.Compression | None
        import uproot

        factories = {"zlib": uproot.ZLIB, "lzma": uproot.LZMA, "lz4": uproot.LZ4, "zstd": uproot.ZSTD}
        if self.algorithm == "none":
            return None
        return factories[self.algorithm](self.level)


#: codecs and levels the study scans (ROOT's default is zlib-1 in uproot, lz4/zstd popular in ATLAS/CMS)
DEFAULT_CODECS: tuple[Codec, ...] = (
    Codec("none", 0),
    Codec("zlib", 1), Codec("zlib", 6), Codec("zlib", 9),
    Codec("lzma", 1), Codec("lzma", 9),
    Codec("lz4", 1), Codec("lz4", 9),
    Codec("zstd", 1), Codec("zstd", 5), Codec("zstd", 19),
)


def parse_codec(name: str) -> Codec:
    """``zlib-6`` -> Codec('zlib', 6); ``none`` -> no compression."""
    if name == "none":
        return Codec("none", 0)
    algorithm, _, level = name.partition("-")
    if algorithm not in ("zlib", "lzma", "lz4", "zstd") or not level.isdigit():
        raise ValueError(f"codec must look like zlib-6, lzma-9, lz4-1, zstd-5 or none; got {name!r}")
    return Codec(algorithm, int(level))


def write_tree(path: str, branches: Mapping[str, object], codec: Codec,
               strings: Mapping[str, str] | None = None) -> int:
    """Write ``branches`` (numpy or awkward arrays) as TTree ``events`` with ``codec``; return file size.

    ``strings`` become TObjString keys (e.g. the model card), so their bytes count too.
    """
    import uproot

    from consumer.offline.rootwrite import create_tree

    with uproot.recreate(path, compression=codec.uproot()) as f:
        for key, text in (strings or {}).items():
            f[key] = text
        create_tree(f, "events", branches)
    return os.path.getsize(path)


def card_text(card: Mapping[str, object] | str) -> str:
    """The model card as the sink stores it (JSON text)."""
    return card if isinstance(card, str) else json.dumps(card, sort_keys=True)


def _f16_bits(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).astype(np.float16).view(np.uint16)


def _bf16_bits(values: np.ndarray) -> np.ndarray:
    return (to_bfloat16(values).view(np.uint32) >> 16).astype(np.uint16)


def storage_columns(values: np.ndarray, names: Sequence[str], storage: str) -> dict[str, np.ndarray]:
    """Per-jet columns as they would be stored: float32 (possibly rounded), or 16-bit patterns."""
    out = {}
    for i, n in enumerate(names):
        col = values[:, i]
        if storage == "float16":
            out[n] = _f16_bits(col)
        elif storage == "bfloat16":
            out[n] = _bf16_bits(col)
        else:
            out[n] = precompress(col, storage)
    return out
