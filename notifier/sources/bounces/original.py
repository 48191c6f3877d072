"""What ties a bounce to the message it bounces: that message's Message-ID, the VERP token.

The Message-ID comes from the returned message (a message/rfc822 or text/rfc822-headers
part) or, for bounces that quote the original as text, from a quoted header block — read
by the email parser, never by searching the text for something shaped like an id. The
VERP token comes from the address the bounce was sent to (`bounces+<token>@domain`).
"""

from __future__ import annotations

from email.message import Message
from email.utils import getaddresses

from notifier.core.feedback import normalize_message_id, token_from_verp
from notifier.sources.bounces.parts import parse_headers, returned_headers, text_bodies

# Where MTAs and mailbox servers record the address a message was delivered to.
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
# A quoted header block counts when the parser finds these alongside a Message-ID.
_ORIGINAL_HEADERS = ("From", "To", "Subject", "Date")
# Longer than any header block a bounce quotes; bounds the parsing of a large quoted body.
_BLOCK_LINES = 200


def original_message_id(message: Message) -> str | None:
    own = normalize_message_id(str(message.get("Message-ID", "")))
    returned = returned_headers(message)
    if returned is not None:
        found = normalize_message_id(str(returned.get("Message-ID", "")))
        if found is not None and found != own:
            return found
    for text in text_bodies(message):
        found = _quoted_message_id(text)
        if found is not None and found != own:
            return found
    return None


def _quoted_message_id(text: str) -> str | None:
    """The Message-ID of the first header block quoted in `text`: each paragraph is handed
    to the header parser, which reads the headers it starts with."""
    lines = text.replace("\r\n", "\n").split("\n")
    for start, line in enumerate(lines):
        if start and lines[start - 1].strip():
            continue  # a block starts a paragraph
        if not line.strip():
            continue
        headers = parse_headers("\n".join(lines[start : start + _BLOCK_LINES]))
        found = normalize_message_id(str(headers.get("Message-ID", "")))
        if found is not None and any(headers.get(name) for name in _ORIGINAL_HEADERS):
            return found
    return None


def verp_token_of(message: Message, bounce_address: str | None) -> str | None:
    """The token in the VERP address this bounce was delivered to, if there is one."""
    if not bounce_address:
        return None
    for name in _ENVELOPE_HEADERS:
        for _, address in getaddresses([str(v) for v in message.get_all(name, [])]):
            token = token_from_verp(bounce_address, address)
            if token is not None:
                return token
    return None
