"""The bounce mailbox: a scheduled `mailbox` job reads it over IMAP, each message once.

Per batch of messages: read each one, hand the batch's events to the feedback intake (one
transaction), and only then move the messages — understood ones to the processed folder,
the others to the unparsed folder (logged, never deleted). A crash between the intake and
the move leaves the messages in the folder; the next run reads them again and the intake
stores nothing twice (event ids come from the bounces), so nothing is lost or doubled.

IMAP over implicit TLS (port 993) by default, or STARTTLS; the server's certificate is
checked against the system's CAs or the job's `ca_file`. Plain IMAP is refused except to a
loopback address.
"""

from __future__ import annotations

import imaplib
import ipaddress
import logging
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError

from notifier.core.feedback import FeedbackEvent
from notifier.engine.feedback import FeedbackIntake, FeedbackReport
from notifier.errors import ConfigError, NotifierError
from notifier.sources.bounces.reading import NotUnderstood, read_bounce

log = logging.getLogger("notifier.sources.mailbox")

MailboxTls = Literal["tls", "starttls", "none"]


class MailboxError(NotifierError):
    """The bounce mailbox could not be read."""


@dataclass(frozen=True, slots=True)
class MailboxOptions:
    """One bounce mailbox (a `mailbox` job in notifier.toml)."""

    host: str
    username: str
    password: str = field(repr=False)
    port: int | None = None  # default: 993 for "tls", 143 otherwise
    tls: MailboxTls = "tls"
    ca_file: Path | None = None  # trust this CA (PEM) instead of the system's
    folder: str = "INBOX"
    processed_folder: str = "notifier-processed"
    unparsed_folder: str = "notifier-unparsed"
    timeout: float = 30.0
    batch: int = 50  # messages per intake transaction
    bounce_address: str | None = None  # NOTIFIER_BOUNCE_ADDRESS, for VERP tokens

    def __post_init__(self) -> None:
        folders = (self.folder, self.processed_folder, self.unparsed_folder)
        if len(set(folders)) != len(folders):
            raise ConfigError(
                f"mailbox {self.host}: folder, processed_folder and unparsed_folder must differ"
                f" (a message moved to the folder it is read from would be read again)"
            )
        if self.tls == "none" and not _is_loopback(self.host):
            raise ConfigError(
                f"mailbox {self.host}: tls = 'none' sends the password in clear; it is allowed"
                " only to a loopback address (use 'tls' or 'starttls')"
            )

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port_number}"

    @property
    def port_number(self) -> int:
        return self.port if self.port is not None else (993 if self.tls == "tls" else 143)


@dataclass(slots=True)
class MailboxRun:
    """What one run of the job did."""

    read: int = 0
    events: int = 0
    processed: int = 0  # moved to the processed folder
    unparsed: list[tuple[str, str]] = field(default_factory=list)  # (where, why), moved aside
    feedback: FeedbackReport = field(default_factory=FeedbackReport)

    def describe(self) -> str:
        """One line for the operator: `notifier schedule run` prints it, the log has it."""
        if not self.read:
            return "no messages"
        feedback = self.feedback
        return (
            f"{self.read} message(s): {self.events} event(s), {feedback.stored} new"
            f" ({sum(feedback.matched.values())} tied to a notice, {feedback.unmatched} not),"
            f" {len(feedback.suppressed)} address(es) suppressed,"
            f" {len(self.unparsed)} not understood (set aside)"
        )


class BounceMailbox:
    def __init__(
        self, options: MailboxOptions, *, clock: Callable[[], datetime], name: str = "mailbox"
    ) -> None:
        self.options = options
        self.clock = clock
        self.name = name

    def run(
        self, intake: FeedbackIntake, *, stopping: Callable[[], bool] = lambda: False
    ) -> MailboxRun:
        """Handle every message now in the folder (batch by batch, until `stopping`)."""
        run = MailboxRun()
        with self._session() as box:
            for folder in (self.options.processed_folder, self.options.unparsed_folder):
                if not box.folder.exists(folder):
                    box.folder.create(folder)
            uids = box.uids()
            for start in range(0, len(uids), self.options.batch):
                if stopping():
                    break
                self._handle(box, uids[start : start + self.options.batch], intake, run)
        if run.read:
            log.info("job %s: %s", self.name, run.describe())
        return run

    def _handle(
        self, box: BaseMailBox, uids: list[str], intake: FeedbackIntake, run: MailboxRun
    ) -> None:
        understood: list[str] = []
        unparsed: list[str] = []
        events: list[FeedbackEvent] = []
        received_at = self.clock()
        for message in box.fetch(uid_list=uids, mark_seen=False, bulk=True):
            run.read += 1
            uid = message.uid or "?"
            reading = read_bounce(
                message.obj, received_at=received_at, bounce_address=self.options.bounce_address
            )
            if isinstance(reading, NotUnderstood):
                where = f"{self.options.folder} UID {uid}"
                log.warning(
                    "job %s: %s not understood (moved to %s): %s",
                    self.name,
                    where,
                    self.options.unparsed_folder,
                    reading.reason,
                )
                run.unparsed.append((where, reading.reason))
                unparsed.append(uid)
                continue
            understood.append(uid)
            events += reading
        # Stored first (one transaction; StoreError leaves every message where it is), moved
        # after: a crash in between only means reading them again.
        run.feedback = run.feedback.plus(intake.take(events))
        run.events += len(events)
        box.move(understood, self.options.processed_folder)
        box.move(unparsed, self.options.unparsed_folder)
        run.processed += len(understood)

    @contextmanager
    def _session(self) -> Iterator[BaseMailBox]:
        options = self.options
        where = f"mailbox {options.username}@{options.server}"
        try:
            box = _mailbox(options)  # connected
        except (ImapToolsError, imaplib.IMAP4.error, OSError, ValueError) as exc:
            raise MailboxError(f"{where}: {_said(exc)}") from None
        try:
            box.login(options.username, options.password, initial_folder=options.folder)
        except (ImapToolsError, imaplib.IMAP4.error, OSError) as exc:
            with suppress(OSError):
                box.client.shutdown()
            raise MailboxError(f"{where}: {_said(exc)}") from None
        try:
            yield box
        except (ImapToolsError, imaplib.IMAP4.error, OSError) as exc:
            raise MailboxError(f"{where}: {_said(exc)}") from None
        finally:
            # A connection that is gone already has nothing to tidy.
            with suppress(ImapToolsError, imaplib.IMAP4.error, OSError):
                box.logout()


def _mailbox(options: MailboxOptions) -> BaseMailBox:
    port, timeout = options.port_number, options.timeout
    if options.tls == "none":
        return MailBoxUnencrypted(options.host, port, timeout=timeout)
    context = ssl.create_default_context(
        cafile=str(options.ca_file) if options.ca_file is not None else None
    )
    if options.tls == "starttls":
        return MailBoxStartTls(options.host, port, timeout=timeout, ssl_context=context)
    return MailBox(options.host, port, timeout=timeout, ssl_context=context)


def _said(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's certificate is not trusted ({exc.verify_message}): set ca_file"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
