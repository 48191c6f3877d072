"""Group commit: concurrent requests' records committed together, one transaction per group.

A store commit has a fixed cost (a transaction, an fsync on PostgreSQL or a synchronous
SQLite) that dwarfs one record's work. While one group's transaction runs in a thread,
requests that arrive queue up; the next transaction takes them all. An idle server commits
each request alone, at once; a busy one commits many per transaction. Either way every
request is answered only after the transaction holding its records has committed, and a
request's records are never split across transactions (all or nothing per request).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from notifier.engine import Engine, IngestReport
from notifier.models import Record

log = logging.getLogger("notifier.group_commit")

_Waiting = tuple[Sequence[Record], asyncio.Future[IngestReport]]


class GroupCommitter:
    """Ingests records for many concurrent callers, batching those that wait together."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_records: int = 2000,
        on_created: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.max_records = max_records
        self.on_created = on_created
        self._waiting: list[_Waiting] = []
        self._committer: asyncio.Task[None] | None = None
        self.groups = 0  # transactions committed (for tests and metrics)
        # Its own thread: a commit never queues behind the delivery worker's store calls in
        # the default executor. One thread, since groups commit one after another anyway.
        # Made on first use, so the committer outlives an app lifespan that ends and restarts.
        self._thread: ThreadPoolExecutor | None = None

    async def ingest(self, records: Sequence[Record]) -> IngestReport:
        """Commit these records (in one transaction with whoever else is waiting)."""
        future: asyncio.Future[IngestReport] = asyncio.get_running_loop().create_future()
        self._waiting.append((records, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_all(), name="notifier-commit")
        # A caller that goes away cancels only its own future, never the commit: the
        # committer task is not awaited here, and skips futures that are already done.
        return await future

    async def _commit_all(self) -> None:
        while self._waiting:
            group = self._take_group()
            try:
                commit = functools.partial(
                    self.engine.ingest_groups, [records for records, _ in group]
                )
                if self._thread is None:
                    self._thread = ThreadPoolExecutor(1, thread_name_prefix="notifier-commit")
                total, reports = await asyncio.get_running_loop().run_in_executor(
                    self._thread, commit
                )
            except Exception as exc:  # every caller of this group gets the error
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.groups += 1
            for (_, future), report in zip(group, reports, strict=True):
                if not future.done():
                    future.set_result(report)
            if total.notices_created and self.on_created is not None:
                self.on_created()

    def close(self) -> None:
        """Release the commit thread (after the last request was answered)."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    def _take_group(self) -> list[_Waiting]:
        """The oldest waiting requests, up to max_records (always at least one request)."""
        taken = 1
        count = len(self._waiting[0][0])
        while taken < len(self._waiting):
            count += len(self._waiting[taken][0])
            if count > self.max_records:
                break
            taken += 1
        group, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return group
