"""Property-based: any customer data through the real templates and the whole engine, safely."""

from __future__ import annotations

import asyncio
import email.policy
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support.project import RULES, settings_for
from support.reliability import EXAMPLES, example_ran, report_examples

from notifier.core.decide import OrderView
from notifier.core.models import FulfillmentState, Notice, NoticeStatus, Record, Scope
from notifier.core.records import RecordInvalid, parse_record
from notifier.core.rules import Audience, load_rules
from notifier.engine import Engine
from notifier.processes.wiring import engine_config, open_engine
from notifier.rendering.setup import make_renderer
from notifier.transports import MemoryTransport

NOW = datetime.now(UTC)  # notices are due at the change's time: not in the future
MARK = "<zz-injected>"
UPS, USPS = "1Z999AA10123456784", "9400111206206406260787"
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Printable text (control characters are rejected at parsing, tested in test_hostile_input).
printable = st.characters(blacklist_categories=["Cc", "Cs"])
odd_text = st.one_of(
    st.text(printable, max_size=30),
    st.text(alphabet=st.sampled_from("\u202e\u200b\u0301é漢😀<>&\"';{}%#\\ "), max_size=20),
    st.text(printable, min_size=200, max_size=255),
    st.builds(
        lambda a, b: f"{a}{MARK}{b}",
        st.text(printable, max_size=10),
        st.text(printable, max_size=10),
    ),
    st.sampled_from(["{{ 7*7 }}", "{% raw %}", "</p><script>x</script>", "=?utf-8?q?x?="]),
)
addresses = st.one_of(
    st.emails().filter(lambda a: len(a) < 200),
    st.sampled_from(["jörg@exämple.de", "用户@例子.广告", "o'brien@example.com", "a+b@x.io"]),
)
customer_records = st.fixed_dictionaries(
    {
        "order_id": odd_text.filter(str.strip),
        "fulfillment_id": odd_text.filter(str.strip),
        "status": st.sampled_from(["Pending Shipment", "Shipped"]),
        "email": addresses,
    },
    optional={
        "first_name": odd_text,
        "last_name": odd_text,
        "tracking_number": odd_text
        | st.sampled_from(["1Z999AA10123456784", "9400111206206406260787"]),
        "carrier": odd_text,
        "ship_method": odd_text,
        "shipped_at": odd_text | st.sampled_from(["2026-11-21", "11/21/2026"]),
        "campaign_id": odd_text,
        "gift_message": st.text(min_size=0, max_size=5000),
    },
)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    report_examples(
        {
            "property: rendering": "arbitrary customer data (markup, template syntax, RTL and"
            " zero-width marks, 255-char names, 5 kB extras, internationalised addresses)"
            " into the real templates",
            "property: engine end to end": "the same data ingested and delivered through the"
            " engine (SQLite store, in-memory transport)",
        }
    )


def parsed_or_skip(data: dict[str, Any]) -> Record:
    try:
        return parse_record(data, received_at=NOW)
    except RecordInvalid:
        assume(False)
        raise


def notice_for(record: Record, rule_id: str, scope: Scope) -> Notice:
    return Notice(
        key=f"{rule_id}:{scope.value}:{record.fulfillment_id}",
        rule_id=rule_id,
        scope=scope,
        order_id=record.order_id,
        fulfillment_id=record.fulfillment_id if scope is Scope.FULFILLMENT else None,
        recipient=record.email,
        campaign_id=record.campaign_id,
        status=NoticeStatus.SENDING,
        attempts=1,
        due_at=NOW,
        created_at=NOW,
        fulfillment_ids=(record.fulfillment_id,),
        record=record.to_json(),
    )


def text_of(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """An engine on the real rules and templates, a SQLite file, an in-memory transport."""
    settings_ = settings_for(tmp_path_factory.mktemp("hostile"))
    with open_engine(settings_) as built:
        built.transport = MemoryTransport()
        yield built


# One shipped rule per example, drawn in turn: the time per example stays that of one
# render however many rules ship, and every rule is drawn many times over a run.
shipped_rule_ids = st.sampled_from(sorted(rule.id for rule in load_rules(RULES)))


@PROPERTY
@given(customer_records, shipped_rule_ids)
def test_any_customer_data_renders_a_safe_message(
    engine: Engine, data: dict[str, Any], rule_id: str
) -> None:
    """Accepted customer data always renders: one-line subject, one recipient, HTML escaped."""
    example_ran("property: rendering")
    record = parsed_or_skip(data)
    assert record.email is not None
    state = FulfillmentState(
        fulfillment_id=record.fulfillment_id,
        order_id=record.order_id,
        status=record.status,
        occurred_at=NOW,
        tracking_number=record.tracking_number,
        carrier=record.carrier,
        shipped_at=record.shipped_at,
    )
    order = OrderView(record.order_id, {record.fulfillment_id: state})
    for rule in [engine.rules_by_id[rule_id]]:
        notice = notice_for(record, rule.id, rule.scope)
        message = engine.composer.compose(notice, rule, order, message_id="<x@y>", now=NOW)
        subject = str(message["Subject"])
        assert "\r" not in subject and "\n" not in subject
        assert [a.addr_spec for a in message["To"].addresses] == [record.email]
        assert set(message.keys()) == {
            "Subject", "From", "To", "Reply-To", "Date", "Message-ID",
            "Auto-Submitted", "Content-Type", "MIME-Version",
        }  # fmt: skip
        html = text_of(message, "html")
        assert MARK not in html and "<script>" not in html
        if record.first_name and rule.to is Audience.CUSTOMER:
            assert f"Hi {record.first_name}," in text_of(message, "plain")
        policy = email.policy.SMTP if record.email.isascii() else email.policy.SMTPUTF8
        wire = message.as_bytes(policy=policy)
        assert b"\r\nBcc:" not in wire


_serial = itertools.count()


@PROPERTY
@given(customer_records)
def test_any_customer_data_through_the_engine_ends_in_a_final_state(
    engine: Engine, data: dict[str, Any]
) -> None:
    """Ingest and deliver hostile records end to end: every notice sent, failed or cancelled."""
    example_ran("property: engine end to end")
    n = next(_serial)
    data = {**data, "order_id": f"{data['order_id']}-{n}", "fulfillment_id": f"F{n}"}
    record = parsed_or_skip(data)
    report = engine.ingest([record])

    async def deliver() -> None:
        await engine.deliver_due()

    asyncio.run(deliver())
    for key in report.created_keys:
        notice = engine.store.notice(key)
        assert notice is not None
        assert notice.status in (NoticeStatus.SENT, NoticeStatus.FAILED, NoticeStatus.CANCELLED)
        if notice.status is not NoticeStatus.SENT:
            assert notice.reason


def test_templates_and_rules_are_the_projects(tmp_path: Path) -> None:
    """The property tests above render the shipped rules and templates, not stand-ins."""
    settings_ = settings_for(tmp_path)
    # The rules shipped enabled are the ones that send, so the ones hostile input reaches.
    assert {rule.id for rule in load_rules(settings_.rules_dir) if rule.enabled} == {
        "tracking_number_assigned",
        "all_fulfillments",
    }
    assert make_renderer(settings_).templates_dir == settings_.templates_dir
    assert engine_config(settings_).branding.mail_from == settings_.mail_from
