"""Finding the parts of a report: its machine-readable blocks and the returned message.

Only the email parser reads them (no pattern matching over text): a report part's fields
are headers, and the returned message is a message, or its headers alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import Message
from email.parser import HeaderParser

_HEADER_PARSER = HeaderParser()


def report_parts(message: Message, *content_types: str) -> Iterator[Message]:
    """The parts of the given types, in order, not looking inside returned messages (their
    parts are the original's, not the report's)."""
    stack = [message]
    while stack:
        part = stack.pop(0)
        if part.get_content_type() in content_types:
            yield part
            continue
        if part.get_content_maintype() == "message":
            continue
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            stack[:0] = [p for p in payload if isinstance(p, Message)]


def field_blocks(part: Message) -> list[Message]:
    """A report part's blocks of fields (RFC 3464 §2.1: per-message, then per-recipient).

    The parser splits message/delivery-status into blocks itself; other report types
    (message/feedback-report) arrive as one message, and a part some sender labelled as
    text arrives as text: both are split at blank lines here."""
    payload = part.get_payload()
    if isinstance(payload, str):
        return _text_blocks(decoded_text(part))
    if not isinstance(payload, list):
        return []
    blocks = [p for p in payload if isinstance(p, Message)]
    if len(blocks) == 1 and isinstance(rest := blocks[0].get_payload(), str) and rest.strip():
        return [blocks[0], *_text_blocks(rest)]
    return blocks


def _text_blocks(text: str) -> list[Message]:
    chunks = text.replace("\r\n", "\n").split("\n\n")
    return [_HEADER_PARSER.parsestr(chunk.strip("\n")) for chunk in chunks if chunk.strip()]


def returned_headers(message: Message) -> Message | None:
    """The headers of the message the report returns: a message/rfc822 part or a
    text/rfc822-headers part (RFC 6522), whichever comes first."""
    for part in report_parts(message, "message/rfc822", "text/rfc822-headers"):
        payload = part.get_payload()
        if part.get_content_type() == "message/rfc822" and isinstance(payload, list):
            if payload and isinstance(payload[0], Message):
                return payload[0]
            continue
        text = decoded_text(part).lstrip()
        if text:
            return _HEADER_PARSER.parsestr(text)
    return None


def text_bodies(message: Message) -> Iterator[str]:
    """The decoded text of every text/plain part outside returned messages."""
    for part in report_parts(message, "text/plain"):
        yield decoded_text(part)


def decoded_text(part: Message) -> str:
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "us-ascii"
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know: what matters here is ASCII
        return raw.decode("ascii", errors="replace")


def parse_headers(text: str) -> Message:
    """`text` read as a header block (what follows the first blank line is its body)."""
    return _HEADER_PARSER.parsestr(text)
