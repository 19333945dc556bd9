"""A model's training domain: the jets it was trained on (card ``domain``), and the selection of those jets.

Every card states the jet selection of its training data under ``domain.jets``: ``min_pt_gev`` (a jet is
inside when pt > min_pt_gev), ``max_abs_eta`` (|eta| < max_abs_eta) and ``max_jets`` (an event's first
``max_jets`` jets that pass both cuts, in stream order, which every supported format sorts by pt; None: no
limit, as for per-jet models that score each jet alone). The generated training sets keep jets with
pt > 20 GeV and |eta| < 4.5 (their metadata ``jets``); event models see their J leading jets.

The encoder gives the anomaly model only the jets inside (:meth:`Domain.mask`) unless the user widens the
selection explicitly (``--score-all-jets``); the compression model still encodes every jet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: what the card's ``domain.rule`` says, word for word the rule :meth:`Domain.mask` applies
RULE = ("a jet is inside when pt > min_pt_gev and |eta| < max_abs_eta (NaN pt or eta is outside); an event model "
        "reads the first max_jets jets inside, in stream order (pt-sorted), as in training (the rest pads or is "
        "truncated, not counted as outside); a per-jet model with max_jets scores only an event's first max_jets "
        "jets inside (max_jets null: no limit)")


class DomainError(ValueError):
    """A card's ``domain`` block is malformed."""


@dataclass(frozen=True)
class Domain:
    """The jet selection a model was trained on."""

    min_pt_gev: float
    max_abs_eta: float
    max_jets: int | None = None

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> Domain | None:
        """The card's ``domain.jets``, or None when the card states none (older cards: every jet is given)."""
        block = (card.get("domain") or {}).get("jets")
        if block is None:
            return None
        try:
            max_jets = block.get("max_jets")
            return cls(float(block["min_pt_gev"]), float(block["max_abs_eta"]),
                       None if max_jets is None else int(max_jets))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DomainError(f"card {card.get('name')!r}: malformed domain.jets {block!r} ({exc})") from exc

    def card_block(self, source: str) -> dict[str, Any]:
        """The card's ``domain`` block; ``source`` says where the numbers come from."""
        return {"jets": {"min_pt_gev": self.min_pt_gev, "max_abs_eta": self.max_abs_eta, "max_jets": self.max_jets},
                "rule": RULE, "source": source}

    def text(self) -> str:
        """'pt > 20 GeV, |eta| < 4.5, leading 10 jets' (for logs and messages)."""
        jets = f", leading {self.max_jets} jets" if self.max_jets is not None else ""
        return f"pt > {self.min_pt_gev:g} GeV, |eta| < {self.max_abs_eta:g}{jets}"

    def mask(self, pt: np.ndarray, eta: np.ndarray, counts: np.ndarray, limit_jets: bool = True) -> np.ndarray:
        """Bool [n_jets_total]: the jets inside the domain (flat jets of events with per-event ``counts``).

        ``limit_jets=False``: the pt and |eta| cuts only (an event model truncates to its J leading jets itself,
        as in training, and bins its score in the HT of all of them)."""
        pt = np.asarray(pt)
        counts = np.asarray(counts, dtype=np.int64)
        inside = (pt > self.min_pt_gev) & (np.abs(np.asarray(eta)) < self.max_abs_eta)
        if self.max_jets is None or not limit_jets or not inside.any():
            return inside
        running = np.cumsum(inside, dtype=np.int64)  # inside jets so far, over all events
        before = np.repeat(running[np.cumsum(counts) - counts - 1] * (np.cumsum(counts) - counts > 0)
                           if len(counts) else np.zeros(0, np.int64), counts)  # inside jets of earlier events
        return inside & (running - before <= self.max_jets)


def select(mask: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-event counts of the jets ``mask`` keeps (int64)."""
    counts = np.asarray(counts, dtype=np.int64)
    if not len(counts):
        return counts
    kept = np.zeros(len(counts), np.int64)
    nonempty = counts > 0
    if nonempty.any():
        kept[nonempty] = np.add.reduceat(np.asarray(mask, dtype=np.int64), (np.cumsum(counts) - counts)[nonempty])
    return kept


def file_jet_selection(path: str | Path) -> dict[str, float] | None:
    """The jet selection a generated file's ``metadata`` states (``jets``: pt_min, abs_eta_max), or None."""
    import json

    import uproot

    with uproot.open(path) as f:
        if "metadata" not in f:
            return None
        try:
            jets = json.loads(str(f["metadata"])).get("jets") or {}
            return {"pt_min": float(jets["pt_min"]), "abs_eta_max": float(jets["abs_eta_max"])}
        except (ValueError, KeyError, TypeError):
            return None


def training_domain(paths: Sequence[str | Path], pt: np.ndarray, eta: np.ndarray,
                    max_jets: int | None) -> dict[str, Any]:
    """The card ``domain`` block of a model trained on ``paths`` (jets ``pt``, ``eta``): the selection the
    files' metadata states when they all state the same one, else the range of the jets themselves."""
    stated = [file_jet_selection(p) for p in paths]
    if stated and all(s is not None and s == stated[0] for s in stated):
        sel = stated[0]
        assert sel is not None
        return Domain(sel["pt_min"], sel["abs_eta_max"], max_jets).card_block(
            "the training files' metadata (jets: pt_min, abs_eta_max)"
            + (f"; the event model reads the leading {max_jets} jets" if max_jets is not None else
               "; a per-jet model scores every jet alone (no jets-per-event limit)"))
    pt, eta = np.asarray(pt, np.float64), np.abs(np.asarray(eta, np.float64))
    low = float(np.floor(pt.min())) if pt.size else 0.0
    high = float(np.ceil(eta.max() * 10) / 10) if eta.size else 0.0
    return Domain(np.nextafter(low, -np.inf) if low > 0 else 0.0, high + 0.05, max_jets).card_block(
        "measured on the training jets (their files state no selection): lowest pt, largest |eta|")
