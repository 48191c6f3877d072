"""`notifier worker`: a long-running delivery-only process (no HTTP), one per machine or more.

Each process claims batches of due notices (FOR UPDATE SKIP LOCKED on PostgreSQL, so
workers never share a notice), delivers them and records the outcome. SIGTERM or SIGINT
finishes the sends in flight, releases the other claims and exits 0 (notifier.processes.lifecycle).
On PostgreSQL, LISTEN/NOTIFY wakes it as soon as any instance creates notices; a dead
worker's claims come back when their lease runs out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from notifier.core.models import NoticeStatus
from notifier.engine import DeliveryReport, Engine
from notifier.engine.worker import DeliveryWorker
from notifier.processes.lifecycle import run_until_stopped
from notifier.processes.wiring import open_engine
from notifier.settings import Settings
from notifier.store.base import Store
from notifier.store.postgres import due_listener, is_postgres_url

SQLITE_POLL_SECONDS = 5.0
LISTENING_POLL_SECONDS = 60.0
IDLE_CHECK_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class WorkerStarted:
    """What a starting worker tells the operator (its id is the claim token in the ledger)."""

    worker_id: str
    store: str
    listening: bool
    poll_seconds: float


def poll_seconds_for(settings: Settings) -> float:
    if settings.poll_seconds is not None:
        return settings.poll_seconds
    return LISTENING_POLL_SECONDS if is_postgres_url(settings.database_url) else SQLITE_POLL_SECONDS


def delivery_worker_for(
    engine: Engine,
    settings: Settings,
    *,
    on_pass: Callable[[DeliveryReport], None] | None = None,
) -> DeliveryWorker:
    """The delivery worker every long-running command uses: polling as the settings say and,
    on PostgreSQL, woken by notices other instances create (LISTEN/NOTIFY)."""
    return DeliveryWorker(
        engine,
        poll_interval=poll_seconds_for(settings),
        on_pass=on_pass,
        waker=due_listener(settings.database_url),
    )


async def run_worker(
    settings: Settings,
    *,
    until_idle: bool = False,
    announce: Callable[[WorkerStarted], None] | None = None,
) -> DeliveryReport:
    """Deliver until SIGTERM/SIGINT (or, with `until_idle`, until nothing is due or in flight)."""
    total = DeliveryReport()
    with open_engine(settings) as engine:
        worker = delivery_worker_for(engine, settings, on_pass=total.add)
        if announce is not None:
            store = getattr(engine.store, "safe_url", type(engine.store).__name__)
            listening = worker.waker is not None
            announce(WorkerStarted(engine.worker_id, store, listening, worker.poll_interval))
        await run_until_stopped(
            engine,
            worker,
            grace=settings.shutdown_grace,
            until=(lambda: wait_until_idle(engine)) if until_idle else None,
        )
    return total


async def wait_until_idle(engine: Engine) -> None:
    """Return once no notice is due now and none is claimed by any worker, anywhere.

    Claimed (`sending`) notices count as work: if their worker died, they fall due again
    when the lease runs out, and this worker should be there to take them over.
    """
    while True:
        await asyncio.sleep(IDLE_CHECK_SECONDS)
        if await asyncio.to_thread(ledger_idle, engine.store, engine.clock()):
            return


def ledger_idle(store: Store, now: datetime) -> bool:
    due = store.next_due_at()
    if due is not None and due <= now:
        return False
    # One indexed row at most (status, due_at), however large the ledger has grown.
    return not store.notices(status=NoticeStatus.SENDING, limit=1)
