"""Previews: the same compose path as delivery, on sample or given records, with notes."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.authoring import preview as previews
from notifier.authoring.preview import (
    RecordsRejectedError,
    UnknownRuleError,
    accepted_records,
    find_rule,
    format_preview,
    render_preview,
    sample_records,
)
from notifier.core.decide import decide
from notifier.core.models import Record, Scope, Status
from notifier.core.records import Rejection
from notifier.core.rules import Audience, load_rules
from notifier.rendering.branding import Branding
from notifier.rendering.compose import Composer
from notifier.rendering.renderer import Renderer

ROOT = Path(__file__).resolve().parents[2]
RULES = {rule.id: rule for rule in load_rules(ROOT / "rules")}
BRANDING = Branding(
    mail_from="Example Store <orders@example.com>",
    shop={"name": "Example Store", "support_email": "help@example.com", "url": None},
)
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def composer(templates: Path = ROOT / "templates", branding: Branding = BRANDING) -> Composer:
    return Composer(Renderer(templates), branding)


def record(**fields: object) -> Record:
    values: dict[str, object] = {
        "order_id": "KN-2001",
        "fulfillment_id": "F-1",
        "status": Status.PENDING_SHIPMENT,
        "received_at": NOW,
        "email": "sam.lee@example.com",
        "first_name": "Sam",
        "last_name": "Lee",
        "tracking_number": "1Z999AA10123456784",
    }
    values.update(fields)
    return Record(**values)  # type: ignore[arg-type]


def test_order_sample_has_two_shipped_fulfillments() -> None:
    """The All Fulfillments sample is an order of two shipped parcels with valid numbers."""
    sample = sample_records(RULES["all_fulfillments"])
    assert [r.fulfillment_id for r in sample] == ["F-1", "F-2"]
    assert {r.status for r in sample} == {Status.SHIPPED}
    shown = render_preview(composer(), RULES["all_fulfillments"])
    assert shown.from_sample
    assert "(2 parcels)" in shown.subject
    assert "tLabels=9400111899223197428497" in shown.text
    assert "tracknum=1Z999AA10123456784" in shown.text
    assert shown.notes == ()


def test_fulfillment_sample_matches_its_rule() -> None:
    """A fulfillment rule's sample is one record entering the rule's status."""
    rule = RULES["tracking_number_assigned"]
    (only,) = sample_records(rule, campaign_id="12")
    assert rule.scope is Scope.FULFILLMENT
    assert only.status is rule.on and only.campaign_id == "12"


def test_preview_is_the_message_delivery_builds() -> None:
    """The preview message is multipart text + HTML with the notice's headers."""
    shown = render_preview(composer(), RULES["tracking_number_assigned"], [record()])
    parsed = email.message_from_string(shown.eml, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["To"] == "Sam Lee <sam.lee@example.com>"
    assert parsed["Reply-To"] == "help@example.com"
    assert parsed["Message-ID"].endswith("@example.com>")
    assert (
        dict(shown.headers)["Subject"] == "Your Example Store order KN-2001 has a tracking number"
    )
    assert "Hi Sam," in shown.text
    assert shown.html.startswith("<!DOCTYPE html>")


def test_campaign_option_renders_as_that_campaign(tmp_path: Path) -> None:
    """--campaign puts given records in that campaign: its override templates and sender."""
    templates = tmp_path / "templates"
    override = templates / "12" / "tracking_number_assigned"
    override.mkdir(parents=True)
    (override / "subject.txt").write_text("Campaign 12: {{ order.id }}\n", encoding="utf-8")
    (templates / "_layouts").mkdir()
    for part in ("body.txt", "body.html"):
        source = ROOT / "templates" / "tracking_number_assigned" / part
        (templates / "tracking_number_assigned").mkdir(exist_ok=True)
        (templates / "tracking_number_assigned" / part).write_text(source.read_text())
    (templates / "tracking_number_assigned" / "subject.txt").write_text("Default\n")
    base = (ROOT / "templates" / "_layouts" / "base.html").read_text()
    (templates / "_layouts" / "base.html").write_text(base)
    config = dataclasses.replace(BRANDING, campaign_senders={"12": "Maple <orders@maple.example>"})
    rule = RULES["tracking_number_assigned"]
    plain = render_preview(composer(templates, config), rule, [record()])
    as_12 = render_preview(composer(templates, config), rule, [record()], campaign_id="12")
    assert (plain.subject, plain.message["From"]) == ("Default", BRANDING.mail_from)
    assert (as_12.subject, as_12.message["From"]) == (
        "Campaign 12: KN-2001",
        "Maple <orders@maple.example>",
    )
    assert as_12.records[0].campaign_id == "12"
    assert as_12.notes == ()
    unknown = render_preview(composer(templates, config), rule, [record()], campaign_id="13")
    assert unknown.notes == (
        f"campaign 13 has no folder in {templates}: the default templates and sender are used",
    )


def test_notes_say_why_delivery_would_differ() -> None:
    """A record in another status, or missing required data, is rendered with notes saying so."""
    rule = RULES["tracking_number_assigned"]
    shown = render_preview(
        composer(), rule, [record(status=Status.SHIPPED, email=None, tracking_number="X1")]
    )
    notes = " | ".join(shown.notes)
    assert "fires on Pending Shipment; this record is Shipped" in notes
    assert "lacks email" in notes and "cancel" in notes
    assert shown.message["To"] == "Sam Lee <customer@example.com>"  # a placeholder address


def test_unknown_rule_lists_the_known_ones() -> None:
    """Asking for a rule that does not exist names every rule that does."""
    with pytest.raises(UnknownRuleError) as caught:
        find_rule(RULES.values(), "tracking")
    assert str(caught.value) == f"no rule 'tracking'; known rules: {', '.join(sorted(RULES))}"
    assert "all_fulfillments, awaiting_carrier_pickup" in str(caught.value)
    assert find_rule(RULES.values(), "all_fulfillments") is RULES["all_fulfillments"]


def test_rejected_records_are_all_reported() -> None:
    """Every rejected record is named in one error; no records at all is an error too."""
    bad = [Rejection("rec.jsonl", "line 1", "no status"), Rejection("rec.jsonl", "line 3", "x")]
    with pytest.raises(RecordsRejectedError) as caught:
        accepted_records([bad[0], record(), bad[1]])
    assert "line 1" in str(caught.value) and "line 3" in str(caught.value)
    with pytest.raises(RecordsRejectedError, match="no records"):
        accepted_records([])


def test_formats() -> None:
    """text = headers + text part; html = the document; eml = the message; all = everything."""
    shown = render_preview(composer(), RULES["tracking_number_assigned"], [record()])
    text = format_preview(shown, "text")
    assert text.startswith("From: Example Store <orders@example.com>\nTo: Sam Lee")
    assert "\n\nHi Sam," in text and "<html" not in text
    assert format_preview(shown, "html") == shown.html
    assert format_preview(shown, "eml").startswith("Subject: ")
    everything = format_preview(shown, "all")
    assert (
        "text/plain" in everything and "Hi Sam," in everything and "<!DOCTYPE html>" in everything
    )
    with pytest.raises(ValueError, match="unknown preview format"):
        format_preview(shown, "pdf")


def test_open_in_browser_opens_the_html(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--open hands the browser a file:// URL of a file holding exactly the HTML part."""
    opened: list[str] = []

    def fake_open(url: str) -> bool:
        opened.append(url)
        return len(opened) == 1  # the second time there is no browser

    monkeypatch.setattr(previews.webbrowser, "open", fake_open)
    shown = render_preview(composer(), RULES["tracking_number_assigned"], [record()])
    path, took = previews.open_in_browser(shown)
    try:
        assert took and opened == [path.resolve().as_uri()]
        assert path.read_text(encoding="utf-8") == shown.html
    finally:
        path.unlink()
    out = tmp_path / "mail.html"
    out.write_text(shown.html)
    assert previews.open_in_browser(shown, reuse=out, is_html=True) == (out, False)
    assert opened[-1] == out.resolve().as_uri()


def test_records_of_other_orders_are_named_as_ignored() -> None:
    """A file mixing orders renders the last record's order and says which were left out."""
    rule = RULES["tracking_number_assigned"]
    shown = render_preview(composer(), rule, [record(order_id="KN-1"), record(order_id="KN-2")])
    assert "KN-2" in shown.subject
    assert shown.notes == (
        "only order KN-2 (the last record's) is rendered; ignored the records of KN-1",
    )


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_preview_notice_is_the_one_decide_creates(rule_id: str) -> None:
    """For the same records, preview's notice has decide's key, fulfillments, recipient, record
    (each rule as if enabled: the built-in ones ship disabled, and decide skips those)."""
    rule = dataclasses.replace(RULES[rule_id], enabled=True)
    records = sample_records(rule)
    decision = decide(
        records,
        orders={},
        rules=[rule],
        now=records[-1].effective_at,
    )
    [created] = decision.notices
    shown, _ = previews.preview_notice(rule, records)
    assert (shown.key, shown.fulfillment_ids, shown.record) == (
        created.key,
        created.fulfillment_ids,
        created.record,
    )
    if rule.to is Audience.CUSTOMER:  # an operator rule's goes to NOTIFIER_OPERATOR_EMAIL
        assert shown.recipient == created.recipient
    assert shown.fulfillment_ids  # the comparison is about something


# --- the built-in rules shipped disabled: each previews with its own sample --------------


def test_delivered_sample_names_the_delivered_date() -> None:
    """The Delivered rule's sample carries a delivered date, and the preview names it."""
    shown = render_preview(composer(), RULES["delivered"])
    assert "was delivered on March 14, 2026" in shown.text
    assert "delivered on <strong>March 14, 2026</strong>" in shown.html


def test_return_samples_carry_an_rma_number() -> None:
    """Return started and Return received show the sample's RMA number, from record.extra."""
    started = render_preview(composer(), RULES["return_started"])
    assert "(RMA RMA-20931)" in started.subject
    assert "Write the return number RMA-20931" in started.text
    received = render_preview(composer(), RULES["return_received"])
    assert "(RMA RMA-20931) has arrived back with us" in received.text


def test_cancelled_sample_shows_the_other_parcel_still_coming() -> None:
    """The cancellation sample is a two-parcel order with one cancelled: the partial wording."""
    shown = render_preview(composer(), RULES["fulfillment_cancelled"])
    assert shown.subject.startswith("Part of your Example Store order KN-10482")
    assert "one other parcel is still" in shown.text
    assert "on its way to you" in shown.text


def test_built_in_rules_ship_disabled() -> None:
    """Only the CRM's two shipping autoresponders are on out of the box."""
    enabled = sorted(rule.id for rule in RULES.values() if rule.enabled)
    assert enabled == ["all_fulfillments", "tracking_number_assigned"]
    assert {"delivered", "return_started", "return_received", "fulfillment_cancelled"} <= set(RULES)
