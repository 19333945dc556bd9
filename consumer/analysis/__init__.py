"""Offline analysis of aetrig recordings in Python and notebooks (docs/python.md).

Example::

    from consumer.analysis import open_run
    run = open_run("runs/demo")          # the --out of aetrig run or aetrig sink
    events = run.events()                # awkward Array: identity, score, flag, threshold, jet, raw_jet
    for part in run.iterate(step=100_000):
        ...                              # bounded memory
    lazy = run.dask(step=500_000)        # dask-awkward, partitions along commits (None: segments)
"""

from consumer.analysis.run import AnalysisError, Run, open_run

__all__ = ["AnalysisError", "Run", "open_run"]
