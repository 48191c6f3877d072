"""The built-in rules shipped disabled, switched on as an operator would, run end to end."""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from support.cli import notifier
from support.project import settings_for, switched_on
from support.webhook import SECRET, TOKEN

from notifier.http.metrics import Metrics
from notifier.http.webhook import create_app
from notifier.processes.wiring import open_engine
from notifier.settings import Settings

POSTBACK = "/v1/postbacks/konnektive"

DISABLED = ("delivered", "return_started", "return_received", "fulfillment_cancelled")


def enabled_project(tmp_path: Path, *rule_ids: str) -> Settings:
    """The project's rules with these built-in ones switched on (enabled = true)."""
    return settings_for(tmp_path, rules_dir=switched_on(tmp_path, *rule_ids))


def run(settings: Settings, tmp_path: Path, name: str, records: list[dict[str, Any]]) -> None:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    outcome = notifier(settings, "run", str(path))
    assert outcome.exit_code == 0, outcome.stderr


def sent(settings: Settings, subject_start: str) -> list[EmailMessage]:
    messages = []
    for path in sorted(settings.outbox_dir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if str(message["Subject"]).startswith(subject_start):
            messages.append(message)
    return messages


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def change(order: str, fulfillment: str, status: str, hour: int, **fields: Any) -> dict[str, Any]:
    return {
        "order_id": order,
        "fulfillment_id": fulfillment,
        "status": status,
        "occurred_at": f"2026-03-1{hour // 24}T{hour % 24:02d}:00:00+00:00",
        "email": "ann@example.com",
        "first_name": "Ann",
        **fields,
    }


def test_disabled_built_in_rules_send_nothing(tmp_path: Path) -> None:
    """Out of the box a Delivered, RMA Pending, Returned or Cancelled record mails nobody."""
    settings = settings_for(tmp_path)
    run(
        settings,
        tmp_path,
        "batch.jsonl",
        [
            change("KN-1", "F-1", "Delivered", 1, delivered_at="03/10/2026"),
            change("KN-2", "F-2", "RMA Pending", 1),
            change("KN-3", "F-3", "Returned", 1),
            change("KN-4", "F-4", "Cancelled", 1),
        ],
    )
    # Only All Fulfillments, for the one order that reached Delivered (so, Shipped too).
    assert [str(m["Subject"]) for m in sent(settings, "")] == [
        "Your Example Store order KN-1 has shipped"
    ]
    listed = notifier(settings, "notices", "--json").json()
    assert {n["rule"] for n in listed} <= {"all_fulfillments"}


def test_delivered_sends_one_email_naming_the_date_and_a_repeat_sends_nothing(
    tmp_path: Path,
) -> None:
    """With Delivered on, a Delivered record sends one email with the date; the same change
    reported again (and a repeat of the status) sends nothing more."""
    settings = enabled_project(tmp_path, "delivered")
    shipped = change("KN-5", "F-5", "Shipped", 1, tracking_number="1Z999AA10123456784")
    delivered = change("KN-5", "F-5", "Delivered", 30, delivered_at="03/11/2026")
    run(settings, tmp_path, "one.jsonl", [shipped, delivered])
    run(settings, tmp_path, "again.jsonl", [delivered, {**delivered, "occurred_at": None}])

    (message,) = sent(settings, "Your Example Store order KN-5 has been delivered")
    assert "was delivered on March 11, 2026" in text_of(message)
    assert "<strong>March 11, 2026</strong>" in html_of(message)


def test_cancelled_wording_depends_on_the_rest_of_the_order(tmp_path: Path) -> None:
    """A parcel cancelled while its sibling is still coming says so; an order whose only
    parcel is cancelled is told nothing more will ship."""
    settings = enabled_project(tmp_path, "fulfillment_cancelled")
    ids = {"order_fulfillment_ids": ["F-6a", "F-6b"]}
    run(
        settings,
        tmp_path,
        "batch.jsonl",
        [
            change("KN-6", "F-6a", "Pending", 1, **ids),
            change("KN-6", "F-6b", "Cancelled", 2, **ids),
            change("KN-7", "F-7", "Cancelled", 2),
        ],
    )
    (partial,) = sent(settings, "Part of your Example Store order KN-6 was cancelled")
    assert "one other parcel is still" in text_of(partial)
    (whole,) = sent(settings, "Your Example Store order KN-7 was cancelled")
    assert "nothing more from it will ship" in text_of(whole)


def test_return_started_shows_the_rma_number_escaped(tmp_path: Path) -> None:
    """The RMA number from the record reaches the email, escaped in the HTML part."""
    settings = enabled_project(tmp_path, "return_started", "return_received")
    run(
        settings,
        tmp_path,
        "batch.jsonl",
        [
            change("KN-8", "F-8", "RMA Pending", 1, rma_number="RMA-<7>"),
            change("KN-9", "F-9", "Returned", 1),
        ],
    )
    (started,) = sent(settings, "Your return for Example Store order KN-8")
    assert "Write the return number RMA-<7>" in text_of(started)
    assert "RMA-&lt;7&gt;" in html_of(started) and "RMA-<7>" not in html_of(started)
    (received,) = sent(settings, "We have received your return for Example Store order KN-9")
    assert "Your return for order KN-9 has arrived back with us" in text_of(received)


def test_an_rma_postback_reaches_return_started_with_its_number(tmp_path: Path) -> None:
    """A Konnektive RMA postback over HTTP (`rmaNumber`) creates the Return started notice
    with the number where its templates read it; a Delivered postback its Delivered one."""
    rules = enabled_project(tmp_path, "return_started", "delivered").rules_dir
    settings = settings_for(tmp_path, rules_dir=rules, webhook_secret=SECRET, postback_token=TOKEN)
    with open_engine(settings) as engine:
        app = create_app(settings=settings, engine=engine, metrics=Metrics())
        with TestClient(app) as client:
            base = {"token": TOKEN, "emailAddress": "pat@example.com", "orderId": "KP-9"}
            answers = [
                client.get(
                    POSTBACK,
                    params={
                        **base,
                        "fulfillmentId": "KPF-1",
                        "fulfillmentStatus": "RMA_PENDING",
                        "rmaNumber": "RMA-900",
                    },
                ),
                client.get(
                    POSTBACK,
                    params={
                        **base,
                        "fulfillmentId": "KPF-2",
                        "fulfillmentStatus": "DELIVERED",
                        "dateDelivered": "11/29/2026",
                    },
                ),
            ]
            notices = {n.rule_id: n for n in engine.store.notices()}
    assert [a.status_code for a in answers] == [200, 200]
    assert notices["return_started"].record["extra"] == {"rma_number": "RMA-900"}
    assert notices["delivered"].record["delivered_at"] == "11/29/2026"
