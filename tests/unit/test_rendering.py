"""Rendering and composing messages: sandboxed, strict, escaped, one line per subject."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.authoring.preview import preview_message, sample_records
from notifier.core.models import Status, message_id_for
from notifier.core.rules import Audience, load_rules
from notifier.errors import TemplateError
from notifier.rendering.branding import Branding
from notifier.rendering.compose import Composer
from notifier.rendering.renderer import Renderer, format_date

ROOT = Path(__file__).resolve().parents[2]
BRANDING = Branding(
    mail_from="Example Store <orders@example.com>",
    shop={"name": "Example Store", "support_email": "help@example.com", "url": None},
    campaign_senders={"77": "Campaign 77 <hello@c77.example.com>"},
)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def simple(
    root: Path,
    subject: str = "Hi {{ name }}",
    text: str = "{{ name }}",
    html: str = "<p>{{ name }}</p>",
) -> Renderer:
    write(root, {"t/subject.txt": subject, "t/body.txt": text, "t/body.html": html})
    return Renderer(root)


def test_html_is_escaped_and_text_is_not(tmp_path: Path) -> None:
    """Autoescape applies to the HTML part only."""
    rendered = simple(tmp_path).render("t", {"name": "<b>Tom & Jerry</b>"})
    assert "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;" in rendered.html
    assert rendered.text == "<b>Tom & Jerry</b>"


def test_subject_is_always_one_line(tmp_path: Path) -> None:
    """Newlines a template puts in a subject are folded to spaces: no header injection."""
    rendered = simple(tmp_path, subject="Hi\n{{ name }}\r\nBcc: x@example.com").render(
        "t", {"name": "A"}
    )
    assert rendered.subject == "Hi A Bcc: x@example.com"


def test_undefined_variable_names_file_and_line(tmp_path: Path) -> None:
    """A missing variable is an error naming the template file, its line and the variable."""
    renderer = simple(tmp_path, html="<p>\n{{ name }}\n{{ nickname }}</p>")
    with pytest.raises(
        TemplateError, match=r"t/body\.html, line 3 .*: undefined variable: 'nickname'"
    ):
        renderer.render("t", {"name": "A"})


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A syntax error names the file and line."""
    renderer = simple(tmp_path, text="ok\n{% if %}")
    with pytest.raises(TemplateError, match=r"t/body\.txt, line 2.*: syntax error"):
        renderer.render("t", {"name": "A"})


def test_sandbox_blocks_unsafe_attribute_access(tmp_path: Path) -> None:
    """Templates cannot reach Python internals."""
    renderer = simple(tmp_path, text="{{ name.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        renderer.render("t", {"name": "A"})


def test_campaign_override_wins(tmp_path: Path) -> None:
    """templates/<campaign>/<name>/ is used for that campaign, the default otherwise."""
    renderer = simple(tmp_path)
    write(
        tmp_path,
        {"12/t/subject.txt": "Campaign {{ name }}", "12/t/body.txt": "c", "12/t/body.html": "c"},
    )
    assert renderer.render("t", {"name": "A"}, campaign_id="12").subject == "Campaign A"
    assert renderer.render("t", {"name": "A"}, campaign_id="13").subject == "Hi A"


def test_css_is_inlined(tmp_path: Path) -> None:
    """<style> rules are inlined into style attributes."""
    html = "<html><head><style>p { color: red }</style></head><body><p>x</p></body></html>"
    rendered = simple(tmp_path, html=html).render("t", {"name": "A"})
    assert 'style="color: red' in rendered.html


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        ("2026-11-21", "%B %-d, %Y", "November 21, 2026"),
        ("11/22/2026", "m/d/Y", "11/22/2026"),
        ("2026-11-22T17:00:00-05:00", "D, M j", "Sun, Nov 22"),
        (None, "%Y", ""),
        ("soon", "%Y", "soon"),
    ],
)
def test_date_filter(value: str | None, fmt: str, expected: str) -> None:
    """`date` takes strftime or the CRM's m/d/Y letters; unparseable text passes through."""
    assert format_date(value, fmt) == expected


def test_default_templates_compose_a_complete_message() -> None:
    """The shipped rules render multipart text + HTML with tracking link, From, Message-ID."""
    composer = Composer(Renderer(ROOT / "templates"), BRANDING)
    for rule in load_rules(ROOT / "rules"):
        message = preview_message(composer, rule, sample_records(rule))
        assert message.get_content_type() == "multipart/alternative"
        assert message["From"] == "Example Store <orders@example.com>"
        assert message["Reply-To"] == "help@example.com"
        assert message["Auto-Submitted"] == "auto-generated"
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        if rule.to is Audience.CUSTOMER:  # an operator's alert greets no customer
            assert "Hi Jane," in text
            if rule.on in (Status.PENDING_SHIPMENT, Status.SHIPPED, Status.DELIVERED):
                # The rules about a parcel on its way link to its tracking page.
                assert "1Z999AA10123456784" in text
                assert "https://www.ups.com/track?tracknum=1Z999AA10123456784" in html
        assert html.lstrip().lower().startswith("<!doctype html>")
        if rule.on in (Status.PENDING_SHIPMENT, Status.SHIPPED):  # a parcel with a number
            assert "1Z999AA10123456784" in text
            assert "https://www.ups.com/track?tracknum=1Z999AA10123456784" in html


def test_campaign_sender_and_stable_message_id() -> None:
    """A campaign's sender overrides From; the Message-ID depends only on the notice key."""
    composer = Composer(Renderer(ROOT / "templates"), BRANDING)
    rule = load_rules(ROOT / "rules")[0]
    message = preview_message(composer, rule, sample_records(rule, campaign_id="77"))
    assert message["From"] == "Campaign 77 <hello@c77.example.com>"
    assert message_id_for("k", "example.com") == message_id_for("k", "example.com")
    assert message_id_for("k", "example.com") != message_id_for("k2", "example.com")
    assert BRANDING.message_id_domain == "example.com"


def test_date_header_is_the_send_time() -> None:
    """Date is the time of composing, in RFC 5322 form."""
    composer = Composer(Renderer(ROOT / "templates"), BRANDING)
    rule = load_rules(ROOT / "rules")[0]
    from notifier.authoring.preview import preview_notice

    notice, order = preview_notice(rule, sample_records(rule))
    when = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
    message = composer.compose(notice, rule, order, message_id="<a@b>", now=when)
    assert message["Date"] == "Fri, 27 Nov 2026 08:30:00 +0000"


# --- fragments: a body.html that is only the message's content ---------------------------

LAYOUT = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{% block title %}Shop'
    "{% endblock %}</title><style>p { color: red; }</style></head>\n"
    "<body>{% block content %}{% endblock %}</body></html>\n"
)


def test_a_fragment_body_is_rendered_inside_the_base_layout(tmp_path: Path) -> None:
    """A body.html without a document of its own becomes the layout's content, CSS inlined."""
    write(tmp_path, {"_layouts/base.html": LAYOUT})
    rendered = simple(tmp_path, html="<p>Hi {{ name }}, delivered!</p>").render(
        "t", {"name": "<Ann>"}
    )
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert "<title>Shop</title>" in rendered.html
    assert '<p style="color: red;">Hi &lt;Ann&gt;, delivered!</p>' in rendered.html


def test_a_whole_document_body_is_used_as_it_is(tmp_path: Path) -> None:
    """A body.html that writes its own <html> is not wrapped in the layout."""
    write(tmp_path, {"_layouts/base.html": LAYOUT})
    own = "<html><head><title>Own</title></head><body><p>{{ name }}</p></body></html>"
    rendered = simple(tmp_path, html=own).render("t", {"name": "Ann"})
    assert "<title>Own</title>" in rendered.html
    assert "Shop" not in rendered.html


def test_a_fragment_error_names_its_own_line(tmp_path: Path) -> None:
    """Wrapping a fragment adds no line: an undefined variable on line 2 is reported there."""
    write(tmp_path, {"_layouts/base.html": LAYOUT})
    renderer = simple(tmp_path, html="<p>Hi</p>\n<p>{{ parcel.eta }}</p>\n")
    with pytest.raises(TemplateError, match=r"body\.html, line 2"):
        renderer.render("t", {"name": "Ann"})


def test_a_fragment_without_a_layout_is_sent_as_it_is(tmp_path: Path) -> None:
    """With no templates/_layouts/base.html there is nothing to wrap in; `check` says so."""
    rendered = simple(tmp_path, html="<p>{{ name }}</p>").render("t", {"name": "Ann"})
    assert "<!DOCTYPE" not in rendered.html
    assert "<p>Ann</p>" in rendered.html
