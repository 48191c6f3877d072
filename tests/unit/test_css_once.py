"""CSS inlined once per template shape gives the very bytes of inlining every message whole."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import css_inline
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.authoring.preview import preview_notice, sample_records
from notifier.core.rules import Rule, load_rules
from notifier.errors import TemplateError
from notifier.rendering.branding import Branding
from notifier.rendering.compose import Composer
from notifier.rendering.renderer import Renderer

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules(ROOT / "rules")
HOSTILE = [
    "Jane",
    'O\'Brien "Bob"',
    "<script>alert('x')</script>",
    "Zoë 漢字 😀 \u202e\u200b",
    "a\u00a0b &amp; &lt;tag&gt; &",
    "{{ 7*7 }} {% raw %}",
    "",
    "   ",
    "line\r\nbreak",
    "nul\x00byte",
    'x" onmouseover="alert(1)',
]
CAMPAIGN_BODY = """{% block title %}Campaign {{ order.id }}{% endblock %}
<h1 class="brand">Hello {{ customer.first_name }}</h1>
{% if fulfillment %}<a class="button" href="{{ fulfillment.tracking_url }}">
{{- fulfillment.tracking_number }}</a>{% endif %}
"""


def per_message(
    renderer: Renderer, template: str, context: dict[str, Any], campaign: str | None
) -> str:
    """Today's way: render the whole document, then inline its CSS."""
    return css_inline.inline(
        renderer.render_part(template, "body.html", context, campaign_id=campaign)
    )


def contexts(composer: Composer, rule: Rule, name: str, campaign: str | None) -> dict[str, Any]:
    records = [
        dataclasses.replace(r, first_name=name, last_name=name, order_id=f"KN-{name}")
        for r in sample_records(rule, campaign_id=campaign)
    ]
    notice, order = preview_notice(rule, records)
    return composer.context(notice, rule, order)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """The shipped templates plus a campaign override of each rule's body (a fragment)."""
    root = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", root)
    for rule in RULES:
        if rule.digest is not None:
            continue  # a digest's context is its list of notices (`notices`), not one order's
        override = root / "77" / rule.template / "body.html"
        override.parent.mkdir(parents=True)
        override.write_text(CAMPAIGN_BODY)
    return root


@pytest.mark.parametrize("campaign", [None, "77"])
@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_builtin_rule_and_sample_matches_per_message_inlining(
    templates: Path, rule: Rule, campaign: str | None
) -> None:
    """Each built-in rule x its sample x hostile names and shop names, with and without a
    campaign override: the inlined HTML is byte for byte what per-message inlining writes,
    and the cached shape (not the fallback) produced it for the ordinary names."""
    for shop_name in ("Example Store", 'Tom & Jerry\'s "<b>Shop</b>"'):
        branding = Branding(
            mail_from="Example Store <orders@example.com>",
            shop={"name": shop_name, "support_email": "help@example.com", "url": None},
        )
        renderer = Renderer(templates)
        composer = Composer(renderer, branding)
        for name in HOSTILE:
            context = contexts(composer, rule, name, campaign)
            rendered = renderer.render(rule.template, context, campaign_id=campaign)
            assert rendered.html == per_message(renderer, rule.template, context, campaign), name
        shapes = renderer._shapes._shapes
        assert shapes and all(cut is not None for cut in shapes.values())


def render_both(tmp_path: Path, html: str, values: dict[str, Any]) -> tuple[str, str]:
    layout = "<style>p { color: red } .x { margin: 0 }</style>"
    folder = tmp_path / "t"
    folder.mkdir(exist_ok=True)
    (folder / "subject.txt").write_text("s")
    (folder / "body.txt").write_text("t")
    (folder / "body.html").write_text(
        f"<!doctype html><html><head>{layout}</head><body>{html}</body></html>"
    )
    renderer = Renderer(tmp_path)
    return outcome(lambda: renderer.render("t", values).html), outcome(
        lambda: per_message(renderer, "t", values, None)
    )


def outcome(render: Callable[[], str]) -> str:
    """The HTML, or the error it raised (a value css-inline rejects fails both ways alike:
    css-inline's own error, which the renderer raises as the template's, naming it)."""
    try:
        return render()
    except css_inline.InlineError as exc:
        return f"error: {exc}"
    except TemplateError as exc:
        where, _, said = str(exc).partition(": inlining its CSS failed: ")
        assert where == "t/body.html" and said
        return f"error: {said}"


@pytest.mark.parametrize(
    "html",
    [
        '<p class="{{ v }}">a</p>',  # a value the stylesheet could select on
        '<p style="{{ v }}">a</p>',  # merged with the inlined style
        "<p>{{ v }}</p><style>p { content: '{{ v }}' }</style>",  # a value inside CSS
        "<!-- {{ v }} --><p>{{ v }}</p>",  # in a comment
        "<p>{{ v | safe }}</p>",  # Markup: its structure varies
        "{% filter upper %}<p>{{ v }}</p>{% endfilter %}",  # output transformed after render
        "{% macro m(x) %}<p>{{ x }}</p>{% endmacro %}{{ m(v) }}",
        "<p>\ue000{{ v }}\ue001</p>",  # the marker characters in the template's own text
        "<table>{{ v }}<tr><td>a</td></tr></table>",  # text moved by the parser
        '<p class="{% if v %}x{% endif %}"><a href="{{ v }}">{{ v }}</a></p>',
    ],
)
@pytest.mark.parametrize("value", ["<b>bold</b>", "", " ", "\u00a0&\"'", "\x00", "ok"])
def test_templates_outside_the_proven_cases_still_match(
    tmp_path: Path, html: str, value: str
) -> None:
    """Where a shape cannot be proven equal the message is inlined whole: same bytes (or
    the same error)."""
    fast, slow = render_both(tmp_path, html, {"v": value})
    assert fast == slow


def test_a_missing_include_on_a_path_not_taken_is_no_error(tmp_path: Path) -> None:
    """Looking at what a template includes does not fail on an include it never reaches."""
    fast, slow = render_both(
        tmp_path, '{% if v == "x" %}{% include "gone.html" %}{% endif %}', {"v": "a"}
    )
    assert fast == slow and "error" not in fast


TNA = next(rule for rule in RULES if rule.template == "tracking_number_assigned")
SHIPPED_RENDERER = Renderer(ROOT / "templates")
SHIPPED_COMPOSER = Composer(
    SHIPPED_RENDERER,
    Branding(mail_from="S <s@example.com>", shop={"name": "S", "support_email": "s@example.com"}),
)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=["Cs"]), max_size=40))
def test_any_customer_name_gives_the_per_message_bytes(name: str) -> None:
    """Any text as a customer's name (controls, entities, markup, every plane): the filled
    shape is byte for byte what inlining that message whole writes."""
    context = contexts(SHIPPED_COMPOSER, TNA, name, None)
    fast = SHIPPED_RENDERER.render(TNA.template, context).html
    assert fast == per_message(SHIPPED_RENDERER, TNA.template, context, None)
