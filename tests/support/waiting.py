"""Waiting for a condition with a time limit, by polling.

Why not `Event.wait(timeout)` / `Condition.wait(timeout)`: a thread wait that ends by
timing out never returns under `make test-clock`. On libfaketime 0.9.10 the faked monotonic
clock is years ahead of the kernel's, and Python's timed lock waits (sem_clockwait) go to
the kernel unfaked, so the deadline lies years away. `time.sleep` is faked consistently and
returns on time. An untimed wait, or a timed one that is answered, is fine either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(done: Callable[[], bool], *, timeout: float, interval: float = 0.005) -> bool:
    """True as soon as `done()` is; False once `timeout` seconds have passed without it."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True
