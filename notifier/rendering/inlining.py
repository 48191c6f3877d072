"""The layout's CSS inlined once per shape of a template's HTML, not once per message.

css-inline parses a whole document, matches the stylesheet against it and writes the
document out again; for one template the document differs between messages only in the
values its `{{ ... }}` print. So the HTML part is rendered with every printed value replaced
by a numbered slot marker (the *shape*: the same for every message that takes the same
`{% if %}`/`{% for %}` path), the shape is inlined once, and each message fills the inlined
shape's slots with its values escaped the way css-inline's HTML writer would write them.

A shape is used only where that is provably the same bytes as inlining the message whole;
everything else (checked below) is inlined per message as before:
- a template that post-processes its own output (filter blocks, block `set`, macros,
  `super()`, `{% autoescape %}`): its printed values are not simply copied to the output;
- a slot inside a `<style>`/`<script>`, a comment, or an attribute other than a link or a
  text (a value in `class` or `style` changes what the stylesheet does);
- a stylesheet with attribute selectors or `:empty`/`:has`, which look at values;
- a value holding Markup, NUL, CR or a lone surrogate, or only whitespace: the HTML parser
  treats those by where they stand, not as plain text.
Each new shape is also checked against whole-document inlining with empty and hostile
values before it is used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import css_inline
import jinja2
import markupsafe
from jinja2 import meta, nodes

_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use characters: plain text to the HTML parser
_SLOT = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
# Attributes whose value the stylesheet cannot see and css-inline copies as it is.
_VALUE_ATTRIBUTES = frozenset({"href", "src", "alt", "title"})
_RAW_TEXT = frozenset(
    {"style", "script", "xmp", "iframe", "noembed", "noframes", "plaintext", "noscript"}
)
_VALUE_SELECTORS = re.compile(r"\[|:empty|:has|:blank|:contains", re.IGNORECASE)
_STYLE = re.compile(r"<style[^>]*>(.*?)</style", re.IGNORECASE | re.DOTALL)
_NOT_PLAIN = re.compile("[\x00\r\ud800-\udfff]")
_HTML_SPACE = "\t\n\f\r "
_SHAPES_KEPT = 256
# Statements and names whose output is rendered, then transformed, before it is written.
_TRANSFORMING = (
    nodes.FilterBlock,
    nodes.AssignBlock,
    nodes.Macro,
    nodes.CallBlock,
    nodes.EvalContextModifier,
)
_TRANSFORMING_NAMES = frozenset({"super", "caller", "self", "varargs", "kwargs"})
# A hostile value every new shape is checked with: markup, quotes, entities, spaces.
_PROBE = ' \t<b a="1">&amp;\'"\u00a0é漢</b> '


@dataclass(slots=True)
class Capture:
    """The values one render printed, in order; `opaque` when one of them was Markup;
    `active` cleared when the template cannot be rendered as a shape."""

    values: list[str] = field(default_factory=list)
    opaque: bool = False
    active: bool = True


# Remote stylesheets are never fetched: a message renders from the templates alone, with no
# request leaving the process per send (and none failing it).
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)


def inline_css(html: str) -> str:
    """The document with its stylesheet inlined (css-inline, remote stylesheets off)."""
    return _INLINER.inline(html)


_capture: ContextVar[Capture | None] = ContextVar("notifier_css_capture", default=None)


@jinja2.pass_context
def finalize(context: Any, value: Any) -> Any:
    """Jinja's `finalize`: during a captured render, a printed value becomes its slot marker.

    It takes the context so that Jinja does not fold constants through it at compile time.
    """
    capture = _capture.get()
    if capture is None:
        return value
    if hasattr(value, "__html__"):
        capture.opaque = True
        return value
    capture.values.append(str(value))
    # A plain string: autoescaping leaves a marker as it is (it holds no character HTML
    # escapes), and Markup here was a second Markup (Python-level) for every value.
    return _marker(len(capture.values) - 1)


_MARKERS = tuple(f"{_OPEN}{index}{_CLOSE}" for index in range(64))


def _marker(index: int) -> str:
    return _MARKERS[index] if index < len(_MARKERS) else f"{_OPEN}{index}{_CLOSE}"


def capturing(capture: Capture | None) -> Any:
    """Set (or clear) the capture for the render about to run; returns the reset token."""
    return _capture.set(capture)


def release(token: Any) -> None:
    _capture.reset(token)


def fill_escaped(shape: str, values: Sequence[str]) -> str:
    """The HTML the template renders without capture: each slot its value, autoescaped."""
    return _SLOT.sub(lambda m: str(markupsafe.escape(values[int(m.group(1))])), shape)


def _text(value: str) -> str:
    return (
        value.replace("&", "&amp;")
        .replace("\u00a0", "&nbsp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def _attribute(value: str) -> str:
    return value.replace("&", "&amp;").replace("\u00a0", "&nbsp;").replace('"', "&quot;")


def _plain(value: str) -> bool:
    if _NOT_PLAIN.search(value):
        return False
    return value == "" or value.strip(_HTML_SPACE) != ""


@dataclass(frozen=True, slots=True)
class InlinedShape:
    """An inlined document cut at its slots: `pieces[i]`, slot i, `pieces[i+1]`, ..."""

    pieces: tuple[str, ...]
    in_attribute: tuple[bool, ...]

    def fill(self, values: Sequence[str]) -> str:
        out = [self.pieces[0]]
        for index, value in enumerate(values):
            out.append(_attribute(value) if self.in_attribute[index] else _text(value))
            out.append(self.pieces[index + 1])
        return "".join(out)


_TAG = re.compile(r"<(/?)([a-zA-Z][^\s/>]*)")
_ATTR = re.compile(r'\s+([^\s=/>]+)="([^"]*)"')


def _slot_contexts(html: str) -> dict[int, bool] | None:
    """For each slot marker's position in css-inline's output: True in a value attribute,
    False in text; None when any stands elsewhere (raw text, comment, other attribute).

    css-inline writes canonical HTML: attribute values always in double quotes with `"`
    escaped, `<` escaped in text; so a small scan of its output is exact.
    """
    contexts: dict[int, bool] = {}
    pos, end = 0, len(html)
    while pos < end:
        lt = html.find("<", pos)
        text_end = end if lt < 0 else lt
        for m in _SLOT.finditer(html, pos, text_end):
            contexts[m.start()] = False
        if lt < 0:
            break
        if html.startswith("<!--", lt):
            close = html.find("-->", lt)
            pos = end if close < 0 else close + 3
            if _OPEN in html[lt:pos]:
                return None
            continue
        tag = _TAG.match(html, lt)
        if tag is None:  # doctype
            close = html.find(">", lt)
            pos = end if close < 0 else close + 1
            if _OPEN in html[lt:pos]:
                return None
            continue
        pos = tag.end()
        while (attr := _ATTR.match(html, pos)) is not None:
            for m in _SLOT.finditer(html, attr.start(2), attr.end(2)):
                if attr.group(1).lower() not in _VALUE_ATTRIBUTES:
                    return None
                contexts[m.start()] = True
            pos = attr.end()
        close = html.find(">", pos)
        if close < 0 or _OPEN in html[pos:close]:
            return None
        pos = close + 1
        name = tag.group(2).lower()
        if not tag.group(1) and name in _RAW_TEXT:
            raw_end = html.lower().find(f"</{name}", pos)
            raw_end = end if raw_end < 0 else raw_end
            if _OPEN in html[pos:raw_end]:
                return None
            pos = raw_end
    return contexts


def inline_shape(shape: str, slots: int) -> InlinedShape | None:
    """A shape inlined once, or None when filling it could differ from inlining each message."""
    if "<link" in shape.lower() or any(
        _VALUE_SELECTORS.search(css) for css in _STYLE.findall(shape)
    ):
        return None
    try:
        return _cut(shape, slots)
    except (css_inline.InlineError, ValueError):
        return None  # e.g. a slot in a style attribute: each message is inlined, or fails, whole


def _cut(shape: str, slots: int) -> InlinedShape | None:
    inlined = inline_css(shape)
    found = list(_SLOT.finditer(inlined))
    if [int(m.group(1)) for m in found] != list(range(slots)):
        return None
    contexts = _slot_contexts(inlined)
    if contexts is None or len(contexts) != slots:
        return None
    pieces, last = [], 0
    for m in found:
        pieces.append(inlined[last : m.start()])
        last = m.end()
    pieces.append(inlined[last:])
    cut = InlinedShape(tuple(pieces), tuple(contexts[m.start()] for m in found))
    for probe in ("", _PROBE):
        values = [probe] * slots
        if cut.fill(values) != inline_css(fill_escaped(shape, values)):
            return None
    return cut


def transforms_output(env: jinja2.Environment, name: str, seen: set[str] | None = None) -> bool:
    """Whether a template, or one it extends, includes or imports, post-processes output."""
    seen = set() if seen is None else seen
    if name in seen:
        return False
    seen.add(name)
    if env.loader is None or not name.endswith(".html"):
        return True
    try:
        tree = env.parse(env.loader.get_source(env, name)[0], name)
    except jinja2.TemplateError:
        return True  # e.g. an include behind an {% if %}: rendering says whether it matters
    if any(True for _ in tree.find_all(_TRANSFORMING)):
        return True
    if any(n.name in _TRANSFORMING_NAMES for n in tree.find_all(nodes.Name)):
        return True
    for referenced in meta.find_referenced_templates(tree):
        if referenced is None or transforms_output(env, referenced, seen):
            return True
    return False


class ShapeCache:
    """Inlined shapes by their HTML; a few per template (one per path through its ifs/fors)."""

    def __init__(self) -> None:
        self._shapes: dict[str, InlinedShape | None] = {}

    def inline(self, shape: str, capture: Capture) -> str | None:
        """The message's inlined HTML; None when it must be rendered again without capture."""
        values = capture.values
        if shape.count(_OPEN) != len(values) or shape.count(_CLOSE) != len(values):
            return None  # the template's own text (or a Markup value) holds marker characters
        if capture.opaque or not all(_plain(v) for v in values):
            return inline_css(fill_escaped(shape, values))
        if shape in self._shapes:
            cut = self._shapes[shape]
        else:
            if len(self._shapes) >= _SHAPES_KEPT:
                del self._shapes[next(iter(self._shapes))]
            cut = self._shapes[shape] = inline_shape(shape, len(values))
        if cut is None:
            return inline_css(fill_escaped(shape, values))
        return cut.fill(values)
