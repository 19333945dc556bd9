"""Which cores each stage of `aetrig run` may use (``--pin-cpus``).

``auto`` (the default): when the process may use more cores than there are encoders, each encoder gets
a core of its own (the highest-numbered ones) and the producer and the sink share the rest. An encoder
then never waits for a core behind the sink's commits or the producer's sending, and they never wait
behind its inference: on 2 cores with one encoder at 100 kHz the decision p99 fell from 7.0-8.3 ms to
5.6-6.5 ms (docs/design.md, measured limits). With as many encoders as cores or more, nothing is pinned
(a core shared by an encoder and the other stages measured worse than letting the kernel place them).
``off``: the kernel places every stage. The cores come from the process's own affinity mask
(``os.sched_getaffinity``), so a container's cpuset is respected.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

PIN_SETTINGS = ("auto", "off")


def available_cpus() -> list[int]:
    """The cores this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def plan_cpus(stage_names: Sequence[str], setting: str, cpus: Iterable[int] | None = None) -> dict[str, frozenset[int]]:
    """Stage name -> the cores it is pinned to; empty when nothing is pinned (``off``, or too few cores)."""
    if setting not in PIN_SETTINGS:
        raise ValueError(f"--pin-cpus must be one of {', '.join(PIN_SETTINGS)}, not {setting!r}")
    cores = sorted(set(available_cpus() if cpus is None else cpus))
    encoders = [n for n in stage_names if n.startswith("encoder-")]
    if setting == "off" or not encoders or len(cores) <= len(encoders):
        return {}
    shared = frozenset(cores[:len(cores) - len(encoders)])
    own = cores[len(cores) - len(encoders):]
    plan = {name: frozenset([core]) for name, core in zip(encoders, own, strict=True)}
    plan.update({name: shared for name in stage_names if name not in plan})
    return plan


def describe_plan(plan: Mapping[str, frozenset[int]], setting: str) -> str:
    """One line for the start-up output: who runs on which cores."""
    if not plan:
        why = "--pin-cpus off" if setting == "off" else "as many encoders as cores"
        return f"cores: not pinned ({why})"
    by_cores: dict[frozenset[int], list[str]] = {}
    for name, cores in plan.items():
        by_cores.setdefault(cores, []).append(name)
    parts = [f"{', '.join(names)} on CPU {','.join(map(str, sorted(cores)))}"
             for cores, names in sorted(by_cores.items(), key=lambda item: min(item[0]))]
    return f"cores: {'; '.join(parts)} (--pin-cpus {setting})"
