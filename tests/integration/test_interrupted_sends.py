"""A send cut off by a crash is an ambiguous attempt: counted, backed off, bounded at two.

The crashed holder is simulated in the ledger (its claim and its send mark, as the dead
process left them); the taking-over engine is real, sending to a real SMTP server, on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from support.ledger import engine_on, tracking_records
from support.smtp_sink import SmtpSink

from notifier.core.models import Notice, NoticeStatus, message_id_for
from notifier.engine import DeliveryReport, Engine
from notifier.engine.claimant import Claimant, machine_id
from notifier.store.base import Completion
from notifier.store.sql import SqlStore
from notifier.transports.smtp import SmtpTransport

# Each SMTP test twice: against a server offering PIPELINING and one that does not.
pytestmark = pytest.mark.smtp_both_ways

INTERRUPTED = "interrupted by a crash during its send (may have arrived)"


class Clock:
    """The engine's clock: starts at the real now, moves only when told."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(store_url)
    yield opened
    opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(store: SqlStore, clock: Clock) -> Engine:
    return engine_on(store, clock=clock)


def deliver(engine: Engine, sink: SmtpSink, claimed: list[Notice] | None = None) -> DeliveryReport:
    """One delivery pass over a fresh SMTP connection pool, closed at its end."""

    async def run() -> DeliveryReport:
        engine.transport = SmtpTransport(hostname=sink.host, port=sink.port, timeout=5.0)
        try:
            if claimed is None:
                return await engine.deliver_due()
            return await engine.deliver_claimed(claimed)
        finally:
            await engine.transport.close()

    return asyncio.run(run())


def dead_token(nonce: str = "dead0000") -> str:
    """The claim token of a process on this machine that has exited."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    return Claimant(machine_id(), gone.pid, "1", nonce).token


def seed(engine: Engine, count: int) -> list[str]:
    report = engine.ingest(tracking_records(count))
    assert report.notices_created == count
    return report.created_keys


def crashed_holder(store: SqlStore, clock: Clock, *, sending: list[str], token: str) -> None:
    """Leave the ledger as a process dies that claimed every due notice and had handed
    `sending` to the transport."""
    claimed = store.claim_due(
        now=clock(), limit=100, lease_until=clock() + timedelta(hours=1), token=token
    )
    assert claimed
    assert store.mark_send_started(sending, token=token, now=clock()) == [True] * len(sending)


def test_only_notices_whose_send_had_started_count_as_an_ambiguous_attempt(
    store: SqlStore, engine: Engine, smtp_sink: SmtpSink, clock: Clock
) -> None:
    """Of a crashed batch, the unmarked notices go at once; the marked ones wait the backoff."""
    keys = seed(engine, 5)
    marked, unmarked = keys[:2], keys[2:]
    crashed_holder(store, clock, sending=marked, token=dead_token())

    report = deliver(engine, smtp_sink)

    assert report.counts == {NoticeStatus.SENT: 3, NoticeStatus.RETRY: 2}
    domain = engine.config.branding.message_id_domain
    assert sorted(m["Message-ID"] for m in smtp_sink.messages) == sorted(
        message_id_for(key, domain) for key in unmarked
    )
    for key in marked:
        notice = store.notice(key)
        assert notice is not None and notice.status is NoticeStatus.RETRY
        assert notice.ambiguous_attempts == 1 and notice.attempts == 1
        assert notice.reason == f"ambiguous: {INTERRUPTED}"
        assert notice.send_started_at is None and notice.claim_token is None
        # The first retry backoff, ~1 minute with jitter: not again within this pass.
        assert clock() + timedelta(seconds=45) <= notice.due_at <= clock() + timedelta(seconds=75)
    for key in unmarked:
        notice = store.notice(key)
        assert notice is not None and notice.status is NoticeStatus.SENT
        assert notice.ambiguous_attempts == 0


def test_a_second_interrupted_send_fails_the_notice_and_retry_still_sends_it(
    store: SqlStore, engine: Engine, smtp_sink: SmtpSink, clock: Clock
) -> None:
    """Two crashes mid-send: failed, 'may have arrived', never handed over on its own; the
    operator's retry sends it, with the same Message-ID."""
    (key,) = seed(engine, 1)
    crashed_holder(store, clock, sending=[key], token=dead_token("dead0001"))
    deliver(engine, smtp_sink)
    clock.advance(timedelta(minutes=2))  # past the backoff: due again, and sent again...
    crashed_holder(store, clock, sending=[key], token=dead_token("dead0002"))  # ...and cut off

    report = deliver(engine, smtp_sink)

    assert report.counts == {NoticeStatus.FAILED: 1} and report.ambiguous == 1
    failed = store.notice(key)
    assert failed is not None and failed.status is NoticeStatus.FAILED
    assert failed.ambiguous_attempts == 2 and failed.attempts == 2
    assert "may have arrived" in (failed.reason or "") and INTERRUPTED in (failed.reason or "")
    assert smtp_sink.messages == []
    clock.advance(timedelta(days=1))
    assert deliver(engine, smtp_sink).total == 0  # failed stays failed

    assert store.make_due([key], now=clock()) == 1
    again = deliver(engine, smtp_sink)

    assert again.counts == {NoticeStatus.SENT: 1}
    (message,) = smtp_sink.messages
    assert message["Message-ID"] == message_id_for(key, engine.config.branding.message_id_domain)


def test_a_lease_run_out_mid_send_elsewhere_is_an_ambiguous_attempt_too(
    store: SqlStore, engine: Engine, smtp_sink: SmtpSink, clock: Clock
) -> None:
    """A holder on another machine (not checkable) whose lease ran out while its send was
    marked: the notice is claimed after the lease and counted, not sent at once."""
    keys = seed(engine, 2)
    foreign = Claimant("0123456789ab", 4242, "1", "far00000").token
    store.claim_due(
        now=clock(), limit=10, lease_until=clock() + timedelta(minutes=5), token=foreign
    )
    assert store.mark_send_started(keys[:1], token=foreign, now=clock()) == [True]
    assert deliver(engine, smtp_sink).total == 0  # the lease still holds

    clock.advance(timedelta(minutes=6))
    report = deliver(engine, smtp_sink)

    assert report.counts == {NoticeStatus.SENT: 1, NoticeStatus.RETRY: 1}
    notice = store.notice(keys[0])
    assert notice is not None and notice.ambiguous_attempts == 1
    assert [m["Message-ID"] for m in smtp_sink.messages] == [
        message_id_for(keys[1], engine.config.branding.message_id_domain)
    ]


def test_the_send_mark_needs_the_claim_and_lives_until_the_outcome(
    store: SqlStore, engine: Engine, clock: Clock
) -> None:
    """Only the claim's holder marks; the outcome clears the mark; a release at shutdown keeps
    it (the send had begun its DATA and may have arrived), and so its attempt; a claim of a
    still-marked notice does not count a new attempt."""
    first, second, third = seed(engine, 3)
    now = clock()
    store.claim_due(now=now, limit=10, lease_until=now + timedelta(minutes=5), token="a")
    assert store.mark_send_started([first, second], token="b", now=now) == [False, False]
    assert store.mark_send_started([first, second], token="a", now=now) == [True, True]
    marked = store.notice(first)
    assert marked is not None and marked.send_started_at == now

    assert store.complete(first, token="a", completion=Completion(NoticeStatus.SENT, at=now))
    done = store.notice(first)
    assert done is not None and done.send_started_at is None

    assert store.release([second], token="a", now=now) == 1
    released = store.notice(second)
    assert released is not None and released.status is NoticeStatus.PENDING
    assert released.attempts == 1 and released.send_started_at == now
    (again,) = store.claim_due(now=now, limit=10, lease_until=now + timedelta(minutes=5), token="b")
    assert again.key == second and again.attempts == 1 and again.send_started_at == now
    store.complete(second, token="b", completion=Completion(NoticeStatus.SENT, at=now))
    assert store.make_due([second], now=now) == 0  # sent: nothing to make due

    # Never handed over: released unmarked, its attempt given back.
    assert store.release([third], token="a", now=now) == 1
    unmarked = store.notice(third)
    assert unmarked is not None and unmarked.attempts == 0 and unmarked.send_started_at is None
    # "c" claims with a lease already over, starts its send and dies; "d" takes it.
    store.claim_due(now=now, limit=10, lease_until=now - timedelta(seconds=1), token="c")
    assert store.mark_send_started([third], token="c", now=now) == [True]
    (taken,) = store.claim_due(now=now, limit=10, lease_until=now + timedelta(minutes=5), token="d")
    assert taken.key == third and taken.attempts == 1 and taken.send_started_at == now


def test_a_notice_whose_claim_was_lost_is_not_sent(
    store: SqlStore, engine: Engine, smtp_sink: SmtpSink, clock: Clock
) -> None:
    """A worker that lost its claim before the send (lease taken over) does not send."""
    (key,) = seed(engine, 1)
    now = clock()
    (claimed,) = store.claim_due(
        now=now, limit=1, lease_until=now - timedelta(seconds=1), token=engine.worker_id
    )
    store.claim_due(now=now, limit=1, lease_until=now + timedelta(minutes=5), token="other")

    report = deliver(engine, smtp_sink, [claimed])

    assert report.lost_claims == 1 and report.total == 0
    assert smtp_sink.messages == []
    notice = store.notice(key)
    assert notice is not None and notice.claim_token == "other" and notice.send_started_at is None


def test_a_send_that_never_reached_data_leaves_no_mark(
    store: SqlStore, engine: Engine, smtp_sink: SmtpSink, clock: Clock
) -> None:
    """The mark is written only once the server accepted the envelope: a send refused at
    RCPT (it cannot have arrived) is an ordinary transient retry, unmarked, and costs the
    notice none of its two ambiguous chances; a send that reached DATA is marked until its
    outcome is recorded (then cleared)."""
    refused, accepted = seed(engine, 2)
    smtp_sink.reply_with("451 try later", recipient="customer0@example.com")
    marks_at_data: list[int] = []
    original = store.record_sends

    def watched(
        writes: Sequence[tuple[str, Completion | None]], *, token: str, now: datetime
    ) -> list[bool]:
        marks_at_data.extend(smtp_sink.data_begun for _, done in writes if done is None)
        return original(writes, token=token, now=now)

    store.record_sends = watched  # type: ignore[method-assign]

    report = deliver(engine, smtp_sink)

    assert report.counts == {NoticeStatus.RETRY: 1, NoticeStatus.SENT: 1}
    retried = store.notice(refused)
    assert retried is not None and retried.status is NoticeStatus.RETRY
    assert retried.send_started_at is None and retried.ambiguous_attempts == 0
    sent = store.notice(accepted)
    assert sent is not None and sent.status is NoticeStatus.SENT
    assert sent.send_started_at is None
    assert marks_at_data == [0]  # one mark, for the accepted envelope, before its content
