"""The engine's delivery on MemoryStore and MemoryTransport: the re-check before sending,
suppression, retry and backoff, giving up, hard bounces, ambiguous sends, lost claims and
takeovers, resends. Failures are scripted on the transport; outcomes read off the store."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage
from itertools import pairwise
from typing import Any

import pytest
from support.memory_engine import START, Clock, change, rig, shipped_rule, tna_key, tracking

from notifier.core.models import Notice, NoticeStatus, message_id_for
from notifier.engine import DeliveryReport
from notifier.engine.claimant import Claimant, this_process
from notifier.engine.engine import COMPOSE_TURN
from notifier.errors import (
    AmbiguousSendError,
    NotifierError,
    PermanentSendError,
    TransientSendError,
)

BUSY = TransientSendError("451 4.3.0 mailbox busy", code=451)


def test_a_notice_is_sent_once_with_the_message_id_of_its_key() -> None:
    """A due notice is sent, recorded sent with the time and the Message-ID derived from
    its key; a second pass sends nothing."""
    setup = rig()
    setup.engine.ingest([tracking(1)])
    assert setup.deliver().counts == Counter({NoticeStatus.SENT: 1})
    (message,) = setup.sent
    notice = setup.notice(tna_key(1))
    assert notice.status is NoticeStatus.SENT and notice.sent_at == START
    assert notice.message_id == message["Message-ID"] == message_id_for(tna_key(1), "example.com")
    assert notice.attempts == 1 and notice.claim_token is None
    assert setup.deliver().total == 0 and len(setup.sent) == 1


def test_a_fulfillment_cancelled_before_sending_cancels_its_notice() -> None:
    """The notice's fulfillment is cancelled before delivery: cancelled with the reason."""
    setup = rig()
    setup.engine.ingest(
        [
            change(
                "O6",
                "F1",
                "Pending Shipment",
                at=START - timedelta(hours=2),
                tracking_number="1Z999AA10123456784",
            ),
            change("O6", "F1", "Cancelled", at=START - timedelta(hours=1)),
        ]
    )
    assert setup.deliver().counts == Counter({NoticeStatus.CANCELLED: 1})
    (notice,) = setup.store.notices(order_id="O6")
    assert notice.reason == "fulfillment F1 is now Cancelled"
    assert setup.sent == []


def test_a_notice_to_a_suppressed_address_is_cancelled_naming_the_suppression() -> None:
    """Suppressed (in any case) before the send: cancelled with the reason; others go out."""
    setup = rig()
    setup.store.suppress("ann@example.com", reason="customer asked", now=START)
    setup.engine.ingest([tracking(1, email="Ann@Example.com"), tracking(2)])
    assert setup.deliver().counts == Counter({NoticeStatus.CANCELLED: 1, NoticeStatus.SENT: 1})
    cancelled = setup.notice(tna_key(1))
    assert cancelled.status is NoticeStatus.CANCELLED
    assert cancelled.reason == "address suppressed: customer asked"
    assert [str(m["To"]) for m in setup.sent] == ["Jane <customer2@example.com>"]


def test_a_rule_disabled_or_removed_after_the_notice_was_made_cancels_it() -> None:
    """Rules are re-read at send time: a notice whose rule is now disabled or gone is
    cancelled, saying which."""
    first = rig()
    first.engine.ingest([tracking(1), change("O2", "F2", "Shipped", at=START)])
    disabled = replace(shipped_rule("tracking_number_assigned"), enabled=False)
    later = rig(rules=[disabled], store=first.store)
    assert later.deliver().counts == Counter({NoticeStatus.CANCELLED: 2})
    assert first.notice(tna_key(1)).reason == "rule 'tracking_number_assigned' is disabled"
    assert first.notice("all_fulfillments:order:O2").reason == (
        "rule 'all_fulfillments' no longer exists"
    )
    assert later.sent == []


def test_a_transient_failure_waits_out_its_backoff_then_is_sent() -> None:
    """4xx: retry with the reason and a next attempt about a minute on; nothing is tried
    before then; a pass after it sends the notice."""
    setup = rig()
    setup.engine.ingest([tracking(1)])
    setup.transport.fail_next(BUSY)
    assert setup.deliver().counts == Counter({NoticeStatus.RETRY: 1})
    waiting = setup.notice(tna_key(1))
    assert waiting.status is NoticeStatus.RETRY and waiting.reason == f"transient: {BUSY}"
    assert START + timedelta(seconds=40) <= waiting.due_at <= START + timedelta(seconds=80)
    setup.clock.now = waiting.due_at - timedelta(seconds=1)
    assert setup.deliver().total == 0 and setup.sent == []
    setup.clock.now = waiting.due_at
    assert setup.deliver().counts == Counter({NoticeStatus.SENT: 1})
    done = setup.notice(tna_key(1))
    assert done.attempts == 2 and done.first_attempt_at == START and done.reason is None
    assert len(setup.sent) == 1


def test_the_backoff_doubles_and_a_retry_after_hint_is_honoured() -> None:
    """Each further transient failure waits about twice as long; a server's "try again in
    10 minutes" is never cut short."""
    setup = rig()
    setup.engine.ingest([tracking(1), tracking(2)])
    setup.transport.fail_next(BUSY, times=2)
    setup.deliver()
    first = setup.notice(tna_key(1)).due_at - START
    setup.clock.now = START + timedelta(minutes=5)
    setup.transport.fail_next(BUSY)
    greylisted = TransientSendError("451 4.7.1 greylisted", code=451, retry_after=600)
    setup.transport.fail_next(greylisted)
    report = setup.deliver()
    assert report.counts == Counter({NoticeStatus.RETRY: 2})
    delays = sorted(setup.notice(tna_key(n)).due_at - setup.clock.now for n in (1, 2))
    assert timedelta(seconds=80) < delays[0] <= timedelta(seconds=150)  # 2 min ± jitter
    assert first < delays[0]
    assert delays[1] >= timedelta(minutes=10)


def test_a_notice_failing_for_longer_than_the_give_up_time_fails_for_good() -> None:
    """Transient failures for 48 hours since the first attempt: failed, with the count."""
    setup = rig()
    setup.engine.ingest([tracking(1)])
    setup.transport.fail_next(BUSY)
    setup.deliver()
    setup.clock.now = START + timedelta(hours=48)
    setup.transport.fail_next(BUSY)
    assert setup.deliver().counts == Counter({NoticeStatus.FAILED: 1})
    failed = setup.notice(tna_key(1))
    assert failed.reason == f"gave up after 2 attempts: {BUSY}"
    assert setup.store.suppressed_addresses == {}


def test_a_hard_bounce_fails_suppresses_and_cancels_later_notices() -> None:
    """5xx refusing the recipient: failed with the reply, the address suppressed, and a
    later notice to it cancelled without a send."""
    setup = rig()
    setup.engine.ingest([tracking(1, email="gone@example.com")])
    bounce = PermanentSendError("550 5.1.1 no such user", code=550, recipient_refused=True)
    setup.transport.fail_next(bounce)
    assert setup.deliver().counts == Counter({NoticeStatus.FAILED: 1})
    failed = setup.notice(tna_key(1))
    assert failed.reason == "permanent: 550 5.1.1 no such user"
    (suppression,) = setup.store.suppressed_addresses.items()
    assert suppression[0] == "gone@example.com"
    assert suppression[1].reason == "hard bounce: 550 5.1.1 no such user"
    setup.engine.ingest([tracking(2, email="Gone@example.com")])
    assert setup.deliver().counts == Counter({NoticeStatus.CANCELLED: 1})
    assert "hard bounce" in str(setup.notice(tna_key(2)).reason)
    assert setup.sent == []


def test_a_permanent_refusal_of_the_message_does_not_suppress_the_address() -> None:
    """5xx to the sender or the content (not the recipient): failed, the address kept."""
    setup = rig()
    setup.engine.ingest([tracking(1)])
    setup.transport.fail_next(PermanentSendError("554 5.6.0 message refused", code=554))
    assert setup.deliver().counts == Counter({NoticeStatus.FAILED: 1})
    assert setup.store.suppressed_addresses == {}


def test_an_ambiguous_delivery_is_retried_once_then_failed_as_may_have_arrived() -> None:
    """A send lost after DATA: retry marked ambiguous; a second one: failed, no third try;
    the operator's retry then sends it."""
    setup = rig()
    setup.engine.ingest([tracking(1)])
    lost = AmbiguousSendError("connection lost after DATA")
    setup.transport.fail_next(lost)
    report = setup.deliver()
    assert report.counts == Counter({NoticeStatus.RETRY: 1}) and report.ambiguous == 1
    waiting = setup.notice(tna_key(1))
    assert waiting.ambiguous_attempts == 1 and waiting.reason == f"ambiguous: {lost}"
    setup.clock.now = waiting.due_at
    setup.transport.fail_next(lost)
    assert setup.deliver().counts == Counter({NoticeStatus.FAILED: 1})
    failed = setup.notice(tna_key(1))
    assert failed.ambiguous_attempts == 2
    assert "delivery ambiguous twice (may have arrived)" in str(failed.reason)
    setup.clock.now += timedelta(days=1)
    assert setup.deliver().total == 0  # failed is final until the operator says otherwise
    assert setup.store.make_due([tna_key(1)], now=setup.clock.now) == 1
    assert setup.deliver().counts == Counter({NoticeStatus.SENT: 1})


def test_a_claim_lost_to_another_worker_is_not_recorded_over_its_work() -> None:
    """A worker whose lease ran out before its send finds its claim taken when it marks the
    send: it sends nothing and counts the claim as lost; the new holder's send is recorded."""
    clock = Clock()
    slow = rig(clock=clock)
    slow.engine.ingest([tracking(1)])
    claimed = asyncio.run(slow.engine.claim(10))
    clock.advance(slow.engine.config.lease)
    other = rig(clock=clock, store=slow.store)
    other.engine.worker_id = "another-worker"  # a second instance: its own claim token
    (taken,) = slow.store.claim_due(
        now=clock.now,
        limit=10,
        lease_until=clock.now + timedelta(minutes=5),
        token="another-worker",
    )
    report = asyncio.run(slow.engine.deliver_claimed(claimed))
    assert report.lost_claims == 1 and report.total == 0
    assert slow.notice(tna_key(1)).claim_token == "another-worker"
    assert asyncio.run(other.engine.deliver_claimed([taken])).counts == Counter(
        {NoticeStatus.SENT: 1}
    )
    # Only the holder sent: the send mark found the first worker's claim gone before its send.
    assert slow.sent == [] and len(other.sent) == 1
    assert slow.notice(tna_key(1)).status is NoticeStatus.SENT


def test_a_crashed_local_process_claims_are_taken_over_at_once() -> None:
    """Notices held by a process of this machine that is gone are sent now, not after the
    lease; a holder on another machine is waited for until its lease runs out."""
    setup = rig()
    setup.engine.ingest([tracking(1), tracking(2)])
    me = this_process()
    gone = Claimant(me.machine, me.pid, "1", "dead0000").token  # our pid, an earlier start
    foreign = Claimant("0123456789ab", 999_999, "1", "abcd1234").token
    lease_end = START + timedelta(hours=1)
    setup.store.claim_keys([tna_key(1)], now=START, lease_until=lease_end, token=gone)
    setup.store.claim_keys([tna_key(2)], now=START, lease_until=lease_end, token=foreign)
    assert setup.deliver().counts == Counter({NoticeStatus.SENT: 1})
    assert setup.notice(tna_key(1)).status is NoticeStatus.SENT
    assert setup.notice(tna_key(2)).claim_token == foreign
    setup.clock.now = lease_end
    assert setup.deliver().counts == Counter({NoticeStatus.SENT: 1})
    assert setup.notice(tna_key(2)).attempts == 2


def test_a_resend_is_a_new_notice_with_a_new_message_id() -> None:
    """resend of a sent notice: KEY#resend-1, then -2, each sent with its own Message-ID;
    the original keeps its own."""
    setup = rig()
    setup.engine.ingest([tracking(1)])
    setup.deliver()
    key, report = asyncio.run(setup.engine.resend(tna_key(1)))
    assert key == f"{tna_key(1)}#resend-1" and report.counts == Counter({NoticeStatus.SENT: 1})
    again, _ = asyncio.run(setup.engine.resend(key))
    assert again == f"{tna_key(1)}#resend-2"
    first, second, third = setup.sent
    assert first["Subject"] == second["Subject"] == third["Subject"]
    assert len({first["Message-ID"], second["Message-ID"], third["Message-ID"]}) == 3
    assert setup.notice(tna_key(1)).message_id == first["Message-ID"]
    assert setup.notice(again).message_id == third["Message-ID"]
    assert setup.notice(key).status is NoticeStatus.SENT


def test_a_resend_of_an_unknown_or_unsent_notice_is_refused() -> None:
    """A notice still waiting to retry cannot be resent (it could arrive twice); an unknown
    key is named."""
    setup = rig()
    setup.engine.ingest([tracking(1)])
    setup.transport.fail_next(BUSY)
    setup.deliver()
    with pytest.raises(NotifierError, match="is retry, not sent or failed"):
        asyncio.run(setup.engine.resend(tna_key(1)))
    with pytest.raises(NotifierError, match="no notice with key 'nope'"):
        asyncio.run(setup.engine.resend("nope"))
    assert list(setup.store.notices_by_key) == [tna_key(1)] and setup.sent == []


def test_a_resend_to_a_suppressed_address_is_cancelled() -> None:
    """Even forced, a resend goes through the same checks: a suppressed address cancels it."""
    setup = rig()
    setup.engine.ingest([tracking(1)])
    setup.deliver()
    setup.store.suppress("customer1@example.com", reason="unsubscribed", now=START)
    key, report = asyncio.run(setup.engine.resend(tna_key(1)))
    assert report.counts == Counter({NoticeStatus.CANCELLED: 1})
    assert setup.notice(key).reason == "address suppressed: unsubscribed"
    assert len(setup.sent) == 1


def test_a_batch_is_composed_before_its_first_send_giving_the_loop_turns() -> None:
    """A claimed batch's messages are composed back to back before any is sent (cheaper
    by half: bench/delivery.py), but in turns of COMPOSE_TURN, so other work on the event
    loop (webhook requests) waits for at most that many; each message is still composed
    once and sent with its own notice's content."""
    setup = rig(claim_batch=50)
    setup.engine.ingest([tracking(n) for n in range(40)])
    composed: list[str] = []
    compose = setup.engine.composer.compose

    def counting(notice: Notice, *args: Any, **kwargs: Any) -> EmailMessage:
        composed.append(notice.key)
        return compose(notice, *args, **kwargs)

    setup.engine.composer.compose = counting  # type: ignore[method-assign]
    at_first_send: list[int] = []
    send = setup.transport.send

    async def noting(message: EmailMessage, /, **options: Any) -> str:
        at_first_send.append(len(composed))
        return await send(message, **options)

    setup.transport.send = noting  # type: ignore[method-assign]
    seen_by_other_work: list[int] = []

    async def deliver_beside_other_work() -> DeliveryReport:
        async def other_work() -> None:
            while len(composed) < 40:
                seen_by_other_work.append(len(composed))
                await asyncio.sleep(0)

        beside = asyncio.create_task(other_work())
        report = await setup.engine.deliver_due()
        await beside
        return report

    report = asyncio.run(deliver_beside_other_work())
    assert report.counts == Counter({NoticeStatus.SENT: 40})
    assert at_first_send[0] == 40 and sorted(composed) == sorted(tna_key(n) for n in range(40))
    gaps = [after - before for before, after in pairwise([*seen_by_other_work, 40])]
    assert max(gaps) <= COMPOSE_TURN and len(seen_by_other_work) >= 40 // COMPOSE_TURN
    recipients = {message["To"].addresses[0].addr_spec for message in setup.sent}
    assert recipients == {f"customer{n}@example.com" for n in range(40)}
