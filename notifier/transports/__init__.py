"""Transports: how a rendered message leaves the process.

The engine depends only on :class:`Transport`. The concrete transports live in
their own modules; ``SmtpTransport`` is imported on first use so that code which
only needs the protocol (or the file and memory transports) never loads the
SMTP driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifier.transports.file import FileTransport
from notifier.transports.memory import MemoryTransport
from notifier.transports.protocol import BeforeData, Transport

if TYPE_CHECKING:
    from notifier.transports.smtp import SmtpTransport

__all__ = ["BeforeData", "FileTransport", "MemoryTransport", "SmtpTransport", "Transport"]


def __getattr__(name: str) -> object:
    if name == "SmtpTransport":
        from notifier.transports.smtp import SmtpTransport

        return SmtpTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
