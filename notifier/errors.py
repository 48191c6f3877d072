"""The project's errors: one root, translated once at each edge.

NotifierError
├── ConfigError          settings, rule files, template folders
│   └── RuleError        one rule file is broken (names the file and the field)
├── TemplateError        a template does not render (names the file, line and problem)
├── StoreError           the ledger could not be read or written
└── SendError            a transport could not deliver a message
    ├── TransientSendError   try again later (4xx, refused or reset connection)
    ├── PermanentSendError   never try again (5xx); the address is suppressed
    └── AmbiguousSendError   the connection died after the data was sent
"""

from __future__ import annotations


class NotifierError(Exception):
    """Something went wrong in notifier."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(NotifierError):
    """The configuration is invalid."""


class RuleError(ConfigError):
    """A rule file is invalid."""


class TemplateError(NotifierError):
    """A template could not be rendered."""


class StoreError(NotifierError):
    """The store could not be read or written."""


class SendError(NotifierError):
    """A message could not be delivered."""

    def __init__(
        self,
        message: str | None = None,
        *,
        code: int | None = None,
        retry_after: float | None = None,
        recipient_refused: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after
        # The server refused the address itself (RCPT), not the sender, session or content:
        # only then is a permanent refusal a reason to suppress the address.
        self.recipient_refused = recipient_refused


class TransientSendError(SendError):
    """The message was not accepted this time; it may be tried again later."""


class PermanentSendError(SendError):
    """The message was refused for good."""


class AmbiguousSendError(TransientSendError):
    """The connection died after the message data was sent: it may or may not have arrived."""
