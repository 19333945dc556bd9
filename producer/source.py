"""The producer's event source: chunks of the input as event blocks, over N loops, read ahead in a thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from producer.framing import EventBlock
from producer.jet_screen import InputCounts
from producer.reader import FilePlan, ReaderSpec, read_chunks

#: Decoded input up to this size is kept after the first pass and replayed from memory on later loops
#: (a small sample looped at a high rate then costs no decompression); larger inputs are re-read.
LOOP_CACHE_BYTES = 256 << 20


def _read_blocks(files: Sequence[Path], spec: ReaderSpec, variables: Sequence[str],
                 on_input_counts: Callable[[InputCounts], None] | None = None,
                 plans: Sequence[FilePlan] | None = None) -> Iterator[EventBlock]:
    for block in read_chunks(files, spec, variables, plans=plans):
        if block.checks and on_input_counts is not None:
            on_input_counts(block.checks)
        yield block


def event_source(files: Sequence[Path], spec: ReaderSpec, variables: Sequence[str], loops: int,
                 max_events: int, cache_bytes: int = LOOP_CACHE_BYTES,
                 on_input_counts: Callable[[InputCounts], None] | None = None,
                 plans: Sequence[FilePlan] | None = None) -> Iterator[EventBlock]:
    """Blocks of events (times unset) over ``loops`` passes (0 = forever), at most ``max_events`` (0 = all).

    When looping, the first pass is kept in memory if it decodes to at most ``cache_bytes``.
    ``on_input_counts(counts)`` is told, chunk by chunk, what the input screen dropped on the first pass (the
    input's content, counted once however often it is replayed). ``plans``: the files' start-up
    plans (producer.inputs), so they are not inspected again.
    """
    left = max_events or None
    cache: list[EventBlock] | None = [] if loops != 1 else None
    cached = 0
    n_loop = 0
    while loops == 0 or n_loop < loops:
        n_loop += 1
        seen = 0
        from_cache = n_loop > 1 and cache is not None
        told = on_input_counts if n_loop == 1 else None
        for full in (iter(cache) if from_cache else _read_blocks(files, spec, variables, told, plans)):
            if not from_cache and cache is not None:
                cached += full.nbytes
                if cached <= cache_bytes:
                    cache.append(full)
                else:
                    cache = None  # too big: later passes read the files again
            seen += len(full)
            n = len(full) if left is None else min(len(full), left)
            if n:
                yield full.slice(0, n) if n < len(full) else replace(full)
            if left is not None:
                left -= n
                if left <= 0:
                    return
        if seen == 0:
            return  # empty input: looping forever would spin


def prefetch(items: Iterator[EventBlock], depth: int = 2) -> Iterator[EventBlock]:
    """Run ``items`` in a background thread, ``depth`` blocks ahead, so reading never stalls the pacing.

    Exceptions of the reader are re-raised here. Closing this generator stops the thread.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=work, name="producer-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
