"""Operator actions (notifier.engine.operator): each does its work and leaves a history row."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from support.memory_engine import Rig, change, rig

from notifier.core.models import NoticeStatus
from notifier.engine import operator
from notifier.errors import NotifierError, PermanentSendError

ACTOR = "console-token:0f1e2d3c"
KEY = "tracking_number_assigned:fulfillment:F1"


def one_notice() -> Rig:
    r = rig()
    r.engine.ingest(
        [change("O1", "F1", "Pending Shipment", at=None, tracking_number="1Z999AA10123456784")]
    )
    assert KEY in r.store.notices_by_key
    return r


def test_retry_makes_a_failed_notice_due_and_says_who_asked() -> None:
    """A failed notice is due again; its history shows the failure, then the action."""
    r = one_notice()
    r.transport.fail_next(PermanentSendError("550 5.7.1 policy", code=550))
    r.deliver()
    assert r.notice(KEY).status is NoticeStatus.FAILED
    done = operator.retry(r.store, [KEY, "nope"], actor=ACTOR, now=r.clock())
    assert done.made_due == (KEY,) and done.count == 1
    assert done.problems == ("nope: no such notice",)
    assert r.deliver().counts[NoticeStatus.SENT] == 1
    kinds = [(h.kind, h.outcome, h.actor) for h in r.store.history(KEY)]
    assert kinds == [
        ("attempt", "failed", None),
        ("action", "retry", ACTOR),
        ("attempt", "sent", None),
    ]


def test_retry_refuses_a_sent_notice_with_a_hint() -> None:
    """A sent notice is not retried (that is a resend): the reason says so, nothing written."""
    r = one_notice()
    r.deliver()
    done = operator.retry(r.store, [KEY], actor=ACTOR, now=r.clock())
    assert done.count == 0 and "resend" in done.problems[0]
    assert [h.kind for h in r.store.history(KEY)] == ["attempt"]


def test_retry_all_takes_every_waiting_or_failed_notice() -> None:
    """keys=None: every notice in retry or failed."""
    r = one_notice()
    r.transport.fail_next(PermanentSendError("550 no", code=550))
    r.deliver()
    assert operator.retry(r.store, None, actor=ACTOR, now=r.clock()).made_due == (KEY,)


def test_resend_creates_a_new_notice_and_both_histories_say_so() -> None:
    """The copy has its own key and Message-ID; the original's history points to it."""
    r = one_notice()
    r.deliver()
    r.clock.advance(timedelta(hours=1))
    new_key, report = asyncio.run(operator.resend(r.engine, KEY, actor=ACTOR))
    assert new_key == f"{KEY}#resend-1" and report.counts[NoticeStatus.SENT] == 1
    assert len(r.sent) == 2 and r.sent[0]["Message-ID"] != r.sent[1]["Message-ID"]
    assert r.store.history(KEY)[-1].detail == f"sent again as {new_key}"
    assert [h.kind for h in r.store.history(new_key)] == ["action", "attempt"]


def test_resend_of_a_pending_notice_is_refused() -> None:
    """Resending what has not been sent could deliver it twice: refused, nothing written."""
    r = one_notice()
    with pytest.raises(NotifierError, match="pending"):
        asyncio.run(operator.resend(r.engine, KEY, actor=ACTOR))
    assert r.store.history(KEY) == []


def test_suppress_and_unsuppress_go_in_the_notices_history() -> None:
    """From a notice's page: the address goes on and off the list, both on its timeline."""
    r = one_notice()
    now = r.clock()
    added = operator.suppress(
        r.store, ["Jane@example.com"], reason="asked us to stop", actor=ACTOR, now=now, key=KEY
    )
    assert added.added == ("Jane@example.com",)
    again = operator.suppress(r.store, ["jane@example.com"], reason="x", actor=ACTOR, now=now)
    assert again.added == () and again.already == {"jane@example.com": "asked us to stop"}
    assert operator.unsuppress(r.store, ["jane@example.com"], actor=ACTOR, now=now, key=KEY) == (
        "jane@example.com",
    )
    assert [(h.outcome, h.actor) for h in r.store.history(KEY)] == [
        ("suppress", ACTOR),
        ("unsuppress", ACTOR),
    ]
    assert r.store.suppressions() == []
