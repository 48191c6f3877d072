"""The renderer's shortcuts (dict lookups, sync filters, template cache) write what stock
Jinja writes: the same messages for every built-in rule, the same answer for any lookup."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment

from notifier.authoring.preview import preview_notice, sample_records
from notifier.core.models import message_id_for
from notifier.core.rules import load_rules
from notifier.rendering.branding import Branding
from notifier.rendering.compose import Composer
from notifier.rendering.renderer import Renderer, make_environment

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules(ROOT / "rules")
BRANDING = Branding(
    mail_from="Example Store <orders@example.com>",
    shop={"name": 'Tom & Jerry\'s "<b>Shop</b>"', "support_email": "help@example.com"},
)
NAMES = ["Jane", "", "<script>x</script> & Zoë", "items", "__class__"]


def stock_environment(templates_dir: Path) -> jinja2.Environment:
    """The environment notifier used before the shortcuts: stock sandbox, same options."""
    ours = make_environment(templates_dir)
    stock = ImmutableSandboxedEnvironment(
        loader=ours.loader,
        undefined=ours.undefined,
        autoescape=ours.autoescape,
        trim_blocks=ours.trim_blocks,
        lstrip_blocks=ours.lstrip_blocks,
        keep_trailing_newline=ours.keep_trailing_newline,
        auto_reload=True,
        finalize=ours.finalize,
    )
    for name in ("tracking_url", "carrier_name", "date"):
        stock.filters[name] = ours.filters[name]
    return stock


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_builtin_rule_composes_the_bytes_stock_jinja_composes(rule: Any) -> None:
    ours = Renderer(ROOT / "templates")
    stock = Renderer(ROOT / "templates")
    stock.env = stock_environment(ROOT / "templates")  # type: ignore[assignment]
    assert type(stock.env) is not type(ours.env)
    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    for name in NAMES:
        records = [
            dataclasses.replace(r, first_name=name, last_name=name) for r in sample_records(rule)
        ]
        notice, order = preview_notice(rule, records)
        message_id = message_id_for(notice.key, "example.com")
        sent = [
            Composer(renderer, BRANDING).compose(
                notice, rule, order, message_id=message_id, now=now
            )
            for renderer in (ours, stock)
        ]
        assert sent[0].wire == sent[1].wire, name  # type: ignore[attr-defined]


LOOKUPS = [*dir(dict), "id", "name", "missing", "_private", "mro", "__dict__", "__name__"]


@given(
    mapping=st.dictionaries(st.sampled_from(LOOKUPS), st.integers() | st.text(), max_size=8),
    attribute=st.sampled_from(LOOKUPS) | st.text(max_size=12),
)
def test_any_lookup_on_a_dict_answers_as_the_stock_sandbox(
    mapping: dict[str, Any], attribute: str
) -> None:
    """`x.attr` on a dict: the same value, or the same undefined (and error), either way."""
    ours = make_environment(ROOT / "templates")
    stock = stock_environment(ROOT / "templates")
    got, expected = ours.getattr(mapping, attribute), stock.getattr(mapping, attribute)
    if isinstance(expected, jinja2.Undefined):
        assert type(got) is type(expected)
        assert got._undefined_hint == expected._undefined_hint
        assert got._undefined_name == expected._undefined_name
        assert got._undefined_obj is expected._undefined_obj
    else:
        assert got == expected
        assert type(got) is type(expected)


def test_a_dict_subclass_still_takes_the_sandbox_path(tmp_path: Path) -> None:
    """Only plain dicts take the shortcut: a subclass may have attributes of its own."""

    class WithAttribute(dict[str, str]):
        name = "the attribute"

    env = make_environment(tmp_path)
    assert env.getattr(WithAttribute(name="the item"), "name") == "the attribute"
    assert env.getattr({"name": "the item"}, "name") == "the item"
    assert isinstance(env.getattr({}, "update"), jinja2.Undefined)  # unsafe: it mutates


def test_globals_reach_every_render_as_they_are_then(tmp_path: Path) -> None:
    """A render sees the environment's globals (Jinja's own and any added later) under the
    template's own, and the context it was given over both."""
    (tmp_path / "t.txt").write_text("{{ shown }} {{ range(2) | list }} {{ joiner is defined }}")
    env = make_environment(tmp_path)
    env.globals["shown"] = "from the environment"
    template = env.get_template("t.txt")
    assert template.render() == "from the environment [0, 1] True"
    env.globals["shown"] = "changed since"
    assert template.render() == "changed since [0, 1] True"
    template.globals["shown"] = "the template's own"
    assert template.render() == "the template's own [0, 1] True"
    assert template.render(shown="given") == "given [0, 1] True"


class Parcel:
    """Not a dict: its attribute is read through the sandbox, as Jinja reads it."""

    def __init__(self, status: str) -> None:
        self.status = status


ITEM_VALUES = st.sampled_from(["Shipped", "Delivered", "Cancelled", "", None, 0, 2])
ITEMS = st.lists(
    st.dictionaries(st.sampled_from(["status", "id", "items", "0"]), ITEM_VALUES, max_size=3)
    | ITEM_VALUES.filter(lambda v: isinstance(v, str)).map(Parcel)
    | st.sampled_from([None, "text", 3]),
    max_size=4,
)
# What the templates write after the filter's name: the shortcut's calls and Jinja's own.
CALLS = st.sampled_from(
    [
        '"status", "in", ["Shipped", "Delivered"]',
        '"status", "equalto", "Cancelled"',
        '"status", "none"',
        '"status", "defined"',
        '"status"',
        '"status", "sameas", none',
        '"items", "defined"',
        '"0", "equalto", "Shipped"',
        '"status.upper", "defined"',
        '"status", "no_such_test"',
        '"status", "in"',
        '"status", "equalto", other="x"',
        "",
    ]
)


def _outcome(env: jinja2.Environment, source: str, items: Any) -> tuple[str, str]:
    try:
        return "rendered", env.from_string(source).render(items=items)
    except Exception as exc:  # the same error type and message, either way
        return type(exc).__name__, str(exc)


@given(
    items=ITEMS | st.sampled_from([None, "abc"]),
    call=CALLS,
    name=st.sampled_from(["selectattr", "rejectattr"]),
)
def test_selectattr_and_rejectattr_answer_as_stock_jinja(items: Any, call: str, name: str) -> None:
    """The same items picked, or the same error, for the shortcut's calls and every other."""
    source = (
        f"{{{{ items | {name}({call}) | list }}}}" if call else f"{{{{ items | {name} | list }}}}"
    )
    ours = make_environment(ROOT / "templates")
    stock = stock_environment(ROOT / "templates")
    assert ours.filters[name] is not stock.filters[name]
    assert _outcome(ours, source, items) == _outcome(stock, source, items)


def test_an_undefined_sequence_fails_as_in_stock_jinja() -> None:
    ours, stock = make_environment(ROOT / "templates"), stock_environment(ROOT / "templates")
    source = '{{ missing | selectattr("status", "in", ["Shipped"]) | list }}'
    assert _outcome(ours, source, None)[0] == "UndefinedError"
    assert _outcome(ours, source, None) == _outcome(stock, source, None)
