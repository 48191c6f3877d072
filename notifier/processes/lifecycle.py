"""One lifecycle for every long-running process: `notifier serve`, `worker` and `schedule`.

`run_until_stopped` starts the delivery worker and the process's services (the HTTP server,
the scheduler), runs until SIGTERM or SIGINT (or until the work ends by itself, e.g. `worker
--until-idle`), then stops them all at once, within one grace period
(NOTIFIER_SHUTDOWN_GRACE):

- the HTTP server stops accepting connections and answers the requests it holds;
- the scheduler fires no more jobs and lets running ones finish their file or page;
- the worker finishes the sends it has handed to the transport and starts no others;
- the store's log checkpoints (SQLite), run on a timer of their own while the process
  runs, fold the log in one last time (notifier.processes.checkpoints).

Then every notice this process still holds claimed — claimed but never started, or cut off
by the grace — is released: due again at once, for the next worker or the next start. The
worker closes the transport as it stops; the store is closed last.

A second SIGTERM/SIGINT during the grace cuts it short: what is still running is cancelled
at once, its claims released the same way. Either way the process exits 0: nothing it
accepted is lost, and nothing it released was recorded as sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from notifier.core.models import NoticeStatus
from notifier.engine import Engine
from notifier.engine.worker import DeliveryWorker
from notifier.errors import StoreError
from notifier.processes.checkpoints import LogCheckpoints
from notifier.processes.gc_tuning import settle_after_startup

log = logging.getLogger("notifier.processes.lifecycle")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Service(Protocol):
    """Something a long-running process runs beside its delivery worker."""

    async def start(self) -> None:
        """Start on the running loop; return once it is up (raise if it cannot be)."""

    async def stop(self) -> None:
        """Finish what is in hand and stop; cancelled when the grace runs out."""


class StopSignals:
    """SIGTERM/SIGINT on the running loop: the first asks to stop, the second to hurry."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.hurry = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        self._loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            self._loop.add_signal_handler(signum, self._received, signum)

    def remove(self) -> None:
        if self._loop is not None:
            for signum in STOP_SIGNALS:
                self._loop.remove_signal_handler(signum)
            self._loop = None

    def _received(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self.stop.is_set():
            log.info("%s: stopping; finishing what is in hand", name)
            self.stop.set()
        elif not self.hurry.is_set():
            log.warning("%s again: cutting the grace short", name)
            self.hurry.set()


async def run_until_stopped(
    engine: Engine,
    worker: DeliveryWorker,
    *,
    grace: float,
    services: Sequence[Service] = (),
    until: Callable[[], Awaitable[object]] | None = None,
    signals: StopSignals | None = None,
) -> None:
    """Run `worker` and `services` until a stop signal (or `until` returns), then shut down.

    Services start in order after the worker and are stopped together with it; a service
    that fails to start stops the process the same way, and its error is raised after.
    """
    signals = signals or StopSignals()
    signals.install()
    started: list[Service] = []
    try:
        running = worker.start()
        # The store's log checkpoints first, off every commit from now on (checkpoints.py).
        for service in [LogCheckpoints(engine.store), *services]:
            await service.start()
            started.append(service)
        settle_after_startup()  # all that lives as long as the process is built by now
        waits = [signals.stop.wait()] + ([until()] if until is not None else [])
        await _first_of(waits, running)
    finally:
        try:
            await stop_within(
                [worker.stop, *(service.stop for service in started)], grace, signals.hurry
            )
            await asyncio.to_thread(release_held_claims, engine)
            engine.store.close()
        finally:
            signals.remove()


async def _first_of(waits: Sequence[Awaitable[object]], worker: asyncio.Task[None]) -> None:
    """Until one of `waits` is done or the worker ended (never cancelled here: it stops
    by being told to, finishing its sends)."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        done, _ = await asyncio.wait([*tasks, worker], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # an `until` that failed says why
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def stop_within(
    stops: Sequence[Callable[[], Awaitable[None]]], grace: float, hurry: asyncio.Event
) -> bool:
    """Run every stop at once; cancel those still running after `grace` s or once `hurry`
    is set. True when all finished in time."""
    tasks = [asyncio.ensure_future(stop()) for stop in stops]
    everything = asyncio.ensure_future(asyncio.wait(tasks))
    hurried = asyncio.ensure_future(hurry.wait())
    try:
        first = asyncio.FIRST_COMPLETED
        await asyncio.wait([everything, hurried], timeout=grace, return_when=first)
    finally:
        hurried.cancel()
        late = [task for task in tasks if not task.done()]
        for task in late:
            task.cancel()
        await asyncio.gather(everything, hurried, return_exceptions=True)
    if late:
        log.error(
            "%d part(s) had not stopped %s: cancelled; their claims are released",
            len(late),
            "when told to hurry" if hurry.is_set() else f"within the {grace:g} s grace",
        )
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("stopping failed", exc_info=task.exception())
    return not late


def release_held_claims(engine: Engine) -> int:
    """Give back the notices this engine still holds `sending`: due again now, unattempted.

    Only this process's claim token is touched; the store checks it again in the update.
    """
    try:
        held = [
            notice.key
            for notice in engine.store.notices(status=NoticeStatus.SENDING)
            if notice.claim_token == engine.worker_id
        ]
        released = engine.store.release(held, token=engine.worker_id, now=engine.clock())
    except StoreError:
        log.exception("could not release claims; their leases will expire instead")
        return 0
    if released:
        log.info("released %d claimed notice(s): due again for the next worker", released)
    return released
