"""Templates to email messages (docs/design.md §4). Pure apart from reading template files.

Sandboxed Jinja with strict undefined variables; HTML autoescaped and its CSS inlined so
it survives mail clients that drop <style>. One code path for delivery and preview.
"""

from __future__ import annotations

import email.policy
import functools
import linecache
import re
import time
import traceback
import weakref
from collections import ChainMap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import css_inline
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from notifier.core import carriers
from notifier.core.mime import write_message
from notifier.errors import TemplateError
from notifier.rendering import inlining, selecting

PARTS = ("subject.txt", "body.txt", "body.html")
_SPACES = re.compile(r"\s+")
# The CRM writes dates PHP-style ("m/d/Y"); map those letters to strftime.
_PHP_DATE = {
    "d": "%d",
    "j": "%-d",
    "D": "%a",
    "l": "%A",
    "m": "%m",
    "n": "%-m",
    "M": "%b",
    "F": "%B",
    "Y": "%Y",
    "y": "%y",
    "H": "%H",
    "G": "%-H",
    "h": "%I",
    "g": "%-I",
    "i": "%M",
    "s": "%S",
    "A": "%p",
}


class _CachedHeaderRegistry(HeaderRegistry):
    """The stdlib registry builds a new class for every header it parses; build each once.

    That class creation was most of the cost of composing a message (bench/delivery.py).
    """

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


MESSAGE_POLICY = email.policy.default.clone(header_factory=_CachedHeaderRegistry())


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def _as_datetime(value: Any) -> datetime | date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime | date):
        return value
    text = str(value).strip()
    for parse in (datetime.fromisoformat, lambda t: datetime.strptime(t, "%m/%d/%Y")):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


def format_date(value: Any, format: str = "%B %-d, %Y") -> str:
    """Template filter `date`: strftime formats, or the CRM's `m/d/Y` style."""
    moment = _as_datetime(value)
    if moment is None:
        return "" if value is None else str(value)
    if "%" not in format:
        format = "".join(
            _ordinal_suffix(moment.day) if char == "S" else _PHP_DATE.get(char, char)
            for char in format
        )
    return moment.strftime(format)


def _ordinal_suffix(day: int) -> str:
    """PHP's `S`: st, nd, rd or th for the day of the month."""
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


# How stale an edited template may be: a running service picks up an edit within this time.
TEMPLATE_RECHECK_SECONDS = 1.0

# The layout a fragment `body.html` is rendered inside (docs/design.md §4, "Fragments").
BASE_LAYOUT = "_layouts/base.html"
# A `body.html` that extends a layout or writes its own document is used as it is.
_WHOLE_DOCUMENT = re.compile(r"{%-?\s*extends\b|<!doctype|<html[\s>]", re.IGNORECASE)


def is_fragment(name: str, source: str) -> bool:
    """Whether a template is a rule's `body.html` holding only the message's content."""
    return name.endswith("body.html") and not _WHOLE_DOCUMENT.search(source)


def as_layout_content(source: str) -> str:
    """A fragment as the content block of the base layout.

    The wrapping adds no line, so errors still name the fragment's own line numbers; and
    the fragment's own blocks (`{% block title %}`) still override the layout's.
    """
    return f'{{% extends "{BASE_LAYOUT}" %}}{{% block content %}}{source}{{% endblock %}}'


class _EditableTemplates(jinja2.FileSystemLoader):
    """Template files, re-read after an operator edits them while notifier runs, but with
    their modification time looked at no more than once a second per template: a stat of
    every template for every message was a measurable part of composing one
    (bench/delivery.py)."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        if is_fragment(template, source) and self._has_layout():
            # A newcomer's first template is a fragment; mail clients need a whole document.
            source = as_layout_content(source)
        checked_at = time.monotonic()

        def still_current() -> bool:
            nonlocal checked_at
            now = time.monotonic()
            if now - checked_at < TEMPLATE_RECHECK_SECONDS:
                return True
            checked_at = now
            return uptodate()

        return source, filename, still_current

    def _has_layout(self) -> bool:
        # Without the layout a fragment is sent as it is, and `check` says what it lacks.
        return any((Path(folder) / BASE_LAYOUT).is_file() for folder in self.searchpath)


# What `getattr` can find on a plain dict: its type's attributes (an instance has no __dict__).
_DICT_ATTRIBUTES = frozenset(dir(dict))


class _NoticeTemplate(jinja2.Template):
    """A template whose render context starts from its globals as one plain dict.

    A template's globals are a ChainMap (its own over the environment's); Jinja copied it
    into each render's context through ChainMap's Python-level lookups, a KeyError for each
    name missing from the first map: a tenth of rendering a part. Merged here in C, afresh
    for each render, in the order and with the precedence ChainMap gives.
    """

    def new_context(
        self,
        vars: dict[str, Any] | None = None,
        shared: bool = False,
        locals: Mapping[str, Any] | None = None,
    ) -> jinja2.runtime.Context:
        if not isinstance(self.globals, ChainMap):
            return super().new_context(vars, shared, locals)
        merged: dict[str, Any] = {}
        for mapping in reversed(self.globals.maps):
            merged.update(mapping)
        return jinja2.runtime.new_context(
            self.environment, self.name, self.blocks, vars, shared, merged, locals
        )


class _NoticeEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with a shortcut for what every template does most: `order.id` on a plain
    dict. Jinja looks for an attribute first; on a dict that raised and caught an
    AttributeError for every such lookup (about 30 a notice). A name no dict attribute has
    reaches the item lookup the sandbox would make anyway, so the result is the same."""

    template_class = _NoticeTemplate

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


# Jinja's built-in filters that have an async variant check, on every call, whether the
# environment is async; ours never is, so the templates call the plain (sync) functions.
def _sync_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: function.__wrapped__
        for name, function in filters.items()
        if getattr(function, "jinja_async_variant", False)
    }


def make_environment(templates_dir: Path) -> ImmutableSandboxedEnvironment:
    env = _NoticeEnvironment(
        loader=_EditableTemplates(templates_dir),
        # No eviction: one entry per template file, and a plain dict is cheaper to look up
        # (each part and the layout it extends, per message) than Jinja's locked LRU.
        cache_size=-1,
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,
        finalize=inlining.finalize,
    )
    env.filters.update(_sync_filters(env.filters))
    env.filters["selectattr"] = selecting.selectattr
    env.filters["rejectattr"] = selecting.rejectattr
    env.filters["tracking_url"] = carriers.tracking_url
    env.filters["carrier_name"] = carriers.carrier_name
    env.filters["date"] = format_date
    return env


class Renderer:
    """Renders a rule's template folder, preferring a campaign's override when there is one."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self.env = make_environment(templates_dir)
        self._shapes = inlining.ShapeCache()
        # Per loaded template: whether its printed values reach the output as they are. An
        # edited template is a new Template object, so it is looked at again; an edit of only
        # the layout it extends is seen when the child is next reloaded.
        self._copies_values: weakref.WeakKeyDictionary[jinja2.Template, bool] = (
            weakref.WeakKeyDictionary()
        )

    def candidates(self, template: str, part: str, campaign_id: str | None) -> list[str]:
        names = [f"{template}/{part}"]
        if campaign_id:
            names.insert(0, f"{campaign_id}/{template}/{part}")
        return names

    def render(
        self, template: str, context: Mapping[str, Any], *, campaign_id: str | None = None
    ) -> RenderedEmail:
        subject, text = (
            self._render_part(template, part, context, campaign_id) for part in PARTS[:2]
        )
        return RenderedEmail(
            # A subject is one line whatever the template does: no header injection by newline.
            subject=_SPACES.sub(" ", subject).strip(),
            text=text,
            html=self._render_inlined_html(template, context, campaign_id),
        )

    def _render_inlined_html(
        self, template: str, context: Mapping[str, Any], campaign_id: str | None
    ) -> str:
        """body.html with the layout's CSS inlined: by its cached shape where that gives the
        same bytes as inlining the whole message (notifier.rendering.inlining)."""
        capture = inlining.Capture()
        shape = self._render_part(template, "body.html", context, campaign_id, capture=capture)
        try:
            if not capture.active:
                return inlining.inline_css(shape)
            inlined = self._shapes.inline(shape, capture)
            if inlined is None:
                inlined = inlining.inline_css(
                    self._render_part(template, "body.html", context, campaign_id)
                )
            return inlined
        except css_inline.InlineError as exc:
            # e.g. a stylesheet css-inline cannot parse: the template's error, named as such.
            raise TemplateError(f"{template}/body.html: inlining its CSS failed: {exc}") from None

    def render_part(
        self,
        template: str,
        part: str,
        context: Mapping[str, Any],
        *,
        campaign_id: str | None = None,
    ) -> str:
        """One part as its template renders it (HTML before CSS inlining): for `check`."""
        return self._render_part(template, part, context, campaign_id)

    def _render_part(
        self,
        template: str,
        part: str,
        context: Mapping[str, Any],
        campaign_id: str | None,
        *,
        capture: inlining.Capture | None = None,
    ) -> str:
        """One part rendered; with a `capture`, as its shape (when the template allows it,
        else `capture.active` is cleared and the part is rendered as it is)."""
        names = self.candidates(template, part, campaign_id)
        try:
            loaded = self.env.select_template(names)
            if capture is not None and not self._copies_printed_values(loaded):
                capture.active = False
            if capture is None or not capture.active:
                return loaded.render(context)
            token = inlining.capturing(capture)
            try:
                return loaded.render(context)
            finally:
                inlining.release(token)
        except jinja2.TemplateNotFound:
            raise TemplateError(
                f"template {template!r}: {self.templates_dir / names[-1]} does not exist"
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            where = f"{self._path(exc.filename or exc.name or names[-1])}, line {exc.lineno}"
            raise TemplateError(f"{where}: syntax error: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(
                f"{self._where(exc, names[-1])}: undefined variable: {exc.message}"
            ) from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{self._where(exc, names[-1])}: {exc}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            raise TemplateError(
                f"{self._where(exc, names[-1])}: {type(exc).__name__}: {exc}"
            ) from None

    def _copies_printed_values(self, loaded: jinja2.Template) -> bool:
        known = self._copies_values.get(loaded)
        if known is None:
            name = loaded.name or ""
            known = self._copies_values[loaded] = not inlining.transforms_output(self.env, name)
        return known

    def _path(self, name: str) -> str:
        path = Path(name)
        return str(path if path.is_absolute() else self.templates_dir / name)

    def _where(self, exc: BaseException, fallback: str) -> str:
        """The template file and line an error came from (Jinja maps frames to template lines),
        with that line's source, so "'dict object' has no attribute 'x'" shows whose x."""
        root = str(self.templates_dir.resolve())
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename and str(Path(frame.filename).resolve()).startswith(root):
                linecache.checkcache(frame.filename)  # templates are edited while we run
                source = linecache.getline(frame.filename, frame.lineno or 0).strip()
                quoted = f" `{source[:160]}`" if source else ""
                return f"{frame.filename}, line {frame.lineno}{quoted}"
        return self._path(fallback)


# --- the context templates see ----------------------------------------------------------


def fulfillment_view(
    fulfillment_id: str,
    *,
    status: str | None,
    tracking_number: str | None,
    carrier: str | None,
    shipped_at: str | None,
    delivered_at: str | None,
) -> dict[str, Any]:
    resolved = carriers.resolve(tracking_number, carrier)
    return {
        "id": fulfillment_id,
        "status": status,
        "tracking_number": tracking_number,
        "carrier": resolved.name if resolved else carrier,
        "tracking_url": resolved.tracking_url if resolved else None,
        "shipped_at": shipped_at,
        "delivered_at": delivered_at,
    }


def build_context(
    *,
    rule: Mapping[str, Any],
    record: Mapping[str, Any],
    order_id: str,
    campaign_id: str | None,
    fulfillments: Sequence[Mapping[str, Any]],
    fulfillment: Mapping[str, Any] | None,
    store: Mapping[str, Any],
) -> dict[str, Any]:
    customer = {
        "email": record.get("email"),
        "first_name": record.get("first_name"),
        "last_name": record.get("last_name"),
    }
    return {
        "customer": customer,
        "order": {"id": order_id, "campaign_id": campaign_id, "fulfillments": list(fulfillments)},
        "fulfillment": fulfillment,
        "rule": dict(rule),
        "record": {**record, "extra": dict(record.get("extra") or {})},
        "store": dict(store),
    }


def _date_header(moment: datetime) -> str:
    """RFC 5322 date, to the second: the messages of a second share one formatted value."""
    return _date_header_of_second(moment.replace(microsecond=0))


@functools.lru_cache(maxsize=64)
def _date_header_of_second(moment: datetime) -> str:
    return format_datetime(moment)


def build_message(
    rendered: RenderedEmail,
    *,
    sender: str,
    recipient: str,
    recipient_name: str | None,
    message_id: str,
    date: datetime,
    reply_to: str | None = None,
    envelope_from: str | None = None,
) -> EmailMessage:
    """A multipart (text + HTML) message with Date and the notice's Message-ID.

    Written as bytes once (notifier.core.mime) and parsed back for everyone who reads headers;
    the SMTP transport sends those very bytes. An internationalised address gets a stdlib
    message with SMTPUTF8 headers, written by the same module.
    """
    return write_message(
        subject=rendered.subject,
        sender=sender,
        recipient=recipient,
        recipient_name=recipient_name,
        reply_to=reply_to,
        date=_date_header(date),
        message_id=message_id,
        text=rendered.text,
        html=rendered.html,
        policy=MESSAGE_POLICY,
        envelope_from=envelope_from,
    )
