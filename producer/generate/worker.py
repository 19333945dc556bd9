"""One generator worker: a Pythia instance (plus one for pileup) turning chunks of events into jet arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from producer.generate.detector import DetectorParams, ParticleClassifier, build_towers
from producer.generate.jets import VARIABLES, JetParams, cluster, jet_variables
from producer.generate.processes import minbias_settings, process_settings, seed_settings

PYTHIA_MAX_SEED = 900_000_000


class GenerateError(RuntimeError):
    """A clear, user-facing generation error (bad setting, Pythia init failure, non-finite output)."""


@dataclass(frozen=True)
class GenConfig:
    process: str = "qcd"
    n_events: int = 1000
    seed: int = 1
    jobs: int = 1
    chunk_events: int = 1000
    ecm: float = 13000.0
    pthat_min: float = 100.0
    pileup: float = 0.0
    run_number: int = 1
    extra: tuple[str, ...] = ()
    detector: DetectorParams = field(default_factory=DetectorParams)
    jets: JetParams = field(default_factory=JetParams)

    def settings(self) -> list[str]:
        return process_settings(self.process, self.ecm, self.pthat_min, list(self.extra))

    def n_chunks(self) -> int:
        return -(-self.n_events // self.chunk_events)

    def chunk_size(self, chunk: int) -> int:
        return min(self.chunk_events, self.n_events - chunk * self.chunk_events)


def worker_seeds(seed: int, worker: int) -> dict[str, int]:
    """Distinct, reproducible seeds of worker ``worker`` (Pythia hard + pileup, smearing, pileup counts)."""
    state = np.random.SeedSequence([seed, worker]).generate_state(4, dtype=np.uint64)
    return {
        "pythia": int(state[0] % PYTHIA_MAX_SEED) + 1,
        "pileup_pythia": int(state[1] % PYTHIA_MAX_SEED) + 1,
        "smearing": int(state[2]),
        "pileup_count": int(state[3]),
    }


@dataclass
class Chunk:
    """Jets of consecutive events: per-event jet counts and flat float32 per-jet columns."""

    index: int
    event_number: np.ndarray  # uint64
    n_jets: np.ndarray  # int64 per event
    columns: dict[str, np.ndarray]  # name -> float32 flat
    n_pileup: int = 0


def make_pythia(settings: list[str], what: str) -> object:
    """A Pythia instance with ``settings`` read and initialised, or a GenerateError saying which failed."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in settings:
        if not pythia.readString(line):
            raise GenerateError(f"Pythia rejected the setting {line!r} ({what}); check the key name and value")
    if not pythia.init():
        raise GenerateError(f"Pythia init() failed for the {what} settings: {settings}")
    return pythia


def final_state(pythia: object, n: int) -> tuple[np.ndarray, ...]:
    """Generate ``n`` events; flat (event index, id, px, py, pz, e) of final-state particles."""
    import awkward as ak

    batches, got, failures = [], 0, 0
    while got < n:
        batch = pythia.nextBatch(n - got, "skip")
        if len(batch) == 0:
            failures += 1
            if failures > 10:
                raise GenerateError("Pythia failed to generate events 10 times in a row")
            continue
        batches.append(batch)
        got += len(batch)
    prt = ak.concatenate([b.prt for b in batches]) if len(batches) > 1 else batches[0].prt
    prt = prt[prt.status > 0]
    event = np.repeat(np.arange(n), ak.to_numpy(ak.num(prt)))
    flat = {k: ak.to_numpy(ak.flatten(v)) for k, v in (
        ("id", prt.id), ("px", prt.p.px), ("py", prt.p.py), ("pz", prt.p.pz), ("e", prt.p.e))}
    return event, flat["id"], flat["px"], flat["py"], flat["pz"], flat["e"]


class Worker:
    """Produces the chunks ``worker, worker + jobs, worker + 2 jobs, ...`` of a run, in order."""

    def __init__(self, config: GenConfig, worker: int):
        self.config, self.worker = config, worker
        self.seeds = worker_seeds(config.seed, worker)
        self.pythia = make_pythia(config.settings() + seed_settings(self.seeds["pythia"]), config.process)
        self.classifier = ParticleClassifier(self.pythia.particleData)
        self.pileup_pythia = None
        if config.pileup > 0:
            self.pileup_pythia = make_pythia(
                minbias_settings(config.ecm) + seed_settings(self.seeds["pileup_pythia"]), "pileup")
        self.smear_rng = np.random.default_rng(self.seeds["smearing"])
        self.count_rng = np.random.default_rng(self.seeds["pileup_count"])

    def chunks(self) -> list[int]:
        return list(range(self.worker, self.config.n_chunks(), self.config.jobs))

    def make_chunk(self, chunk: int) -> Chunk:
        n = self.config.chunk_size(chunk)
        event, ids, px, py, pz, e = final_state(self.pythia, n)
        n_pu = 0
        if self.pileup_pythia is not None:
            per_event = self.count_rng.poisson(self.config.pileup, n)
            n_pu = int(per_event.sum())
            if n_pu:
                pu_event, pu_ids, *pu_p = final_state(self.pileup_pythia, n_pu)
                host = np.repeat(np.arange(n), per_event)[pu_event]
                event = np.concatenate([event, host])
                ids = np.concatenate([ids, pu_ids])
                px, py, pz, e = (np.concatenate([a, b]) for a, b in zip((px, py, pz, e), pu_p, strict=True))
        visible, em, charged = self.classifier.classify(ids)
        towers = build_towers(event[visible], px[visible], py[visible], pz[visible], e[visible],
                              em[visible], charged[visible], self.config.detector, self.smear_rng)
        jet_event, constituents = cluster(towers, n, self.config.jets)
        variables = jet_variables(constituents, len(jet_event))
        columns = {name: variables[name].astype(np.float32) for name in VARIABLES}
        for name, col in columns.items():
            if not np.all(np.isfinite(col)):
                raise GenerateError(f"non-finite values in jet_{name} (chunk {chunk}); refusing to write them")
        first = chunk * self.config.chunk_events
        return Chunk(
            index=chunk,
            event_number=np.arange(first, first + n, dtype=np.uint64),
            n_jets=np.bincount(jet_event, minlength=n),
            columns=columns,
            n_pileup=n_pu,
        )
