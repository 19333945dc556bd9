"""What the studies share: reading samples (with the producer's reader and input settings), running models, tables."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emulator.runtime.atomic import write_json_atomic
from emulator.runtime.defaults import SAMPLES_DIR, ZOO
from models.runtime.card import Level, load_model_dir, read_card
from models.runtime.card import model_level as level_of
from models.runtime.evaluate import run_scorer
from models.runtime.residuals import residual_stats, residuals
from producer.reader import ReaderSpec

#: the 13 generated per-jet variables (input contract)
ALL_VARIABLES = ("pt", "eta", "phi", "m", "e", "nconst", "charged_frac", "em_frac", "width", "lead_frac",
                 "n90", "tau21", "tau32")


@dataclass
class Sample:
    """Jets of one sample: ``values`` [n_jets, n_vars] (GeV) for ``variables``, per-event ``counts``."""

    name: str
    files: list[str]
    variables: list[str]
    values: np.ndarray
    counts: np.ndarray
    #: events read from each file, in the order of ``files`` (entry i of a file is its i-th event: the reader drops
    #: jets, never events); empty when not known
    file_events: list[int] = field(default_factory=list)

    @property
    def n_events(self) -> int:
        return len(self.counts)

    @property
    def n_jets(self) -> int:
        return len(self.values)

    def column(self, var: str) -> np.ndarray:
        return self.values[:, self.variables.index(var)]

    def take(self, variables: Sequence[str]) -> np.ndarray:
        """[n_jets, len(variables)] float32 in the given order."""
        missing = [v for v in variables if v not in self.variables]
        if missing:
            raise KeyError(f"sample {self.name} lacks variables {missing} (has {self.variables})")
        return np.ascontiguousarray(self.values[:, [self.variables.index(v) for v in variables]], dtype=np.float32)

    @property
    def leading_mask(self) -> np.ndarray:
        """Per-jet mask of the leading (first, highest-pt) jet of each event."""
        starts = np.cumsum(self.counts) - self.counts
        mask = np.zeros(self.n_jets, dtype=bool)
        mask[starts[self.counts > 0]] = True
        return mask

    def per_event_sum(self, jet_values: np.ndarray) -> np.ndarray:
        """Sum of a per-jet quantity over each event's jets (float64; 0 for zero-jet events)."""
        out = np.zeros(self.n_events, dtype=np.float64)
        np.add.at(out, np.repeat(np.arange(self.n_events), self.counts), jet_values)
        return out

    def ht(self) -> np.ndarray:
        """Scalar sum of the jet pt per event (all jets; 0 for zero-jet events)."""
        return self.per_event_sum(self.column("pt").astype(np.float64))

    def mht(self) -> np.ndarray:
        """Missing HT per event: |vector sum of the jet pt| over all its jets (0 for zero-jet events)."""
        pt, phi = self.column("pt").astype(np.float64), self.column("phi").astype(np.float64)
        return np.hypot(self.per_event_sum(pt * np.cos(phi)), self.per_event_sum(pt * np.sin(phi)))

    def leading_pt(self) -> np.ndarray:
        """Leading-jet pt per event (0 for zero-jet events)."""
        out = np.zeros(self.n_events, dtype=np.float64)
        has = self.counts > 0
        out[has] = self.column("pt")[self.leading_mask]
        return out


def bundled(name: str) -> Path:
    return SAMPLES_DIR / f"{name}.root"


def load_sample(name: str, files: Sequence[str | Path], variables: Sequence[str] | None = None,
                spec: ReaderSpec | None = None, max_events: int | None = None,
                spec_for: Callable[[Path], ReaderSpec] | None = None) -> Sample:
    """Read jets of ``files`` as the producer does (its reader, ``spec``'s input format, layouts, tree, branch map,
    unit, derived E and input screen; default its aetrig ntuples), ``spec_for(path)`` giving a file its own spec
    (e.g. the one its run manifest recorded). ``variables`` None: the first file's (the producer's default)."""
    from producer.inputs import check_inputs
    from producer.reader import expand_inputs, read_chunks

    spec = spec or ReaderSpec()
    paths = expand_inputs([str(f) for f in files])
    inputs = check_inputs(paths, spec, variables, [spec_for(p) for p in paths] if spec_for else None)
    variables = inputs.variables
    values, counts, file_index = [], [], []
    n = 0
    for chunk in read_chunks(inputs.files, spec, variables, plans=inputs.plans):
        keep = len(chunk) if max_events is None else min(len(chunk), max_events - n)
        if keep <= 0:
            break
        c = chunk.n_jets[:keep].astype(np.int64)
        n_j = int(c.sum())
        values.append(np.stack([chunk.jets[v][:n_j] for v in variables], axis=1))
        counts.append(c)
        file_index.append(chunk.file_index[:keep])
        n += keep
    vals = np.concatenate(values) if values else np.zeros((0, len(variables)), np.float32)
    bad = ~np.isfinite(vals)
    if bad.any():
        raise ValueError(f"sample {name}: {int(bad.sum())} non-finite jet values")
    index = np.concatenate(file_index) if file_index else np.zeros(0, np.int64)
    return Sample(name, [str(p) for p in paths], list(variables), vals.astype(np.float32),
                  np.concatenate(counts) if counts else np.zeros(0, np.int64),
                  np.bincount(index.astype(np.int64), minlength=len(paths)).tolist())


def zoo_models(names: Sequence[str] | None = None) -> list[Path]:
    """Model dirs under models/zoo with a scorer graph (all, or the named ones that exist)."""
    if not ZOO.is_dir():
        return []
    dirs = sorted(p for p in ZOO.iterdir() if (p / "card.json").is_file() and (p / "scorer.onnx").is_file())
    if names is not None:
        dirs = [d for d in dirs if d.name in names]
    return dirs


def load_model(path: str | Path, level: Level | None = Level.JET):  # -> models.runtime.card.ModelDir
    """A verified model directory; ``level`` jet (default) refuses event-level models, None accepts any."""

    return load_model_dir(path, verify=True, level=level)


def model_level(path: str | Path) -> Level:
    """The level of a model directory's card (without verifying its files)."""

    return level_of(read_card(path))


def run_model(model, x: np.ndarray, batch: int = 65536) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latent, reconstruction, per-jet error) of the model's scorer graph with ONNX Runtime (1 thread)."""

    return run_scorer(model.scorer_path, x, batch=batch, threads=1)


def residual_table(variables: Sequence[str], x_in: np.ndarray, x_out: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per-variable residual statistics (models.runtime.residuals: relative for pt/e/m, absolute otherwise)."""

    return residual_stats(list(variables), np.asarray(x_in), np.asarray(x_out))


def residual_values(var: str, x_in: np.ndarray, x_out: np.ndarray) -> np.ndarray:

    return residuals(var, x_in, x_out)[1]


def clean(obj: Any) -> Any:
    """JSON-ready copy: numpy -> python, NaN/inf -> None."""
    if isinstance(obj, Mapping):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON (non-finite numbers as null; atomically) to ``path``."""
    write_json_atomic(path, clean(data))


def perf_cycles_supported() -> bool:
    """Whether ``perf stat -e cycles`` counts cycles here (it reports <not supported> in most VMs)."""

    if shutil.which("perf") is None:
        return False
    try:
        out = subprocess.run(["perf", "stat", "-x,", "-e", "cycles", "true"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    first = (out.stderr.strip().splitlines() or [""])[0]
    return out.returncode == 0 and first.split(",")[0].strip().isdigit()


def cpu_mhz() -> tuple[float, str]:
    """Nominal core clock in MHz and where it came from (/proc/cpuinfo 'cpu MHz')."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("cpu mhz"):
                    return float(line.split(":")[1]), "/proc/cpuinfo cpu MHz"
    except OSError:
        pass
    return float("nan"), "unknown"
