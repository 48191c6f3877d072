"""What the engine needs of a transport: one small protocol every transport satisfies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Protocol

# Awaited once per send, when the message is about to leave: see Transport.send.
BeforeData = Callable[[], Awaitable[None]]


class Transport(Protocol):
    """Delivers email messages.

    The envelope sender is the ``Sender`` address if the message has one, else the
    ``From`` address; the recipients are every ``To``, ``Cc`` and ``Bcc`` address.
    ``send`` returns once the message is accepted — with the server's reply (SMTP: its
    answer to DATA) or a note on where it went, for the notice's history — or raises a
    :class:`~notifier.errors.SendError` saying whether trying again can help: each
    transport translates its driver's and the OS's errors at its own edge. Anything else
    it lets escape is a bug the engine still survives, counting it as ambiguous.

    ``before_data``, when given, is awaited once, at the last moment before the message
    itself goes out: for SMTP once the server has accepted the envelope (MAIL, RCPT), just
    before DATA (pipelined: once DATA too was answered 354, before the content). What it
    raises passes through unchanged and the message is not sent. The
    engine marks the send in the ledger there, so a crash before that point costs the notice
    nothing: only a send that may really have reached the server counts as ambiguous.
    """

    async def send(
        self, message: EmailMessage, /, *, before_data: BeforeData | None = None
    ) -> str | None: ...

    async def close(self) -> None: ...
