"""The threshold check's rule (emulator/runtime/threshold_check.py) at its edges, and the expected fraction of
each threshold policy (emulator/encoder/threshold_policy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.runtime.threshold_check import mismatch, report, warning_text

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("events", "flagged", "expected", "want"), [
    (999, 500, 1.0, None),  # fewer than 1 000 events: never
    (1000, 11, 1.0, "above"),  # > 10x and >= 10 flagged
    (1000, 10, 1.0, None),  # exactly 10x is not more than 10x
    (100000, 9, 0.1, None),  # 90x, but only 9 flagged: a fluctuation is possible
    (100000, 10, 0.5, "above"),
    (100000, 2, 30.0, "below"),  # < expected / 10 with expected >= 30
    (100000, 3, 30.0, None),  # exactly a tenth is not below
    (10000, 0, 29.0, None),  # expected < 30: no shortfall judged
    (20000, 20, 20.0, None),
    (5000, 500, 0.0, None),  # the threshold's fraction unknown (--threshold outside the card's curve): no judgement
])
def test_rule(events: int, flagged: int, expected: float, want: str | None) -> None:
    assert mismatch(events, flagged, expected) == want


def test_warning_names_both_readings_the_domain_share_and_the_command() -> None:
    text = warning_text(2000, 500, 2.0, 0.29, "models/zoo/EVT_AE_4v")
    assert text is not None
    for part in ("25% of 2000 events flagged", "set for 0.1%", "rich in signal", "does not fit this background",
                 "29.0% of the jets are outside", "aetrig calibrate --model models/zoo/EVT_AE_4v --background",
                 "no decision changed"):
        assert part in text, part
    assert warning_text(2000, 2, 2.0, 0.29, "m") is None
    r = report(2000, 2, 2.0, 10, 100, "m")
    assert r["warning"] is None and r["out_of_domain_share"] == 0.1 and r["expected_fraction"] == 0.001


def test_policy_fractions() -> None:
    from emulator.encoder.threshold_policy import ThresholdPolicy
    from models.runtime.card import load_model_dir

    model = load_model_dir(REPO / "models" / "zoo" / "EVT_AE_ht", level="event")
    assert ThresholdPolicy(model, 1e-3, None, None).fraction(1e5) == 1e-3
    assert ThresholdPolicy(model, None, 100.0, None).fraction(1e5) == pytest.approx(1e-3)
    row = next(r for r in model.card["thresholds"]["per_event"] if r["fpr"] == 1e-3)
    assert ThresholdPolicy(model, None, None, row["threshold"]).fraction(1e5) == pytest.approx(1e-3, rel=0.05)
    assert ThresholdPolicy(model, None, None, 1e9).fraction(1e5) is None  # beyond the curve: unknown
