"""Keep the garbage collector's full passes short in the streaming stages.

A stage process holds a few hundred thousand Python objects after its imports (numpy, uproot,
awkward, onnxruntime, zmq). Every full (generation-2) collection walks all of them: about 30 ms
in the producer on this machine, a pause after which the backlog leaves as a burst and the burst's
events queue at the encoders (the p99 decision latency's tail). Freezing the start-up heap
leaves full collections only the objects created while serving.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then exempt every object alive now from later collections; return how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
