"""Conditional entropy coding of a block of events' quantised latents: each jet's symbols are coded with a table
chosen by a context the decoder already knows (numpy + constriction ANS, no torch).

The factorised coder (models/runtime/latent_coding.py) codes every latent of every jet with one table per latent.
Jets of an event are not independent: they come in pT order (the next jet is softer than the previous one) and a
dijet is back to back in phi. A :class:`ContextModel` codes latent ``j`` of a jet with the table of its context,
the bins of a few *features* known to the decoder when it reaches that symbol:

- ``rank``: the jet's index in its event (0 for the leading jet);
- ``njet``: the event's jet count;
- ``prev`` / ``lead``: symbol ``latent`` of the previous / leading jet of the event (bin 0: the jet has none,
  i.e. it leads);
- ``self``: symbol ``latent`` of the same jet, coded before (earlier in ``order``);
- ``prev_shift``: the previous jet's symbol ``latent`` moved by a per-symbol ``map`` of latent ``via`` (coded
  before): ``q[prev, latent] - map[q[prev, via]] + map[q[jet, via]]`` (bin 0: the jet leads). With ``latent`` the
  energy-like latent and ``via`` the eta-like one, it is the previous jet's pT seen at this jet's eta: where this
  jet's energy latent starts, since jets come in pT order.

A feature's bin is ``searchsorted(edges, value, "right")`` (+ 1 for ``prev``/``lead``); the context index is the
features' bins in mixed radix. Each context holds integer counts over the base table's symbols (last entry: the
escape), fitted on training data; its probabilities are ``counts + smoothing * size * base`` (``base``: the
factorised table, normalised; ``size``: its length), or ``base`` alone for a context without counts. Escaped
symbols are coded as in the factorised coder (the escape, then the int32 value as two uniform 16-bit halves),
right after their group, so the next jets' contexts see exact values.

Decoding order: jets rank by rank (all leading jets of the block, then all second jets, ...), and for each rank the
latents in ``order``, each rank's jets grouped by context (ascending). The encoder pushes the same steps in reverse.
The block's jet counts per event must be known to the decoder (the recording's event block holds them).

The JSON (``format`` :data:`CONTEXT_FORMAT`) holds the factorised model as ``base`` (its deltas give the symbols),
``order``, ``smoothing`` and per coded latent its ``features`` and ``counts`` (per context: null, or its counts as
one text ``"n,n,..."``, so that an indented card stays short).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime import latent_coding as lc

CONTEXT_FORMAT = "aetrig-latent-ctx-1"
FEATURES = ("rank", "njet", "prev", "lead", "self", "prev_shift")
#: features that name another symbol (``latent``), and those whose bin 0 means "the jet leads: no such jet"
SYMBOL_FEATURES = ("prev", "lead", "self", "prev_shift")
JET_FEATURES = ("prev", "lead", "prev_shift")
MAX_CONTEXTS = 4096


@dataclass(frozen=True)
class Feature:
    """One context feature: what it reads and its bin edges."""

    of: str
    edges: tuple[int, ...]
    latent: int = -1
    via: int = -1  # prev_shift: the latent whose symbols index ``mapping``
    map_offset: int = 0
    mapping: tuple[int, ...] = ()

    @cached_property
    def n_bins(self) -> int:
        return len(self.edges) + 1 + (self.of in JET_FEATURES)

    def shift(self, symbols: np.ndarray) -> np.ndarray:
        """``map`` at ``symbols`` of latent ``via`` (clipped to the map's range)."""
        table = self._map
        return table[np.clip(symbols - self.map_offset, 0, len(table) - 1)]

    @cached_property
    def _map(self) -> np.ndarray:
        return np.asarray(self.mapping, np.int64)

    @cached_property
    def _lookup(self) -> np.ndarray:
        """``searchsorted(edges, v, "right")`` for v from ``edges[0] - 1`` to ``edges[-1]``."""
        return np.searchsorted(np.asarray(self.edges, np.int64),
                               np.arange(self.edges[0] - 1, self.edges[-1] + 1), "right").astype(np.int64)

    def bin_of(self, values: np.ndarray) -> np.ndarray:
        """``searchsorted(edges, values, "right")``, by a lookup table over the edges' span."""
        if not self.edges:
            return np.zeros(len(values), np.int64)
        return self._lookup[np.clip(values - (self.edges[0] - 1), 0, len(self._lookup) - 1)]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"of": self.of, "edges": list(self.edges)}
        if self.of in SYMBOL_FEATURES:
            out["latent"] = self.latent
        if self.of == "prev_shift":
            out.update(via=self.via, map_offset=self.map_offset, map=list(self.mapping))
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], k: int) -> Feature:
        of = data.get("of")
        if of not in FEATURES:
            raise lc.LatentCodingError(f"context feature {of!r}, expected one of {FEATURES}")
        edges = tuple(int(e) for e in data.get("edges", []))
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise lc.LatentCodingError(f"context feature {of!r}: edges must increase")
        latent = int(data.get("latent", -1))
        if of in SYMBOL_FEATURES and not 0 <= latent < k:
            raise lc.LatentCodingError(f"context feature {of!r}: latent {latent} is not one of 0..{k - 1}")
        if of != "prev_shift":
            return cls(of, edges, latent if of in SYMBOL_FEATURES else -1)
        via, mapping = int(data.get("via", -1)), tuple(int(v) for v in data.get("map", []))
        if not 0 <= via < k or not mapping:
            raise lc.LatentCodingError("context feature prev_shift needs a latent 'via' and a non-empty 'map'")
        return cls(of, edges, latent, via, int(data.get("map_offset", 0)), mapping)


@dataclass(frozen=True)
class LatentContexts:
    """The features and per-context counts of one coded latent."""

    latent: int
    features: tuple[Feature, ...]
    counts: tuple[np.ndarray | None, ...]

    @cached_property
    def n_contexts(self) -> int:
        return int(np.prod([f.n_bins for f in self.features], dtype=np.int64))


@dataclass(frozen=True)
class ContextModel:
    """The conditional entropy model of a model's k latents (see the module docstring)."""

    base: lc.EntropyModel
    order: tuple[int, ...]
    latents: tuple[LatentContexts, ...]  # in coded order
    smoothing: float
    _models: dict[tuple[int, int], Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def k(self) -> int:
        return self.base.k

    @property
    def deltas(self) -> np.ndarray:
        return self.base.deltas

    def probabilities(self, position: int, context: int) -> np.ndarray:
        """float64 probabilities (last: escape) of coded latent ``position`` in ``context``."""
        spec = self.latents[position]
        table = self.base.tables[spec.latent]
        prior = table.probabilities()
        counts = spec.counts[context]
        if counts is None:
            return prior
        return counts.astype(np.float64) + self.smoothing * len(prior) * prior

    def categorical(self, position: int, context: int) -> Any:
        """The constriction model of (``position``, ``context``), built once."""
        key = (position, context)
        if key not in self._models:
            import constriction

            self._models[key] = constriction.stream.model.Categorical(self.probabilities(position, context),
                                                                      perfect=False)
        return self._models[key]

    def to_json(self) -> dict[str, Any]:
        return {"format": CONTEXT_FORMAT, "base": self.base.to_json(), "order": list(self.order),
                "smoothing": self.smoothing,
                "probabilities": "counts + smoothing * len(base pmf) * base pmf / sum(base pmf); null: base",
                "latents": [{"latent": s.latent, "features": [f.to_json() for f in s.features],
                             "counts": [None if c is None else ",".join(map(str, c.tolist())) for c in s.counts]}
                            for s in self.latents]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContextModel:
        if data.get("format") != CONTEXT_FORMAT:
            raise lc.LatentCodingError(f"context model format {data.get('format')!r}, expected {CONTEXT_FORMAT!r}")
        base = lc.EntropyModel.from_json(data["base"])
        order = tuple(int(j) for j in data["order"])
        if sorted(order) != list(range(base.k)):
            raise lc.LatentCodingError(f"context model order {list(order)} is not a permutation of 0..{base.k - 1}")
        smoothing = float(data["smoothing"])
        if not smoothing > 0:
            raise lc.LatentCodingError("context model smoothing must be > 0")
        entries = data["latents"]
        if [int(e["latent"]) for e in entries] != list(order):
            raise lc.LatentCodingError("context model latents must follow its order")
        latents = []
        for position, entry in enumerate(entries):
            features = tuple(Feature.from_json(f, base.k) for f in entry["features"])
            for f in features:
                if f.of in JET_FEATURES and (f.latent not in order[:position + 1] or
                                             (f.of == "prev_shift" and f.via not in order[:position])):
                    raise lc.LatentCodingError(f"latent {order[position]}: feature {f.of} reads another jet's "
                                               f"latent {f.latent}, which is not coded before or with it")
                own = f.via if f.of == "prev_shift" else f.latent if f.of == "self" else None
                if own is not None and own not in order[:position]:
                    raise lc.LatentCodingError(f"latent {order[position]}: feature {f.of} reads this jet's latent "
                                               f"{own}, which is not coded before it")
            size = len(base.tables[order[position]].pmf)
            counts = tuple(None if c is None else _parse_counts(c) for c in entry["counts"])
            spec = LatentContexts(order[position], features, counts)
            if spec.n_contexts > MAX_CONTEXTS or len(counts) != spec.n_contexts:
                raise lc.LatentCodingError(f"latent {order[position]}: {len(counts)} context tables for "
                                           f"{spec.n_contexts} contexts (at most {MAX_CONTEXTS})")
            if any(c is not None and (c.shape != (size,) or np.any(c < 0)) for c in counts):
                raise lc.LatentCodingError(f"latent {order[position]}: every count table needs {size} entries >= 0")
            latents.append(spec)
        return cls(base, order, tuple(latents), smoothing)


def _parse_counts(text: Any) -> np.ndarray:
    """A context's counts from their stored text ``"n,n,..."``."""
    try:
        return np.array([int(v) for v in str(text).split(",")], np.int64)
    except ValueError as exc:
        raise lc.LatentCodingError(f"context counts {str(text)[:40]!r}: not comma-separated integers") from exc


def is_context_json(data: dict[str, Any]) -> bool:
    return isinstance(data, dict) and data.get("format") == CONTEXT_FORMAT


# ------------------------------------------------------------------------------------------ contexts


@dataclass(frozen=True)
class Events:
    """Jet positions of a block: each jet's event rank, previous and leading jet index, and event jet count."""

    rank: np.ndarray
    prev: np.ndarray
    lead: np.ndarray
    njet: np.ndarray

    @classmethod
    def of(cls, counts: np.ndarray) -> Events:
        counts = np.asarray(counts, np.int64)
        if np.any(counts < 0):
            raise lc.LatentCodingError("jet counts must be >= 0")
        lead = np.repeat(np.cumsum(counts) - counts, counts)
        index = np.arange(len(lead))
        rank = index - lead
        return cls(rank, np.where(rank == 0, index, index - 1), lead, np.repeat(counts, counts))


def feature_values(feature: Feature, jets: np.ndarray, q: np.ndarray, events: Events) -> np.ndarray:
    """The value ``feature`` reads for ``jets`` (indices into the block), from symbols ``q`` already known; for the
    features of another jet, a leading jet reads itself (its bin is 0 whatever the value)."""
    if feature.of == "rank":
        return events.rank[jets]
    if feature.of == "njet":
        return events.njet[jets]
    if feature.of == "self":
        return q[jets, feature.latent]
    other = (events.lead if feature.of == "lead" else events.prev)[jets]
    value = q[other, feature.latent]
    if feature.of == "prev_shift":
        value = value - feature.shift(q[other, feature.via]) + feature.shift(q[jets, feature.via])
    return value


def feature_bins(feature: Feature, jets: np.ndarray, q: np.ndarray, events: Events) -> np.ndarray:
    """The bin of ``feature`` for ``jets``: ``searchsorted(edges, value, "right")``, + 1 for the features of another
    jet, whose bin 0 means that the jet leads."""
    bins = feature.bin_of(feature_values(feature, jets, q, events))
    if feature.of not in JET_FEATURES:
        return bins
    return np.where(events.rank[jets] == 0, 0, bins + 1)


def contexts(spec: LatentContexts, jets: np.ndarray, q: np.ndarray, events: Events) -> np.ndarray:
    """The context index of ``jets`` for one coded latent (mixed radix of the feature bins)."""
    index = np.zeros(len(jets), np.int64)
    for feature in spec.features:
        index = index * feature.n_bins + feature_bins(feature, jets, q, events)
    return index


def pass_index(spec: LatentContexts, rank: np.ndarray) -> np.ndarray:
    """The decoding pass of jets of these ranks, for one coded latent (the one rule the encoder and the decoder
    share): its rank when a feature reads the previous jet, 0 for leading jets and 1 for the others when one
    reads the leading jet, else 0 (every jet at once)."""
    kinds = {f.of for f in spec.features}
    if kinds & {"prev", "prev_shift"}:
        return np.asarray(rank, np.int64)
    if "lead" in kinds:
        return (np.asarray(rank) > 0).astype(np.int64)
    return np.zeros(len(rank), np.int64)


def passes(spec: LatentContexts, by_rank: list[np.ndarray]) -> list[np.ndarray]:
    """The jets of a coded latent in decoding passes (:func:`pass_index`), each pass's jets in index order;
    ``by_rank``: the jets of each rank."""
    of_rank = pass_index(spec, np.arange(len(by_rank)))
    return [np.sort(np.concatenate([by_rank[r] for r in np.flatnonzero(of_rank == p)])) for p in np.unique(of_rank)]


def _steps(model: ContextModel, events: Events, q: np.ndarray):
    """Yield (position, context, jets) in decoding order: latent by latent in ``order``, each in its
    :func:`passes`, each pass's jets grouped by context; ``q`` must hold every symbol decoded before a step when
    the step is reached (the decoder fills it in between)."""
    by_rank_order = np.argsort(events.rank, kind="stable")
    by_rank = np.split(by_rank_order, np.cumsum(np.bincount(events.rank))[:-1]) if len(events.rank) else []
    for position, spec in enumerate(model.latents):
        for jets in passes(spec, by_rank):
            ctx = contexts(spec, jets, q, events).astype(np.int16)  # < MAX_CONTEXTS: numpy's radix sort
            order = np.argsort(ctx, kind="stable")
            ctx, sorted_jets = ctx[order], jets[order]
            bounds = [0, *(np.flatnonzero(np.diff(ctx)) + 1).tolist(), len(ctx)]
            for a, b in itertools.pairwise(bounds):
                yield position, int(ctx[a]), sorted_jets[a:b]


def _encoder_steps(model: ContextModel, events: Events, q: np.ndarray):
    """The steps of :func:`_steps`, in the same order, for the encoder, which knows every symbol: each latent's
    contexts for all jets at once, grouped by (pass, context) in one stable sort."""
    every = np.arange(len(q))
    for position, spec in enumerate(model.latents):
        pass_of = pass_index(spec, events.rank)
        n_contexts = spec.n_contexts
        key = pass_of * n_contexts + contexts(spec, every, q, events)
        if len(key) and key.max() < 2**15:
            key = key.astype(np.int16)  # numpy's stable sort of 16-bit keys is a radix sort
        order = np.argsort(key, kind="stable")
        key = key[order]
        bounds = [0, *(np.flatnonzero(np.diff(key)) + 1).tolist(), len(key)]
        for a, b in itertools.pairwise(bounds):
            yield position, int(key[a]) % n_contexts, order[a:b]


def _check(q: np.ndarray, counts: np.ndarray, k: int) -> tuple[np.ndarray, Events]:
    q = np.asarray(q)
    events = Events.of(counts)
    if q.ndim != 2 or q.shape[1] != k or len(q) != len(events.rank):
        raise lc.LatentCodingError(f"symbols must be [{len(events.rank)} jets (the counts' sum), {k}], "
                                   f"got shape {q.shape}")
    return q.astype(np.int64), events


def encode(q: np.ndarray, counts: np.ndarray, model: ContextModel) -> bytes:
    """ANS-code the symbols ``q`` [n_jets, k] of a block of events with ``counts`` jets each; b"" for no jets."""
    import constriction

    q, events = _check(q, counts, model.k)
    if len(q) == 0:
        return b""
    uniform = constriction.stream.model.Uniform(1 << 16)
    indices = [lc.table_symbols(q[:, j], table)[0] for j, table in enumerate(model.base.tables)]
    any_escape = [bool(np.any(index == table.size)) for index, table in zip(indices, model.base.tables, strict=True)]
    pushes = []
    for position, context, jets in _encoder_steps(model, events, q):
        j = model.latents[position].latent
        index = indices[j][jets]
        pushes.append((index, model.categorical(position, context)))
        if not any_escape[j]:
            continue
        escaped = q[jets[index == model.base.tables[j].size], j].astype(np.int32)
        if len(escaped):
            values = escaped.view(np.uint32)
            pushes.append((np.stack([values & 0xFFFF, values >> 16], axis=1).reshape(-1).astype(np.int32), uniform))
    coder = constriction.stream.stack.AnsCoder()
    for symbols, categorical in reversed(pushes):
        coder.encode_reverse(symbols, categorical)
    return coder.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, counts: np.ndarray, model: ContextModel) -> np.ndarray:
    """The symbols [n_jets, k] (int32) that :func:`encode` coded into ``data`` for events of ``counts`` jets."""
    import constriction

    events = Events.of(counts)
    q = np.zeros((len(events.rank), model.k), np.int64)
    if len(q) == 0:
        return q.astype(np.int32)
    if len(data) % 4:
        raise lc.LatentCodingError(f"coded latents are {len(data)} bytes, not whole 32-bit words")
    coder = constriction.stream.stack.AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    uniform = constriction.stream.model.Uniform(1 << 16)
    for position, context, jets in _steps(model, events, q):
        j = model.latents[position].latent
        table = model.base.tables[j]
        index = coder.decode(model.categorical(position, context), len(jets)).astype(np.int64)
        q[jets, j] = index + table.offset
        escaped = jets[index == table.size]
        if len(escaped):
            halves = coder.decode(uniform, 2 * len(escaped)).astype(np.uint32)
            q[escaped, j] = (halves[0::2] | (halves[1::2] << 16)).view(np.int32)
    return q.astype(np.int32)


def ideal_bits(q: np.ndarray, counts: np.ndarray, model: ContextModel) -> float:
    """Sum of ``-log2 p`` of the symbols under their context tables (escapes add ESCAPE_BITS)."""
    q, events = _check(q, counts, model.k)
    total = 0.0
    for position, context, jets in _steps(model, events, q):
        j = model.latents[position].latent
        index, escaped = lc.table_symbols(q[jets, j], model.base.tables[j])
        p = model.probabilities(position, context)
        total += float(-np.log2(p[index] / p.sum()).sum()) + lc.ESCAPE_BITS * len(escaped)
    return total


# ------------------------------------------------------------------------------------------------ fit


def quantile_edges(values: np.ndarray, n_bins: int) -> tuple[int, ...]:
    """Integer edges splitting ``values`` into at most ``n_bins`` bins of about equal population."""
    if len(values) == 0 or n_bins <= 1:
        return ()
    cuts = np.quantile(values, np.arange(1, n_bins) / n_bins, method="nearest")
    return tuple(int(c) for c in np.unique(cuts))


def fit(q: np.ndarray, counts: np.ndarray, base: lc.EntropyModel, order: tuple[int, ...],
        spec: list[list[dict[str, Any]]], smoothing: float) -> ContextModel:
    """A context model from training symbols ``q`` [n_jets, k] in events of ``counts`` jets.

    ``spec[position]``: the features of the latent coded at ``position``, as dicts ``{"of", "latent", "bins"}``
    (``bins``: the number of equal-population bins of the feature on the training jets) or ``{"of", "edges"}``."""
    q, events = _check(q, counts, base.k)
    latents = []
    for position, features_spec in enumerate(spec):
        features = []
        for f in features_spec:
            feature = Feature.from_json({**f, "edges": f.get("edges", [])}, base.k)
            if "edges" not in f:  # equal-population bins of the feature's value on the training jets
                jets = np.flatnonzero(events.rank > 0) if feature.of in JET_FEATURES else np.arange(len(q))
                values = feature_values(feature, jets, q, events)
                feature = replace(feature, edges=quantile_edges(values, int(f["bins"])))
            features.append(feature)
        j = order[position]
        table = base.tables[j]
        spec_j = LatentContexts(j, tuple(features), ())
        every = np.arange(len(q))
        ctx = contexts(spec_j, every, q, events) if len(q) else np.zeros(0, np.int64)
        index, _ = lc.table_symbols(q[:, j], table)
        table_counts = np.zeros((spec_j.n_contexts, len(table.pmf)), np.int64)
        np.add.at(table_counts, (ctx, index), 1)
        latents.append(LatentContexts(j, tuple(features),
                                      tuple(row if row.any() else None for row in table_counts)))
    model = ContextModel(base, tuple(order), tuple(latents), float(smoothing))
    return ContextModel.from_json(model.to_json())  # the same checks as a stored model


# ------------------------------------------------------------------------------- either coder, cards


Coder = lc.EntropyModel | ContextModel


def coder_from_json(data: dict[str, Any]) -> Coder:
    """The factorised or the context model a JSON object describes (by its ``format``)."""
    return ContextModel.from_json(data) if is_context_json(data) else lc.EntropyModel.from_json(data)


@lru_cache(maxsize=8)
def coder_from_text(text: str) -> Coder:
    """:func:`coder_from_json` of a JSON text, cached (a context model keeps its built tables between blocks)."""
    return coder_from_json(json.loads(text))


def encode_block(q: np.ndarray, counts: np.ndarray, coder: Coder) -> bytes:
    """The coded bytes of a block of events' symbols ``q`` (``counts`` jets per event) with either coder."""
    if isinstance(coder, ContextModel):
        return encode(q, counts, coder)
    return lc.encode(q, coder)


def decode_block(data: bytes, counts: np.ndarray, coder: Coder) -> np.ndarray:
    """The symbols [jets, k] of :func:`encode_block`'s bytes."""
    if isinstance(coder, ContextModel):
        return decode(data, counts, coder)
    return lc.decode(data, int(np.sum(counts)), coder)


def context_text(card: dict[str, Any]) -> str | None:
    """The canonical text of the context model inside a card (``entropy_coding.context_model``, checked against
    its ``context_model_sha256`` and parsed), or None for a card without one."""
    block = card.get("entropy_coding")
    if not isinstance(block, dict) or "context_model" not in block:
        return None
    text = lc.canonical_text(block["context_model"])
    if lc.text_sha256(text) != block.get("context_model_sha256"):
        raise lc.LatentCodingError(f"model {card.get('name')!r}: the context model in its card does not match its "
                                   f"context_model_sha256")
    if is_context_json(block["context_model"]):
        coder_from_text(text)  # parsed once and cached: resolve_reference and every block after it reuse it
    else:
        ContextModel.from_json(block["context_model"])  # not a context model: raises why
    return text


def recording_model_text(card: dict[str, Any], search_dirs: list[Path], context: bool = True) -> str:
    """What a recording codes a card's latents with: its context model (``context`` and the card has one), else
    its factorised entropy model (:func:`models.runtime.latent_coding.entropy_model_text`)."""
    inside = context_text(card) if context else None
    return inside if inside is not None else lc.entropy_model_text(card, search_dirs)


#: where a format-4 segment's layout finds its context model: the segment's card (stored once, not twice)
CARD_REFERENCE = "entropy_coding.context_model"


def card_reference(text: str) -> dict[str, Any]:
    """What a segment layout stores for context model ``text``: a reference to the segment's card, by sha256."""
    return {"format": CONTEXT_FORMAT, "in_card": CARD_REFERENCE, "sha256": lc.text_sha256(text)}


def is_card_reference(data: Any) -> bool:
    return isinstance(data, dict) and data.get("in_card") == CARD_REFERENCE


def resolve_reference(data: dict[str, Any], card: dict[str, Any] | None) -> Coder:
    """The context model a layout's :func:`card_reference` names, from the segment's card (sha256 checked)."""
    text = context_text(card or {})
    if text is None or lc.text_sha256(text) != data.get("sha256"):
        raise lc.LatentCodingError(f"the layout names a context model {str(data.get('sha256'))[:12]}… that the "
                                   "segment's card does not hold")
    return coder_from_text(text)


def embed_context(card: dict[str, Any], model: ContextModel) -> dict[str, Any]:
    """The card with ``model`` inside (``entropy_coding.context_model`` and its sha256); in place."""
    text = lc.canonical_text(model.to_json())
    block = card.setdefault("entropy_coding", {})
    block["context_model"] = json.loads(text)
    block["context_model_sha256"] = lc.text_sha256(text)
    return card
