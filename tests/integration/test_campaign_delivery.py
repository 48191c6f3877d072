"""A campaign's own sender and templates, through the real engine, store and SMTP server."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path

from support.project import ROOT, smtp_settings
from support.smtp_sink import SmtpSink

from notifier.cli.root import deliver_and_close
from notifier.core.models import Record
from notifier.core.records import parse_json_body
from notifier.processes.wiring import open_engine


def record(order: str, campaign: str | None) -> dict[str, str]:
    fields = {
        "event_id": f"evt-{order}",
        "order_id": order,
        "fulfillment_id": f"F-{order}",
        "status": "Pending Shipment",
        "email": f"{order.lower()}@example.com",
        "first_name": "Ana",
        "tracking_number": "1Z999AA10123456784",
    }
    if campaign:
        fields["campaign_id"] = campaign
    return fields


def test_campaign_sender_and_override_are_what_is_sent(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """Campaign 12's mail goes out from its sender with its template; others are untouched."""
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "12" / "tracking_number_assigned").mkdir(parents=True)
    (templates / "12" / "campaign.toml").write_text(
        'mail_from = "Maple & Pine <orders@mapleandpine.example>"\n'
        'store_name = "Maple & Pine"\nsupport_email = "help@mapleandpine.example"\n'
    )
    (templates / "12" / "tracking_number_assigned" / "subject.txt").write_text(
        "{{ store.name }}: order {{ order.id }} is packed\n"
    )
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port, templates_dir=templates)
    parsed = parse_json_body(
        [record("A1", "12"), record("B2", "15"), record("C3", None)],
        source="test",
        received_at=datetime.now(UTC),
    )

    with open_engine(settings) as engine:
        engine.ingest(r for r in parsed if isinstance(r, Record))
        asyncio.run(deliver_and_close(engine))

    sent = {d.message["To"]: d for d in smtp_sink.deliveries}
    assert sorted(sent) == ["Ana <a1@example.com>", "Ana <b2@example.com>", "Ana <c3@example.com>"]
    own = sent["Ana <a1@example.com>"]
    assert own.mail_from == "orders@mapleandpine.example"
    assert own.message["From"] == "Maple & Pine <orders@mapleandpine.example>"
    assert own.message["Reply-To"] == "help@mapleandpine.example"
    assert own.message["Subject"] == "Maple & Pine: order A1 is packed"
    # Message-IDs keep the global domain whatever the campaign's sender.
    assert own.message["Message-ID"].endswith("@example.com>")
    for other in ("Ana <b2@example.com>", "Ana <c3@example.com>"):
        message = sent[other].message
        assert message["From"] == settings.mail_from
        assert message["Subject"].startswith("Your Example Store order ")
