"""Group commit: work that arrives while one store transaction runs shares the next one.

A commit has a fixed cost (a transaction, an fsync) that dwarfs one item's work. While one
group's write runs in a thread, new items queue; the next write takes them all. Idle, each
item is written alone and at once; busy, many share a transaction. Every caller is answered
only after the transaction holding its item committed, with its own answer, and an item is
never split across transactions. Used for webhook requests (an item = one request's
records, all or nothing) and for recording delivery outcomes (an item = one notice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")
T = TypeVar("T")


class InlineWriter(Protocol):
    """Runs `work` (one write transaction) on the caller's thread if it need not wait for
    another writer, else returns None having written nothing. The store's wiring supplies
    one where local writes are cheap (SQLite: notifier.store.sqlite.inline_writer)."""

    def __call__(self, work: Callable[[], T], /) -> T | None: ...


class GroupCommitter(Generic[Item, Answer]):
    def __init__(
        self,
        write: Callable[[Sequence[Item]], Sequence[Answer]],
        *,
        max_size: int | None = None,
        size: Callable[[Item], int] = lambda _: 1,
        own_thread: str | None = None,
        try_inline: InlineWriter | None = None,
        inline_max: int | None = None,
        grace_turns: int = 2,
    ) -> None:
        """`write` (blocking) commits a group in one transaction, one answer per item.

        A group holds items up to `max_size` by `size` (always at least one item). With
        `own_thread`, writes run on a thread of that name, so they never queue behind other
        store calls in the default executor. With `try_inline`, a write
        that can go at once runs on the event loop's own thread: handing each group to a
        thread and back cost more than the write itself (bench/webhook.py); one that would
        wait for a lock still goes to the thread, so the loop never blocks on it. With
        `inline_max`, a group larger than that (by `size`) is never tried inline: its write
        takes long enough to stall every other request on the loop (a 5,000-record webhook
        request holds SQLite for a few hundred milliseconds), so it goes to the thread.
        `grace_turns`: the turns of the event loop a first caller that writes inline waits
        for others to join. Two, as the writer task's grace is (its first step, then its
        yield): a webhook request reaches submit a few turns after it was read, and with
        one turn the webhook's groups halved (bench/webhook.py: 0.79x -> 0.63x). The
        delivery's writes come from tasks woken in the same turn: one is enough there.
        """
        self._write = write
        self._try_inline = try_inline
        self._inline_max = inline_max
        self._grace_turns = grace_turns
        self._max_size = max_size
        self._size = size
        self._thread_name = own_thread
        self._thread: ThreadPoolExecutor | None = None
        self._waiting: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._leading = False  # a caller is in its grace before writing inline (_lead)
        self.groups = 0  # transactions committed (for tests and metrics)

    async def submit(self, item: Item) -> Answer:
        """Commit this item (with whatever else is waiting) and return its answer."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if not self._leading and not self._writing():
            if self._try_inline is not None:
                await self._lead()
            else:
                self._start_writer()
        # A caller that goes away cancels only its own future, never the write: the writer
        # task is not awaited here, and it skips futures that are already done.
        return await future

    def enqueue(self, item: Item) -> asyncio.Future[Answer]:
        """Queue this item for the next write, starting none: it goes with the next
        caller's, or at `flush`. Its answer is the future's (see submit)."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        return future

    def flush(self) -> None:
        """Write what is queued, unless a write that will take it is already on its way."""
        if self._waiting and not self._leading and not self._writing():
            self._start_writer()

    def close(self) -> None:
        """Release the write thread (after the last caller was answered)."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    def _writing(self) -> bool:
        return self._writer is not None and not self._writer.done()

    def _start_writer(self) -> None:
        self._writer = asyncio.create_task(self._write_all(), name="notifier-group-commit")

    async def _lead(self) -> None:
        """Write what waits inline on this caller's own task, after its grace_turns.

        With nothing being written, the first caller writes its group itself instead of
        starting the writer task and waiting for it: no task to start, and no turn of the
        event loop for waking the caller once its answer is set (a delivery, with one turn
        of grace, went from three turns a transaction to one: ~5% of its CPU,
        bench/delivery.py). A group that cannot go inline (the lock is
        taken, or it is too large) goes back to the front, for the writer task's thread;
        and so does everything waiting if this caller is cancelled in the grace."""
        self._leading = True
        try:
            for _ in range(self._grace_turns):
                await asyncio.sleep(0)
            group, size = self._take_group()
            if not self._write_inline(group, size):
                self._waiting[:0] = group
        finally:
            self._leading = False
            self.flush()

    async def _write_all(self) -> None:
        # One loop iteration's grace before the first group: the tasks of requests read in
        # the same iteration as the first caller reach submit only after this task would
        # have run, so yielding once lets them join its group. Under load that doubled the
        # webhook's group size (bench/webhook.py), for one iteration of added latency.
        await asyncio.sleep(0)
        while self._waiting:
            group, size = self._take_group()
            if self._write_inline(group, size):
                continue
            try:
                answers = await self._in_thread([item for item, _ in group])
            except Exception as exc:
                self._fail(group, exc)
                continue
            self._answer(group, answers)

    def _write_inline(self, group: list[tuple[Item, asyncio.Future[Answer]]], size: int) -> bool:
        """Write the group on this thread if the store lets it go at once (its callers
        answered, with the error if the write failed); False, nothing written, if not."""
        if self._try_inline is None or (self._inline_max is not None and size > self._inline_max):
            return False
        items = [item for item, _ in group]
        try:
            answers = self._try_inline(lambda: self._write(items))
        except Exception as exc:
            self._fail(group, exc)
            return True
        if answers is None:
            return False
        self._answer(group, answers)
        return True

    def _answer(
        self, group: list[tuple[Item, asyncio.Future[Answer]]], answers: Sequence[Answer]
    ) -> None:
        self.groups += 1
        for (_, future), answer in zip(group, answers, strict=True):
            if not future.done():
                future.set_result(answer)

    def _fail(self, group: list[tuple[Item, asyncio.Future[Answer]]], exc: Exception) -> None:
        for _, future in group:  # every caller of this group gets the error
            if not future.done():
                future.set_exception(exc)

    async def _in_thread(self, items: list[Item]) -> Sequence[Answer]:
        if self._thread_name is None:
            return await asyncio.to_thread(self._write, items)
        if self._thread is None:
            # Made on first use, so the committer outlives an app lifespan that restarts.
            self._thread = ThreadPoolExecutor(1, thread_name_prefix=self._thread_name)
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._write, items)

    def _take_group(self) -> tuple[list[tuple[Item, asyncio.Future[Answer]]], int]:
        """The oldest waiting items, up to max_size (always at least one), and their size."""
        taken = total = 0
        for item, _ in self._waiting:
            size = self._size(item)
            if taken and self._max_size is not None and total + size > self._max_size:
                break
            total += size
            taken += 1
        group, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return group, total
