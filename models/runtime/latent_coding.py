"""Entropy coding of quantised latents with per-latent pmf tables (numpy + constriction ANS, no torch).

A rate-trained model directory (models/training/rate_ae.py) holds ``entropy_model.json``: per latent a
quantisation step ``delta`` and an integer pmf table over the symbols ``offset .. offset + len(pmf) - 2``;
the table's last entry is an escape. The integer symbols are ``q = rint(latent / delta)``; the decoder graph
takes ``q * delta``. ``encode`` turns a block of jets' ``q`` [n_jets, k] into bytes (little-endian uint32 ANS
words) and ``decode`` gives it back exactly, given the jet count (the container stores it). A symbol outside
a table is coded as the escape followed by its int32 value as two uniform 16-bit halves.

The card carries the entropy model too (``card["entropy_coding"]["model"]``, with the sha256 of its canonical
JSON text in ``model_sha256``; :func:`embed_in_card`), so the card that encoders attach to every scored message is
enough to code the latents (the sink) and a recording needs nothing beside it. Cards written before that are
served from ``<dir>/<card name>/entropy_model.json`` (:func:`entropy_model_text`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.card import read_card, write_card
from models.runtime.hashing import sha256_file
from models.runtime.onnx_session import ort_session

ENTROPY_MODEL_NAME = "entropy_model.json"
FORMAT = "aetrig-latent-pmf-1"
ESCAPE_BITS = 32


class LatentCodingError(Exception):
    """An entropy model is malformed or coded bytes do not decode."""


@dataclass(frozen=True)
class LatentTable:
    """One latent's quantisation step and integer pmf (last entry: escape)."""

    delta: float
    offset: int
    pmf: np.ndarray

    @property
    def size(self) -> int:
        """Symbols in range (the escape excluded)."""
        return len(self.pmf) - 1

    def probabilities(self) -> np.ndarray:
        return self.pmf.astype(np.float64) / float(self.pmf.sum())


@dataclass(frozen=True)
class EntropyModel:
    """The factorised entropy model of a model's k latents."""

    tables: tuple[LatentTable, ...]

    @property
    def k(self) -> int:
        return len(self.tables)

    @property
    def deltas(self) -> np.ndarray:
        return np.array([t.delta for t in self.tables], dtype=np.float64)

    @property
    def base(self) -> EntropyModel:
        """The factorised model (itself; a context model's ``base`` is its factorised model)."""
        return self

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "escape": "last pmf entry; then the int32 value as two uniform 16-bit halves",
                "symbols": "q = rint(latent / delta); decoder input q * delta",
                "latents": [{"delta": t.delta, "offset": t.offset, "pmf": t.pmf.tolist()} for t in self.tables]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EntropyModel:
        if data.get("format") != FORMAT:
            raise LatentCodingError(f"entropy model format {data.get('format')!r}, expected {FORMAT!r}")
        tables = []
        for entry in data["latents"]:
            pmf = np.asarray(entry["pmf"], dtype=np.int64)
            if pmf.ndim != 1 or len(pmf) < 2 or np.any(pmf <= 0):
                raise LatentCodingError("every pmf needs >= 2 positive integer entries")
            tables.append(LatentTable(float(entry["delta"]), int(entry["offset"]), pmf))
        return cls(tuple(tables))


def load_entropy_model(model_dir: str | Path) -> EntropyModel:
    """The entropy model of a model directory (its ``entropy_model.json``)."""
    path = Path(model_dir) / ENTROPY_MODEL_NAME
    if not path.is_file():
        raise LatentCodingError(f"{model_dir} has no {ENTROPY_MODEL_NAME} (not a rate-trained model)")
    return EntropyModel.from_json(json.loads(path.read_text()))


def fit_tables(q: np.ndarray, deltas: np.ndarray, max_symbols: int = 4096) -> EntropyModel:
    """Tables from training symbols ``q`` [n, k]: histogram + 1 over [min, max] (at most ``max_symbols``
    around the median), escape count = out-of-range symbols + 1."""
    q = np.asarray(q, dtype=np.int64)
    tables = []
    for j in range(q.shape[1]):
        col = q[:, j]
        lo, hi = int(col.min()), int(col.max())
        if hi - lo + 1 > max_symbols:
            mid = int(np.median(col))
            lo, hi = mid - max_symbols // 2, mid + max_symbols // 2 - 1
        inside = (col >= lo) & (col <= hi)
        counts = np.bincount(col[inside] - lo, minlength=hi - lo + 1) + 1
        tables.append(LatentTable(float(deltas[j]), lo, np.append(counts, int((~inside).sum()) + 1)))
    return EntropyModel(tuple(tables))


def quantise(latent: np.ndarray, model: EntropyModel) -> np.ndarray:
    """Integer symbols ``rint(latent / delta)`` [n, k] (int32; round half to even, as ONNX Round)."""
    scaled = np.asarray(latent, dtype=np.float64) / model.deltas
    return np.clip(np.rint(scaled), -(2**31), 2**31 - 1).astype(np.int32)


def dequantise(q: np.ndarray, model: EntropyModel) -> np.ndarray:
    """The decoder input ``q * delta`` (float32)."""
    return (np.asarray(q, dtype=np.float64) * model.deltas).astype(np.float32)


def table_symbols(q: np.ndarray, table: LatentTable) -> tuple[np.ndarray, np.ndarray]:
    """(table indices with escapes, escaped values) of one latent column."""
    index = q.astype(np.int64) - table.offset
    escaped = (index < 0) | (index >= table.size)
    index[escaped] = table.size
    return index.astype(np.int32), q[escaped].astype(np.int32)


def _check(q: np.ndarray, model: EntropyModel) -> np.ndarray:
    q = np.asarray(q)
    if q.ndim != 2 or q.shape[1] != model.k:
        raise LatentCodingError(f"symbols must be [n_jets, {model.k}], got shape {q.shape}")
    return q


def encode(q: np.ndarray, model: EntropyModel) -> bytes:
    """ANS-code the symbols ``q`` [n_jets, k] of a block of jets; b"" for no jets."""
    import constriction

    q = _check(q, model)
    if len(q) == 0:
        return b""
    coder = constriction.stream.stack.AnsCoder()
    columns = [table_symbols(q[:, j], t) for j, t in enumerate(model.tables)]
    escaped = np.concatenate([esc for _, esc in columns]).view(np.uint32)
    if len(escaped):
        halves = np.stack([escaped & 0xFFFF, escaped >> 16], axis=1).reshape(-1).astype(np.int32)
        coder.encode_reverse(halves, constriction.stream.model.Uniform(1 << 16))
    for (index, _), table in reversed(list(zip(columns, model.tables, strict=True))):
        coder.encode_reverse(index, constriction.stream.model.Categorical(table.probabilities(), perfect=False))
    return coder.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, n_jets: int, model: EntropyModel) -> np.ndarray:
    """The symbols [n_jets, k] (int32) that ``encode`` coded into ``data``."""
    import constriction

    if n_jets == 0:
        return np.zeros((0, model.k), np.int32)
    if len(data) % 4:
        raise LatentCodingError(f"coded latents are {len(data)} bytes, not whole 32-bit words")
    coder = constriction.stream.stack.AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    out = np.empty((n_jets, model.k), dtype=np.int64)
    escapes = []
    for j, table in enumerate(model.tables):
        index = coder.decode(constriction.stream.model.Categorical(table.probabilities(), perfect=False), n_jets)
        out[:, j] = index.astype(np.int64) + table.offset
        escapes.append(np.flatnonzero(index == table.size))
    n_escaped = sum(len(e) for e in escapes)
    if n_escaped:
        halves = coder.decode(constriction.stream.model.Uniform(1 << 16), 2 * n_escaped).astype(np.uint32)
        values = (halves[0::2] | (halves[1::2] << 16)).view(np.int32)
        start = 0
        for j, rows in enumerate(escapes):
            out[rows, j] = values[start:start + len(rows)]
            start += len(rows)
    return out.astype(np.int32)


def ideal_bits(q: np.ndarray, model: EntropyModel) -> float:
    """Sum of ``-log2 p`` of the symbols under the tables (escapes add ESCAPE_BITS): the ideal code length."""
    q = _check(q, model)
    total = 0.0
    for j, table in enumerate(model.tables):
        index, escaped = table_symbols(q[:, j], table)
        total += float(-np.log2(table.probabilities()[index]).sum()) + ESCAPE_BITS * len(escaped)
    return total


def encoder_session(model_dir: str | Path, threads: int = 1):  # -> onnxruntime.InferenceSession
    """A CPU ONNX Runtime session on the model directory's encoder.onnx."""

    return ort_session(Path(model_dir) / "encoder.onnx", threads)


def code_jets(model_dir: str | Path, values: np.ndarray, threads: int = 1) -> bytes:
    """The exact coded bytes of jets ``values`` [n_jets, n_vars] (physical units) as one block:
    encoder.onnx -> rint(latent / delta) -> ANS. Bits per jet = 8 * len(bytes) / n_jets."""
    model = load_entropy_model(model_dir)
    values = np.ascontiguousarray(values, dtype=np.float32)
    if len(values) == 0:
        return b""
    latent = encoder_session(model_dir, threads).run(["latent"], {"x": values})[0]
    return encode(quantise(latent, model), model)


def decode_jets(model_dir: str | Path, data: bytes, n_jets: int, threads: int = 1) -> np.ndarray:
    """Reconstructed jets [n_jets, n_vars] (physical units) of ``code_jets`` bytes: ANS -> q * delta -> decoder."""

    model = load_entropy_model(model_dir)
    z = dequantise(decode(data, n_jets, model), model)
    session = ort_session(Path(model_dir) / "decoder.onnx", threads)
    return session.run(["reconstruction"], {"latent": z})[0]


def is_rate_model(model_dir: str | Path) -> bool:
    """Whether a model directory is rate-trained (has an entropy model; its card states ``bits_per_jet``)."""
    return (Path(model_dir) / ENTROPY_MODEL_NAME).is_file()


def canonical_text(data: dict[str, Any]) -> str:
    """An entropy model's JSON as canonical text (sorted keys, no spaces): what recordings store."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def embed_in_card(card: dict[str, Any], model: EntropyModel) -> dict[str, Any]:
    """The card with the entropy model inside (``entropy_coding.model`` and its ``model_sha256``); in place."""
    text = canonical_text(model.to_json())
    block = card.setdefault("entropy_coding", {"file": ENTROPY_MODEL_NAME})
    block["model"] = json.loads(text)
    block["model_sha256"] = text_sha256(text)
    return card


def embed_in_model_dir(model_dir: str | Path) -> dict[str, Any]:
    """Put a rate-trained model directory's ``entropy_model.json`` into its ``card.json`` (cards written before
    the card carried it); returns the card."""
    card = embed_in_card(read_card(model_dir), load_entropy_model(model_dir))
    write_card(model_dir, card)
    return card


def embedded_text(card: dict[str, Any]) -> str | None:
    """The canonical text of the entropy model inside a card (checked against its sha256 and format), or None
    for a card without one."""
    block = card.get("entropy_coding")
    if not isinstance(block, dict) or "model" not in block:
        return None
    if not isinstance(block["model"], dict):
        raise LatentCodingError(f"model {card.get('name')!r}: entropy_coding.model is not a JSON object")
    text = canonical_text(block["model"])
    if text_sha256(text) != block.get("model_sha256"):
        raise LatentCodingError(f"model {card.get('name')!r}: the entropy model in its card does not match its "
                                f"model_sha256 {str(block.get('model_sha256'))[:12]}…")
    EntropyModel.from_json(block["model"])  # well-formed
    return text


def is_rate_card(card: dict[str, Any]) -> bool:
    """Whether a card belongs to a rate-trained model (an entropy model inside, or listed under its files)."""
    block = card.get("entropy_coding")
    return (isinstance(block, dict) and "model" in block) or ENTROPY_MODEL_NAME in card.get("files", {})


def entropy_model_text(card: dict[str, Any], search_dirs: list[Path]) -> str:
    """The canonical JSON text of a card's entropy model: the one inside the card, else (cards written before
    the card carried it) ``<dir>/<card name>/entropy_model.json`` in ``search_dirs`` with the sha256 its card
    lists; LatentCodingError when the model has none."""

    inside = embedded_text(card)
    if inside is not None:
        return inside
    wanted = card.get("files", {}).get(ENTROPY_MODEL_NAME)
    if not wanted:
        raise LatentCodingError(f"model {card.get('name')!r} has no {ENTROPY_MODEL_NAME} (not rate-trained)")
    for directory in search_dirs:
        path = Path(directory) / str(card.get("name")) / ENTROPY_MODEL_NAME
        if path.is_file() and sha256_file(path) == wanted:
            return canonical_text(json.loads(path.read_text()))
    raise LatentCodingError(f"no {ENTROPY_MODEL_NAME} of model {card.get('name')!r} with sha256 {wanted[:12]}… "
                            f"inside its card or under {[str(d) for d in search_dirs]}")


def card_entropy_model(card: dict[str, Any], search_dirs: list[Path]) -> EntropyModel:
    """The parsed entropy model of a card (:func:`entropy_model_text`)."""
    return EntropyModel.from_json(json.loads(entropy_model_text(card, search_dirs)))
