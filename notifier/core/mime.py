"""The wire form of a notice's email, written directly: multipart/alternative, text + HTML.

The stdlib's EmailMessage parses every header it is given and re-generates the whole
message when it is sent; together that was most of the CPU a delivery cost
(bench/delivery.py). A notice's message has a fixed shape, so we write its bytes once,
ASCII-only (RFC 2047 for non-ASCII names and subjects, quoted-printable bodies): valid for
every SMTP server, with or without 8BITMIME. Internationalised (non-ASCII) addresses need
SMTPUTF8 headers, which only the stdlib generator writes: `write_message` hands those to
it, with the same header list (`_notice_headers`), so there is one writer of a notice.
"""

from __future__ import annotations

import binascii
import copy
import email.policy
import functools
import hashlib
import re
from email.header import Header
from email.message import EmailMessage, Message
from email.policy import Policy
from email.utils import formataddr, parseaddr


class WireMessage(EmailMessage):
    """An EmailMessage that also carries the exact bytes to send (`wire`) and its
    envelope, so sending it parses no header."""

    wire: bytes = b""
    envelope_from: str = ""
    envelope_to: tuple[str, ...] = ()


def wire_bytes(message: EmailMessage) -> bytes:
    """The bytes a transport sends for `message`: its wire form when composed here, else
    as the stdlib writes it for SMTP (SMTPUTF8 where an address is not ASCII)."""
    if isinstance(message, WireMessage) and message.wire and "Bcc" not in message:
        return message.wire
    outgoing = copy.copy(message)
    del outgoing["Bcc"]  # in the envelope only, as transports send it
    ascii_only = all(str(v).isascii() for v in outgoing.values())
    return outgoing.as_bytes(policy=email.policy.SMTP if ascii_only else email.policy.SMTPUTF8)


# Lines this long or shorter go unencoded; QP writes at most 76 either way.
_LONG_LINE_AFTER_THE_FIRST = re.compile(r"\n[^\n]{77}")
# Quoted-printable lines already encoded, by their text (see _quoted_printable).
_QP_LINES: dict[str, str] = {}
_QP_LINES_KEPT = 4096


def mailbox(name: str | None, address: str) -> str:
    """`"Name" <address>` with the name RFC 2047-encoded when it is not ASCII.

    Raises UnicodeError for a non-ASCII address (that needs SMTPUTF8)."""
    if not address.isascii():
        raise UnicodeError(f"non-ASCII address {address!r} needs SMTPUTF8 headers")
    return formataddr((name or "", address), charset="utf-8")


@functools.lru_cache(maxsize=256)
def address_header(value: str) -> str:
    """A configured `Name <address>` (or bare address), encoded like `mailbox`."""
    name, address = parseaddr(value)
    if not address:
        raise ValueError(f"not an email address: {value!r}")
    return mailbox(name, address)


@functools.lru_cache(maxsize=256)
def envelope_address(value: str) -> str:
    """The bare address of a configured `Name <address>` (a sender is one of a few: cached,
    as parsing it cost more per message than writing the message's headers)."""
    return parseaddr(value)[1]


def _unstructured(name: str, value: str) -> str:
    # Nearly every subject is short ASCII: written as it is. The stdlib's Header, needed to
    # fold a long line or encode non-ASCII (or a lookalike "=?" encoded word), cost more
    # than the rest of the headers together (bench/delivery.py).
    plain = value.isascii() and "=?" not in value
    if plain and len(name) + 2 + len(value) <= 78:
        return value
    # Text that looks like an encoded word is encoded itself, so readers show it literally.
    charset = "us-ascii" if plain else "utf-8"
    return Header(value, charset, header_name=name).encode(linesep="\r\n")


def has_long_line(text: str) -> bool:
    """Whether a line of `text` is longer than 76 characters. Searched from each line
    break (a literal the regex engine scans for fast), not counted from every position."""
    first = text.find("\n")
    if first > 76 or (first < 0 and len(text) > 76):
        return True
    return _LONG_LINE_AFTER_THE_FIRST.search(text) is not None


def _body(text: str, boundary: str) -> tuple[str, str]:
    """A body's transfer encoding and its encoded text (LF line ends, ending in one).

    Plain ASCII with short lines goes as it is (7bit), readable in any raw view and no
    work to write, unless it holds the boundary; anything else is quoted-printable, which
    keeps lines short and 7-bit and never writes the boundary (it escapes every "=")."""
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    if body.isascii() and not has_long_line(body) and boundary not in body:
        return "7bit", body
    return "quoted-printable", _quoted_printable(body)


def _quoted_printable(body: str) -> str:
    """binascii's quoted-printable of `body` (LF line ends, no CR, ending in a line break).

    binascii's encoder (C) soft-breaks lines at 76 and escapes every "=", but it took an
    eighth of composing a message (bench/delivery.py). Without a CR nothing it decides
    depends on another line, so each line is encoded on its own, and most lines of an
    inlined HTML part (the layout's, with their long style attributes) are the same in
    every message: those are encoded once and kept.
    """
    kept = _QP_LINES
    encoded = []
    for line in body[:-1].split("\n"):
        done = kept.get(line)
        if done is None:
            if len(kept) >= _QP_LINES_KEPT:
                kept.clear()  # lines holding customers' values: start again, rarely
            raw = f"{line}\n".encode()
            done = kept[line] = binascii.b2a_qp(raw, quotetabs=False, istext=True).decode("ascii")
        encoded.append(done)
    return "".join(encoded)


def _display_mailbox(name: str, address: str) -> str:
    """`Name <address>`; formataddr quotes the name but refuses non-ASCII (SMTPUTF8) addresses."""
    shown = formataddr((name, "x@x"))[: -len(" <x@x>")]
    return f"{shown} <{address}>"


def _notice_headers(
    *,
    subject: str,
    sender: str,
    recipient: str,
    recipient_name: str | None,
    reply_to: str | None,
    date: str,
    message_id: str,
    encoded: bool,
) -> list[tuple[str, str]]:
    """A notice's own headers, in order: RFC 2047-encoded for the wire (`encoded`, raises
    UnicodeError for an EAI address), or as given for the stdlib to encode (SMTPUTF8)."""
    if encoded:
        shown_subject = _unstructured("Subject", subject)
        shown_from = address_header(sender)
        shown_to = mailbox(recipient_name, recipient)
        shown_reply_to = address_header(reply_to) if reply_to else None
    else:
        shown_subject, shown_from, shown_reply_to = subject, sender, reply_to
        shown_to = _display_mailbox(recipient_name, recipient) if recipient_name else recipient
    headers = [("Subject", shown_subject), ("From", shown_from), ("To", shown_to)]
    if shown_reply_to:
        headers.append(("Reply-To", shown_reply_to))
    headers += [
        ("Date", date),
        ("Message-ID", message_id),
        # RFC 3834: tells vacation responders not to answer us.
        ("Auto-Submitted", "auto-generated"),
    ]
    return headers


def write_message(
    *,
    subject: str,
    sender: str,
    recipient: str,
    recipient_name: str | None,
    reply_to: str | None,
    date: str,
    message_id: str,
    text: str,
    html: str,
    policy: Policy,
    envelope_from: str | None = None,
) -> EmailMessage:
    """A text + HTML notice: a WireMessage with its RFC 5322 bytes, or for an
    internationalised (EAI) address a stdlib message, which writes SMTPUTF8 headers.

    The wire message model is built with `set_raw`, so no header is parsed until someone
    reads it; the bytes are what the SMTP transport sends. `envelope_from` is the SMTP
    envelope sender (MAIL FROM) when it is not the From address: the notice's VERP bounce
    address, where bounces come back to, never shown to the customer."""
    values = (subject, sender, recipient, recipient_name or "", reply_to or "", message_id)
    for value in (*values, envelope_from or ""):
        if "\r" in value or "\n" in value:
            raise ValueError(f"a header value contains CR or LF: {value!r}")
    headers_of = functools.partial(
        _notice_headers,
        subject=subject,
        sender=sender,
        recipient=recipient,
        recipient_name=recipient_name,
        reply_to=reply_to,
        date=date,
        message_id=message_id,
    )
    try:
        headers = headers_of(encoded=True)
    except UnicodeError:
        message = (
            EmailMessage(policy=policy) if envelope_from is None else WireMessage(policy=policy)
        )
        if isinstance(message, WireMessage):
            # No wire bytes (the stdlib writes SMTPUTF8 headers), but the envelope is ours.
            message.envelope_from, message.envelope_to = envelope_from or "", (recipient,)
        for name, value in headers_of(encoded=False):
            message[name] = value
        message.set_content(text)
        # base64: encoded in C, unlike quoted-printable, and safe for the long lines CSS
        # inlining makes.
        message.add_alternative(html, subtype="html", cte="base64")
        return message
    # Neither body can hold this boundary (see _body); it is derived from the Message-ID so
    # a resend carries the very same bytes.
    boundary = "=_notifier_" + hashlib.sha256(message_id.encode()).hexdigest()[:24]
    headers += [
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative;\r\n boundary="{boundary}"'),  # folded: < 78
    ]
    message = WireMessage(policy=policy)
    lines = []
    for name, value in headers:
        message.set_raw(name, value)
        lines.append(f"{name}: {value}")
    lines.append("")
    parts: list[Message[str, str] | str] = []
    for subtype, body in (("plain", text), ("html", html)):
        part = EmailMessage(policy=policy)
        encoding, encoded = _body(body, boundary)
        part_headers = [
            ("Content-Type", f'text/{subtype}; charset="utf-8"'),
            ("Content-Transfer-Encoding", encoding),
        ]
        for name, value in part_headers:
            part.set_raw(name, value)
        part.set_payload(encoded)
        parts.append(part)
        lines += [f"--{boundary}", *(f"{n}: {v}" for n, v in part_headers), ""]
        # The body keeps its last line break: the CRLF before a boundary belongs to the boundary.
        lines.append(encoded.replace("\n", "\r\n"))
    lines += [f"--{boundary}--", ""]
    message.set_payload(parts)
    message.wire = "\r\n".join(lines).encode("ascii")
    message.envelope_from = envelope_from or envelope_address(sender)
    message.envelope_to = (recipient,)
    return message
