"""freeze_startup_heap: objects alive at start-up leave the collector's generations."""

import gc

from emulator.runtime.heap import freeze_startup_heap


class Node:
    """A container object the collector tracks."""

    def __init__(self) -> None:
        self.children: list[Node] = []


def test_startup_objects_are_frozen_and_cycles_made_later_are_still_collected() -> None:
    before = gc.get_freeze_count()
    keep = [Node() for _ in range(5000)]
    try:
        frozen = freeze_startup_heap()
        assert frozen >= before + len(keep)
        assert frozen == gc.get_freeze_count()
        assert not any(keep[0] is obj for obj in gc.get_objects(generation=2))
        cycle = Node()
        cycle.children.append(cycle)
        del cycle
        assert gc.collect() >= 1  # garbage made while serving is still found
    finally:
        gc.unfreeze()
