"""PostgreSQL-only parts of the ledger: telling idle workers that notices fell due.

Ingestion runs `pg_notify('notifier_due', …)` inside its transaction whenever it created
notices; PostgreSQL delivers the notification at commit (never for a rolled-back batch).
Each worker process keeps one extra connection LISTENing on that channel and wakes its
DeliveryWorker, so a new notice is picked up in milliseconds instead of at the next poll.
A missed notification costs only latency: the worker still polls, slowly, as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable, Iterable, Sequence

import psycopg
from sqlalchemy.engine import make_url

log = logging.getLogger("notifier.store.postgres")

DUE_CHANNEL = "notifier_due"


def is_postgres_url(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL (`postgresql+psycopg://…`) as a plain libpq connection string."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def lock_orders(
    run_many: Callable[[str, Sequence[tuple[int]]], object], order_ids: Iterable[str]
) -> None:
    """Take a transaction-scoped advisory lock per order, so instances ingesting records of
    the same order serialise on it (decide needs the order as it stands). Sorted, so two
    transactions never wait for each other in a circle; executemany runs them in order,
    pipelined: one round trip, not one per order."""
    locks = sorted({_advisory_key(order_id) for order_id in order_ids})
    run_many("SELECT pg_advisory_xact_lock(%s)", [(key,) for key in locks])


def _advisory_key(text_value: str) -> int:
    # A stable signed 64-bit key for pg_advisory_xact_lock.
    return zlib.crc32(text_value.encode()) - 2**31


def notify_due(run: Callable[[str, tuple[str, str]], object], count: int) -> None:
    """Queue a 'notices are due' notification through `run(sql, params)` (a SQLAlchemy
    connection's exec_driver_sql, or DriverTx.run): sent when (and only if) the
    transaction commits."""
    run("SELECT pg_notify(%s, %s)", (DUE_CHANNEL, str(count)))


class DueListener:
    """A DeliveryWorker waker: LISTEN on `notifier_due` and call `wake()` on each notification.

    Runs as a task on the worker's event loop (psycopg's async connection). It reconnects
    after a lost connection and wakes the worker once on every (re)connect, because
    notifications sent while it was not listening are gone.
    """

    def __init__(
        self, url: str, *, reconnect_delay: float = 2.0, liveness_interval: float = 60.0
    ) -> None:
        self.conninfo = libpq_url(url)
        self.reconnect_delay = reconnect_delay
        # A silently dropped connection (no RST) would wait forever; check it now and then.
        self.liveness_interval = liveness_interval
        self.listening = asyncio.Event()
        self.notifications = 0
        self.backend_pid: int | None = None  # the listening session, for operators and tests
        self._task: asyncio.Task[None] | None = None

    def start(self, wake: Callable[[], None]) -> None:
        self._task = asyncio.create_task(self._run(wake), name="notifier-due-listener")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self.listening.clear()

    async def _run(self, wake: Callable[[], None]) -> None:
        while True:
            try:
                await self._listen(wake)
            except (psycopg.Error, OSError) as exc:
                log.warning(
                    "LISTEN %s: connection lost (%s); reconnecting in %.0f s",
                    DUE_CHANNEL,
                    exc,
                    self.reconnect_delay,
                )
            self.listening.clear()
            await asyncio.sleep(self.reconnect_delay)

    async def _listen(self, wake: Callable[[], None]) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True
        ) as connection:
            await connection.execute(f"LISTEN {DUE_CHANNEL}")
            self.backend_pid = connection.info.backend_pid
            self.listening.set()
            wake()  # anything created while we were not listening
            while True:
                async for _ in connection.notifies(timeout=self.liveness_interval):
                    self.notifications += 1
                    wake()
                await connection.execute("SELECT 1")


def due_listener(url: str) -> DueListener | None:
    """The waker for this store: a LISTEN connection on PostgreSQL, none on SQLite."""
    return DueListener(url) if is_postgres_url(url) else None
