"""An in-memory transport, for tests that assert on what was sent."""

from __future__ import annotations

from collections import deque
from email.message import EmailMessage

from notifier.errors import TransientSendError
from notifier.transports.protocol import BeforeData


class MemoryTransport:
    """Keeps every accepted message in :attr:`messages`, in the order sent."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.closed = False
        self._failures: deque[BaseException] = deque()

    def fail_next(self, exc: BaseException, /, *, times: int = 1) -> None:
        """Make the next ``times`` sends raise ``exc`` instead of accepting the message.

        ``exc`` may be anything, not only a send error: that is how a test plays a
        transport that breaks its contract.
        """
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        self._failures.extend([exc] * times)

    async def send(self, message: EmailMessage, /, *, before_data: BeforeData | None = None) -> str:
        if self.closed:
            raise TransientSendError("the memory transport is closed")
        if before_data is not None:
            await before_data()
        if self._failures:
            raise self._failures.popleft()
        self.messages.append(message)
        return f"accepted as message {len(self.messages)} in memory"

    async def close(self) -> None:
        self.closed = True
