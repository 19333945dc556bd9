"""The bounded in-flight window of unacknowledged batches: the producer's flow control.

A batch enters the window when it is first sent and leaves it when the sink acknowledges its
seq. A batch unacknowledged for longer than its timeout is due for resend (same frames, so the
same seq and first-send time). The timeout adapts to the pipeline like TCP's (RFC 6298): it is
the larger of the configured ``resend_timeout`` and ``srtt + 4 * rttvar`` of the acknowledgement
round trips (sampled only from batches never resent, Karn's rule), and it doubles on each resend
of a batch, up to ``max_backoff`` times, so a slow or overloaded pipeline is not flooded with
copies. Time is passed in, so this is pure logic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class Inflight:
    seq: int
    frames: list[Any]
    n_events: int
    first_send: float
    last_send: float
    resends: int = 0


class Window:
    """At most ``capacity`` unacknowledged batches, keyed by seq."""

    def __init__(self, capacity: int, resend_timeout: float, max_backoff: float = 8.0, max_timeout: float = 60.0):
        if capacity < 1 or resend_timeout <= 0:
            raise ValueError("window capacity >= 1 and resend timeout > 0 required")
        self.capacity, self.resend_timeout, self.max_backoff = capacity, resend_timeout, max_backoff
        self.max_timeout = max(max_timeout, resend_timeout)
        self.srtt: float | None = None  # smoothed acknowledgement round trip, seconds
        self.rttvar = 0.0
        self._items: dict[int, Inflight] = {}
        self.acked_batches = 0
        self.acked_events = 0
        self.resent_batches = 0
        self.unknown_acks = 0  # acks of seqs not in flight (already acked or never sent)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) >= self.capacity

    @property
    def events_in_flight(self) -> int:
        return sum(item.n_events for item in self._items.values())

    def add(self, seq: int, frames: list[Any], n_events: int, now: float) -> None:
        """Register a batch just sent for the first time."""
        if self.full:
            raise RuntimeError("window is full")
        if seq in self._items:
            raise ValueError(f"seq {seq} already in flight")
        self._items[seq] = Inflight(seq, frames, n_events, now, now)

    def ack(self, seqs: Iterable[int], now: float | None = None) -> int:
        """Remove acknowledged seqs; returns how many batches left the window.

        With ``now``, round trips of batches never resent update the adaptive timeout.
        """
        done = 0
        for seq in seqs:
            item = self._items.pop(seq, None)
            if item is None:
                self.unknown_acks += 1
                continue
            done += 1
            self.acked_events += item.n_events
            if now is not None and item.resends == 0:
                self._sample_rtt(now - item.first_send)
        self.acked_batches += done
        return done

    def _sample_rtt(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt

    @property
    def base_timeout(self) -> float:
        """The current timeout of a batch not yet resent."""
        adaptive = 0.0 if self.srtt is None else self.srtt + 4.0 * self.rttvar
        return min(max(self.resend_timeout, adaptive), self.max_timeout)

    def timeout_of(self, item: Inflight) -> float:
        return min(self.base_timeout * min(2.0 ** item.resends, self.max_backoff), self.max_timeout * self.max_backoff)

    def due(self, now: float) -> list[Inflight]:
        """Batches whose timeout expired, oldest first. Called on every wait of the send loop: a batch younger
        than the base timeout (which no batch's timeout is below) is passed over without computing its own."""
        base = self.base_timeout
        return sorted((it for it in self._items.values()
                       if now - it.last_send >= base and now - it.last_send >= self.timeout_of(it)),
                      key=lambda it: it.seq)

    def mark_resent(self, item: Inflight, now: float) -> None:
        item.resends += 1
        item.last_send = now
        self.resent_batches += 1

    def hold(self, item: Inflight, now: float) -> None:
        """Restart a batch's timer without resending it (the sink is alive but out of space)."""
        item.last_send = now

    def next_deadline(self) -> float | None:
        """The earliest time a batch becomes due, or None when empty."""
        if not self._items:
            return None
        return min(it.last_send + self.timeout_of(it) for it in self._items.values())
