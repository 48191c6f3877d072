"""Group commit: completions that finish while one write is under way share the next one.

Each send records its outcome the moment the SMTP transaction ends, but a transaction per
notice made the store, not SMTP, the limit on throughput (bench/delivery.py). Waiting
callers still learn their own answer, and nothing waits longer than one write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class GroupCommitter(Generic[Item, Answer]):
    def __init__(self, write: Callable[[Sequence[Item]], Sequence[Answer]]) -> None:
        self._write = write  # blocking; run in a thread
        self._pending: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                answers = await asyncio.to_thread(self._write, [item for item, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
