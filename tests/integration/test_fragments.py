"""A rule whose body.html is a plain fragment, as a new user writes it: checked and sent."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path

from support.cli import notifier
from support.project import ROOT, smtp_settings
from support.smtp_sink import SmtpSink

from notifier.cli.root import deliver_and_close
from notifier.core.models import Record
from notifier.core.records import parse_json_body
from notifier.processes.wiring import open_engine

FRAGMENT = "<p>Hi {{ customer.first_name }}, delivered!</p>\n"


def fragment_project(tmp_path: Path) -> tuple[Path, Path]:
    """The project's rules and templates plus an enabled rule whose body.html is a fragment."""
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(ROOT / "rules", rules)
    shutil.copytree(ROOT / "templates", templates)
    (rules / "zz_my_delivered.toml").write_text(
        'id = "my_delivered"\nname = "My Delivered"\non = "Delivered"\n'
        'template = "my_delivered"\nrequire = ["email"]\n'
    )
    folder = templates / "my_delivered"
    folder.mkdir()
    (folder / "subject.txt").write_text("Delivered: order {{ order.id }}\n")
    (folder / "body.txt").write_text("Hi {{ customer.first_name }}, delivered!\n")
    (folder / "body.html").write_text(FRAGMENT)
    return rules, templates


def test_a_fragment_passes_check_and_arrives_as_a_whole_document(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """`notifier check` accepts the fragment; the email sent has doctype, title, charset and
    inlined CSS around it, the customer's name escaped."""
    rules, templates = fragment_project(tmp_path)
    settings = smtp_settings(
        tmp_path, smtp_sink.host, smtp_sink.port, rules_dir=rules, templates_dir=templates
    )

    checked = notifier(settings, "check")
    assert checked.exit_code == 0, checked.stderr

    parsed = parse_json_body(
        [
            {
                "order_id": "KN-77",
                "fulfillment_id": "F-77",
                "status": "Delivered",
                "email": "ann@example.com",
                "first_name": "Ann <3",
            }
        ],
        source="test",
        received_at=datetime.now(UTC),
    )

    with open_engine(settings) as engine:
        engine.ingest(r for r in parsed if isinstance(r, Record))
        asyncio.run(deliver_and_close(engine))

    # The order reaching Delivered also fires All Fulfillments; ours is the other one.
    subject = "Delivered: order KN-77"
    [delivery] = [d for d in smtp_sink.deliveries if d.message["Subject"] == subject]
    html_part = delivery.message.get_body(preferencelist=("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in html
    assert "<title>Example Store</title>" in html
    assert "Hi Ann &lt;3, delivered!</p>" in html
    # The layout's stylesheet is inlined onto the fragment's own paragraph.
    assert '<p style="font-size: 15px' in html
