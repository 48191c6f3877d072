"""The ledger's log checkpoints, off the request path, for every long-running process.

SQLite (in WAL mode) folds its log back into the database file in a checkpoint, and by
default runs one inside whichever commit takes the log past 1,000 pages. The checkpoint
syncs the file: on a loaded disk that took over 100 ms (seen under bench/webhook.py), and
in `notifier serve` a commit often runs on the event loop itself (the inline write,
notifier.store.sqlite), so every request waited with it: the paced p99 went from ~5 ms to
80-109 ms in some runs. A long-running process therefore holds the checkpoints
(`Store.hold_checkpoints`) and runs a passive one every CHECKPOINT_SECONDS on a thread:
it never blocks the writer or a reader, and its sync holds up no commit. A last one runs
as the process stops. PostgreSQL has nothing to hold: the service then does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from notifier.errors import StoreError
from notifier.store.base import Store

log = logging.getLogger("notifier.processes.checkpoints")

# Often enough that the log stays small under load (a second of webhook requests is a few
# thousand pages), seldom enough that an idle process does next to nothing.
CHECKPOINT_SECONDS = 1.0


class LogCheckpoints:
    """A Service (notifier.processes.lifecycle): the store's checkpoints, on a timer."""

    def __init__(self, store: Store, *, every: float = CHECKPOINT_SECONDS) -> None:
        self.store = store
        self.every = every
        self.runs = 0  # checkpoints run (for tests and the curious)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        if await asyncio.to_thread(self.store.hold_checkpoints):
            self._task = asyncio.create_task(self._run(), name="log checkpoints")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        await self._task  # a checkpoint under way finishes: never two at once
        self._task = None
        await self._checkpoint()  # the log folded in before the process goes

    async def _run(self) -> None:
        while True:  # until stopped: the wait below returns as soon as stop() says so
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.every)
                return
            await self._checkpoint()

    async def _checkpoint(self) -> None:
        try:
            await asyncio.to_thread(self.store.checkpoint)
        except StoreError as exc:
            # The next one will fold in what this one could not; nothing is lost meanwhile.
            log.warning("log checkpoint failed: %s", exc)
        else:
            self.runs += 1
