"""The transports against real things: an SMTP server in-process, a real folder."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, TypeVar

import pytest
from support.smtp_sink import SmtpSink, Stage

from notifier.errors import AmbiguousSendError, PermanentSendError, TransientSendError
from notifier.transports import FileTransport, MemoryTransport, SmtpTransport

# Each SMTP test twice: against a server offering PIPELINING and one that does not.
pytestmark = pytest.mark.smtp_both_ways

E = TypeVar("E", bound=Exception)


def make_message(
    *,
    to: str = "Alice <alice@example.com>",
    sender: str = "Shop <shop@example.com>",
    subject: str = "Your order has shipped",
    message_id: str | None = None,
    **headers: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate()
    message["Message-ID"] = message_id or make_msgid(domain="notifier.test")
    for name, value in headers.items():
        message[name] = value
    message.set_content("Tracking: 1Z999AA10123456784\n")
    message.add_alternative("<p>Tracking: <b>1Z999AA10123456784</b></p>\n", subtype="html")
    return message


def smtp(sink: SmtpSink, **options: Any) -> SmtpTransport:
    return SmtpTransport(hostname=sink.host, port=sink.port, timeout=5, **options)


async def send_expecting(
    transport: SmtpTransport, error: type[E], message: EmailMessage | None = None
) -> E:
    with pytest.raises(error) as info:
        await transport.send(message or make_message())
    return info.value


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# --- delivery -----------------------------------------------------------------


def test_multipart_message_arrives_intact(smtp_sink: SmtpSink) -> None:
    """A text+HTML message arrives with its headers, both parts and the right envelope."""
    sent = make_message(subject="Grüße: your order shipped")

    async def main() -> None:
        async with smtp(smtp_sink) as transport:
            await transport.send(sent)

    asyncio.run(main())
    [delivery] = smtp_sink.deliveries
    received = delivery.message
    assert delivery.mail_from == "shop@example.com"
    assert delivery.rcpt_tos == ("alice@example.com",)
    for name in ("From", "To", "Subject", "Date", "Message-ID"):
        assert received[name] == sent[name]
    assert received.get_content_type() == "multipart/alternative"
    text, html = received.iter_parts()
    assert text.get_content() == "Tracking: 1Z999AA10123456784\n"
    assert html.get_content() == "<p>Tracking: <b>1Z999AA10123456784</b></p>\n"
    assert b"\r\n" in delivery.data and b"\n" not in delivery.data.replace(b"\r\n", b"")


def test_envelope_uses_sender_header_and_all_recipients_and_hides_bcc(smtp_sink: SmtpSink) -> None:
    """Sender wins over From; To, Cc and Bcc are all recipients; Bcc is not transmitted."""
    message = make_message(
        Sender="bounces@example.com", Cc="carol@example.com", Bcc="archive@example.com"
    )

    async def main() -> None:
        async with smtp(smtp_sink) as transport:
            await transport.send(message)

    asyncio.run(main())
    [delivery] = smtp_sink.deliveries
    assert delivery.mail_from == "bounces@example.com"
    assert delivery.rcpt_tos == ("alice@example.com", "carol@example.com", "archive@example.com")
    assert "Bcc" not in delivery.message
    assert "Bcc" in message  # the caller's message is left alone


def test_connections_are_reused(smtp_sink: SmtpSink) -> None:
    """20 sends one after another use one connection; 20 at once use at most 4."""

    async def main() -> None:
        async with smtp(smtp_sink, connections=4) as transport:
            for _ in range(20):
                await transport.send(make_message())
            assert smtp_sink.connections_opened == 1
            await asyncio.gather(*(transport.send(make_message()) for _ in range(20)))

    asyncio.run(main())
    assert len(smtp_sink.messages) == 40
    assert 1 <= smtp_sink.connections_opened <= 4


def test_many_concurrent_sends_all_arrive(smtp_sink: SmtpSink) -> None:
    """50 concurrent sends all arrive, each once, over the bounded pool."""
    messages = [make_message(to=f"customer{i}@example.com") for i in range(50)]

    async def main() -> None:
        async with smtp(smtp_sink, connections=4) as transport:
            await asyncio.gather(*(transport.send(message) for message in messages))

    asyncio.run(main())
    received = sorted(message["Message-ID"] for message in smtp_sink.wait_for(50))
    assert received == sorted(message["Message-ID"] for message in messages)
    assert smtp_sink.connections_opened <= 4


def test_close_quits_every_connection(smtp_sink: SmtpSink) -> None:
    """Closing the transport sends QUIT on each pooled connection and closes them all."""

    async def main() -> None:
        transport = smtp(smtp_sink, connections=3)
        await asyncio.gather(*(transport.send(make_message()) for _ in range(9)))
        await transport.close()
        with pytest.raises(TransientSendError, match="closed"):
            await transport.send(make_message())

    asyncio.run(main())
    assert smtp_sink.quits == smtp_sink.connections_opened > 0
    wait_until(lambda: smtp_sink.connections_open == 0)


# --- refusals -----------------------------------------------------------------


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_4xx_reply_is_transient_with_code(smtp_sink: SmtpSink, stage: Stage) -> None:
    """A 4xx reply to MAIL, RCPT or DATA is a transient failure carrying the code."""
    smtp_sink.reply_with("451 4.3.0 local problem, later please", stage=stage)

    async def main() -> TransientSendError:
        async with smtp(smtp_sink) as transport:
            return await send_expecting(transport, TransientSendError)

    error = asyncio.run(main())
    assert not isinstance(error, AmbiguousSendError)
    assert error.code == 451
    assert "451 4.3.0 local problem, later please" in str(error)
    assert error.retry_after is None
    assert smtp_sink.messages == []


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_5xx_reply_is_permanent_with_reply_text(smtp_sink: SmtpSink, stage: Stage) -> None:
    """A 5xx reply to MAIL, RCPT or DATA is a permanent failure quoting the server."""
    smtp_sink.reply_with("554 5.7.1 message refused by policy", stage=stage)

    async def main() -> PermanentSendError:
        async with smtp(smtp_sink) as transport:
            return await send_expecting(transport, PermanentSendError)

    error = asyncio.run(main())
    assert error.code == 554
    assert "554 5.7.1 message refused by policy" in str(error)
    assert smtp_sink.messages == []


def test_refused_recipient_is_permanent(smtp_sink: SmtpSink) -> None:
    """RCPT answered 550 (no such user) is permanent and names the recipient."""
    smtp_sink.reply_with("550 5.1.1 no such user", stage="rcpt", recipient="alice@example.com")

    async def main() -> PermanentSendError:
        async with smtp(smtp_sink) as transport:
            return await send_expecting(transport, PermanentSendError)

    error = asyncio.run(main())
    assert error.code == 550
    assert "alice@example.com" in str(error) and "550 5.1.1 no such user" in str(error)


def test_one_refused_recipient_fails_the_whole_send(smtp_sink: SmtpSink) -> None:
    """With one of two recipients refused, nothing is delivered to the other either."""
    smtp_sink.reply_with("550 5.1.1 no such user", stage="rcpt", recipient="gone@example.com")

    async def main() -> None:
        async with smtp(smtp_sink) as transport:
            await send_expecting(transport, PermanentSendError, make_message(Cc="gone@example.com"))

    asyncio.run(main())
    assert smtp_sink.messages == []


def test_connection_is_reset_and_reused_after_a_refusal(smtp_sink: SmtpSink) -> None:
    """After a refused transaction the same connection carries the next message."""
    smtp_sink.reply_with("550 5.1.1 no such user", stage="rcpt")
    smtp_sink.reply_with("452 4.2.2 mailbox full", stage="data")

    async def main() -> None:
        async with smtp(smtp_sink) as transport:
            await send_expecting(transport, PermanentSendError)
            await send_expecting(transport, TransientSendError)
            await transport.send(make_message(subject="third time lucky"))

    asyncio.run(main())
    assert [message["Subject"] for message in smtp_sink.messages] == ["third time lucky"]
    assert smtp_sink.connections_opened == 1


def test_auth_required_530_is_transient(smtp_sink: SmtpSink) -> None:
    """530 (authentication or STARTTLS required) is a settings problem: transient, not permanent."""
    smtp_sink.reply_with("530 5.7.0 Authentication required", stage="mail")

    async def main() -> TransientSendError:
        async with smtp(smtp_sink) as transport:
            return await send_expecting(transport, TransientSendError)

    error = asyncio.run(main())
    assert error.code == 530
    assert "530 5.7.0 Authentication required" in str(error)


def test_greeting_421_is_transient(smtp_sink: SmtpSink) -> None:
    """A server that greets with 421 (busy) gives a transient failure with the code."""
    smtp_sink.reply_with("421 4.3.2 too busy, try again in 30 seconds", stage="connect")

    async def main() -> TransientSendError:
        async with smtp(smtp_sink) as transport:
            error = await send_expecting(transport, TransientSendError)
            await transport.send(make_message())
            return error

    error = asyncio.run(main())
    assert error.code == 421
    assert error.retry_after == 30
    assert len(smtp_sink.messages) == 1


@pytest.mark.parametrize(
    ("reply", "seconds"),
    [
        ("451 4.7.1 Greylisted, please try again in 5 minutes", 300),
        ("450 4.2.0 rate limited; retry after 90s", 90),
        ("421 4.7.0 Try again in 1 hour", 3600),
        ("451 4.3.0 try again later", None),
    ],
)
def test_retry_after_hint_is_parsed(smtp_sink: SmtpSink, reply: str, seconds: float | None) -> None:
    """A "try again in N seconds/minutes/hours" hint in a 4xx reply becomes retry_after."""
    smtp_sink.reply_with(reply, stage="rcpt")

    async def main() -> TransientSendError:
        async with smtp(smtp_sink) as transport:
            return await send_expecting(transport, TransientSendError)

    assert asyncio.run(main()).retry_after == seconds


# --- broken connections ---------------------------------------------------------


def test_server_down_is_transient(smtp_sink: SmtpSink) -> None:
    """A refused connection (server stopped) is a transient failure."""
    smtp_sink.stop()

    async def main() -> TransientSendError:
        async with smtp(smtp_sink) as transport:
            return await send_expecting(transport, TransientSendError)

    error = asyncio.run(main())
    assert not isinstance(error, AmbiguousSendError)
    assert error.code is None
    assert f"{smtp_sink.host}:{smtp_sink.port}" in str(error)


def test_server_that_never_answers_times_out_as_transient() -> None:
    """A server that accepts the connection but never greets gives a transient failure."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]

        async def main() -> TransientSendError:
            async with SmtpTransport(hostname="127.0.0.1", port=port, timeout=0.3) as transport:
                return await send_expecting(transport, TransientSendError)

        started = time.monotonic()
        error = asyncio.run(main())
    assert not isinstance(error, AmbiguousSendError)
    assert time.monotonic() - started < 3


def test_connection_dropped_after_data_is_ambiguous(smtp_sink: SmtpSink) -> None:
    """Losing the connection after the data was sent, before the reply, is ambiguous."""
    smtp_sink.drop_connection_after_data(keep=True)

    async def main() -> None:
        async with smtp(smtp_sink) as transport:
            await send_expecting(transport, AmbiguousSendError)
            await transport.send(make_message(subject="after the drop"))

    asyncio.run(main())
    # The sink kept the first message: the client could not have known.
    assert [message["Subject"] for message in smtp_sink.messages] == [
        "Your order has shipped",
        "after the drop",
    ]
    assert smtp_sink.connections_opened == 2


def test_delivery_recovers_after_an_outage(smtp_sink: SmtpSink) -> None:
    """Sends fail transiently while the server is down and succeed once it is back."""

    async def main() -> None:
        async with smtp(smtp_sink) as transport:
            await transport.send(make_message(subject="before"))
            smtp_sink.stop()
            await send_expecting(transport, TransientSendError)
            smtp_sink.start()
            await transport.send(make_message(subject="after"))

    asyncio.run(main())
    assert [message["Subject"] for message in smtp_sink.messages] == ["before", "after"]


def test_idle_connection_closed_by_server_is_replaced(smtp_sink: SmtpSink) -> None:
    """A pooled connection the server dropped while idle is replaced without an error."""

    async def main() -> None:
        async with smtp(smtp_sink) as transport:
            await transport.send(make_message(subject="first"))
            smtp_sink.stop()
            smtp_sink.start()
            await transport.send(make_message(subject="second"))

    asyncio.run(main())
    assert [message["Subject"] for message in smtp_sink.messages] == ["first", "second"]
    assert smtp_sink.connections_opened == 2


# --- internationalised addresses ------------------------------------------------


def test_non_ascii_address_is_sent_with_smtputf8(smtp_sink: SmtpSink) -> None:
    """A non-ASCII recipient goes out with SMTPUTF8 when the server offers it."""

    async def main() -> None:
        async with smtp(smtp_sink) as transport:
            await transport.send(make_message(to="Jörg <jörg@bücher.example>"))

    asyncio.run(main())
    [delivery] = smtp_sink.deliveries
    assert "SMTPUTF8" in delivery.mail_options
    assert delivery.rcpt_tos == ("jörg@bücher.example",)
    assert delivery.message["To"].addresses[0].addr_spec == "jörg@bücher.example"


def test_non_ascii_address_without_smtputf8_is_permanent(smtp_sink: SmtpSink) -> None:
    """A non-ASCII address is refused for good, with the reason, if the server lacks SMTPUTF8."""
    smtp_sink.smtputf8 = False

    async def main() -> PermanentSendError:
        async with smtp(smtp_sink) as transport:
            error = await send_expecting(
                transport, PermanentSendError, make_message(to="jörg@bücher.example")
            )
            await transport.send(make_message(subject="plain ascii"))
            return error

    error = asyncio.run(main())
    assert "non-ASCII address" in str(error) and "SMTPUTF8" in str(error)
    assert [message["Subject"] for message in smtp_sink.messages] == ["plain ascii"]
    assert "SMTPUTF8" not in smtp_sink.deliveries[0].mail_options


# --- file and memory transports ---------------------------------------------------


def test_file_transport_writes_one_file_per_message_id(tmp_path: Path) -> None:
    """The same Message-ID sent twice leaves one file, holding the latest message."""
    outbox = tmp_path / "outbox"
    transport = FileTransport(outbox)

    async def main() -> None:
        await transport.send(make_message(message_id="<n-42@notifier.test>", subject="one"))
        await transport.send(make_message(message_id="<n-42@notifier.test>", subject="two"))
        await transport.send(make_message(message_id="<n-43@notifier.test>"))
        await transport.close()

    asyncio.run(main())
    assert sorted(os.listdir(outbox)) == ["n-42@notifier.test.eml", "n-43@notifier.test.eml"]
    data = (outbox / "n-42@notifier.test.eml").read_bytes()
    assert b"Subject: two\r\n" in data and b"Subject: one" not in data


def test_file_transport_names_stay_inside_the_folder(tmp_path: Path) -> None:
    """Unsafe Message-IDs become distinct file names inside the folder; none is refused."""
    transport = FileTransport(tmp_path)
    ids = ["<../../escape@x>", "<a/b@x>", "<a_b@x>", "<.hidden@x>"]

    async def main() -> None:
        for message_id in ids:
            await transport.send(make_message(message_id=message_id))
        with pytest.raises(PermanentSendError, match="Message-ID"):
            message = make_message()
            del message["Message-ID"]
            await transport.send(message)

    asyncio.run(main())
    names = os.listdir(tmp_path)
    assert len(names) == len(ids)
    assert all(name.endswith(".eml") and not name.startswith(".") for name in names)
    assert all("/" not in name for name in names)


def test_memory_transport_keeps_messages_and_fails_on_request() -> None:
    """MemoryTransport records sends and raises the scripted failures first."""
    transport = MemoryTransport()
    first, second = make_message(), make_message()
    transport.fail_next(TransientSendError("busy", code=451), times=2)

    async def main() -> None:
        for _ in range(2):
            with pytest.raises(TransientSendError):
                await transport.send(first)
        await transport.send(first)
        await transport.send(second)

    asyncio.run(main())
    assert transport.messages == [first, second]


def test_protocol_module_does_not_import_the_smtp_driver() -> None:
    """Importing notifier.transports loads no aiosmtplib until SmtpTransport is used."""
    code = (
        "import sys, notifier.transports as t\n"
        "assert 'aiosmtplib' not in sys.modules\n"
        "t.SmtpTransport\n"
        "assert 'aiosmtplib' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- before_data: the engine's send mark, at the last moment before the message leaves ---


def test_before_data_runs_once_the_envelope_is_accepted_and_before_the_message(
    smtp_sink: SmtpSink,
) -> None:
    """The hook runs once, after MAIL and RCPT were accepted and before the content left."""
    seen: list[tuple[int, int]] = []

    async def main() -> None:
        async with smtp(smtp_sink) as transport:

            async def hook() -> None:
                seen.append((len(smtp_sink.deliveries), smtp_sink.data_begun))

            await transport.send(make_message(), before_data=hook)

    asyncio.run(main())
    assert seen == [(0, 0)]
    assert len(smtp_sink.deliveries) == 1


def test_a_refused_envelope_never_reaches_before_data(smtp_sink: SmtpSink) -> None:
    """A recipient refused (for now or for good) means nothing can have arrived: no hook."""
    calls: list[str] = []

    async def hook() -> None:
        calls.append("called")

    async def main() -> None:
        async with smtp(smtp_sink) as transport:
            smtp_sink.reply_with("450 mailbox busy")
            with pytest.raises(TransientSendError):
                await transport.send(make_message(), before_data=hook)
            smtp_sink.reply_with("550 no such user")
            with pytest.raises(PermanentSendError):
                await transport.send(make_message(), before_data=hook)

    asyncio.run(main())
    assert calls == []
    assert smtp_sink.deliveries == []


def test_what_before_data_raises_passes_through_and_nothing_is_sent(
    smtp_sink: SmtpSink,
) -> None:
    """The hook's own error comes out unchanged and no content is sent. Without pipelining
    the connection is reset for the next send (no new connection needed); pipelined, the
    server is already inside DATA, so the connection is closed before the final "." and the
    next send opens a new one."""
    refusal = LookupError("the claim is gone")

    async def refuse() -> None:
        raise refusal

    async def main() -> None:
        async with smtp(smtp_sink) as transport:
            with pytest.raises(LookupError) as info:
                await transport.send(make_message(), before_data=refuse)
            assert info.value is refusal
            assert smtp_sink.deliveries == []
            await transport.send(make_message())

    asyncio.run(main())
    assert len(smtp_sink.deliveries) == 1
    assert smtp_sink.connections_opened == (2 if smtp_sink.pipelining else 1)


def test_file_and_memory_transports_run_before_data_before_writing(tmp_path: Path) -> None:
    """The outbox file and the memory list are written only after the hook; its error
    passes through and nothing is written."""
    order: list[str] = []
    outbox = tmp_path / "outbox"

    async def hook() -> None:
        order.append(f"hook, {len(list(outbox.glob('*.eml'))) if outbox.exists() else 0} files")

    async def refuse() -> None:
        raise LookupError("no")

    async def main() -> None:
        files = FileTransport(outbox)
        await files.send(make_message(), before_data=hook)
        with pytest.raises(LookupError):
            await files.send(make_message(), before_data=refuse)
        memory = MemoryTransport()
        with pytest.raises(LookupError):
            await memory.send(make_message(), before_data=refuse)
        assert memory.messages == []

    asyncio.run(main())
    assert order == ["hook, 0 files"]
    assert len(list(outbox.glob("*.eml"))) == 1
