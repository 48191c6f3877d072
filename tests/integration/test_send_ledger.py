"""Send marks and outcomes share transactions (notifier.engine.send_ledger): an outcome
rides with the next send's mark, yet a crash still finds at most max_in_flight notices
marked as sending and not recorded; and no outcome waits long for company."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage

import pytest
from sqlalchemy import text
from support.ledger import tracking_records
from support.memory_engine import rig, tna_key, tracking
from support.project import BRANDING, RULES, TEMPLATES
from support.smtp_sink import SmtpSink

from notifier.core.models import NoticeStatus
from notifier.core.rules import load_rules
from notifier.engine import Engine, EngineConfig
from notifier.engine.send_ledger import RIDE_SECONDS
from notifier.rendering.renderer import Renderer
from notifier.store.base import Completion
from notifier.store.sql import SqlStore, inline_writer
from notifier.transports.memory import MemoryTransport
from notifier.transports.protocol import BeforeData
from notifier.transports.smtp import SmtpTransport

NOTICES = 60
IN_FLIGHT = 4
CONNECTIONS = 4


@pytest.mark.parametrize("in_flight", [IN_FLIGHT, 2 * CONNECTIONS], ids=["4", "chained"])
def test_outcomes_ride_with_send_marks_within_the_crash_bound(
    store_url: str, in_flight: int
) -> None:
    """Real SMTP, four connections, the worker's wiring (SQLite: inline writes): after every
    transaction, at most four notices are marked as sending without their outcome (what a
    crash then would make ambiguous) -- with four sends in flight, and with eight, as the
    worker runs, where sends wait in the transport to be chained (one a connection: a mark
    needs a connection, and the next there commits the outcome before it); on SQLite
    outcomes did share transactions with marks, so there were fewer than two a message;
    every notice was sent once."""
    store = SqlStore(store_url)
    after_each: list[int] = []
    mixed = 0
    original = store.record_sends

    def watched(
        writes: Sequence[tuple[str, Completion | None]], *, token: str, now: datetime
    ) -> list[bool]:
        nonlocal mixed
        answers = original(writes, token=token, now=now)
        kinds = {done is None for _, done in writes}
        mixed += kinds == {True, False}
        with store.engine.connect() as conn:
            marked = conn.scalar(
                text(
                    "SELECT count(*) FROM notices"
                    " WHERE status = 'sending' AND send_started_at IS NOT NULL"
                )
            )
        after_each.append(int(marked or 0))
        return answers

    store.record_sends = watched  # type: ignore[method-assign]
    with SmtpSink() as sink, contextlib.closing(store):
        engine = Engine(
            store=store,
            transport=SmtpTransport(
                hostname=sink.host, port=sink.port, connections=CONNECTIONS, timeout=5
            ),
            rules=load_rules(RULES),
            renderer=Renderer(TEMPLATES),
            config=EngineConfig(BRANDING, max_in_flight=in_flight),
            inline_writer=inline_writer(store),
        )
        engine.ingest(tracking_records(NOTICES))

        async def run() -> None:
            try:
                report = await engine.deliver_due()
            finally:
                await engine.transport.close()
            assert report.counts == {NoticeStatus.SENT: NOTICES}

        asyncio.run(run())
        received = sorted(d.rcpt_tos[0] for d in sink.deliveries)
    assert received == sorted(f"customer{n}@example.com" for n in range(NOTICES))
    assert max(after_each) <= CONNECTIONS and after_each[-1] == 0
    if in_flight > CONNECTIONS:  # sends waited in the transport: chained after others
        assert any(b"\r\n.\r\nMAIL FROM:" in chunk for chunk in sink.reads)
    if store.dialect == "sqlite":
        # Inline writes, a few tens of microseconds: sends reach their marks while others'
        # outcomes end. (PostgreSQL's writes go through a thread: a send waiting on its mark
        # is no longer on its way to it, so outcomes seldom find one to ride with.)
        assert mixed > 0 and len(after_each) < 2 * NOTICES


class GatedTransport(MemoryTransport):
    """Holds the send to one address before its DATA until `gate` opens."""

    def __init__(self, held: str) -> None:
        super().__init__()
        self.held = held
        self.gate = asyncio.Event()
        self.holding = False

    async def send(self, message: EmailMessage, /, *, before_data: BeforeData | None = None) -> str:
        if self.held in str(message["To"]):
            self.holding = True
            await self.gate.wait()
            self.holding = False
        return await super().send(message, before_data=before_data)


def test_an_outcome_does_not_wait_on_a_send_stuck_before_its_mark() -> None:
    """One send is stuck before its mark (a slow server's envelope replies): the outcome
    of another, which would ride with that mark, is recorded within RIDE_SECONDS all the
    same, while the stuck send is still stuck; then both end sent."""
    setup = rig()
    transport = GatedTransport(held="customer0@")
    setup.engine.transport = transport
    setup.engine.ingest([tracking(0), tracking(1)])
    seen_while_holding: list[NoticeStatus] = []

    async def run() -> None:
        delivery = asyncio.create_task(setup.engine.deliver_due())
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 100 * RIDE_SECONDS
        while setup.notice(tna_key(1)).status is not NoticeStatus.SENT:
            assert loop.time() < give_up, "the outcome waited for the stuck send's mark"
            await asyncio.sleep(RIDE_SECONDS / 5)
        if transport.holding:
            seen_while_holding.append(setup.notice(tna_key(1)).status)
        transport.gate.set()
        report = await delivery
        assert report.counts == {NoticeStatus.SENT: 2}

    asyncio.run(run())
    assert seen_while_holding == [NoticeStatus.SENT]
    assert setup.notice(tna_key(0)).status is NoticeStatus.SENT
