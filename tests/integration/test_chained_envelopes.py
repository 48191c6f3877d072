"""A message's content goes with the envelope of the next send waiting for a connection
(RFC 2920), and the connection passes to that send: with the same messages delivered,
each once, however the first one ends."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import aiosmtplib
import pytest
from support.smtp_sink import SmtpSink

from notifier.errors import AmbiguousSendError, PermanentSendError
from notifier.transports import pipelining
from notifier.transports.smtp import SmtpTransport

SENDER = "shop@example.com"


def message(n: int) -> EmailMessage:
    built = EmailMessage()
    built["From"] = f"Shop <{SENDER}>"
    built["To"] = f"customer{n}@example.com"
    built["Subject"] = f"Order {n} has shipped"
    built["Message-ID"] = f"<order-{n}@notifier.test>"
    built.set_content(f"Order {n}\n.a line that starts with a dot\n")
    return built


def one_connection(sink: SmtpSink) -> SmtpTransport:
    return SmtpTransport(hostname=sink.host, port=sink.port, connections=1, timeout=5)


async def send_together(transport: SmtpTransport, count: int) -> list[str | BaseException]:
    """`count` sends at once over the transport: all but the first wait for its connection."""
    async with transport:
        results = await asyncio.gather(
            *(transport.send(message(n)) for n in range(count)), return_exceptions=True
        )
    return list(results)


def chained_reads(sink: SmtpSink) -> int:
    """The server's reads that held a content's end and the next envelope together."""
    return sum(b"\r\n.\r\nMAIL FROM:" in chunk for chunk in sink.reads)


def test_waiting_sends_are_chained_on_one_connection_in_order() -> None:
    """Four sends at once over one connection: each one's envelope went with the content
    before it, all four arrived once, in order, on the one connection."""
    with SmtpSink() as sink:
        replies = asyncio.run(send_together(one_connection(sink), 4))
        assert replies == ["250 OK: queued"] * 4
        assert [d.rcpt_tos for d in sink.deliveries] == [
            (f"customer{n}@example.com",) for n in range(4)
        ]
        assert sink.connections_opened == 1
        assert chained_reads(sink) == 3
        # The content itself is dot-stuffed as always, and arrives unstuffed.
        assert all(".a line" in str(m.get_content()) for m in sink.messages)


def test_without_pipelining_nothing_is_chained() -> None:
    with SmtpSink(pipelining=False) as sink:
        replies = asyncio.run(send_together(one_connection(sink), 3))
        assert replies == ["250 OK: queued"] * 3
        assert chained_reads(sink) == 0 and len(sink.deliveries) == 3


def test_a_refused_content_hands_the_next_send_a_fresh_connection() -> None:
    """The first message's content is refused (550) with the next envelope chained to it:
    the first fails for good, the connection is closed (the server may be inside the next
    DATA), and the next two are sent on a new connection, each once."""
    with SmtpSink() as sink:
        sink.reply_with(
            "550 5.7.1 content rejected", stage="data", recipient="customer0@example.com"
        )
        results = asyncio.run(send_together(one_connection(sink), 3))
        assert isinstance(results[0], PermanentSendError)
        assert results[1:] == ["250 OK: queued"] * 2
        assert sorted(d.rcpt_tos[0] for d in sink.deliveries) == [
            "customer1@example.com",
            "customer2@example.com",
        ]
        assert sink.connections_opened == 2


def test_a_connection_lost_after_the_content_resends_only_the_chained_envelope() -> None:
    """The connection drops after the first content (which the server kept): the first is
    ambiguous; the chained one, whose content never went, is sent on a new connection, and
    nothing arrives twice."""
    with SmtpSink() as sink:
        sink.drop_connection_after_data(keep=True)
        results = asyncio.run(send_together(one_connection(sink), 3))
        assert isinstance(results[0], AmbiguousSendError)
        assert results[1:] == ["250 OK: queued"] * 2
        received = [d.rcpt_tos[0] for d in sink.deliveries]
        assert sorted(received) == [f"customer{n}@example.com" for n in range(3)]
        assert sink.connections_opened == 2


def test_a_chained_send_cancelled_before_it_takes_over_gives_its_place_back() -> None:
    """The chained send is cancelled while the send before it waits for its verdict: that
    one is sent, the connection (the server inside the cancelled one's DATA) is closed, no
    content of the cancelled one arrives, and the pool's one place is free for a next send."""

    async def main(sink: SmtpSink) -> list[str]:
        transport = one_connection(sink)
        async with transport:
            sink.slow_down(0.5)  # the first verdict comes late: the second waits, chained
            first = asyncio.create_task(transport.send(message(0)))
            second = asyncio.create_task(transport.send(message(1)))
            await asyncio.to_thread(sink.wait_for_data, 1)
            await asyncio.sleep(0.1)  # the first content and the second envelope are out
            second.cancel()
            replies = [await first]
            with pytest.raises(asyncio.CancelledError):
                await second
            sink.slow_down(0)
            replies.append(await asyncio.wait_for(transport.send(message(2)), 5))
        return replies

    with SmtpSink() as sink:
        replies = asyncio.run(main(sink))
        assert replies == ["250 OK: queued"] * 2
        assert [d.rcpt_tos[0] for d in sink.deliveries] == [
            "customer0@example.com",
            "customer2@example.com",
        ]
        assert chained_reads(sink) >= 1
        assert sink.connections_opened == 2


def test_replies_that_arrive_between_reads_are_kept_in_order() -> None:
    """Replies to commands already written that arrive while nothing reads (a chained
    envelope's, as the connection changes hands) are kept and read in order; aiosmtplib's
    own protocol would drop them, and the reads would time out."""

    async def main(sink: SmtpSink) -> list[str]:
        client = aiosmtplib.SMTP(hostname=sink.host, port=sink.port, timeout=1)
        await client.connect()
        pipelining.keep_replies(client)
        protocol = client.protocol
        assert protocol is not None
        protocol.data_received(b"250 first\r\n")
        protocol.data_received(b"250 second\r\n354 third\r\n")
        try:
            return [(await pipelining.read_reply(client, protocol)).message for _ in range(3)]
        finally:
            client.close()

    with SmtpSink() as sink:
        assert asyncio.run(main(sink)) == ["first", "second", "third"]
