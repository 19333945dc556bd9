"""The one way this project opens an ONNX Runtime session: CPU provider, explicit threads, no spinning.

Every stage, tool and study builds its sessions with :func:`ort_session`, so a graph runs with the same
options in the encoder service, offline decoding, the studies and the benchmarks (a figure measured in one
place holds in the others). Threads are explicit (intra-op ``threads``, inter-op 1, sequential execution) and
spin-waiting is off, so an idle encoder does not burn a core.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # onnxruntime is imported on first use: `aetrig --help` stays fast
    import onnxruntime as ort

PROVIDERS = ["CPUExecutionProvider"]


def session_options(threads: int = 1) -> ort.SessionOptions:
    """SessionOptions with ``threads`` intra-op threads, one inter-op thread, and spin-waiting disabled."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def ort_session(model: str | Path | bytes, threads: int = 1) -> ort.InferenceSession:
    """A CPU session on a graph file or on serialised ONNX bytes, with :func:`session_options`.

    >>> session = ort_session("models/zoo/AE_3D_200_ptetaphie/encoder.onnx")  # doctest: +SKIP
    >>> latent = session.run(["latent"], {"x": jets})[0]  # doctest: +SKIP
    """
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, session_options(threads), providers=PROVIDERS)
