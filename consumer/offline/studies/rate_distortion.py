"""Study 2, rate-distortion part: bytes per jet against residual width for every codec and every per-jet AE.

Same jets for everyone, coded in blocks of one sink commit (:data:`BLOCK_EVENTS`, the sink's
``--commit-events`` default: the events one group commit writes, i.e. one ROOT basket per branch);
a 20 000-event sample is one block. Every configuration writes real byte strings per block: the
jet counts (uint16, :data:`~consumer.offline.stream_codecs.BOOKKEEPING` codec, identical for all),
then its own streams; bytes = the sum of ``len()`` of those strings.

- Lossy codecs (:mod:`consumer.offline.lossy_codecs`): SZ3, ZFP, BitRound, Quantize and mantissa
  rounding + zstd/lzma, at the bounds :data:`BOUNDS`, each bound used as a relative bound on
  pt/m/e and an absolute one on every other variable at once.
- Lossless codecs (:data:`~consumer.offline.stream_codecs.LOSSLESS`): the reference.
- AEs: latents stored as float32/float16/bfloat16 with the lossless codec that makes them smallest; a
  rate-trained AE (its card carries an entropy model) instead stores its symbols ``rint(latent / delta)``
  ANS-coded as the sink's ``--latent-codec ans`` codes them (:data:`CODED_STORAGE`; with the card's context
  model when it has one, models/runtime/latent_context.py), one buffer per block;
  per event a flag bit (packed) and, for flagged events (event score above the card's threshold at
  :data:`FALLBACK_FPR`, the encoder stage's default), the raw jets losslessly; the reader gets those raw
  values back. The model's own bytes (``decoder.onnx`` + the card as encoders attach it, entropy model
  included) are spread
  over :data:`AMORTISE_EVENTS` events (1 M the headline, 1 G too).
- The headline bytes per jet of an AE, on the Pareto front and against the lossless reference, are the sink's:
  the model's jets written by the sink's own code at its defaults over :data:`HEADLINE_EVENTS` events and every
  byte of the segments counted (:mod:`rate_distortion_sink`; :func:`bytes_per_jet`); the study's own streams
  stay in each point (``stream_bytes_per_jet``).
- CPU per jet on one thread (process CPU seconds x the clock of /proc/cpuinfo): compress and
  decompress of all blocks; for the AE, compress = the encoder stage's scorer graph (latent + error,
  ONNX Runtime, chunks of :data:`AE_CHUNK_JETS`) + the storage cast and lossless coding, decompress =
  lossless decoding + ``decoder.onnx``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from consumer.offline import codecs, lossy_codecs, stream_codecs
from consumer.offline.pareto import dominates, pareto_mask
from consumer.offline.studies.common import ALL_VARIABLES, Sample, cpu_mhz, load_model, residual_table
from consumer.offline.studies.rate_distortion_sink import model_sink_bytes, sink_summary
from consumer.offline.studies.timing import cpu_per_call
from models.runtime import latent_coding as lc
from models.runtime import latent_context as lx
from models.runtime.anomaly import event_scores
from models.runtime.card import read_card

BOUNDS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1.4e-2, 3e-2, 1e-1)
QUICK_BOUNDS = (1e-3, 1e-2)
QUICK_LOSSLESS = ("zstd-19", "shuffle+zstd-19")
STORAGES = ("float32", "float16", "bfloat16")
#: the storage of a rate-trained AE: its symbols ANS-coded with its entropy model
CODED_STORAGE = "ans"
AMORTISE_EVENTS = (1_000_000, 1_000_000_000)
HEADLINE_EVENTS = AMORTISE_EVENTS[0]
FALLBACK_FPR = 1e-3
AE_CHUNK_JETS = 2048
#: the goal: every one of these variables present within its limit (core half-width)
GOAL_LIMITS = {"pt": 0.01, "e": 0.01, "m": 0.01, "eta": 0.01, "phi": 0.01}
#: a goal AE has this many times the best lossless codec's compression ratio
GOAL_RATIO_VS_LOSSLESS = 5.0
#: families the goal AE must Pareto-dominate
GOAL_FAMILIES = ("SZ3", "ZFP", "BitRound")
COUNT_DTYPE = np.uint16
#: tries to tune a codec's per-variable bounds to an AE's accuracy
MATCH_ITERATIONS = 6


def _sink_commit_events() -> int:
    from consumer.sink.service import SinkConfig

    return int({f.name: f for f in dataclasses.fields(SinkConfig)}["commit_events"].default)


BLOCK_EVENTS = _sink_commit_events()


# ------------------------------------------------------------------------------------------ blocks


@dataclass(frozen=True)
class Block:
    """The jets of consecutive events: ``x`` [n_jets, n_vars] float32 and per-event ``counts``."""

    x: np.ndarray
    counts: np.ndarray

    @property
    def n_jets(self) -> int:
        return len(self.x)


def split_blocks(x: np.ndarray, counts: np.ndarray, block_events: int = BLOCK_EVENTS) -> list[Block]:
    """Consecutive blocks of ``block_events`` events (the last may be shorter)."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.max(initial=0) > np.iinfo(COUNT_DTYPE).max:
        raise ValueError(f"an event has more than {np.iinfo(COUNT_DTYPE).max} jets")
    starts = np.concatenate([[0], np.cumsum(counts)])
    out = []
    for lo in range(0, len(counts), block_events):
        hi = min(lo + block_events, len(counts))
        out.append(Block(np.ascontiguousarray(x[starts[lo]:starts[hi]], dtype=np.float32), counts[lo:hi]))
    return out


def encode_counts(counts: np.ndarray) -> bytes:
    return stream_codecs.encode(np.asarray(counts, COUNT_DTYPE), stream_codecs.BOOKKEEPING)


def decode_counts(data: bytes, n_events: int) -> np.ndarray:
    return stream_codecs.decode(data, stream_codecs.BOOKKEEPING, COUNT_DTYPE, n_events).astype(np.int64)


#: one block coded: category (payload, bookkeeping, exceptions, fallback) -> byte strings
Streams = dict[str, list[bytes]]


def nbytes(streams: Streams) -> dict[str, int]:
    """Bytes per category: the sum of ``len()`` of the byte strings."""
    return {k: sum(len(b) for b in v) for k, v in streams.items()}


# ----------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class LossyConfig:
    """One error-bounded codec per column (one family; the same bound everywhere, or one per variable)."""

    codecs: tuple[lossy_codecs.BoundedCodec, ...]
    variables: tuple[str, ...]

    @classmethod
    def uniform(cls, family: str, bound: float, variables: Sequence[str]) -> LossyConfig:
        return cls(tuple(lossy_codecs.make(family, bound) for _ in variables), tuple(variables))

    @classmethod
    def per_variable(cls, family: str, bounds: Mapping[str, float], variables: Sequence[str]) -> LossyConfig:
        return cls(tuple(lossy_codecs.make(family, bounds[v]) for v in variables), tuple(variables))

    def encode(self, block: Block) -> Streams:
        parts = [c.encode(block.x[:, i], v) for i, (c, v) in enumerate(zip(self.codecs, self.variables, strict=True))]
        return {"bookkeeping": [encode_counts(block.counts)], "payload": [p[0] for p in parts],
                "exceptions": [b for p in parts for b in p[1:]]}

    def decode(self, streams: Streams, n_events: int) -> np.ndarray:
        n = int(decode_counts(streams["bookkeeping"][0], n_events).sum())
        per = len(streams["exceptions"]) // max(len(self.variables), 1)
        cols = [c.decode((streams["payload"][i], *streams["exceptions"][i * per:(i + 1) * per]), n, v)
                for i, (c, v) in enumerate(zip(self.codecs, self.variables, strict=True))]
        return np.stack(cols, axis=1) if cols else np.zeros((n, 0), np.float32)


@dataclass(frozen=True)
class LosslessConfig:
    """A lossless codec on every float32 column."""

    name: str
    variables: tuple[str, ...]

    def encode(self, block: Block) -> Streams:
        return {"bookkeeping": [encode_counts(block.counts)],
                "payload": [stream_codecs.encode(block.x[:, i], self.name) for i in range(len(self.variables))]}

    def decode(self, streams: Streams, n_events: int) -> np.ndarray:
        n = int(decode_counts(streams["bookkeeping"][0], n_events).sum())
        cols = [stream_codecs.decode(b, self.name, np.float32, n) for b in streams["payload"]]
        return np.stack(cols, axis=1)


def latent_storage(latent: np.ndarray, storage: str) -> np.ndarray:
    """Latent [n, k] as stored: float32, or the float16/bfloat16 16-bit patterns (round to nearest even)."""

    cols = codecs.storage_columns(latent, [str(i) for i in range(latent.shape[1])], storage)
    return np.stack([cols[str(i)] for i in range(latent.shape[1])], axis=1)


def latent_float32(stored: np.ndarray, storage: str) -> np.ndarray:
    """Inverse of :func:`latent_storage` (back to float32 for the decoder)."""
    if storage == "float16":
        return stored.view(np.float16).astype(np.float32)
    if storage == "bfloat16":
        return (stored.astype(np.uint32) << 16).view(np.float32)
    return stored.astype(np.float32)


@dataclass
class AEParts:
    """One block through the encoder stage's scorer: stored latents and per-event flags (not timed here)."""

    latent: np.ndarray
    flag: np.ndarray


class AEConfig:
    """An AE's latents at a storage precision, + flag bits + the raw jets of flagged events, one lossless codec."""

    def __init__(self, model, storage: str, lossless: str, threshold: float):
        self.model, self.storage, self.lossless, self.threshold = model, storage, lossless, threshold
        self._scorer = self._decoder = None

    @property
    def scorer(self):
        from emulator.runtime.onnx_scorer import OnnxScorer

        if self._scorer is None:
            self._scorer = OnnxScorer(self.model.scorer_path, self.model.latent_dim, 1, AE_CHUNK_JETS)
        return self._scorer

    @property
    def decoder(self):
        from consumer.offline.decode import Decoder

        if self._decoder is None:
            self._decoder = Decoder(self.model.decoder_path, threads=1, max_rows=AE_CHUNK_JETS)
        return self._decoder

    def score(self, block: Block) -> AEParts:
        """The encoder stage's work: latent and per-event flag (event score = max jet error > threshold)."""

        latent, error = self.scorer.score(block.x)
        return AEParts(latent, event_scores(error, block.counts) > self.threshold)

    def store(self, latent: np.ndarray, counts: np.ndarray) -> list[bytes]:
        """The latents' payload streams: one lossless-coded column per latent at the storage precision (``counts``:
        jets per event, for coders that use the event)."""
        stored = latent_storage(latent, self.storage)
        return [stream_codecs.encode(stored[:, i], self.lossless) for i in range(stored.shape[1])]

    def load(self, payload: list[bytes], counts: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`store`: the float32 latents [jets, k] the decoder takes."""
        n_jets = int(np.sum(counts))
        dtype = np.float32 if self.storage not in ("float16", "bfloat16") else np.uint16
        stored = np.stack([stream_codecs.decode(b, self.lossless, dtype, n_jets) for b in payload], axis=1)
        return latent_float32(stored, self.storage)

    def pack(self, block: Block, parts: AEParts) -> Streams:
        """What the AE writes for the block, from its scored parts."""
        raw = block.x[np.repeat(parts.flag, block.counts)]
        flags = np.packbits(parts.flag.astype(np.uint8))
        return {"bookkeeping": [encode_counts(block.counts), stream_codecs.encode(flags, stream_codecs.BOOKKEEPING)],
                "payload": self.store(parts.latent, block.counts),
                "fallback": [stream_codecs.encode(raw[:, i], self.lossless) for i in range(raw.shape[1])]}

    def encode(self, block: Block) -> Streams:
        return self.pack(block, self.score(block))

    def unpack(self, streams: Streams, n_events: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(counts, flags, float32 latents, raw fallback jets) from the streams."""
        counts = decode_counts(streams["bookkeeping"][0], n_events)
        packed = stream_codecs.decode(streams["bookkeeping"][1], stream_codecs.BOOKKEEPING, np.uint8,
                                      (n_events + 7) // 8)
        flag = np.unpackbits(packed, count=n_events).astype(bool)
        n_raw = int(counts[flag].sum())
        raw = np.stack([stream_codecs.decode(b, self.lossless, np.float32, n_raw) for b in streams["fallback"]],
                       axis=1)
        return counts, flag, self.load(streams["payload"], counts), raw

    def decode(self, streams: Streams, n_events: int) -> np.ndarray:
        counts, flag, latent, raw = self.unpack(streams, n_events)
        reco = self.decoder(latent)
        reco[np.repeat(flag, counts)] = raw
        return reco


class CodedAEConfig(AEConfig):
    """A rate-trained AE: the latents' symbols ``rint(latent / delta)`` ANS-coded as the sink's ``--latent-codec
    ans`` codes them (its card's context model when it has one, models/runtime/latent_context.py, else its
    factorised tables, the exact bytes of ``latent_coding.code_jets``), one stream per block; the rest as
    :class:`AEConfig` (the lossless codec codes the raw fallback)."""

    def __init__(self, model, lossless: str, threshold: float):
        super().__init__(model, CODED_STORAGE, lossless, threshold)
        self.coder = lx.coder_from_text(lx.recording_model_text(model.card, [model.path.parent]))
        self.entropy = self.coder.base

    def store(self, latent: np.ndarray, counts: np.ndarray) -> list[bytes]:
        return [lx.encode_block(lc.quantise(latent, self.entropy), counts, self.coder)]

    def load(self, payload: list[bytes], counts: np.ndarray) -> np.ndarray:
        return lc.dequantise(lx.decode_block(payload[0], counts, self.coder), self.entropy)


def ae_config(model, storage: str, lossless: str, threshold: float) -> AEConfig:
    """The AE configuration of one storage (:data:`CODED_STORAGE`: entropy-coded symbols)."""
    if storage == CODED_STORAGE:
        return CodedAEConfig(model, lossless, threshold)
    return AEConfig(model, storage, lossless, threshold)


def ae_storages(model) -> tuple[str, ...]:
    """Rate-trained models store entropy-coded symbols; the others every float precision of :data:`STORAGES`."""
    return (CODED_STORAGE,) if lc.is_rate_card(model.card) else STORAGES


# ----------------------------------------------------------------------------------- measurement


def max_errors(variables: Sequence[str], x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Largest point-wise error per variable: relative (x > 0) for pt/m/e, absolute otherwise."""
    out = {}
    for i, v in enumerate(variables):
        a, b = x[:, i].astype(np.float64), y[:, i].astype(np.float64)
        if lossy_codecs.bound_kind(v) == "relative":
            keep = a > 0
            err = np.abs(b[keep] / a[keep] - 1.0)
            exact = bool(np.all(b[~keep] == a[~keep]))
            out[v] = float(err.max(initial=0.0)) if exact else float("inf")
        else:
            out[v] = float(np.abs(b - a).max(initial=0.0))
    return out


def model_bytes(model) -> int:
    """What a reader needs to decode: ``decoder.onnx`` and the card as encoders attach it, which for a rate-trained
    model carries the entropy model (``entropy_model.json`` is added for a card that does not)."""
    extra = 0
    if lc.is_rate_card(model.card) and lc.embedded_text(model.card) is None:
        extra = os.path.getsize(model.path / lc.ENTROPY_MODEL_NAME)
    return os.path.getsize(model.decoder_path) + len(model.card_json.encode()) + extra


def _point(kind: str, family: str, label: str, variables: Sequence[str], blocks: Sequence[Block],
           streams: Sequence[Streams], decoded: np.ndarray, compress_s: float, decompress_s: float,
           mhz: float, extra_bytes: int = 0, bounds: Mapping[str, float] | None = None) -> dict[str, Any]:
    x = np.concatenate([b.x for b in blocks])
    n_jets, n_events = len(x), sum(len(b.counts) for b in blocks)
    by_cat: dict[str, int] = {}
    for s in streams:
        for k, v in nbytes(s).items():
            by_cat[k] = by_cat.get(k, 0) + v
    total = sum(by_cat.values())
    per_jet = {str(n): (total + extra_bytes * n_events / n) / n_jets for n in AMORTISE_EVENTS}
    cycles = 1e6 * mhz / n_jets
    uniform = bounds is not None and len(set(bounds.values())) == 1
    return {"kind": kind, "family": family, "config": label, "variables": list(variables),
            "bound": next(iter(bounds.values())) if uniform else None, "bounds": dict(bounds or {}),
            "n_jets": n_jets, "n_events": n_events, "n_blocks": len(blocks), "stream_bytes": by_cat,
            "stream_bytes_total": total, "model_bytes": extra_bytes, "bytes_per_jet": per_jet,
            "residuals": residual_table(list(variables), x, decoded), "max_error": max_errors(variables, x, decoded),
            "cpu": {"compress_s": compress_s, "decompress_s": decompress_s,
                    "compress_cycles_per_jet": compress_s * cycles, "decompress_cycles_per_jet": decompress_s * cycles,
                    "cycles_per_jet": (compress_s + decompress_s) * cycles}}


def measure(config, blocks: Sequence[Block], min_seconds: float) -> tuple[list[Streams], np.ndarray, float, float]:
    """(streams, decoded jets, compress CPU s, decompress CPU s) of ``config`` over all blocks."""
    enc, streams = cpu_per_call(lambda: [config.encode(b) for b in blocks], min_seconds)
    dec, parts = cpu_per_call(lambda: [config.decode(s, len(b.counts)) for s, b in zip(streams, blocks, strict=True)],
                              min_seconds)
    return streams, np.concatenate(parts), enc, dec


def codec_points(sample: Sample, variables: Sequence[str], bounds: Sequence[float], lossless: Sequence[str],
                 block_events: int, min_seconds: float, mhz: float, progress: Callable[[str], None]) -> list[dict]:
    """Every lossy codec at every bound and every lossless codec on ``variables`` of ``sample``."""
    variables = tuple(variables)
    blocks = split_blocks(sample.take(variables), sample.counts, block_events)
    points = []
    for name in lossless:
        cfg = LosslessConfig(name, variables)
        streams, dec, enc_s, dec_s = measure(cfg, blocks, min_seconds)
        points.append(_point("lossless", name, name, variables, blocks, streams, dec, enc_s, dec_s, mhz))
        progress(name)
    for family in lossy_codecs.FAMILIES:
        for bound in bounds:
            cfg = LossyConfig.uniform(family, bound, variables)
            streams, dec, enc_s, dec_s = measure(cfg, blocks, min_seconds)
            points.append(_point("lossy", family, f"{family} @{bound:g}", variables, blocks, streams, dec, enc_s,
                                 dec_s, mhz, bounds={v: bound for v in variables}))
            progress(f"{family} @{bound:g}")
    return points


def _initial_bound(grid: Sequence[Mapping[str, Any]], var: str, target: float) -> float:
    """A bound expected to give width ``target`` on ``var``: bound/width of the grid point closest in width."""
    usable = [p for p in grid if width(p, var) > 0]
    if target <= 0 or not usable:
        return min(p["bound"] for p in grid)
    near = min(usable, key=lambda p: abs(np.log(width(p, var) / target)))
    return target * near["bound"] / width(near, var)


def matched_points(sample: Sample, variables: Sequence[str], ae: Sequence[Mapping[str, Any]],
                   grid: Sequence[Mapping[str, Any]], families: Sequence[str], block_events: int,
                   min_seconds: float, mhz: float) -> list[dict]:
    """Per AE point and family: the codec with per-variable bounds tuned to be at least as accurate as the AE.

    Start from the grid's bound/width ratio and shrink the bound of any variable still wider than the AE
    (at most :data:`MATCH_ITERATIONS` tries); ``matched`` says whether every variable ended at or below the
    AE's core half-width. Every variable of the set is matched (for 13 variables also the substructure ones).
    """
    variables = tuple(variables)
    blocks = split_blocks(sample.take(variables), sample.counts, block_events)
    out = []
    for a in ae:
        target = {v: width(a, v) for v in variables}
        for fam in families:
            fam_grid = [p for p in grid if p["family"] == fam and p["kind"] == "lossy"]
            bounds = {v: _initial_bound(fam_grid, v, target[v]) for v in variables}
            x = np.concatenate([b.x for b in blocks])
            last: dict[str, float] = {}
            for _ in range(MATCH_ITERATIONS):
                cfg = LossyConfig.per_variable(fam, bounds, variables)
                dec = np.concatenate([cfg.decode(cfg.encode(b), len(b.counts)) for b in blocks])
                got = {v: r["core_half_width"] for v, r in residual_table(list(variables), x, dec).items()}
                over = {v: got[v] / target[v] for v in variables if target[v] > 0}
                if all(o <= 1.0 for o in over.values()):
                    break
                # shrink what is still too wide; halve where the last shrink did not move the width (BitRound's steps)
                bounds = {v: b * ((0.5 if last.get(v) == got[v] else 0.98 / over[v]) if over.get(v, 0.0) > 1.0
                                  else 1.0) for v, b in bounds.items()}
                last = got
            streams, dec, enc_s, dec_s = measure(cfg, blocks, min_seconds)
            pt = _point("matched", fam, f"{fam} @AE {a['model']} {a['storage']}", variables, blocks, streams, dec,
                        enc_s, dec_s, mhz, bounds=bounds)
            pt["matched_to"] = a["config"]
            pt["matched"] = all(width(pt, v) <= target[v] for v in variables)
            out.append(pt)
    return out


def best_lossless(streams_of: Callable[[str], list[Streams]], dtype_list: Sequence[np.dtype],
                  lossless: Sequence[str]) -> str:
    """The lossless codec (applicable to every dtype) giving the fewest bytes."""
    names = [n for n in lossless if all(stream_codecs.applicable(n, d) for d in dtype_list)]
    return min(names, key=lambda n: sum(sum(nbytes(s).values()) for s in streams_of(n)))


def ae_points(sample: Sample, model_dir: str, storages: Sequence[str], lossless: Sequence[str], block_events: int,
              min_seconds: float, mhz: float, progress: Callable[[str], None],
              sink_events: int | None = HEADLINE_EVENTS) -> list[dict]:
    """One point per storage precision for the model in ``model_dir`` (best lossless codec each); each carries
    ``sink``: the model's bytes per jet as the sink records them (rate_distortion_sink.py), the sample looped to
    ``sink_events`` events (None: once)."""
    model = load_model(model_dir)
    threshold = model.threshold(fpr=FALLBACK_FPR)
    blocks = split_blocks(sample.take(model.variables), sample.counts, block_events)
    probe = AEConfig(model, "float32", lossless[0], threshold)
    probe.score(blocks[0])  # warm-up: ONNX Runtime's first call
    score_s, scored = cpu_per_call(lambda: [probe.score(b) for b in blocks], min_seconds)
    latent_all = np.concatenate([p.latent for p in scored])
    decode_s, _ = cpu_per_call(lambda: probe.decoder(latent_all), min_seconds)
    extra = model_bytes(model)
    sink = sink_summary(model_sink_bytes(sample, model_dir, FALLBACK_FPR, block_events, sink_events))
    points = []
    for storage in [s for s in storages if s in ae_storages(model)]:
        dtypes = [np.dtype(np.float32)] + ([np.dtype(np.uint16)] if storage in ("float16", "bfloat16") else [])
        configs = {n: ae_config(model, storage, n, threshold) for n in lossless
                   if all(stream_codecs.applicable(n, d) for d in dtypes)}
        name = best_lossless(lambda n, c=configs: [c[n].pack(b, p) for b, p in zip(blocks, scored, strict=True)],
                             dtypes, list(configs))
        cfg = configs[name]
        cfg._decoder = probe.decoder
        pack_s, streams = cpu_per_call(lambda c=cfg: [c.pack(b, p) for b, p in zip(blocks, scored, strict=True)],
                                       min_seconds)
        unpack_s, _ = cpu_per_call(lambda c=cfg, st=streams: [c.unpack(s, len(b.counts))
                                                               for s, b in zip(st, blocks, strict=True)], min_seconds)
        decoded = np.concatenate([cfg.decode(s, len(b.counts)) for s, b in zip(streams, blocks, strict=True)])
        label = f"{model.name} {storage} [{name}]"
        pt = _point("AE", model.name, label, model.variables, blocks, streams, decoded, score_s + pack_s,
                    unpack_s + decode_s, mhz, extra_bytes=extra)
        n_events = sum(len(b.counts) for b in blocks)
        pt.update({"model": model.name, "storage": storage, "lossless": name, "latent_dim": model.latent_dim,
                   "fallback_fpr": FALLBACK_FPR, "threshold": threshold,
                   "sink": sink, "flagged_events": int(sum(p.flag.sum() for p in scored)),
                   "flagged_fraction": float(sum(p.flag.sum() for p in scored) / max(n_events, 1))})
        pt["cpu"].update({"scorer_cycles_per_jet": score_s * 1e6 * mhz / pt["n_jets"],
                          "decoder_cycles_per_jet": decode_s * 1e6 * mhz / pt["n_jets"]})
        points.append(pt)
        progress(label)
    return points


# ------------------------------------------------------------------------------ fronts and goal


def goal_variables(variables: Sequence[str]) -> list[str]:
    return [v for v in GOAL_LIMITS if v in variables]


def width(p: Mapping[str, Any], var: str) -> float:
    return float(p["residuals"][var]["core_half_width"])


def bytes_per_jet(p: Mapping[str, Any], events: int = HEADLINE_EVENTS) -> float:
    """A point's bytes per jet with its model bytes spread over ``events``; at the headline, an AE point measured
    through the sink's writer (``sink``, :mod:`rate_distortion_sink`) gives the recording's figure instead: every
    byte of the segments, so the front and the headline are what a live recording holds."""
    if events == HEADLINE_EVENTS and p.get("sink"):
        return float(p["sink"]["bytes_per_jet"])
    return stream_bytes_per_jet(p, events)


def stream_bytes_per_jet(p: Mapping[str, Any], events: int = HEADLINE_EVENTS) -> float:
    """The study's own streams (counts, payload, flags, fallback) plus the model bytes spread over ``events``."""
    return float(p["bytes_per_jet"][str(events)])


def objectives(points: Sequence[Mapping[str, Any]], variables: Sequence[str]) -> np.ndarray:
    """[n_points, 1 + n_vars]: bytes per jet (:func:`bytes_per_jet` at the headline: the sink's figure for the AEs)
    and each variable's core half-width."""
    return np.array([[bytes_per_jet(p), *[width(p, v) for v in variables]] for p in points]).reshape(
        len(points), 1 + len(variables))


def meets_goal(p: Mapping[str, Any], variables: Sequence[str]) -> bool:
    return all(width(p, v) <= GOAL_LIMITS[v] for v in variables)


def dominators(p: Mapping[str, Any], others: Sequence[Mapping[str, Any]], variables: Sequence[str]) -> list[str]:
    """Configs of ``others`` at most as large and at most as wide on every variable (and better in one)."""

    me = objectives([p], variables)[0]
    return [q["config"] for q, o in zip(others, objectives(others, variables), strict=True) if dominates(o, me)]


def compare(points: Sequence[dict], variables: Sequence[str]) -> dict[str, Any]:
    """Fronts, goal and margins of one variable set on one sample (annotates the points in place)."""
    gv = goal_variables(variables)
    full = pareto_mask(objectives(points, gv))
    for p, on in zip(points, full, strict=True):
        p["pareto_all"] = bool(on)
        p["meets_goal"] = meets_goal(p, gv)
        p["pareto_2d"] = {}
    for v in gv:
        for p, on in zip(points, pareto_mask(objectives(points, [v])), strict=True):
            p["pareto_2d"][v] = bool(on)
    lossless = [p for p in points if p["kind"] == "lossless"]
    codecs_ = [p for p in points if p["kind"] != "AE"]
    best_ll = min(lossless, key=bytes_per_jet)
    out: dict[str, Any] = {"goal_variables": gv, "goal_limits": {v: GOAL_LIMITS[v] for v in gv},
                           "best_lossless": best_ll["config"], "best_lossless_bytes_per_jet": bytes_per_jet(best_ll),
                           "families_at_goal": {}, "ae": {}}
    for fam in lossy_codecs.FAMILIES:
        ok = [p for p in points if p["family"] == fam and p["kind"] == "lossy" and p["meets_goal"]]
        best = min(ok, key=bytes_per_jet) if ok else None
        out["families_at_goal"][fam] = None if best is None else {"config": best["config"],
                                                                   "bytes_per_jet": bytes_per_jet(best)}
    for p in (q for q in points if q["kind"] == "AE"):
        b = bytes_per_jet(p)
        matched = {}
        for fam in lossy_codecs.FAMILIES:  # grid points and the points tuned to this AE's accuracy
            ok = [q for q in points if q["family"] == fam and q.get("matched_to", p["config"]) == p["config"]
                  and all(width(q, v) <= width(p, v) for v in gv)]
            best = min(ok, key=bytes_per_jet) if ok else None
            matched[fam] = None if best is None else {"config": best["config"], "bytes_per_jet": bytes_per_jet(best),
                                                      "bytes_ratio_codec_over_ae": bytes_per_jet(best) / b}
        at_goal = {f: (None if r is None else r["bytes_per_jet"] / b) for f, r in out["families_at_goal"].items()}
        beats = {f: bool(p["meets_goal"] and (at_goal[f] is None or at_goal[f] > 1.0)) for f in GOAL_FAMILIES}
        ratio_ll = bytes_per_jet(best_ll) / b
        out["ae"][p["config"]] = {
            "bytes_per_jet": b, "bytes_per_jet_1G": bytes_per_jet(p, AMORTISE_EVENTS[1]),
            "widths": {v: width(p, v) for v in gv}, "width_over_limit": {v: width(p, v) / GOAL_LIMITS[v] for v in gv},
            "meets_goal": p["meets_goal"], "dominated_by": dominators(p, codecs_, gv),
            "matched_accuracy": matched, "codec_bytes_over_ae_at_goal": at_goal,
            "ratio_vs_best_lossless": ratio_ll, "beats_at_goal": beats,
            "stream_bytes_per_jet": stream_bytes_per_jet(p),
            "sink_bytes_per_jet": p["sink"]["bytes_per_jet"],
            "sink_ratio_vs_best_lossless": bytes_per_jet(best_ll) / p["sink"]["bytes_per_jet"],
            "goal_met": bool(p["meets_goal"] and all(beats.values()) and ratio_ll >= GOAL_RATIO_VS_LOSSLESS)}
    return out


def variable_sets(model_dirs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Models grouped by their variable set; key like ``pt,eta,phi,e`` (canonical order)."""

    sets: dict[str, dict[str, Any]] = {}
    for d in model_dirs:
        names = [v["name"] for v in read_card(d)["variables"]]
        ordered = [v for v in ALL_VARIABLES if v in names] + [v for v in names if v not in ALL_VARIABLES]
        key = ",".join(ordered)
        sets.setdefault(key, {"variables": ordered, "models": []})["models"].append(str(d))
    return sets


def run(samples: Sequence[Sample], model_dirs: Sequence[str], quick: bool = False,
        block_events: int = BLOCK_EVENTS, min_seconds: float | None = None, log=None) -> dict[str, Any]:
    """Every codec and every AE on every sample, per variable set; fronts, goal and margins."""
    mhz, clock_source = cpu_mhz()
    bounds = QUICK_BOUNDS if quick else BOUNDS
    lossless = QUICK_LOSSLESS if quick else stream_codecs.LOSSLESS
    min_s = (0.02 if quick else 0.2) if min_seconds is None else min_seconds
    sets = variable_sets(model_dirs)
    out: dict[str, Any] = {
        "block_events": block_events, "block_definition": "one sink group commit (consumer/sink --commit-events "
        "default): one ROOT basket per branch", "bounds": list(bounds), "lossless": list(lossless),
        "families": list(lossy_codecs.FAMILIES), "storages": list(STORAGES), "amortise_events": list(AMORTISE_EVENTS),
        "headline_events": HEADLINE_EVENTS, "fallback_fpr": FALLBACK_FPR, "goal_limits": GOAL_LIMITS,
        "goal_ratio_vs_lossless": GOAL_RATIO_VS_LOSSLESS, "goal_families": list(GOAL_FAMILIES),
        "clock_mhz": mhz, "clock_source": clock_source, "threads": 1, "samples": {}}
    say = log or (lambda _msg: None)
    import numcodecs  # noqa: F401  (imported before any timing)
    import pysz  # noqa: F401
    import zfpy  # noqa: F401
    for sample in samples:
        per_set = {}
        for key, spec in sets.items():
            say(f"  rate-distortion: {sample.name} [{key}]: codecs")
            points = codec_points(sample, spec["variables"], bounds, lossless, block_events, min_s, mhz,
                                  lambda _n: None)
            ae = []
            for d in spec["models"]:
                say(f"  rate-distortion: {sample.name} [{key}]: {os.path.basename(d)}")
                ae += ae_points(sample, d, (*STORAGES, CODED_STORAGE), lossless, block_events, min_s, mhz,
                                lambda _n: None, sink_events=None if quick else HEADLINE_EVENTS)
            say(f"  rate-distortion: {sample.name} [{key}]: {', '.join(GOAL_FAMILIES)} at each AE's accuracy")
            points += ae + matched_points(sample, spec["variables"], ae, points, GOAL_FAMILIES, block_events, min_s,
                                          mhz)
            per_set[key] = {"variables": spec["variables"], "models": [os.path.basename(m) for m in spec["models"]],
                            "points": points, "comparison": compare(points, spec["variables"])}
        out["samples"][sample.name] = {"n_events": sample.n_events, "n_jets": sample.n_jets,
                                       "n_blocks": -(-sample.n_events // block_events), "sets": per_set}
    return out
