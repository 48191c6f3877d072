"""Email HTML that survives real clients: complete documents, inlined CSS, dates, overrides."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from notifier.authoring.html_check import email_html_problems
from notifier.authoring.preview import preview_notice, render_preview, sample_records
from notifier.core.rules import load_rules
from notifier.engine import EngineConfig
from notifier.errors import TemplateError
from notifier.rendering.campaigns import load_campaigns
from notifier.rendering.compose import Composer
from notifier.rendering.renderer import Renderer, format_date

html5lib = pytest.importorskip("html5lib", reason="html5lib is in the dev extra")

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules(ROOT / "rules")
# The tests below use Tracking Number Assigned; found by id, as more rules ship beside it.
TRACKING = next(rule for rule in RULES if rule.id == "tracking_number_assigned")
STORE = {"name": "Example Store", "support_email": "help@example.com", "url": None}
CONFIG = EngineConfig(mail_from="Example Store <orders@example.com>", store_info=STORE)


def copy_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", target)
    return target


def with_campaign(tmp_path: Path) -> Path:
    """The project's templates plus campaign 12 with its own sender and an HTML override."""
    templates = copy_templates(tmp_path)
    campaign = templates / "12"
    (campaign / "tracking_number_assigned").mkdir(parents=True)
    (campaign / "campaign.toml").write_text(
        'mail_from = "Maple & Pine <orders@mapleandpine.example>"\n'
        'store_name = "Maple & Pine"\nsupport_email = "help@mapleandpine.example"\n',
        encoding="utf-8",
    )
    (campaign / "tracking_number_assigned" / "body.html").write_text(
        '{% extends "_layouts/base.html" %}\n{% block content %}\n'
        "<h1>Maple &amp; Pine: it is packed</h1>\n"
        '<p><a class="button" href="{{ fulfillment.tracking_url }}">Track</a></p>\n'
        "{% endblock %}\n",
        encoding="utf-8",
    )
    return templates


def composer_for(templates: Path) -> Composer:
    campaigns = load_campaigns(templates)
    config = dataclasses.replace(
        CONFIG,
        senders={cid: c.mail_from for cid, c in campaigns.items() if c.mail_from},
        campaign_store_info={cid: c.store_info(STORE) for cid, c in campaigns.items()},
    )
    return Composer(Renderer(templates), config)


def strict_parse(html: str) -> None:
    """Parse with html5lib in strict mode: any HTML parse error raises."""
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(html)


@pytest.mark.parametrize("campaign", [None, "12", "99"])
@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_html_part_is_a_valid_standalone_document(
    tmp_path: Path, rule: object, campaign: str | None
) -> None:
    """Each rule x campaign renders HTML that parses strictly, before and after inlining."""
    composer = composer_for(with_campaign(tmp_path))
    records = sample_records(rule, campaign_id=campaign)  # type: ignore[arg-type]
    notice, order = preview_notice(rule, records)  # type: ignore[arg-type]
    context = composer.context(notice, rule, order)  # type: ignore[arg-type]
    raw = composer.renderer.render_part(
        rule.template,  # type: ignore[attr-defined]
        "body.html",
        context,
        campaign_id=campaign,
    )
    sent = render_preview(composer, rule, records).html  # type: ignore[arg-type]
    for html in (raw, sent):
        strict_parse(html)
        assert email_html_problems(html) == []
        assert html.lstrip().lower().startswith("<!doctype html>")
        assert '<meta charset="utf-8">' in html


def test_css_is_inlined_and_the_style_block_dropped() -> None:
    """Clients that strip <style> still see the design: every rule is on the elements."""
    shown = render_preview(Composer(Renderer(ROOT / "templates"), CONFIG), TRACKING)
    assert "<style" not in shown.html
    assert 'class="button" href="https://www.ups.com/track?tracknum=1Z999AA10123456784"' in (
        shown.html
    )
    assert "background: #2563eb" in shown.html
    assert '<body style="margin: 0;' in shown.html


def test_campaign_override_and_sender_win(tmp_path: Path) -> None:
    """Campaign 12's body.html and sender are used for it; other parts and campaigns fall back."""
    composer = composer_for(with_campaign(tmp_path))
    rule = TRACKING
    own = render_preview(composer, rule, campaign_id="12")
    other = render_preview(composer, rule, campaign_id="99")
    assert "Maple &amp; Pine: it is packed" in own.html
    assert own.message["From"] == "Maple & Pine <orders@mapleandpine.example>"
    assert own.message["Reply-To"] == "help@mapleandpine.example"
    # The subject and text fall back to the shared template, with the campaign's store name.
    assert own.subject.startswith("Your Maple & Pine order ")
    assert "write to help@mapleandpine.example" in own.text
    assert "Your order has a tracking number" in other.html
    assert other.message["From"] == CONFIG.mail_from
    assert other.subject.startswith("Your Example Store order ")


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        ("2026-03-04", "%B %-d, %Y", "March 4, 2026"),
        ("2026-03-04T17:05:00+00:00", "%d.%m.%Y %H:%M", "04.03.2026 17:05"),
        ("03/04/2026", "%Y-%m-%d", "2026-03-04"),  # the CRM's own date shape as input
        (date(2026, 3, 4), "m/d/Y", "03/04/2026"),  # the CRM's PHP-style format letters
        (datetime(2026, 3, 4, 7, 5, tzinfo=UTC), "n/j/y g:i A", "3/4/26 7:05 AM"),
        ("2026-12-25", "D, M j", "Fri, Dec 25"),
        ("2026-12-25", "l, F jS", "Friday, December 25th"),
        ("2026-12-01", "M jS", "Dec 1st"),
        ("2026-12-12", "M jS, Y", "Dec 12th, 2026"),  # 11th-13th are "th"
    ],
)
def test_date_filter(value: object, fmt: str, expected: str) -> None:
    """`date` takes strftime formats and the CRM's m/d/Y style, from dates or date text."""
    assert format_date(value, fmt) == expected


def test_date_filter_default_and_unparseable() -> None:
    """The default reads like prose; text that is no date is shown as given, None as empty."""
    assert format_date("2026-11-21") == "November 21, 2026"
    assert format_date("next Tuesday") == "next Tuesday"
    assert format_date(None) == ""
    assert format_date("") == ""


def test_date_filter_in_a_template(tmp_path: Path) -> None:
    """Templates use the filter by name with either format style."""
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "body.txt").write_text("{{ d | date('m/d/Y') }} {{ d | date('%A') }}")
    text = Renderer(tmp_path).render_part("t", "body.txt", {"d": "2026-11-21"})
    assert text == "11/21/2026 Saturday"


# --- template errors name the file, the line and the problem ------------------------------


def broken(tmp_path: Path, part: str, text: str) -> tuple[Composer, Path]:
    templates = copy_templates(tmp_path)
    path = templates / "tracking_number_assigned" / part
    path.write_text(text, encoding="utf-8")
    return Composer(Renderer(templates), CONFIG), path


def test_undefined_variable_in_a_layout_block_names_its_line(tmp_path: Path) -> None:
    """An undefined variable on line 5 of body.html, inside the layout's block, says line 5."""
    composer, path = broken(
        tmp_path,
        "body.html",
        '{% extends "_layouts/base.html" %}\n'
        "{% block title %}T{% endblock %}\n"
        "{% block content %}\n"
        "<p>Hi {{ customer.first_name }},</p>\n"
        "<p>{{ order.nickname }}</p>\n"
        "{% endblock %}\n",
    )
    with pytest.raises(TemplateError) as caught:
        render_preview(composer, TRACKING)
    message = str(caught.value)
    assert message.startswith(f"{path}, line 5 `<p>{{{{ order.nickname }}}}</p>`: ")
    assert "undefined variable" in message and "'nickname'" in message


def test_undefined_variable_in_text_names_its_line(tmp_path: Path) -> None:
    """An undefined top-level variable on line 3 of body.txt says that file, line 3, and name."""
    composer, path = broken(tmp_path, "body.txt", "Hi,\n\nYour {{ parcel_count }} parcels\n")
    with pytest.raises(TemplateError) as caught:
        render_preview(composer, TRACKING)
    assert str(caught.value) == (
        f"{path}, line 3 `Your {{{{ parcel_count }}}} parcels`: "
        "undefined variable: 'parcel_count' is undefined"
    )


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A syntax error names the file, its line and Jinja's description of it."""
    composer, path = broken(tmp_path, "subject.txt", "Order {{ order.id }\n")
    with pytest.raises(TemplateError) as caught:
        render_preview(composer, TRACKING)
    assert str(caught.value).startswith(f"{path}, line 1: syntax error: ")
