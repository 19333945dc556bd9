"""Run an event-level model's scorer graph with ONNX Runtime on padded jets, or on flat jets + counts.

:func:`anomaly_score` is the one place that turns the scorer's outputs into the event's anomaly score
(the encoder service and the offline tools both call it): the error itself, or, when the card has a
``score_transform`` block, that transform of it (models/runtime/score_transform.py, imported only then).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.event_features import padded_jets
from models.runtime.onnx_session import ort_session


def run_event_scorer(scorer_path: str | Path, x: np.ndarray, batch: int = 32768,
                     threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latent [N, k], reconstructed event vector [N, n_features], error [N]) for ``x`` [N, J, V] in GeV."""
    session = ort_session(scorer_path, threads)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"event scorer input must be [N, J, V], got shape {x.shape}")
    expected = session.get_inputs()[0].shape
    if list(x.shape[1:]) != list(expected[1:]):
        raise ValueError(f"event scorer {scorer_path} expects [N, {expected[1]}, {expected[2]}], got {list(x.shape)}")
    parts = [session.run(["latent", "reconstruction", "error"], {"x": x[i:i + batch]})
             for i in range(0, len(x), batch)]
    if not parts:
        k = session.get_outputs()[0].shape[1]
        n_feat = session.get_outputs()[1].shape[1]
        return np.zeros((0, k), np.float32), np.zeros((0, n_feat), np.float32), np.zeros(0, np.float32)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def score_flat_events(scorer_path: str | Path, values: np.ndarray, counts: np.ndarray, n_jets: int,
                      threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``run_event_scorer`` on flat jets [n_jets_total, V] with per-event counts (padded/truncated to ``n_jets``)."""
    return run_event_scorer(scorer_path, padded_jets(values, counts, n_jets), threads=threads)


def has_score_transform(card: Mapping[str, Any]) -> bool:
    """Whether the card's anomaly score is a ``score_transform`` of the scorer's error."""
    return "score_transform" in card


@dataclass(frozen=True)
class EventScore:
    """The anomaly score of an event-level model's card, prepared once (:meth:`from_card`)."""

    transform: Any = None  # score_transform.CompiledTransform, or None: the score is the error
    selection: Any = None  # trigger_menu.JetSelection of the transform's HT

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> EventScore:
        if not has_score_transform(card):
            return cls()
        from models.runtime import score_transform  # the card needs it: its absence is a clear ImportError
        from models.runtime.trigger_menu import JetSelection

        sel = score_transform.transform_block(card)["ht"]
        return cls(score_transform.compile_transform(card), JetSelection(sel["min_pt"], sel["max_abs_eta"]))

    def __call__(self, error: np.ndarray, latent: np.ndarray | None, pt: np.ndarray | None, eta: np.ndarray | None,
                 counts: np.ndarray) -> np.ndarray:
        """Per-event anomaly score [N] float32; ``pt``/``eta``: all jets of the events (flat, ``counts``)."""
        if self.transform is None:
            return np.asarray(error, dtype=np.float32).reshape(-1)
        from models.runtime.trigger_menu import scalar_ht

        if pt is None or eta is None:
            raise ValueError("this score_transform bins in HT: give the jets' pt and eta")
        return self.transform.score(error, latent, scalar_ht(pt, eta, counts, self.selection)).astype(np.float32)


def anomaly_score(card: Mapping[str, Any], error: np.ndarray, latent: np.ndarray | None, pt: np.ndarray,
                  eta: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-event anomaly score [N] float32 of an event-level model: its ``error``, or the card's score_transform.

    ``pt``/``eta`` are all jets of the events (flat, per-event ``counts``), not only the model's J leading
    ones: the transform bins in the trigger menu's HT. Without the block they are not used.
    """
    return EventScore.from_card(card)(error, latent, pt, eta, counts)


def event_anomaly_scores(model: Any, columns: Mapping[str, np.ndarray], counts: np.ndarray,
                         threads: int = 1) -> np.ndarray:
    """Offline twin of the encoder's event scoring: the anomaly score per event of an event-level ``model``
    (a ModelDir) on flat per-jet ``columns`` {var: [n_jets_total]} (every jet of each event) + ``counts``."""
    values = np.stack([np.asarray(columns[v], dtype=np.float32) for v in model.variables], axis=1)
    latent, _, error = score_flat_events(model.scorer_path, values, counts, int(model.card["event_input"]["jets"]),
                                         threads)
    return anomaly_score(model.card, error, latent, columns.get("pt"), columns.get("eta"), counts)
