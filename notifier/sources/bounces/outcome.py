"""What one reading of a bounce message found about one recipient, before it becomes an event."""

from __future__ import annotations

from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header

from notifier.core.feedback import FeedbackKind


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recipient's fate as a report (DSN, ARF) or a detector tells it."""

    recipient: str | None  # None where the report does not say (or hides) whom it is about
    kind: FeedbackKind
    diagnostic: str = ""


def bare_address(value: str | None) -> str | None:
    """`user@domain` from the forms reports write (`<user@domain>`, with spaces), else None."""
    if not value:
        return None
    address = value.strip().strip("<>").strip()
    if "@" not in address or any(c.isspace() for c in address):
        return None
    return address


def unfolded(value: object) -> str:
    """A header's value on one line: reports fold long diagnostics over several."""
    return " ".join(str(value).split())


def readable(value: object) -> str:
    """A header as a person reads it: RFC 2047 words decoded (`=?UTF-8?Q?...?=`), one line."""
    text = unfolded(value)
    try:
        return unfolded(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, UnicodeError):
        return text
