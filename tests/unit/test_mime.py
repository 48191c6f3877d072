"""The notice's wire form: what the SMTP server gets is the message everyone else reads."""

from __future__ import annotations

import binascii
import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.core import mime
from notifier.core.mime import WireMessage
from notifier.rendering.renderer import RenderedEmail, build_message

WHEN = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)


def build(**overrides: str) -> EmailMessage:
    rendered = RenderedEmail(
        subject=overrides.pop("subject", "Your order KN-1 has shipped — Grüße aus Köln"),
        text=overrides.pop("text", "Hi José,\n\nTracking: 1Z999AA10123456784\n" + "x" * 300 + "\n"),
        html=overrides.pop("html", "<p style='color: red'>Hi José = friend</p>" * 50),
    )
    values = {
        "sender": "Maple & Pine <orders@maple.example>",
        "recipient": "jose@example.com",
        "recipient_name": "José Núñez",
        "message_id": "<abc@maple.example>",
        "reply_to": "help@maple.example",
        **overrides,
    }
    return build_message(rendered, date=WHEN, **values)  # type: ignore[arg-type]


def test_wire_bytes_parse_back_to_the_same_message() -> None:
    """Headers and both parts read the same from the model and from the bytes sent."""
    message = build()
    assert isinstance(message, WireMessage)
    parsed = email.message_from_bytes(message.wire, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    for name in ("Subject", "From", "To", "Reply-To", "Date", "Message-ID", "Auto-Submitted"):
        assert str(parsed[name]) == str(message[name]), name
    assert parsed["Subject"] == "Your order KN-1 has shipped — Grüße aus Köln"
    assert parsed["To"].addresses[0].display_name == "José Núñez"
    for kind in ("plain", "html"):
        ours = message.get_body((kind,)).get_content()  # type: ignore[union-attr]
        theirs = parsed.get_body((kind,)).get_content()  # type: ignore[union-attr]
        assert theirs.replace("\r\n", "\n") == ours
    assert "Hi José = friend" in parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]


def test_wire_is_seven_bit_crlf_with_short_lines() -> None:
    """ASCII only, CRLF line ends, no line over 78 characters: any server takes it."""
    wire = build().wire  # type: ignore[attr-defined]
    assert wire.isascii()
    lines = wire.split(b"\r\n")
    assert b"\n" not in b"".join(lines)
    assert max(len(line) for line in lines) <= 78
    assert wire.endswith(b"--\r\n")


def test_same_notice_same_bytes() -> None:
    """A resend after a crash carries the very same message (boundary from the Message-ID)."""
    assert build().wire == build().wire  # type: ignore[attr-defined]
    assert build().wire != build(message_id="<other@maple.example>").wire  # type: ignore[attr-defined]


def test_envelope_comes_with_the_message() -> None:
    """The transport needs no header parsing to address it."""
    message = build()
    assert isinstance(message, WireMessage)
    assert (message.envelope_from, message.envelope_to) == (
        "orders@maple.example",
        ("jose@example.com",),
    )


def test_internationalised_address_takes_the_stdlib_path() -> None:
    """A non-ASCII address needs SMTPUTF8 headers, which only the stdlib generator writes."""
    message = build(recipient="josé@exämple.com")
    assert not isinstance(message, WireMessage)
    assert message["To"].addresses[0].addr_spec == "josé@exämple.com"


def test_header_values_cannot_carry_line_breaks() -> None:
    """A configured sender with a line break is refused, never written."""
    with pytest.raises(ValueError, match="CR or LF"):
        build(sender="Shop <o@example.com>\r\nBcc: all@example.com")


@pytest.mark.parametrize(
    "subject",
    [
        "Your order KN-1 has shipped",  # short ASCII: written as it is
        "Your order KN-1 has shipped " + "and is on its way to you " * 4,  # long: folded
        "Not an encoded word: =?utf-8?q?Gr=C3=BC=C3=9Fe?=",  # must stay literal text
    ],
)
def test_subjects_read_back_exactly_and_stay_within_line_limits(subject: str) -> None:
    wire = build(subject=subject).wire  # type: ignore[attr-defined]
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    assert parsed["Subject"] == subject
    assert max(len(line) for line in wire.split(b"\r\n")) <= 78


def test_short_ascii_text_goes_unencoded_and_anything_else_quoted_printable() -> None:
    message = build(text="Hi Jane,\n\nYour parcel is on its way.\n", html="<p>Grüße</p>")
    wire = message.wire  # type: ignore[attr-defined]
    assert b"Content-Transfer-Encoding: 7bit\r\n\r\nHi Jane,\r\n\r\nYour parcel" in wire
    assert b"Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>Gr=C3=BC=C3=9Fe</p>" in wire
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.replace("\r\n", "\n") == "Hi Jane,\n\nYour parcel is on its way.\n"


def test_a_body_holding_the_boundary_is_quoted_printable_so_it_cannot_end_a_part() -> None:
    first = build(text="plain\n")
    boundary = first.get_boundary()
    assert boundary is not None
    forged = f"plain\n--{boundary}--\nContent-Type: text/html\n\n<script>x</script>\n"
    message = build(text=forged)
    parsed = email.message_from_bytes(message.wire, policy=email.policy.default)  # type: ignore[attr-defined]
    parts = list(parsed.iter_parts())
    assert len(parts) == 2
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == forged  # type: ignore[union-attr]


# Text that exercises every quoted-printable rule: "=", a lone ".", spaces and tabs at a
# line's end, control and non-ASCII characters, CRs, and lines long enough to be broken.
QP_TEXT = st.lists(
    st.sampled_from(["a", "=", ".", " ", "\t", "\n", "\r", "\r\n", "\x00", "é", "漢", "b" * 40]),
    max_size=120,
).map("".join)


@settings(max_examples=400)
@given(texts=st.lists(QP_TEXT, min_size=1, max_size=4))
def test_quoted_printable_is_binascii_encoding_the_whole_body(texts: list[str]) -> None:
    """Encoded line by line (and from kept lines, the second time), a body is byte for
    byte what binascii writes encoding it whole, as every message was encoded before."""
    for text in [*texts, *texts]:
        body = text.replace("\r\n", "\n").replace("\r", "\n")
        body += "" if body.endswith("\n") else "\n"
        whole = binascii.b2a_qp(body.encode("utf-8"), quotetabs=False, istext=True)
        assert mime._quoted_printable(body) == whole.decode("ascii")


def test_a_long_html_line_is_encoded_as_before_in_a_message() -> None:
    html = '<p style="font-size: 15px; line-height: 1.6; margin: 0 0 16px 0;">Hi = José</p>' * 3
    for _ in range(2):  # the second time from the kept lines
        wire = build(html=html).wire  # type: ignore[attr-defined]
        body = html + "\n"
        whole = binascii.b2a_qp(body.encode("utf-8"), quotetabs=False, istext=True)
        assert whole.decode("ascii").replace("\n", "\r\n").encode() in wire


@given(
    text=st.lists(st.sampled_from(["a", "\n", "b" * 38, "c" * 76, "\r"]), max_size=12).map("".join)
)
def test_a_long_line_is_found_wherever_it_is(text: str) -> None:
    assert mime.has_long_line(text) == any(len(line) > 76 for line in text.split("\n"))
