"""Pure pieces of study 2: stored 16-bit patterns, Pareto front."""

from __future__ import annotations

import numpy as np
import torch

from consumer.offline import codecs
from consumer.offline.codecs import storage_columns
from consumer.offline.studies.study_precompression import pareto_front


def test_storage_columns_bit_patterns_round_trip() -> None:
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((1000, 2)) * 100).astype(np.float32)
    f16 = storage_columns(x, ["a", "b"], "float16")
    assert f16["a"].dtype == np.uint16
    np.testing.assert_array_equal(f16["a"].view(np.float16).astype(np.float32), codecs.to_float16(x[:, 0]))
    bf = storage_columns(x, ["a", "b"], "bfloat16")
    back = (bf["b"].astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(back, torch.from_numpy(x[:, 1].copy()).to(torch.bfloat16).float().numpy())
    m10 = storage_columns(x, ["a", "b"], "m10")
    np.testing.assert_array_equal(m10["a"], codecs.reduce_mantissa(x[:, 0], 10))


def test_pareto_front() -> None:
    pts = [{"config": "lossless", "core_half_width": 0.0, "compression_ratio": 1.4},
           {"config": "ae", "core_half_width": 0.01, "compression_ratio": 4.0},
           {"config": "dominated", "core_half_width": 0.02, "compression_ratio": 3.0},
           {"config": "m5", "core_half_width": 0.007, "compression_ratio": 3.9}]
    assert sorted(pareto_front(pts)) == ["ae", "lossless", "m5"]
