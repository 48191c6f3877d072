"""Transports: how a rendered message leaves the process.

The engine depends only on :class:`Transport`. The concrete transports live in
their own modules; ``SmtpTransport`` is imported on first use so that code which
only needs the protocol (or the file and memory transports) never loads the
SMTP driver.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import TYPE_CHECKING, Protocol

from notifier.transports.file import FileTransport
from notifier.transports.memory import MemoryTransport

if TYPE_CHECKING:
    from notifier.transports.smtp import SmtpTransport

__all__ = ["FileTransport", "MemoryTransport", "SmtpTransport", "Transport"]


class Transport(Protocol):
    """Delivers email messages.

    The envelope sender is the ``Sender`` address if the message has one, else the
    ``From`` address; the recipients are every ``To``, ``Cc`` and ``Bcc`` address.
    ``send`` returns once the message is accepted, or raises a
    :class:`~notifier.errors.SendError` saying whether trying again can help: each
    transport translates its driver's and the OS's errors at its own edge. Anything else
    it lets escape is a bug the engine still survives, counting it as ambiguous.
    """

    async def send(self, message: EmailMessage, /) -> None: ...

    async def close(self) -> None: ...


def __getattr__(name: str) -> object:
    if name == "SmtpTransport":
        from notifier.transports.smtp import SmtpTransport

        return SmtpTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
