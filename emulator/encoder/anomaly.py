"""Which model gives each event its anomaly score and flag in the encoder.

``--anomaly-model`` chooses:

* a directory: that event-level model (card ``level: event``). Each micro-batch packs the jets of its
  events into the model's [events, J, V] input with ``padded_jets`` and runs its scorer; the score is
  ``models.runtime.event_scoring.anomaly_score`` (the error, or the card's ``score_transform``). A
  message lacking one of its variables is rejected as ``missing_variable``;
* ``none``: the compression model's per-jet max error (what the encoder did before event models);
* unset (default): the first shipped default event model (``emulator.runtime.defaults.DEFAULT_ANOMALY_MODELS``:
  EVT_AE_ht, which needs the substructure variables, then EVT_AE_4v, which needs only pt, eta, phi, m)
  whose variables the first message carries, else per-jet max error. The choice is made once per
  process, on the first message, logged, and in the report (``anomaly``): never silent.

Whatever scores, it gets only the jets inside its training domain (card ``domain``,
models/runtime/domain.py) unless ``--score-all-jets`` widens the selection; the jets outside are
counted either way (:meth:`Scoring.inside`).

The card hash is the sha256 of the card's canonical JSON (``ModelDir.card_json``: sorted keys, no
spaces), the exact bytes of the segment's ``anomaly_card`` TObjString (scored headers name it by this
hash); the card holds the sha256 of every graph, so the hash pins the graphs and the thresholds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emulator.encoder.config import EncoderConfig
from emulator.encoder.microbatch import require_variables, stack_inputs
from emulator.encoder.threshold_policy import ThresholdPolicy
from emulator.runtime import wire
from emulator.runtime.defaults import default_anomaly_models
from emulator.runtime.onnx_scorer import OnnxScorer
from models.runtime.card import Level
from models.runtime.domain import Domain, select
from models.runtime.event_features import padded_jets
from models.runtime.event_scoring import EventScore

log = logging.getLogger("aetrig.encode")

NONE = "none"
PER_JET = "per-jet max error"
NO_DEFAULT = "no default event model in models/zoo"


def card_sha256(model: Any) -> str:
    """sha256 of the card's canonical JSON (what a scored header's ``anomaly_card_sha256`` names)."""
    return hashlib.sha256(model.card_json.encode()).hexdigest()


def lacking_text(missing: Sequence[str], model_name: str) -> str:
    """Why the default event model cannot score a stream (the fallback reason)."""
    return f"stream lacks {', '.join(f'jet_{v}' for v in missing)} needed by {model_name}"


def scoring_text(level: Level, model_name: str) -> str:
    """What scores the events, in words: 'event-level model M' or 'per-jet max error of M'."""
    return f"event-level model {model_name}" if level == Level.EVENT else f"{PER_JET} of {model_name}"


def first_fitting(candidates: Sequence[tuple[str, Sequence[str]]],
                  stream: Sequence[str]) -> tuple[int | None, list[str]]:
    """The default choice's search (:func:`decide`): the index of the first (name, variables) candidate whose
    variables ``stream`` carries (None: none does), and why each candidate before it was passed over."""
    passed: list[str] = []
    for i, (name, variables) in enumerate(candidates):
        missing = [v for v in variables if v not in stream]
        if not missing:
            return i, passed
        passed.append(lacking_text(missing, name))
    return None, passed


def setting_kind(setting: str | None) -> str:
    """``--anomaly-model`` as one of ``default`` (unset), ``none`` or ``explicit`` (a directory)."""
    return "default" if setting is None else (NONE if str(setting).lower() == NONE else "explicit")


@dataclass(frozen=True)
class Decision:
    """What scores the events: candidate ``index`` (None: the compression model's per-jet max error), and why
    the default choice passed over candidates or fell back (None: it did not)."""

    index: int | None
    fallback: str | None


def decide(kind: str, candidates: Sequence[tuple[str, Sequence[str]]],
           stream: Sequence[str] | None) -> Decision | None:
    """The choice's rule, in one place, for a ``kind`` of setting (:func:`setting_kind`) and the (name, variables)
    event models it offers (explicit: the one given; default: the shipped defaults, in order): ``none`` scores
    per jet; an explicit model always scores (a message it cannot score is rejected, never a fallback); the
    default takes the first candidate whose variables the ``stream`` carries (:func:`first_fitting`), else per
    jet. None: the default with candidates before the stream's variables are known (the first message)."""
    if kind == NONE:
        return Decision(None, None)
    if kind == "explicit":
        return Decision(0, None)
    if not candidates:
        return Decision(None, NO_DEFAULT)
    if stream is None:
        return None
    index, passed = first_fitting(candidates, stream)
    return Decision(index, "; ".join(passed) or None)


def predicted_scoring(setting: str | None, compression_name: str, stream: Sequence[str]) -> dict[str, str]:
    """The scoring an encoder will choose for a stream of these per-jet variables (for `aetrig run`'s start-up
    line and live status, before any message): {"model", "scoring"} and the chosen event model's "path", by the
    rule of :class:`AnomalyChoice` (:func:`decide`), read from the cards alone."""
    from models.runtime.card import ModelError, read_card

    kind = setting_kind(setting)
    candidates, paths = [], []
    if kind == "explicit":
        try:
            name = str(read_card(setting)["name"])
        except (ModelError, KeyError):
            name = Path(str(setting)).name  # the encoder reports the unreadable card as a stage that cannot start
        candidates, paths = [(name, [])], [Path(str(setting))]
    elif kind == "default":
        for path in default_anomaly_models():
            try:
                candidates.append((path.name, [str(v["name"]) for v in read_card(path)["variables"]]))
                paths.append(path)
            except (ModelError, KeyError, TypeError):
                continue
    decision = decide(kind, candidates, stream)
    assert decision is not None  # the stream is known
    if decision.index is None:
        why = "--anomaly-model none" if kind == NONE else f"fallback: {decision.fallback}"
        return {"model": compression_name, "scoring": f"{scoring_text(Level.JET, compression_name)} ({why})"}
    name = candidates[decision.index][0]
    return {"model": name, "scoring": scoring_text(Level.EVENT, name) + (f" (fallback: {decision.fallback})"
                                                                     if decision.fallback else ""),
            "path": str(paths[decision.index])}


@dataclass
class Scoring:
    """One way of scoring events: an event-level model, or the per-jet max error of the compression model."""

    model: Any  # models.runtime.card.ModelDir
    level: Level
    policy: ThresholdPolicy
    scorer: OnnxScorer | None = None
    jets: int = 0
    event_score: EventScore | None = None  # event-level scoring: the card's score, tables built once
    select_domain: bool = True  # False: --score-all-jets (jets outside the domain are still counted)
    sha256: str = field(init=False)
    domain: Domain | None = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = card_sha256(self.model)
        self.domain = Domain.from_card(self.model.card)

    @property
    def domain_text(self) -> str:
        """How the jets given to the model are selected, in words."""
        if self.domain is None:
            return "every jet (the card states no training domain)"
        if not self.select_domain:
            return f"every jet (--score-all-jets; training domain {self.domain.text()})"
        return f"jets with {self.domain.text()} (its training domain)"

    def inputs(self, batches: Sequence[wire.Batch], x: np.ndarray, x_variables: Sequence[str]) -> np.ndarray:
        """This model's input columns [jets of ``batches``, its variables] float32: ``x`` (the compression model's
        input, of ``x_variables``) when the variables are the same (per-jet scoring), else gathered once here for
        both :meth:`inside` and :meth:`score_events`."""
        return x if list(x_variables) == self.variables else stack_inputs(batches, self.variables)[0]

    def inside(self, batches: Sequence[wire.Batch], values: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
        """Bool [jets of ``batches``]: the jets inside the model's training domain (None: no domain stated), from
        the pt and eta of its input ``values`` (:meth:`inputs`), or of ``batches`` for a model without them."""
        if self.domain is None:
            return None
        names = self.variables
        if "pt" in names and "eta" in names:
            pt, eta = values[:, names.index("pt")], values[:, names.index("eta")]
        else:
            pt_eta, _ = stack_inputs(batches, ["pt", "eta"])
            pt, eta = pt_eta[:, 0], pt_eta[:, 1]
        return self.domain.mask(pt, eta, counts, limit_jets=self.level == Level.JET)

    @property
    def variables(self) -> list[str]:
        return list(self.model.variables)

    @property
    def description(self) -> str:
        return scoring_text(self.level, self.model.name)

    def score_events(self, values: np.ndarray, counts: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
        """Anomaly score [events] float32 of events with per-event jet ``counts`` and input ``values`` (:meth:`inputs`;
        event-level scoring only), from the jets ``inside`` its domain when the selection is on."""
        assert self.scorer is not None and self.event_score is not None
        if inside is not None and self.select_domain:
            values, counts = values[inside], select(inside, counts)
        latent, error = self.scorer.score(padded_jets(values, counts, self.jets))
        names = self.variables
        return self.event_score(error, latent, values[:, names.index("pt")], values[:, names.index("eta")], counts)


def load_event_model(path: Path, config: EncoderConfig) -> Scoring:
    """An event-level anomaly model with its scorer session (warmed up) and threshold policy."""
    from models.runtime.card import ModelError, load_model_dir, model_level, read_card

    if not path.is_dir():
        raise ModelError(f"--anomaly-model {path}: model directory does not exist (give an event-level model "
                         f"directory, or '{NONE}' for the compression model's per-jet max error)")
    if model_level(read_card(path)) != Level.EVENT:
        raise ModelError(f"--anomaly-model {path}: {read_card(path)['name']!r} is a per-jet model; give an "
                         f"event-level model (card level 'event', e.g. models/zoo/EVT_AE_k1) or '{NONE}' for the "
                         "compression model's per-jet max error")
    model = load_model_dir(path, verify=True, level=Level.EVENT)
    for needed in ("pt", "eta"):
        if needed not in model.variables:
            raise ModelError(f"--anomaly-model {path}: event models take jet pt and eta; {model.name} has "
                             f"{model.variables}")
    try:
        event_score = EventScore.from_card(model.card)  # a score_transform block: its tables, built once
    except ImportError as exc:
        raise ModelError(f"{path}: the card has a score_transform block but models/runtime/score_transform.py "
                         f"cannot be imported ({exc})") from exc
    scorer = OnnxScorer(model.scorer_path, model.latent_dim, threads=config.threads,
                        max_rows=config.inference_chunk_jets)
    policy = ThresholdPolicy(model, config.fpr, config.accept_rate, config.threshold)
    return Scoring(model, Level.EVENT, policy, scorer, int(model.card["event_input"]["jets"]), event_score,
                   select_domain=not config.score_all_jets)


class AnomalyChoice:
    """The anomaly scoring of one encoder process: chosen at start-up, or on the first message (default)."""

    def __init__(self, config: EncoderConfig, compression: Any):
        setting = config.anomaly_model
        self.setting = setting_kind(setting)
        self.per_jet = None if self.setting == "explicit" else Scoring(  # an explicit event model never falls back
            compression, Level.JET, ThresholdPolicy(compression, config.fpr, config.accept_rate, config.threshold),
            select_domain=not config.score_all_jets)
        self.fallback: str | None = None
        self.active: Scoring | None = None
        if self.setting == "explicit":
            self.candidates = [load_event_model(Path(str(setting)), config)]
        elif self.setting == "default":
            self.candidates = [load_event_model(path, config) for path in default_anomaly_models()]
        else:
            self.candidates = []
        decision = decide(self.setting, self._offered(), None)
        if decision is not None:
            self._take(decision)

    def _offered(self) -> list[tuple[str, list[str]]]:
        return [(c.model.name, c.variables) for c in self.candidates]

    def _take(self, decision: Decision) -> None:
        self.fallback = decision.fallback
        self.active = self.per_jet if decision.index is None else self.candidates[decision.index]
        assert self.active is not None
        self.candidates = [] if decision.index is None else [self.active]

    @property
    def candidate(self) -> Scoring | None:
        """The scoring a first message carrying every variable would get (before the choice), else None."""
        return self.candidates[0] if self.active is None and self.candidates else None

    def start_up_text(self) -> str:
        """The start-up log line's part on anomaly scoring."""
        if self.active is not None:
            extra = f" (fallback: {self.fallback})" if self.fallback else f" (--anomaly-model {self.setting})"
            return f"anomaly scoring: {self.active.description}{extra}, threshold {self.active.policy.source}"
        options = ", else ".join(f"event-level model {c.model.name} if the stream carries {c.variables}"
                                 for c in self.candidates)
        return f"anomaly scoring: {options}, else {PER_JET} (decided on the first message)"

    def choose(self, batch: wire.Batch) -> Scoring:
        """The scoring of this message; raises WireError('missing_variable') for a message an explicit event
        model cannot score. The default choice is made here, once, on the first message."""
        if self.active is None:
            decision = decide(self.setting, self._offered(), batch.jet_variables())
            assert decision is not None
            self._take(decision)
            assert self.active is not None
            if decision.index is None:
                log.warning("anomaly scoring: %s (fallback: %s)", self.active.description, self.fallback)
            else:
                log.info("anomaly scoring: %s (the stream carries its variables%s), threshold %s, on %s",
                         self.active.description, f"; {self.fallback}" if self.fallback else "",
                         self.active.policy.source, self.active.domain_text)
        if self.active.level == Level.EVENT:
            require_variables(batch, self.active.variables, f"anomaly model {self.active.model.name!r}")
        return self.active

    @property
    def current(self) -> Scoring:
        """The active scoring, or the one a first message carrying every variable would get."""
        s = self.active or self.candidate or self.per_jet
        assert s is not None
        return s

    def report(self) -> dict[str, Any]:
        """The report's ``anomaly`` block: which model scored, how it was chosen, its card hash and threshold."""
        s = self.current
        scoring = s.description + (f" (fallback: {self.fallback})" if self.fallback else "")
        return {"scoring": scoring, "model": s.model.name, "level": s.level, "card_sha256": s.sha256,
                "decided": self.active is not None, "setting": self.setting, "fallback": self.fallback,
                "domain": s.domain.card_block("card")["jets"] if s.domain is not None else None,
                "domain_selection": "off (--score-all-jets)" if not s.select_domain else
                ("on" if s.domain is not None else "none stated"), **s.policy.report()}
