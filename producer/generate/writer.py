"""Write generated chunks to a ROOT file in the input-ntuple contract (uproot, chunked ``extend``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from producer.generate.jets import VARIABLES

TREE = "events"

COMPRESSION = {"zlib": ("ZLIB", 6), "lz4": ("LZ4", 4), "lzma": ("LZMA", 6)}


class NtupleWriter:
    """Tree ``events``: jagged float32 ``jet_<name>`` (counter ``njet``), ``event_number`` u8, ``run_number`` u4.

    ``close(metadata)`` adds the TObjString ``metadata`` (JSON) and closes the file.
    """

    def __init__(self, path: str | Path, run_number: int, compression: str = "zlib"):
        import uproot

        algorithm, level = COMPRESSION[compression]
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run_number = run_number
        self._file = uproot.recreate(self.path, compression=getattr(uproot, algorithm)(level))
        self._tree = None
        self.n_events = 0
        self.n_jets = 0

    def write(self, event_number: np.ndarray, n_jets: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        import awkward as ak

        for name in VARIABLES:
            col = columns[name]
            if col.dtype != np.float32 or not np.all(np.isfinite(col)):
                raise ValueError(f"jet_{name}: must be finite float32 before writing")
        if int(n_jets.sum()) != len(columns["pt"]):
            raise ValueError("jet counts do not match the column lengths")
        jets = ak.zip({name: ak.unflatten(columns[name], n_jets) for name in VARIABLES})
        data = {
            "jet": jets,
            "event_number": np.asarray(event_number, dtype=np.uint64),
            "run_number": np.full(len(event_number), self.run_number, dtype=np.uint32),
        }
        if self._tree is None:  # mktree: a TTree (assigning a dict would make an RNTuple in uproot >= 5.7)
            types = {"jet": jets.type.content, "event_number": np.uint64, "run_number": np.uint32}
            self._tree = self._file.mktree(TREE, types)
        self._tree.extend(data)
        self.n_events += len(event_number)
        self.n_jets += len(columns["pt"])

    def close(self, metadata: dict) -> None:
        self._file["metadata"] = json.dumps(metadata, indent=1, sort_keys=True)
        self._file.close()
