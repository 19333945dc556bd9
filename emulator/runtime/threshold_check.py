"""Whether the flag threshold fits the stream: the flagged fraction against the fraction it was set for.

A threshold comes from a background that is not the user's stream. The encoder adds up, per scored
event, the fraction its threshold was set for (the FPR of ``--fpr``, ``--accept-rate`` / the declared
input rate, or the card curve's FPR at a ``--threshold``): ``expected`` flagged events. The rule
(:func:`mismatch`), over ``events`` >= 1 000 scored events with ``flagged`` flagged:

- ``above``: flagged > 10 x expected and flagged >= 10;
- ``below``: flagged < expected / 10 and expected >= 30 (so that a shortfall is no fluctuation).

The warning names both readings (a signal-rich stream, or a threshold that does not fit this
background), the share of jets outside the anomaly model's training domain and the command that
recalibrates. It only informs: no decision changes. The encoder logs it, its report and ``summary.json``
carry it (``threshold_check``) and the status line of `aetrig run` shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MIN_EVENTS = 1000
FACTOR = 10.0
MIN_FLAGGED_ABOVE = 10
MIN_EXPECTED_BELOW = 30.0


def mismatch(events: int, flagged: int, expected: float) -> str | None:
    """'above', 'below' or None by the rule of the module docstring (None too when ``expected`` is 0: the
    fraction the threshold was set for is unknown, e.g. an explicit --threshold outside the card's curve)."""
    if events < MIN_EVENTS or expected <= 0:
        return None
    if flagged > FACTOR * expected and flagged >= MIN_FLAGGED_ABOVE:
        return "above"
    if expected >= MIN_EXPECTED_BELOW and flagged < expected / FACTOR:
        return "below"
    return None


def recalibrate_command(model_path: str) -> str:
    """The command that recalibrates the anomaly model on the user's own background."""
    return f"aetrig calibrate --model {model_path} --background YOUR_BACKGROUND.root --out my_model"


def warning_text(events: int, flagged: int, expected: float, out_of_domain_share: float | None,
                 model_path: str) -> str | None:
    """The warning, or None when the flagged fraction fits (``mismatch``)."""
    side = mismatch(events, flagged, expected)
    if side is None:
        return None
    frac, want = flagged / events, expected / events
    ood = "n/a" if out_of_domain_share is None else f"{100 * out_of_domain_share:.1f}%"
    return (f"THRESHOLD MAY NOT FIT THIS STREAM: {100 * frac:.3g}% of {events} events flagged, the threshold was set "
            f"for {100 * want:.3g}% ({'more' if side == 'above' else 'fewer'} than {FACTOR:g}x off). Either the "
            f"stream is {'rich in signal' if side == 'above' else 'poorer in signal-like events than the background'}"
            f", or the threshold does not fit this background; {ood} of the jets are outside the anomaly model's "
            f"training domain. Recalibrate on a background of this stream: {recalibrate_command(model_path)}. "
            "(Information only: no decision changed.)")


def report(events: int, flagged: int, expected: float, out_of_domain_jets: int, jets: int,
           model_path: str) -> dict[str, Any]:
    """The ``threshold_check`` block of the encoder report and summary.json."""
    share = out_of_domain_jets / jets if jets else None
    return {"events": int(events), "flagged": int(flagged), "expected_flagged": float(expected), "jets": int(jets),
            "flagged_fraction": flagged / events if events else None,
            "expected_fraction": expected / events if events else None,
            "out_of_domain_jets": int(out_of_domain_jets), "out_of_domain_share": share,
            "mismatch": mismatch(events, flagged, expected), "model_path": model_path,
            "warning": warning_text(events, flagged, expected, share, model_path)}


def merged(blocks: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """One ``threshold_check`` block from several encoders' (counts summed, the rule applied to the sums)."""
    blocks = [b for b in blocks if b]
    if not blocks:
        return None
    total = {k: sum(b.get(k) or 0 for b in blocks) for k in ("events", "flagged", "expected_flagged",
                                                               "out_of_domain_jets", "jets")}
    return report(int(total["events"]), int(total["flagged"]), float(total["expected_flagged"]),
                  int(total["out_of_domain_jets"]), int(total["jets"]), str(blocks[0].get("model_path")))
