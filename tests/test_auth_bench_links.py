"""The bench's link step: plaintext against CurveZMQ over a real loopback link between two processes."""

from __future__ import annotations

import pytest

from emulator.bench.links import link_cost


@pytest.mark.slow
def test_curve_costs_cpu_per_byte_and_both_links_deliver() -> None:
    res = link_cost(repeats=2, size=200_000, messages=300, latency_size=20_000, latency_messages=50, gap_s=0.002)
    for mode in ("plaintext", "curve"):
        assert len(res[mode]["cpu_ms_per_mb"]) == 2 and all(v > 0 for v in res[mode]["cpu_ms_per_mb"])
        assert all(0 < v < 2000 for v in res[mode]["latency_p50_ms"])  # every message arrived, stamped
    # encrypting and decrypting every byte (XSalsa20-Poly1305) costs CPU that plaintext does not spend
    assert min(res["curve"]["cpu_ms_per_mb"]) > max(res["plaintext"]["cpu_ms_per_mb"])
    assert res["curve_extra_cpu_ms_per_mb_median"] > 0
