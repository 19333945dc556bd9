"""float32 mantissa reduction on the IEEE-754 bit pattern: the one implementation (study 2's bit-rounding
codecs in consumer/offline/codecs.py, and the NanoAOD example files, which store eta and phi with 12 and
the mass with 10 mantissa bits as CMS NanoAOD does).

``reduce_mantissa`` keeps ``n_bits`` of the 23 explicit mantissa bits. ``"round"`` (default): round to
nearest, ties to even; relative error <= 2**-(n_bits + 1) for normal numbers. ``"truncate"``: drop the
low bits; relative error < 2**-n_bits. NaN and +-inf pass through unchanged; a finite value that rounds
past the largest float32 of its precision becomes +-inf, as IEEE rounding does.
"""

from __future__ import annotations

import numpy as np

FLOAT32_MANTISSA_BITS = 23


def reduce_mantissa(values: np.ndarray, n_bits: int, mode: str = "round") -> np.ndarray:
    """Return float32 ``values`` keeping ``n_bits`` (0..23) explicit mantissa bits."""
    if not 0 <= n_bits <= FLOAT32_MANTISSA_BITS:
        raise ValueError(f"n_bits must be in 0..23, got {n_bits}")
    if mode not in ("round", "truncate"):
        raise ValueError(f"mode must be 'round' or 'truncate', got {mode!r}")
    x = np.ascontiguousarray(values, dtype=np.float32)
    drop = FLOAT32_MANTISSA_BITS - n_bits
    if drop == 0:
        return x.copy()
    bits = x.view(np.uint32).astype(np.uint64)
    keep_mask = np.uint64((0xFFFFFFFF >> drop) << drop)
    if mode == "round":
        lsb = (bits >> np.uint64(drop)) & np.uint64(1)
        bits = bits + np.uint64((1 << (drop - 1)) - 1) + lsb
    out = (bits & keep_mask).astype(np.uint32).view(np.float32)
    special = ~np.isfinite(x)
    if special.any():
        out = out.copy()
        out[special] = x[special]
    return out.reshape(np.shape(values))
