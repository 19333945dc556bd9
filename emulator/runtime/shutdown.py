"""SIGTERM/SIGINT handling (the one copy): route the stop signals to a callback, a flag the stage
services poll, and put the previous handlers back."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: what :func:`on_stop_signals` replaced, for :func:`restore_signals`
PreviousHandlers = dict[int, Any]


def on_stop_signals(callback: Callable[[str], None]) -> PreviousHandlers:
    """Make SIGINT and SIGTERM call ``callback(signal name)``, e.g. ``callback("SIGTERM")``.

    Returns the handlers they replace. Only the main thread may set handlers: called from another
    thread it changes nothing and returns ``{}``.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handle(signum: int, _frame: object) -> None:
        callback(signal.Signals(signum).name)

    return {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}


def restore_signals(previous: PreviousHandlers) -> None:
    """Put back the handlers :func:`on_stop_signals` replaced."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)


class StopFlag:
    """Set by SIGTERM or SIGINT (or by ``set()``); services stop reading, drain and exit when set."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> StopFlag:
        """Route SIGTERM and SIGINT to this flag (main thread only)."""
        on_stop_signals(self._on_signal)
        return self

    def _on_signal(self, name: str) -> None:
        self.signal_name = name
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()
