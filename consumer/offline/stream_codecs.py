"""Lossless byte-stream codecs for one column of numbers: what the rate-distortion study counts.

Each codec turns a 1-D numpy array into one ``bytes`` object and back bit for bit; the study's
byte counts are ``len()`` of these objects. Names:

- ``zlib-N``, ``lzma-N``, ``lz4-N``, ``zstd-N``: ROOT's algorithms (the compressors uproot writes
  baskets with, :class:`consumer.offline.codecs.Codec`), raw streams without ROOT's 9-byte headers.
- ``shuffle+zstd-N``, ``shuffle+lzma-N``: numcodecs byte shuffle (element size of the array) then
  the compressor, the Blosc/Zarr way of compressing floats.
- ``zfp-reversible``: ZFP's lossless mode (float32/float64/int32/int64 only).

An empty array encodes to ``b""`` (its length is known from the jet counts) for every codec.
"""

from __future__ import annotations

import numpy as np

from consumer.offline.codecs import parse_codec

#: lossless codecs the rate-distortion study scans
LOSSLESS = ("zlib-9", "lz4-9", "zstd-19", "lzma-9", "shuffle+zstd-19", "shuffle+lzma-9", "zfp-reversible")
#: the codec of per-event bookkeeping (jet counts, fallback flags, exception lists): same for every configuration
BOOKKEEPING = "zstd-19"
_ZFP_DTYPES = (np.float32, np.float64, np.int32, np.int64)


def applicable(name: str, dtype: np.dtype) -> bool:
    """Whether ``name`` can code arrays of ``dtype`` (ZFP takes 32/64-bit floats and ints only)."""
    return name != "zfp-reversible" or np.dtype(dtype).type in _ZFP_DTYPES


def _root(name: str):
    return parse_codec(name).uproot()


def encode(values: np.ndarray, name: str) -> bytes:
    """Compress the 1-D array ``values`` with codec ``name`` (see the module doc)."""
    a = np.ascontiguousarray(values)
    if a.size == 0:
        return b""
    if name == "zfp-reversible":
        import zfpy

        if not applicable(name, a.dtype):
            raise ValueError(f"zfp-reversible does not take {a.dtype}")
        return bytes(zfpy.compress_numpy(a))
    if name.startswith("shuffle+"):
        import numcodecs

        shuffled = numcodecs.Shuffle(elementsize=a.dtype.itemsize).encode(a)
        return bytes(_root(name.removeprefix("shuffle+")).compress(bytes(shuffled)))
    return bytes(_root(name).compress(a.tobytes()))


def decode(data: bytes, name: str, dtype: np.dtype, n: int) -> np.ndarray:
    """The ``n`` values of ``dtype`` that :func:`encode` compressed into ``data``."""
    dtype = np.dtype(dtype)
    if n == 0:
        return np.zeros(0, dtype)
    if name == "zfp-reversible":
        import zfpy

        return np.asarray(zfpy.decompress_numpy(data), dtype=dtype)
    nbytes = n * dtype.itemsize
    if name.startswith("shuffle+"):
        import numcodecs

        raw = bytes(_root(name.removeprefix("shuffle+")).decompress(data, nbytes))
        out = numcodecs.Shuffle(elementsize=dtype.itemsize).decode(raw)
        return np.frombuffer(bytes(out), dtype=dtype, count=n)
    return np.frombuffer(bytes(_root(name).decompress(data, nbytes)), dtype=dtype, count=n)
