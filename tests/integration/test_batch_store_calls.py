"""A delivery batch's claim and reads run on the event loop's own thread where the store
can take them at once (SQLite, its write lock free), and on a thread where it cannot (the
lock held by another process, PostgreSQL): the loop never waits on a lock."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from support.ledger import commit_after, tracking_records
from support.project import BRANDING, RULES, TEMPLATES
from support.smtp_sink import SmtpSink

from notifier.core.models import NoticeStatus
from notifier.core.rules import load_rules
from notifier.engine import Engine, EngineConfig
from notifier.rendering.renderer import Renderer
from notifier.store.sql import SqlStore, inline_writer
from notifier.transports.smtp import SmtpTransport

NOTICES = 40
BATCH_CALLS = ("claim_due", "orders", "suppressed", "claim_holders")


@contextlib.contextmanager
def delivering(store_url: str) -> Iterator[tuple[Engine, SmtpSink, dict[str, set[int]]]]:
    """An engine wired as the worker wires it (inline writes on SQLite), over real SMTP,
    with the thread each batch store call ran on, by call."""
    store = SqlStore(store_url)
    threads: dict[str, set[int]] = {name: set() for name in BATCH_CALLS}
    for name in BATCH_CALLS:
        setattr(store, name, _noting_thread(getattr(store, name), threads[name]))
    with SmtpSink() as sink, contextlib.closing(store):
        engine = Engine(
            store=store,
            transport=SmtpTransport(hostname=sink.host, port=sink.port, connections=4, timeout=5),
            rules=load_rules(RULES),
            renderer=Renderer(TEMPLATES),
            config=EngineConfig(BRANDING, claim_batch=16),
            inline_writer=inline_writer(store),
        )
        engine.ingest(tracking_records(NOTICES))
        yield engine, sink, threads


def _noting_thread(call: Callable[..., Any], into: set[int]) -> Callable[..., Any]:
    def noted(*args: Any, **kwargs: Any) -> Any:
        into.add(threading.get_ident())
        return call(*args, **kwargs)

    return noted


async def _deliver(engine: Engine) -> int:
    """Deliver everything due; the loop's own thread."""
    try:
        report = await engine.deliver_due()
    finally:
        await engine.transport.close()
    assert report.counts == {NoticeStatus.SENT: NOTICES}
    return threading.get_ident()


def test_a_batch_claims_and_reads_on_the_loop_thread_where_the_store_can_at_once(
    store_url: str,
) -> None:
    """SQLite: every claim (three batches and the empty last one) and each batch's reads
    ran on the loop's thread; PostgreSQL (no inline writer): none did. All sent once."""
    with delivering(store_url) as (engine, sink, threads):
        loop_thread = asyncio.run(_deliver(engine))
        received = sorted(d.rcpt_tos[0] for d in sink.deliveries)
    assert received == sorted(f"customer{n}@example.com" for n in range(NOTICES))
    assert all(threads.values()), threads  # each call was made
    ran_on = set().union(*threads.values())
    if store_url.startswith("sqlite"):
        assert ran_on == {loop_thread}
    else:
        assert loop_thread not in ran_on


def test_a_claim_goes_to_a_thread_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    """Another connection holds SQLite's write lock for 0.4 s as delivery starts: the claim
    does not wait on the loop (a ticker on the loop keeps ticking meanwhile), it waits on a
    thread, and every notice is sent once the lock is free."""
    path = tmp_path / "notifier.db"
    with delivering(f"sqlite:///{path}") as (engine, sink, threads):
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Thread(target=commit_after, args=(holder, 0.4))
        gaps: list[float] = []

        async def run() -> int:
            stop = asyncio.Event()

            async def tick() -> None:
                last = time.monotonic()
                while not stop.is_set():
                    await asyncio.sleep(0.01)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            ticker = asyncio.create_task(tick())
            release.start()
            try:
                return await _deliver(engine)
            finally:
                stop.set()
                await ticker

        loop_thread = asyncio.run(run())
        release.join()
        holder.close()
        received = sorted(d.rcpt_tos[0] for d in sink.deliveries)
    assert received == sorted(f"customer{n}@example.com" for n in range(NOTICES))
    assert threads["claim_due"] - {loop_thread}, "the held lock sent the first claim to a thread"
    # The loop was never held for the lock's 0.4 s (an inline call that waited would be).
    assert max(gaps) < 0.3, max(gaps)
