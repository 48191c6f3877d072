"""One SMTP transaction's wire work with PIPELINING (RFC 2920): the envelope in one write.

Without it a message costs four round trips (MAIL, RCPT, DATA, the content); with it,
two: MAIL FROM, every RCPT TO and DATA go out together and their replies are read in
order, then the content goes and its reply is read. What the replies mean, and so whether
the content may go at all, is decided by the caller (``SmtpTransport``): this module
only writes commands and reads replies, and raises nothing of its own.

The bytes on the wire are the ones aiosmtplib writes for ``mail()``, ``rcpt()`` and
``data()``: the same command lines, the same dot-stuffed content. Only when they are
written changes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import aiosmtplib
from aiosmtplib import SMTPResponse
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import MAX_RESPONSE_LENGTH, SMTPProtocol

READY_FOR_DATA = 354
CLOSING = 421  # "service not available, closing the channel"

# An address parseaddr() returns unchanged (an ASCII dot-atom local part, a plain domain),
# so quote_address() would only put it in angle brackets: checked without parsing it
# (~0.7 µs, where quote_address takes ~17). Anything else goes through quote_address.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")
# aiosmtplib's rule for command arguments: no C0 control character (CR and LF above all).
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
# aiosmtplib's rules for the content (protocol.execute_data_command): lone CR and LF become
# CRLF, the content ends in CRLF, a line that starts with "." gets another in front.
_LINE_ENDING = re.compile(rb"(?:\r\n|\n|\r(?!\n))")
_LEADING_PERIOD = re.compile(rb"(?m)^\.")
_END_OF_DATA = b".\r\n"


@dataclass(frozen=True, slots=True)
class EnvelopeReplies:
    """The replies to MAIL, to each RCPT and to DATA, as far as they could be read.

    ``lost`` is why the rest could not be read (the connection was gone before anything
    went out, closed before all were read, or a reply timed out); the client is closed
    then, since a late reply would be taken for the answer to the next command.
    """

    mail: SMTPResponse | None
    recipients: tuple[SMTPResponse, ...]
    data: SMTPResponse | None
    lost: Exception | None


def mailbox(address: str, encoding: str) -> bytes:
    """``<address>`` as aiosmtplib's mail() and rcpt() write it; ValueError if it cannot go."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>".encode("ascii")
    quoted = quote_address(address).encode(encoding)
    if _CONTROL.search(quoted):
        raise ValueError("Command arg contains a prohibited control character")
    return quoted


def envelope_commands(mail_from: bytes, rcpt_to: Sequence[bytes], options: Iterable[str]) -> bytes:
    """MAIL FROM, one RCPT TO per recipient and DATA (the mailboxes from :func:`mailbox`)."""
    mail = b" ".join([b"MAIL FROM:" + mail_from, *(option.encode("ascii") for option in options)])
    lines = [mail, *(b"RCPT TO:" + recipient for recipient in rcpt_to), b"DATA\r\n"]
    return b"\r\n".join(lines)


def dot_stuffed(data: bytes) -> bytes:
    """The message content as it goes after DATA's 354, terminator included.

    Composed messages already end every line with CRLF and seldom start one with a period:
    counting in C finds that out faster than the substitutions would copy the unchanged
    bytes (each made a match per line, a twentieth of a delivery's CPU). Every CR and every
    LF is part of a CRLF exactly when the three counts agree."""
    if not data.count(b"\r\n") == data.count(b"\r") == data.count(b"\n"):
        data = _LINE_ENDING.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_PERIOD.sub(b"..", data)
    return data + _END_OF_DATA


async def send_envelope(
    client: aiosmtplib.SMTP, commands: bytes, recipients: int
) -> EnvelopeReplies:
    """Write ``commands`` (from :func:`envelope_commands`) at once and read every reply."""
    protocol = client.protocol
    try:
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        protocol.write(commands)
    except aiosmtplib.SMTPServerDisconnected as exc:
        client.close()
        return EnvelopeReplies(None, (), None, exc)
    return await read_envelope(client, recipients)


async def read_envelope(client: aiosmtplib.SMTP, recipients: int) -> EnvelopeReplies:
    """The replies to an envelope already written: by send_envelope, or chained after the
    content of the message before it on this connection (SmtpTransport)."""
    protocol = client.protocol
    if protocol is None:
        client.close()
        return EnvelopeReplies(
            None, (), None, aiosmtplib.SMTPServerDisconnected("Server not connected")
        )
    mail: SMTPResponse | None = None
    accepted: list[SMTPResponse] = []
    try:
        mail = await read_reply(client, protocol)
        for _ in range(recipients):
            accepted.append(await read_reply(client, protocol))
        data = await read_reply(client, protocol)
    except (aiosmtplib.SMTPException, OSError) as exc:
        client.close()
        return EnvelopeReplies(mail, tuple(accepted), None, exc)
    replies = EnvelopeReplies(mail, tuple(accepted), data, None)
    if any(reply.code == CLOSING for reply in (mail, *accepted, data)):
        client.close()  # the server is going away (aiosmtplib's own rule for 421)
    return replies


def keep_replies(client: aiosmtplib.SMTP) -> None:
    """Make the connection keep every reply that arrives, to be read in order.

    aiosmtplib's protocol drops data that arrives while no command waits for a reply (or
    one waits with its reply already parsed), so that it cannot be read as the next
    command's. Here replies to commands already written arrive at such times: a chained
    envelope's, while the send before it returns and the next takes the connection over,
    and a pipelined envelope's second and third, when they come in separate packets. Kept,
    they are read in the order the commands went (read_reply looks in the buffer first).
    Anything a server says out of turn is then read as the next reply; the one thing a
    server may say so, 421 before it closes, means the same either way.
    """
    protocol = client.protocol
    if protocol is None:
        return

    def data_received(data: bytes) -> None:
        if protocol._response_waiter is None:
            return  # the connection is gone: nothing to deliver the data to
        protocol._buffer.extend(data)
        if len(protocol._buffer) > MAX_RESPONSE_LENGTH:  # as aiosmtplib's own protocol
            del protocol._buffer[:]
            if not protocol._response_waiter.done():
                protocol._set_response_exception(
                    protocol._response_waiter,
                    aiosmtplib.SMTPResponseException(500, "Response too long"),
                )
            return
        if not protocol._response_pending or protocol._response_waiter.done():
            return  # kept in the buffer for the read that follows
        try:
            response = protocol._read_response_from_buffer()
        except Exception as exc:
            protocol._set_response_exception(protocol._response_waiter, exc)
        else:
            if response is not None:
                protocol._response_waiter.set_result(response)

    protocol.data_received = data_received  # type: ignore[method-assign]


async def send_content(client: aiosmtplib.SMTP, data: bytes, *, then: bytes = b"") -> SMTPResponse:
    """After DATA's 354: write the dot-stuffed content (and `then`, the next transaction's
    envelope commands, in the same write) and read the server's verdict on the content."""
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    try:
        protocol.write(dot_stuffed(data) + then)
        return await read_reply(client, protocol)
    except BaseException:
        client.close()
        raise


async def read_reply(client: aiosmtplib.SMTP, protocol: SMTPProtocol) -> SMTPResponse:
    """The next reply, in the order the commands went, within the client's timeout.

    aiosmtplib's protocol parses one reply per arrival of data and keeps what follows in
    its buffer, where it would wait for more data that never comes: several pipelined
    replies often arrive together, so the buffer is read first (and what arrives while
    nothing reads is kept there: keep_replies). read_response() itself runs without its
    timeout (the connection's ReplyClock keeps it): its own wait_for would add a hop
    through the event loop between the reply's arrival and this task's waking.
    """
    buffered = protocol._read_response_from_buffer()
    if buffered is not None:
        return buffered
    clock = ReplyClock.of(client)
    clock.waiting()
    try:
        return await protocol.read_response(timeout=None)
    except aiosmtplib.SMTPServerDisconnected as exc:
        if clock.expired:
            raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response") from exc
        raise
    finally:
        clock.answered()


class ReplyClock:
    """A connection's timeout on the reply it waits for, kept by one timer a connection.

    An asyncio.timeout() around each read made and cancelled a timer for every reply it
    waited for, about three a message at ~4 µs each (bench/delivery.py: 474-481 µs of CPU a
    message before, 461-470 after; the rate, bound by the sink there, did not move). A read
    only notes its deadline; the timer is armed when none is, and when it fires it either
    finds nothing waiting (and stops), or the deadline passed (the connection is closed,
    and the read raises SMTPReadTimeoutError), or a later read's deadline to wait for.
    A late reply cannot be read as the next command's: the connection is gone.
    """

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self._client = client
        self._loop = asyncio.get_running_loop()
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.expired = False

    @classmethod
    def of(cls, client: aiosmtplib.SMTP) -> ReplyClock:
        """The clock of this connection (made at its first read)."""
        clock = _CLOCKS.get(client)
        if clock is None:
            clock = _CLOCKS[client] = cls(client)
        return clock

    def waiting(self) -> None:
        """A read begins: its reply is due within the client's timeout."""
        if self._client.timeout is None:
            return
        self._deadline = self._loop.time() + self._client.timeout
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._check)

    def answered(self) -> None:
        """The read ended (with its reply or an error): nothing is waiting now."""
        self._deadline = None

    def _check(self) -> None:
        self._timer = None
        if self._deadline is None:
            return  # idle: the next read arms the timer again
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._check)
            return
        self.expired = True
        self._client.close()  # the waiting read raises SMTPServerDisconnected


_CLOCKS: WeakKeyDictionary[aiosmtplib.SMTP, ReplyClock] = WeakKeyDictionary()
