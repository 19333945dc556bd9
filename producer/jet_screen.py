"""What the producer does with the values real files hold that no model can take: the input screen.

Real files hold sentinel values (NaN, inf, -999 for "not computed") and rare events with very many jets.
A value the wire refuses (NaN or inf) would have the encoder reject the whole message, on every resend,
so the producer screens each chunk as it reads it (docs/design.md, "Input screen"):

* a jet with a non-finite value (NaN, +-inf, or a float64 too large for float32) in any variable read or
  derived is dropped from its event; its event is kept;
* a jet with a value at or below :data:`SENTINEL_MAX` (-999, in the file's own unit) in any variable read
  but the signed momentum components px, py, pz is dropped the same way (no other jet variable of a real jet
  is that low: pt, m, E >= 0, |eta| < 10, |phi| <= pi, substructure ratios >= 0);
* an event with more than ``max_jets`` jets keeps its ``max_jets`` highest-pt jets (in their order) and is
  kept; the wire's limit (``--max-jets-per-event`` of the encoder) is the default cap;
* an event that loses every jet is sent as a zero-jet event: no event is ever dropped here.

Everything dropped is counted (:class:`InputCounts`): values by kind, jets and events by reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

#: Values at or below this (in the file's unit) are sentinels: -999, -9999, -1e9, -FLT_MAX.
SENTINEL_MAX = -999.0
#: Variables whose legitimate values go below SENTINEL_MAX (a TeV jet has px = -1e6 MeV): never sentinels.
SIGNED = frozenset({"px", "py", "pz"})


@dataclass
class InputCounts:
    """What the input screen found and did, summed over chunks (see the module docstring)."""

    non_finite_values: int = 0  # NaN or inf values seen (read or derived)
    sentinel_values: int = 0  # finite values <= SENTINEL_MAX seen
    jets_dropped_non_finite: int = 0  # jets with at least one non-finite value
    jets_dropped_sentinel: int = 0  # jets with a sentinel value and no non-finite one
    events_with_dropped_jets: int = 0  # events that lost a jet for a non-finite or sentinel value (kept)
    events_over_jet_cap: int = 0  # events cut to their max_jets leading jets (kept)
    jets_dropped_over_cap: int = 0
    zero_pt_jets_dropped: int = 0  # Cartesian jets with pt = 0 (no finite eta), see producer.reader

    def add(self, other: InputCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def jets_dropped(self) -> dict[str, int]:
        """Jets dropped by reason (the label values of aetrig_input_jets_dropped_total, metrics.INPUT_DROP_REASONS)."""
        return {"non_finite": self.jets_dropped_non_finite, "sentinel": self.jets_dropped_sentinel,
                "over_cap": self.jets_dropped_over_cap, "zero_pt": self.zero_pt_jets_dropped}

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


def _event_of_jet(counts: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


def keep_jets(counts: np.ndarray, columns: dict[str, np.ndarray], keep: np.ndarray) -> tuple[np.ndarray,
                                                                                               dict[str, np.ndarray]]:
    """Leave out the jets where ``keep`` is False from every column and from the per-event counts."""
    if keep.all():
        return counts, columns
    counts = counts - np.bincount(_event_of_jet(counts)[~keep], minlength=len(counts)).astype(counts.dtype)
    return counts, {var: values[keep] for var, values in columns.items()}


def bad_values(counts: np.ndarray, columns: dict[str, np.ndarray], sentinels: bool,
               found: InputCounts) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Drop the jets with a non-finite value (and, with ``sentinels``, a value <= SENTINEL_MAX); count them."""
    n = int(counts.sum())
    non_finite = np.zeros(n, bool)
    sentinel = np.zeros(n, bool)
    for var, values in columns.items():
        bad = ~np.isfinite(values)
        if bad.any():
            found.non_finite_values += int(bad.sum())
            non_finite |= bad
        if sentinels and var not in SIGNED:
            low = values <= SENTINEL_MAX  # NaN compares False
            if low.any():
                found.sentinel_values += int(low.sum())
                sentinel |= low
    drop = non_finite | sentinel
    if not drop.any():
        return counts, columns
    found.jets_dropped_non_finite += int(non_finite.sum())
    found.jets_dropped_sentinel += int((sentinel & ~non_finite).sum())
    found.events_with_dropped_jets += len(np.unique(_event_of_jet(counts)[drop]))
    return keep_jets(counts, columns, ~drop)


def cap_jets(counts: np.ndarray, columns: dict[str, np.ndarray], max_jets: int,
             found: InputCounts) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Events with more than ``max_jets`` jets keep their ``max_jets`` highest-pt jets (by column order when no
    pt is read), in their original order; count them."""
    over = counts > max_jets
    if not over.any():
        return counts, columns
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    keep = np.ones(int(counts.sum()), bool)
    pt = columns.get("pt")
    for event in np.flatnonzero(over):
        lo, hi = int(starts[event]), int(starts[event] + counts[event])
        if pt is None:
            keep[lo + max_jets:hi] = False
        else:
            rank = np.argsort(-pt[lo:hi], kind="stable")
            keep[lo + rank[max_jets:]] = False
    found.events_over_jet_cap += int(over.sum())
    found.jets_dropped_over_cap += int((~keep).sum())
    return keep_jets(counts, columns, keep)
