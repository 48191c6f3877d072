"""The delivery worker: delivers due notices as soon as they are due, until stopped.

It sleeps until the next notice falls due, until `wake()` says new ones were created
(webhook, drop folder, poller), or at most `poll_interval` (another instance may have
created some). Used by `notifier serve` and any long-running process.

An optional `waker` (e.g. notifier.store.postgres.DueListener, PostgreSQL LISTEN/NOTIFY)
calls `wake()` when another instance created notices, so the poll is only a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from notifier.engine import DeliveryReport, Engine

log = logging.getLogger("notifier.engine.worker")


class Waker(Protocol):
    """Calls `wake` (on the worker's loop) whenever new notices may be due elsewhere."""

    def start(self, wake: Callable[[], None]) -> None: ...

    async def stop(self) -> None: ...


class DeliveryWorker:
    def __init__(
        self,
        engine: Engine,
        *,
        poll_interval: float = 5.0,
        on_pass: Callable[[DeliveryReport], None] | None = None,
        waker: Waker | None = None,
    ) -> None:
        self.engine = engine
        self.poll_interval = poll_interval
        self.on_pass = on_pass
        self.waker = waker
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.passes = 0

    def wake(self) -> None:
        """New notices may be due: deliver now. Call from the worker's event loop."""
        self._wake.set()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="notifier-delivery")
        return self._task

    async def stop(self) -> None:
        """Finish the batch in flight, claim no more, close the transport."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def run(self) -> None:
        if self.waker is not None:
            self.waker.start(self.wake)
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    report = await self.engine.deliver_due(stopping=lambda: self._stopping)
                except Exception:  # keep delivering after a store hiccup; say so loudly
                    log.exception(
                        "delivery pass failed; trying again in %.0f s", self.poll_interval
                    )
                    report = DeliveryReport()
                self.passes += 1
                if self.on_pass is not None and report.total:
                    self.on_pass(report)
                if self._stopping:
                    break
                await self._sleep(await self._seconds_until_due())
        finally:
            if self.waker is not None:
                await self.waker.stop()
            await self.engine.transport.close()

    async def _seconds_until_due(self) -> float:
        try:
            due: datetime | None = await asyncio.to_thread(self.engine.store.next_due_at)
        except Exception:
            log.exception("could not read the next due time")
            return self.poll_interval
        if due is None:
            return self.poll_interval
        seconds = (due - self.engine.clock()).total_seconds()
        return min(max(seconds, 0.0), self.poll_interval)

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
