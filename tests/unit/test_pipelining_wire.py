"""The pipelined transaction writes the bytes aiosmtplib's mail(), rcpt() and data() write."""

from __future__ import annotations

import pytest
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import example, given
from hypothesis import strategies as st

from notifier.transports.pipelining import dot_stuffed, envelope_commands, mailbox

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.!#$%&'*+/=?^_`{|}~-"
plain_addresses = st.builds(
    "{}@{}".format,
    st.text(ATEXT, min_size=1, max_size=20),
    st.text("abcxyzABC019.-", min_size=1, max_size=20),
)


def aiosmtplib_content(data: bytes) -> bytes:
    """What aiosmtplib's execute_data_command writes after DATA's 354."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"


@given(plain_addresses)
@example(".leading@example.com")
@example("a..b@example.com")
@example("o'brien+tag@sub.example.co.uk")
def test_a_plain_address_goes_as_quote_address_writes_it(address: str) -> None:
    """The cheap check lets through only addresses quote_address would leave as they are."""
    assert mailbox(address, "ascii") == quote_address(address).encode("ascii")


@pytest.mark.parametrize(
    ("address", "wire"),
    [
        ("Alice <alice@example.com>", b"<alice@example.com>"),
        ('"john doe"@example.com', b'<"john doe"@example.com>'),
        ("jürgen@bücher.example", "<jürgen@bücher.example>".encode()),
        ("a@example.com>\r\nRSET", b"<a@example.com>"),  # parseaddr keeps the address only
    ],
)
def test_any_other_address_goes_through_quote_address(address: str, wire: bytes) -> None:
    assert mailbox(address, "utf-8") == wire == quote_address(address).encode("utf-8")


@pytest.mark.parametrize("address", ["a b@example.com", "a\tb@example.com", "a\x00@x", "a\x7f@x"])
def test_an_address_that_cannot_go_on_a_command_line_is_refused(address: str) -> None:
    """Whitespace (quote_address's rule) or a control character (execute_command's)."""
    with pytest.raises(ValueError):
        mailbox(address, "ascii")


def test_the_envelope_is_the_command_lines_aiosmtplib_writes_one_after_another() -> None:
    commands = envelope_commands(
        b"<shop@example.com>",
        [b"<alice@example.com>", b"<bob@example.com>"],
        ["SIZE=1234", "BODY=8BITMIME"],
    )
    assert commands == (
        b"MAIL FROM:<shop@example.com> SIZE=1234 BODY=8BITMIME\r\n"
        b"RCPT TO:<alice@example.com>\r\n"
        b"RCPT TO:<bob@example.com>\r\n"
        b"DATA\r\n"
    )
    assert (
        envelope_commands(b"<a@x>", [b"<b@x>"], [])
        == b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n"
    )


@given(
    st.binary(max_size=200)
    | st.lists(st.sampled_from([b".", b"\r", b"\n", b"a", b"..", b"\r\n"])).map(b"".join)
)
@example(b"")
@example(b".\r\n")
@example(b"line\n.starts with a dot\r\n..two\rlone cr")
@example(b"already\r\ncanonical\r\n")  # the counted shortcut: nothing to substitute
@example(b".first\r\nline\r\n.and another\r\n")
@example(b"\r\n\r")
@example(b"\n\r")  # as many CRs as LFs, yet no CRLF
def test_the_content_is_dot_stuffed_as_aiosmtplib_does_it(data: bytes) -> None:
    assert dot_stuffed(data) == aiosmtplib_content(data)
