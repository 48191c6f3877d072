"""A notice's email as the console shows it: headers, text part, HTML part.

From the exact bytes kept when it was sent, when a copy is kept; otherwise re-rendered
from today's rules and templates (and said so: templates may have changed since, and the
order may have moved on), the way delivery would render it now.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser

from notifier.core.models import Notice
from notifier.engine import Engine
from notifier.engine.rerender import CannotRerender, rerender

__all__ = ["ShownEmail", "from_bytes", "re_rendered"]

# Headers an operator checks first, in this order; the rest follow as they come.
_FIRST = ("Subject", "From", "To", "Reply-To", "Date", "Message-ID")


@dataclass(frozen=True, slots=True)
class ShownEmail:
    headers: tuple[tuple[str, str], ...]
    text: str | None
    html: str | None
    kept: bool  # the exact bytes as sent; False: rendered now from today's templates
    note: str | None = None  # why it could not be shown, or what to bear in mind


def from_bytes(raw: bytes) -> ShownEmail:
    """The email parsed from the bytes handed to the transport."""
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return _shown(message, kept=True)


def re_rendered(engine: Engine, notice: Notice) -> ShownEmail:
    """The notice rendered now, as delivery would: today's templates, the order as known now."""
    try:
        return _shown(rerender(engine, notice), kept=False)
    except CannotRerender as exc:
        return _missing(str(exc))


def _missing(why: str) -> ShownEmail:
    return ShownEmail(headers=(), text=None, html=None, kept=False, note=f"Not shown: {why}.")


def _shown(message: EmailMessage, *, kept: bool) -> ShownEmail:
    present = [(name, str(value)) for name, value in message.items()]
    first = [(n, v) for wanted in _FIRST for n, v in present if n.lower() == wanted.lower()]
    rest = [(n, v) for n, v in present if n.lower() not in {w.lower() for w in _FIRST}]
    return ShownEmail(
        headers=tuple(first + rest),
        text=_part(message, "plain"),
        html=_part(message, "html"),
        kept=kept,
    )


def _part(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None
