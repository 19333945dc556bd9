"""One way for tests to wait: poll a condition until a deadline, instead of sleeping a guessed time; and whether a
process is still there."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.1,
               what: str | Callable[[], str] | None = None) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something true, and return that; if it is
    still false after ``timeout`` seconds, fail with an AssertionError naming ``what`` (a text, or a function
    called then to describe the state; default: the predicate)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what or repr(predicate)
            raise AssertionError(f"timed out after {timeout:g} s waiting for {described}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (also one of another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
