"""SMTP PIPELINING (RFC 2920) against real servers: the envelope and DATA in one write.

What must hold: the server gets the same bytes as without pipelining, only sooner; the
send mark (before_data) still comes after the server accepted the envelope and before
any of the content; and a refused envelope, a failed mark or a server that says 354 when
it should not never lets a message out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from email.message import EmailMessage

import pytest
from support.ledger import engine_on, tracking_records
from support.smtp_sink import SmtpSink, Stage
from support.waiting import wait_until

from notifier.core.models import NoticeStatus
from notifier.errors import (
    AmbiguousSendError,
    PermanentSendError,
    SendError,
    TransientSendError,
)
from notifier.store.base import Completion
from notifier.store.sql import SqlStore
from notifier.transports.smtp import SmtpTransport

SENDER = "shop@example.com"


def message(*recipients: str, subject: str = "Your order has shipped") -> EmailMessage:
    built = EmailMessage()
    built["From"] = f"Shop <{SENDER}>"
    built["To"] = ", ".join(recipients or ("alice@example.com",))
    built["Subject"] = subject
    built["Date"] = "Wed, 02 Dec 2026 10:00:00 +0000"
    built["Message-ID"] = f"<{subject.replace(' ', '-')}@notifier.test>"
    # Lines that start with a dot are where the content's dot-stuffing shows.
    built.set_content("Tracking: 1Z999AA10123456784\n.a line that starts with a dot\n..two\n")
    built.add_alternative("<p>Tracking: <b>1Z999AA10123456784</b></p>\n", subtype="html")
    built.set_boundary("==boundary==")  # else drawn at random each time it is written
    return built


def smtp(host: str, port: int) -> SmtpTransport:
    return SmtpTransport(hostname=host, port=port, timeout=5)


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def either_sink(request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    with SmtpSink(pipelining=request.param) as sink:
        yield sink


def send_all(sink: SmtpSink, *messages: EmailMessage) -> None:
    async def main() -> None:
        async with smtp(sink.host, sink.port) as transport:
            for each in messages:
                await transport.send(each)

    asyncio.run(main())


def read_with(sink: SmtpSink, command: bytes) -> bytes:
    """The one chunk the sink read that holds `command`."""
    [chunk] = [chunk for chunk in sink.reads if command in chunk]
    return chunk


def content_before_the_second_envelope(reads: list[bytes]) -> bool:
    """Whether any of a message's content reached the server before the second MAIL."""
    second = [n for n, chunk in enumerate(reads) if b"MAIL FROM:" in chunk][1]
    return any(b"Tracking:" in chunk for chunk in reads[:second])


# --- what goes on the wire ---------------------------------------------------------------


def test_the_envelope_and_data_go_in_one_write(either_sink: SmtpSink) -> None:
    """Pipelined, the server reads MAIL, both RCPTs and DATA at once, before it answered
    any of them; without PIPELINING offered, MAIL comes alone (the client waits for it)."""
    send_all(either_sink, message("alice@example.com", "bob@example.com"))

    chunk = read_with(either_sink, b"MAIL FROM:")
    size = len(either_sink.deliveries[0].data)
    mail = f"MAIL FROM:<{SENDER}> SIZE={size} BODY=8BITMIME\r\n".encode()
    if either_sink.pipelining:
        assert chunk == (
            mail + b"RCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
        )
    else:
        assert chunk == mail
    assert len(either_sink.deliveries) == 1


def test_the_server_receives_the_same_bytes_either_way() -> None:
    """Every byte the server reads over the whole session (EHLO to QUIT, the content
    dot-stuffed) is the same with and without pipelining; only the chunks differ."""
    sessions = []
    for pipelining in (True, False):
        with SmtpSink(pipelining=pipelining) as sink:
            send_all(sink, message("alice@example.com", "bob@example.com"), message())
            assert wait_until(lambda sink=sink: sink.quits == 1, timeout=5)
            sessions.append((b"".join(sink.reads), [d.data for d in sink.deliveries]))
    (pipelined, pipelined_data), (one_by_one, one_by_one_data) = sessions
    assert pipelined == one_by_one
    assert pipelined_data == one_by_one_data and len(pipelined_data) == 2
    assert b"\r\n..a line that starts with a dot\r\n...two\r\n" in pipelined


# --- refusals ----------------------------------------------------------------------------


def refusal_seen(
    sink: SmtpSink, reply: str, stage: Stage, recipients: tuple[str, ...], refused: str | None
) -> tuple[type[SendError], str, int | None, float | None, bool]:
    """The error one refused send raises; then the next send on the same connection."""
    sink.reply_with(reply, stage=stage, recipient=refused)

    async def main() -> SendError:
        async with smtp(sink.host, sink.port) as transport:
            with pytest.raises(SendError) as info:
                await transport.send(message(*recipients, subject="refused"))
            await transport.send(message(subject="next"))
        return info.value

    error = asyncio.run(main())
    return type(error), str(error), error.code, error.retry_after, error.recipient_refused


@pytest.mark.parametrize(
    ("reply", "stage", "recipients", "refused", "expected"),
    [
        ("553 5.7.1 sender not allowed", "mail", (), None, PermanentSendError),
        ("451 4.3.0 busy, try again in 30 seconds", "mail", (), None, TransientSendError),
        ("550 5.1.1 no such user", "rcpt", (), None, PermanentSendError),
        ("450 4.2.1 mailbox busy", "rcpt", (), None, TransientSendError),
        # Both refused, for good and for now: the permanent refusal wins.
        (
            "550 5.1.1 no such user",
            "rcpt",
            ("carol@example.com", "dave@example.com"),
            "dave@example.com",
            PermanentSendError,
        ),
    ],
)
def test_a_refused_envelope_fails_as_without_pipelining_and_the_connection_is_reused(
    reply: str,
    stage: Stage,
    recipients: tuple[str, ...],
    refused: str | None,
    expected: type[SendError],
) -> None:
    """MAIL or RCPT refused: the same error as when each reply is awaited in turn, nothing
    delivered, and the connection (reset with RSET) carries the next message."""
    seen = []
    for pipelining in (True, False):
        with SmtpSink(pipelining=pipelining) as sink:
            if len(recipients) > 1:
                sink.reply_with("450 4.2.1 mailbox busy", stage="rcpt", recipient=recipients[0])
            seen.append(refusal_seen(sink, reply, stage, recipients, refused))
            assert [m["Subject"] for m in sink.messages] == ["next"]
            assert sink.connections_opened == 1
            assert sink.data_begun == 1
    pipelined, one_by_one = seen
    assert pipelined == one_by_one
    assert pipelined[0] is expected
    if len(recipients) > 1:
        assert "dave@example.com" in pipelined[1] and "also refused: <carol" in pipelined[1]


def test_a_server_that_answers_354_after_a_refused_recipient_gets_no_content() -> None:
    """aiosmtpd answers DATA with 354 when any recipient was accepted: the client, having
    seen the refusal, closes the connection instead of sending the content, so the
    accepted recipient gets nothing either (a retry must not find it delivered)."""
    with SmtpSink() as sink:
        sink.reply_with("550 5.1.1 no such user", recipient="gone@example.com")

        async def main() -> PermanentSendError:
            async with smtp(sink.host, sink.port) as transport:
                with pytest.raises(PermanentSendError) as info:
                    await transport.send(message("alice@example.com", "gone@example.com"))
                await transport.send(message(subject="next"))
            return info.value

        error = asyncio.run(main())
        assert "gone@example.com" in str(error) and error.recipient_refused
        assert [m["Subject"] for m in sink.messages] == ["next"]
        assert sink.connections_opened == 2  # the first was closed inside its DATA
        assert sink.data_begun == 1  # aiosmtpd's DATA hook runs once the content is in
        assert not content_before_the_second_envelope(sink.reads)
        assert not any(b"RSET" in chunk for chunk in sink.reads)  # it would be content


# --- the send mark -----------------------------------------------------------------------


def test_the_mark_comes_after_354_and_what_it_raises_leaves_nothing_sent() -> None:
    """before_data runs once the server has answered DATA (it has read the command); if it
    raises, the caller's error comes back as it was raised, the server never gets the
    content nor the final ".", and the connection is not used again."""
    refusal = LookupError("the claim is gone")
    seen: list[bool] = []

    with SmtpSink() as sink:

        async def refuse() -> None:
            seen.append(any(chunk.endswith(b"DATA\r\n") for chunk in sink.reads))
            raise refusal

        async def main() -> None:
            async with smtp(sink.host, sink.port) as transport:
                with pytest.raises(LookupError) as info:
                    await transport.send(message(), before_data=refuse)
                assert info.value is refusal
                await transport.send(message(subject="next"))

        asyncio.run(main())
        assert seen == [True]
        assert [m["Subject"] for m in sink.messages] == ["next"]
        assert sink.connections_opened == 2
        assert sink.data_begun == 1
        assert not content_before_the_second_envelope(sink.reads)
        assert not any(b"RSET" in chunk for chunk in sink.reads)  # it would be content


# --- lost connections --------------------------------------------------------------------


def test_a_pooled_connection_gone_at_mail_is_retried_once_on_a_fresh_one(
    either_sink: SmtpSink,
) -> None:
    """The server closes a reused connection on reading the (pipelined) envelope, as one
    that had closed it while idle: nothing of the content went, so the send goes again on
    a new connection, once, and is delivered once."""

    async def main() -> None:
        async with smtp(either_sink.host, either_sink.port) as transport:
            await transport.send(message(subject="first"))
            either_sink.drop_connection_at_mail()
            await transport.send(message(subject="second"))

    asyncio.run(main())
    assert [m["Subject"] for m in either_sink.messages] == ["first", "second"]
    assert either_sink.connections_opened == 2


# --- a lean server: every reply to one read in one write ----------------------------------


class LeanServer:
    """A bare SMTP responder that answers all the commands of one read in one write (as
    busy relays do), so the replies to a pipelined envelope arrive together.

    With `rcpt_reply`, it answers every RCPT so and DATA still with 354, as some servers
    do; with `rcpt_reply=None` it closes the connection at the first RCPT (having answered
    MAIL); with `answers_data=False` it never answers DATA; with `verdicts_after`, the
    content of the n-th transaction is answered after that many
    seconds (None: never), counting the transactions of every connection in turn.
    """

    def __init__(
        self,
        rcpt_reply: bytes | None = b"250 OK",
        *,
        answers_data: bool = True,
        verdicts_after: Sequence[float | None] = (),
    ) -> None:
        self.rcpt_reply = rcpt_reply
        self.answers_data = answers_data
        self.verdicts_after = list(verdicts_after)
        self.transactions = 0
        self.messages: list[bytes] = []
        self.reads: list[bytes] = []
        self.connections = 0
        self.port = 0

    async def __aenter__(self) -> LeanServer:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _LeanSession(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


class _LeanSession(asyncio.Protocol):
    def __init__(self, server: LeanServer) -> None:
        self.server = server
        self.buffer = b""
        self.content: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections += 1
        transport.write(b"220 lean ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.server.reads.append(data)
        self.buffer += data
        replies = []
        while True:
            if self.content is not None:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    break
                self.server.messages.append(self.content + self.buffer[: end + 2])
                self.buffer, self.content = self.buffer[end + 5 :], None
                self.server.transactions += 1
                delays, done = self.server.verdicts_after, self.server.transactions
                if done <= len(delays):
                    delay = delays[done - 1]
                    if delay is not None:
                        loop = asyncio.get_running_loop()
                        loop.call_later(delay, self.transport.write, b"250 OK: queued\r\n")
                    continue
                replies.append(b"250 OK: queued")
                continue
            line, found, self.buffer = self.buffer.partition(b"\r\n")
            if not found:
                self.buffer = line
                break
            verb = line[:4].upper()
            if verb == b"EHLO":
                replies.append(b"250-lean\r\n250-8BITMIME\r\n250 PIPELINING")
            elif verb == b"RCPT" and self.server.rcpt_reply is None:
                self.transport.write(b"\r\n".join([*replies, b""]))
                self.transport.close()
                return
            elif verb == b"RCPT":
                replies.append(self.server.rcpt_reply)
            elif verb == b"DATA" and not self.server.answers_data:
                break
            elif verb == b"DATA":
                self.content = b""
                replies.append(b"354 go ahead")
            elif verb == b"QUIT":
                replies.append(b"221 Bye")
            else:
                replies.append(b"250 OK")
        if replies:
            self.transport.write(b"\r\n".join(replies) + b"\r\n")


def test_replies_that_arrive_together_are_each_read() -> None:
    """Three recipients, then another message on the same connection: each envelope's
    five replies come in one segment and are taken in order."""

    async def main() -> LeanServer:
        async with LeanServer() as lean:
            async with smtp("127.0.0.1", lean.port) as transport:
                many = ("a@example.com", "b@example.com", "c@example.com")
                assert (await transport.send(message(*many))) == "250 OK: queued"
                await transport.send(message(subject="second"))
            return lean

    lean = asyncio.run(main())
    assert len(lean.messages) == 2
    assert b"Subject: second\r\n" in lean.messages[1]
    assert any(
        chunk.count(b"RCPT TO:") == 3 and chunk.endswith(b"DATA\r\n") for chunk in lean.reads
    )


def test_354_to_an_envelope_whose_only_recipient_was_refused_sends_nothing() -> None:
    """A server that refuses the recipient and still answers DATA with 354 is waiting for
    content: the client closes the connection rather than send it, and fails the send."""

    async def main() -> tuple[LeanServer, PermanentSendError]:
        async with LeanServer(rcpt_reply=b"550 5.1.1 no such user") as lean:
            async with smtp("127.0.0.1", lean.port) as transport:
                with pytest.raises(PermanentSendError) as info:
                    await transport.send(message())
            return lean, info.value

    lean, error = asyncio.run(main())
    assert lean.messages == []
    assert not any(b"Tracking:" in chunk or b"RSET" in chunk for chunk in lean.reads)
    assert error.recipient_refused and "550 5.1.1 no such user" in str(error)


def test_a_connection_lost_after_mail_was_answered_is_transient_and_not_retried() -> None:
    """The server answered MAIL, then closed: not a stale pooled connection (it was alive),
    so no second go; the send fails for now, with nothing sent and no mark."""
    marks: list[str] = []

    async def mark() -> None:
        marks.append("marked")

    async def main() -> LeanServer:
        async with LeanServer(rcpt_reply=None) as lean:
            async with smtp("127.0.0.1", lean.port) as transport:
                with pytest.raises(TransientSendError) as info:
                    await transport.send(message(), before_data=mark)
            assert "connection failed before the message was sent" in str(info.value)
            return lean

    lean = asyncio.run(main())
    assert lean.connections == 1 and lean.messages == [] and marks == []


def test_a_reply_that_never_comes_is_transient_and_the_connection_is_not_reused() -> None:
    """DATA unanswered within the timeout: transient (no content went, no mark), and the
    connection is dropped, since its late reply would be read as the next command's."""
    marks: list[str] = []

    async def mark() -> None:
        marks.append("marked")

    async def main() -> LeanServer:
        async with LeanServer(answers_data=False) as lean:
            transport = SmtpTransport(hostname="127.0.0.1", port=lean.port, timeout=0.3)
            async with transport:
                for _ in range(2):
                    with pytest.raises(TransientSendError) as info:
                        await transport.send(message(), before_data=mark)
                    assert not isinstance(info.value, AmbiguousSendError)
            return lean

    lean = asyncio.run(main())
    assert lean.connections == 2 and lean.messages == [] and marks == []


def test_a_verdict_that_never_comes_is_ambiguous_within_the_timeout() -> None:
    """The content's verdict never comes: ambiguous once the timeout (0.3 s) has passed,
    not before and not much after; the connection is dropped, and the next send goes on
    a new one."""

    async def main() -> tuple[float, LeanServer]:
        async with LeanServer(verdicts_after=[None]) as lean:
            transport = SmtpTransport(hostname="127.0.0.1", port=lean.port, timeout=0.3)
            async with transport:
                started = time.monotonic()
                with pytest.raises(AmbiguousSendError) as info:
                    await transport.send(message())
                waited = time.monotonic() - started
                assert "Timed out waiting for server response" in str(info.value)
                await transport.send(message(subject="next"))
            return waited, lean

    waited, lean = asyncio.run(main())
    assert 0.3 <= waited < 1.5
    assert lean.connections == 2 and len(lean.messages) == 2


def test_each_reply_has_the_whole_timeout_however_the_replies_before_it_went() -> None:
    """The timeout (1 s) counts from each read, on one timer a connection: a verdict 0.7 s
    late, still awaited when the first read's deadline passes, is waited for; so is one on a
    connection idle for longer than the timeout (its timer stopped meanwhile); and then one
    that never comes still times out, after the timeout."""

    async def main() -> tuple[list[str], float]:
        async with LeanServer(verdicts_after=[0.5, 0.7, 0.6, None]) as lean:
            transport = SmtpTransport(hostname="127.0.0.1", port=lean.port, timeout=1.0)
            async with transport:
                replies = [await transport.send(message()) for _ in range(2)]
                await asyncio.sleep(1.2)  # idle past the timeout: the timer finds nothing
                replies.append(await transport.send(message()))
                started = time.monotonic()
                with pytest.raises(AmbiguousSendError):
                    # Bounded here too: a timer that never fires must fail, not hang, the test.
                    await asyncio.wait_for(transport.send(message()), 5)
                return replies, time.monotonic() - started

    replies, waited = asyncio.run(main())
    assert replies == ["250 OK: queued"] * 3
    assert 1.0 <= waited < 2.5


def test_a_421_reply_closes_the_connection_either_way(either_sink: SmtpSink) -> None:
    """421 (the server is closing the channel) to a RCPT: transient, and the next send opens
    a new connection, with pipelining as without."""
    either_sink.reply_with("421 4.3.2 shutting down, try again in 60 seconds")

    async def main() -> TransientSendError:
        async with smtp(either_sink.host, either_sink.port) as transport:
            with pytest.raises(TransientSendError) as info:
                await transport.send(message())
            await transport.send(message(subject="next"))
        return info.value

    error = asyncio.run(main())
    assert error.code == 421 and error.retry_after == 60
    assert [m["Subject"] for m in either_sink.messages] == ["next"]
    assert either_sink.connections_opened == 2


# --- the engine, end to end --------------------------------------------------------------


def test_the_engine_delivers_a_due_notice_pipelined(store_url: str) -> None:
    """A due notice through SmtpTransport to a pipelining server: one message received,
    the notice sent, and its send mark written after the server had read DATA (and
    before any content), then cleared by the outcome."""
    store = SqlStore(store_url)
    with SmtpSink() as sink, contextlib.closing(store):
        engine = engine_on(store)
        [key] = engine.ingest(tracking_records(1)).created_keys
        marks: list[tuple[bool, int]] = []
        original = store.record_sends

        def watched(
            writes: Sequence[tuple[str, Completion | None]], *, token: str, now: datetime
        ) -> list[bool]:
            if any(done is None for _, done in writes):  # a send mark
                at_data = any(chunk.endswith(b"DATA\r\n") for chunk in sink.reads)
                marks.append((at_data, len(sink.deliveries)))
            return original(writes, token=token, now=now)

        store.record_sends = watched  # type: ignore[method-assign]

        async def run() -> None:
            engine.transport = smtp(sink.host, sink.port)
            try:
                report = await engine.deliver_due()
            finally:
                await engine.transport.close()
            assert report.counts == {NoticeStatus.SENT: 1}

        asyncio.run(run())
        [received] = sink.deliveries
        assert received.rcpt_tos == ("customer0@example.com",)
        assert marks == [(True, 0)]
        assert b"DATA\r\n" in read_with(sink, b"MAIL FROM:")
        notice = store.notice(key)
    assert notice is not None and notice.status is NoticeStatus.SENT
    assert notice.send_started_at is None and notice.ambiguous_attempts == 0
